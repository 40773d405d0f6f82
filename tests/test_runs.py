"""Whole runs (napari_cellae.pipeline.runs): train and encode, outputs checked first."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellae.core.config import TrainConfig
from napari_cellae.core.features import cell_feature_names
from napari_cellae.core.model_load import load_model
from napari_cellae.export.explorer import read_explorer_hdf
from napari_cellae.io.locate import input_files
from napari_cellae.pipeline import steps
from napari_cellae.pipeline.results import RunResult
from napari_cellae.pipeline.runs import run_encode, run_train


def _tiny(**kw) -> TrainConfig:
    base = dict(crop_size=16, architecture="c4.3r_p2_d16.0s", epochs=1, learning_rate=0.01)
    return TrainConfig(**{**base, **kw})


def test_run_train_and_encode_round_trip(cellcognition_file, mapping_file, tmp_path):
    epochs = []
    result = run_train(
        cellcognition_file,
        _tiny(epochs=2, train_on="controls"),
        mapping_path=mapping_file,
        out=tmp_path / "m.pt",
        on_epoch=epochs.append,
    )
    assert isinstance(result, RunResult) and not result.stopped
    assert [r.epoch for r in epochs] == [1, 2] and result.reports == epochs
    # the 15 control cells: 12 trained on, 3 held out to measure the held-out loss
    assert (result.n_trained, result.n_held_out) == (12, 3)
    assert result.model_path == tmp_path / "m.pt" and result.model_path.is_file()
    assert result.trained.object_name == "primary__primary"
    assert result.trained.channel_names == ["rfp"]
    assert load_model(result.model_path).config.train_on == "controls"

    progress = []
    enc = run_encode(
        cellcognition_file,
        result.trained,
        tmp_path / "f.hdf",
        mapping_path=mapping_file,
        progress=lambda d, t: progress.append((d, t)),
    )
    assert isinstance(enc, RunResult) and enc.features_path == tmp_path / "f.hdf"
    assert enc.model_path == tmp_path / "m.pt"  # the model's own file
    assert enc.features.shape == (30, len(cell_feature_names(result.trained)))
    assert progress[-1] == (30, 30)
    back = read_explorer_hdf(enc.features_path)
    np.testing.assert_array_equal(back.features, enc.features)
    # Encoding through the pipeline equals encoding the training crops directly.
    direct = steps.encode_crops(result.trained, result.crops)
    np.testing.assert_allclose(direct, enc.features, atol=1e-6)


def test_without_mapping_every_cell_is_trained_on(cellcognition_file):
    result = run_train(cellcognition_file, _tiny())
    assert result.n_trained + result.n_held_out == 30 and result.n_held_out == 6
    assert result.trained.config.train_on == "all"
    assert result.model_path is None and result.mapping is None


def test_outputs_that_are_inputs_are_refused_before_any_work(
    cellcognition_file, mapping_file, tmp_path, monkeypatch
):
    def no_work(*args, **kwargs):
        raise AssertionError("cropping started although the output is an input")

    monkeypatch.setattr(steps, "collect", no_work)
    import napari_cellae.pipeline.runs as runs

    monkeypatch.setattr(runs, "crops_for", no_work)
    before = cellcognition_file.read_bytes()
    for out in (cellcognition_file, mapping_file, input_files(cellcognition_file)[2]):
        with pytest.raises(ValueError, match="refusing to write the model"):
            run_train(cellcognition_file, _tiny(), mapping_file, out=out)
    assert cellcognition_file.read_bytes() == before


def test_encode_refuses_the_model_and_the_cellh5_as_output(cellcognition_file, tmp_path):
    result = run_train(cellcognition_file, _tiny(), out=tmp_path / "m.pt")
    model_bytes = (tmp_path / "m.pt").read_bytes()
    with pytest.raises(ValueError, match=r"refusing to write the features file.*m\.pt"):
        run_encode(cellcognition_file, result.trained, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="refusing to write the features file"):
        run_encode(cellcognition_file, result.trained, cellcognition_file)
    assert (tmp_path / "m.pt").read_bytes() == model_bytes


def test_ctrl_c_keeps_the_model_when_asked(cellcognition_file, monkeypatch):
    from napari_cellae.core.trainer import Trainer

    original = Trainer.run

    def interrupted(self):
        gen = original(self)
        yield next(gen)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "run", interrupted)
    result = run_train(cellcognition_file, _tiny(epochs=3), keep_on_interrupt=True)
    assert result.stopped and len(result.reports) == 1
    with pytest.raises(KeyboardInterrupt):
        run_train(cellcognition_file, _tiny(epochs=3))

    def at_once(self):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(Trainer, "run", at_once)
    with pytest.raises(KeyboardInterrupt):  # no finished epoch: nothing to keep
        run_train(cellcognition_file, _tiny(epochs=3), keep_on_interrupt=True)
