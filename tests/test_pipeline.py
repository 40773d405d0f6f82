"""Pipeline glue shared by the CLI and the widget."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellae.core.training import TrainConfig
from napari_cellae.export.explorer import read_explorer_hdf
from napari_cellae.io.cellh5 import CellH5Error
from napari_cellae.pipeline import steps as pipeline


def _tiny(**kw) -> TrainConfig:
    base = dict(crop_size=16, architecture="c4.3r_p2_d16.0s", epochs=1, learning_rate=0.01)
    return TrainConfig(**{**base, **kw})


def test_resolve_object_and_channels(cellprofiler_file):
    with pipeline.open_cellh5(cellprofiler_file) as ch5:
        assert pipeline.resolve_object(ch5, None) == "Nuclei"
        assert pipeline.resolve_channels(ch5, "Nuclei", None) == [0]
        assert pipeline.resolve_channels(ch5, "Nuclei", ["GFP", "0"]) == [1, 0]
        assert pipeline.resolve_channels(ch5, "Nuclei", [1]) == [1]
        with pytest.raises(CellH5Error, match=r"no channel 'RFP'.*0=DNA, 1=GFP"):
            pipeline.resolve_channels(ch5, "Nuclei", ["RFP"])
        with pytest.raises(CellH5Error, match="no channel '5'"):
            pipeline.resolve_channels(ch5, "Nuclei", ["5"])
        with pytest.raises(ValueError, match="twice"):
            pipeline.resolve_channels(ch5, "Nuclei", ["DNA", "0"])
        with pytest.raises(CellH5Error, match=r"no object 'Cells'.*Nuclei"):
            pipeline.resolve_object(ch5, "Cells")


def test_select_training_controls_and_samples(cellcognition_file, mapping_file):
    with pipeline.open_cellh5(cellcognition_file) as ch5:
        mapping = pipeline.load_mapping(mapping_file, ch5)
        assert pipeline.load_mapping(None, ch5) is None
        crops = pipeline.collect(ch5, "primary__primary", 16, [0])
    idx = pipeline.select_training(crops, mapping, "controls", samples=50000)
    assert len(idx) == 15
    assert {crops.positions[i].well for i in crops.position_index[idx]} == {"A01"}
    few = pipeline.select_training(crops, mapping, "all", samples=7, seed=1)
    assert len(few) == 7 and np.all(np.diff(few) > 0)
    np.testing.assert_array_equal(few, pipeline.select_training(crops, mapping, "all", 7, 1))
    assert len(pipeline.select_training(crops, None, "controls", samples=100)) == 30
    # the trainer remembers which crops it trains on
    config = TrainConfig(crop_size=16, architecture="c4.3r_p2_d8.0s", epochs=1)
    trainer = pipeline.make_trainer(crops, mapping, config)
    np.testing.assert_array_equal(trainer.source_indices, idx)
    np.testing.assert_array_equal(trainer._data.numpy(), crops.crops[idx])


def test_run_train_and_encode_round_trip(cellcognition_file, mapping_file, tmp_path):
    epochs = []
    result = pipeline.run_train(
        cellcognition_file,
        _tiny(epochs=2),
        mapping_path=mapping_file,
        out=tmp_path / "m.pt",
        on_epoch=epochs.append,
    )
    assert [r.epoch for r in epochs] == [1, 2] and result.reports == epochs
    assert result.n_training == 15
    assert result.model_path == tmp_path / "m.pt" and result.model_path.is_file()
    assert result.trained.object_name == "primary__primary"
    assert result.trained.channel_names == ["rfp"]

    progress = []
    enc = pipeline.run_encode(
        cellcognition_file,
        result.trained,
        tmp_path / "f.hdf",
        mapping_path=mapping_file,
        progress=lambda d, t: progress.append((d, t)),
    )
    assert enc.features.shape == (30, 16)
    assert progress[-1] == (30, 30)
    back = read_explorer_hdf(enc.path)
    np.testing.assert_array_equal(back.features, enc.features)
    # Encoding through the pipeline equals encoding the training crops directly.
    direct = pipeline.encode_crops(result.trained, result.crops)
    np.testing.assert_allclose(direct, enc.features, atol=1e-6)


def test_check_model_fits(cellcognition_file, cellprofiler_file, tmp_path):
    result = pipeline.run_train(cellcognition_file, _tiny(train_on="all"))
    trained = result.trained
    with pipeline.open_cellh5(cellcognition_file) as ch5:
        assert pipeline.check_model_fits(trained, ch5) == ("primary__primary", [0])
    with pipeline.open_cellh5(cellprofiler_file) as ch5:
        with pytest.raises(ValueError, match=r"m\.pt.*primary__primary.*Nuclei"):
            pipeline.check_model_fits(trained, ch5, tmp_path / "m.pt")
        trained.object_name = "Nuclei"
        with pytest.raises(ValueError, match=r"rfp.*DNA, GFP"):
            pipeline.check_model_fits(trained, ch5)


def test_save_model_unwritable(cellcognition_file, tmp_path):
    trained = pipeline.run_train(cellcognition_file, _tiny(train_on="all")).trained
    with pytest.raises(ValueError, match="does not exist"):
        pipeline.save_model(trained, tmp_path / "missing" / "m.pt")
    with pytest.raises(ValueError, match="folder"):
        pipeline.save_model(trained, tmp_path)
