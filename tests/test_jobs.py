"""The widget's background jobs, driven with next() in this thread: no Qt, no viewer."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_cellae.core.config import COLLAPSE_ADVICE, TrainConfig
from napari_cellae.pipeline import jobs
from napari_cellae.pipeline.messages import Alert, Encoded, EpochDone, Status
from napari_cellae.pipeline.results import RunResult

TINY = "c4.3r_p2_d16.0s"


def _config(**kwargs) -> TrainConfig:
    settings = {"crop_size": 16, "architecture": TINY, "epochs": 2, "samples": 100}
    return TrainConfig(**{**settings, "batch_size": 16, **kwargs})


def _drive(job, on_message=None):
    """Run a job generator to the end; return (messages, result)."""
    messages = []
    while True:
        try:
            message = next(job)
        except StopIteration as stop:
            return messages, stop.value
        messages.append(message)
        if on_message is not None:
            on_message(message)


def _request(path, mapping, config) -> jobs.TrainRequest:
    return jobs.TrainRequest(path, "primary__primary", 0, mapping, config)


def test_jobs_import_neither_qt_nor_torch():
    code = (
        "import sys, napari_cellae.pipeline.jobs, napari_cellae.pipeline.messages\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PyQt6', 'PyQt5', 'PySide6', "
        "'qtpy', 'torch', 'napari')]\n"
        "assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_gallery_grid_layout():
    inputs = np.ones((5, 4, 4), np.float32)
    outputs = np.full((5, 4, 4), 0.5, np.float32)
    grid = jobs.gallery_grid(inputs, outputs, columns=2)
    assert grid.shape == (3 * 4 + 2 * 3, 2 * 9 + 3)
    np.testing.assert_array_equal(grid[:4, :4], 1)
    np.testing.assert_array_equal(grid[:4, 5:9], 0.5)


def test_train_job_yields_typed_messages_and_returns_a_run_result(cellcognition_file, mapping_file):
    request = _request(cellcognition_file, mapping_file, _config(train_on="all"))
    messages, result = _drive(jobs.train_job(request))
    kinds = [type(m) for m in messages]
    assert kinds.count(EpochDone) == 2 and kinds[0] is Status and kinds[-1] is Encoded
    for message in messages:
        if isinstance(message, EpochDone):
            assert message.gallery.ndim == 2  # the gallery image
            assert message.report.epochs == 2
    assert isinstance(result, RunResult)
    assert len(result.features) == len(result.crops) == len(result.embedding)
    assert result.embedding.shape[1] == 2 and not result.stopped
    # the fast map: the widget computes UMAP afterwards, in the background
    from napari_cellae.core.features import embed_2d

    np.testing.assert_allclose(result.embedding, embed_2d(result.features, "pca"))
    assert len(result.reports) == 2
    # trained and held-out cells are counted separately, and said so
    assert result.n_trained > 0 and result.n_held_out > 0
    assert result.n_trained + result.n_held_out == len(result.crops)  # 30 cells, under 100
    status = [m.text for m in messages if isinstance(m, Status)]
    assert f"{result.n_trained} cells ({result.n_held_out} held out)" in status[1]


def test_without_a_mapping_every_cell_is_trained_on(cellcognition_file):
    # the configuration's default says "controls", but no controls are known
    request = _request(cellcognition_file, None, _config(train_on="controls"))
    messages, result = _drive(jobs.train_job(request))
    assert result.n_trained + result.n_held_out == len(result.crops)
    assert result.mapping is None
    status = [m.text for m in messages if isinstance(m, Status)]
    assert status[1].startswith("No position mapping, so training on all cells")


def test_controls_only_with_a_mapping(cellcognition_file, mapping_file):
    request = _request(cellcognition_file, mapping_file, _config(train_on="controls"))
    messages, result = _drive(jobs.train_job(request))
    controls = int(np.sum(result.crops.position_index == 0))  # A01 is the control well
    assert result.n_trained + result.n_held_out == controls < len(result.crops)
    status = [m.text for m in messages if isinstance(m, Status)]
    assert status[1].startswith("Training on control wells:")


def test_training_status_texts():
    assert jobs.training_status(80, 20, 300, True, "all") == (
        "Training on 80 cells (20 held out) of 300…"
    )
    assert "control wells" in jobs.training_status(8, 2, 30, True, "controls")
    assert "No position mapping" in jobs.training_status(8, 2, 30, False, "controls")


def test_stop_while_computing_features_skips_them(cellcognition_file, mapping_file):
    config = _config(epochs=3, train_on="all")
    # A stop during training ends training, but the features are still computed.
    request = _request(cellcognition_file, mapping_file, config)

    def stop_after_first_epoch(message):
        if isinstance(message, EpochDone):
            request.stop()

    messages, result = _drive(jobs.train_job(request), stop_after_first_epoch)
    assert result.stopped and result.features is not None
    assert sum(isinstance(m, Encoded) for m in messages) >= 1
    # A stop once features are being computed skips them and keeps the model.
    request = _request(cellcognition_file, mapping_file, config)

    def stop_at_features(message):
        if message == Status("Computing features of all cells…"):
            request.stop()

    messages, result = _drive(jobs.train_job(request), stop_at_features)
    assert result.stopped and result.features is None and result.embedding is None
    assert sum(isinstance(m, EpochDone) for m in messages) == 3  # training ran to the end
    assert not any(isinstance(m, Encoded) for m in messages)
    assert result.trained.reconstruct(result.crops.crops[:2]).shape == (2, 1, 16, 16)


def test_stop_before_training_returns_none(cellcognition_file):
    request = _request(cellcognition_file, None, _config())
    request.stop()
    messages, result = _drive(jobs.train_job(request))
    assert result is None and messages == [Status("Reading cells from the file…")]


def test_stuck_training_alerts_once_with_the_one_advice(
    cellcognition_file, mapping_file, monkeypatch
):
    from dataclasses import replace

    from napari_cellae.pipeline import steps

    original = steps.make_trainer

    def stuck(crops, mapping, config):
        trainer = original(crops, mapping, config)
        real_run = trainer.run
        trainer.run = lambda: (replace(r, collapsed=True) for r in real_run())
        return trainer

    monkeypatch.setattr(steps, "make_trainer", stuck)
    messages, _ = _drive(jobs.train_job(_request(cellcognition_file, mapping_file, _config())))
    alerts = [m for m in messages if isinstance(m, Alert)]
    assert len(alerts) == 1 and COLLAPSE_ADVICE in alerts[0].text


def test_encode_job_applies_a_model(cellcognition_file, mapping_file, tmp_path):
    _, trained_run = _drive(jobs.train_job(_request(cellcognition_file, None, _config())))
    model = trained_run.trained.save(tmp_path / "model.pt")
    messages, result = _drive(
        jobs.encode_job(cellcognition_file, trained_run.trained, mapping_file, model)
    )
    assert isinstance(messages[0], Status) and isinstance(messages[-1], Encoded)
    assert messages[-1] == Encoded(len(result.crops), len(result.crops))
    assert result.model_path == model and result.mapping is not None
    np.testing.assert_allclose(result.features, trained_run.features, rtol=1e-4, atol=1e-5)
    # controls named otherwise (the widget's "Controls" field)
    dmso = tmp_path / "dmso.txt"
    dmso.write_text("A01\tDMSO\nB02\tPLK1\n", encoding="utf-8")
    _, named = _drive(jobs.encode_job(cellcognition_file, trained_run.trained, dmso, model, "DMSO"))
    assert named.mapping.control_conditions == ["DMSO"]


def test_train_job_finds_controls_by_the_requests_token(cellcognition_file, tmp_path):
    dmso = tmp_path / "dmso.txt"
    dmso.write_text("A01\tDMSO\nB02\tPLK1\n", encoding="utf-8")
    request = _request(cellcognition_file, dmso, _config(train_on="controls"))
    with pytest.raises(ValueError, match="'DMSO'"):  # 'neg' marks none of them
        _drive(jobs.train_job(request))
    request = jobs.TrainRequest(
        cellcognition_file, "primary__primary", 0, dmso, _config(train_on="controls"), "dmso"
    )
    _, result = _drive(jobs.train_job(request))
    assert result.mapping.control_conditions == ["DMSO"]
    controls = result.crops.positions.index(
        next(k for k in result.crops.positions if k.well == "A01")
    )
    assert result.n_trained + result.n_held_out == int(
        (result.crops.position_index == controls).sum()
    )


def test_cell_pair_shows_input_beside_reconstruction(cellcognition_file):
    _, result = _drive(jobs.train_job(_request(cellcognition_file, None, _config(epochs=1))))
    pair = jobs.cell_pair(result.trained, result.crops.crops[:1])
    assert pair.shape == (16, 33) and pair.dtype == np.float32
    assert 0 <= pair.min() and pair.max() <= 1


def test_guarded_turns_runtime_errors_into_job_failed():
    def failing():
        yield Status("working")
        raise RuntimeError("the loss became infinite")

    job = jobs.guarded(failing)()
    assert next(job) == Status("working")
    with pytest.raises(jobs.JobFailed, match="infinite"):
        next(job)


def test_train_job_names_the_position_lacking_the_channel(tmp_path):
    # The form offers the channels every position has; a file changed since it was read
    # failed after cropping the first position, naming no channel.
    from conftest import synthetic_position
    from napari_cellae.io.cellh5 import CellH5Error
    from napari_cellae.io.cellh5_writer import write_cellh5

    positions = [synthetic_position(w, "1", n_channels=n) for w, n in (("A01", 2), ("B02", 1))]
    path = write_cellh5(tmp_path / "m.ch5", positions, ["DNA", "GFP"], {"primary__primary": 0})
    request = jobs.TrainRequest(path, "primary__primary", 1, None, _config(train_on="all"))
    with pytest.raises(CellH5Error, match=f"{path}: position B02_1 has no channel 'GFP'"):
        _drive(jobs.train_job(request))


def test_request_stop_reaches_a_trainer_attached_later():
    class Trainer:
        stopped = False

        def stop(self):
            self.stopped = True

    request = jobs.TrainRequest(None, "", 0, None, None)
    request.stop()
    trainer = Trainer()
    request.attach(trainer)
    assert trainer.stopped and request.stopped
    request.rearm()
    assert not request.stopped


def test_a_position_without_cells_is_named_by_the_job(tmp_path):
    # The widget's map and hit table have no row for a well whose cells all died, and said
    # nothing: the strongest hit of a screen could go unseen.
    from conftest import synthetic_position
    from napari_cellae.io.cellh5_writer import write_cellh5

    dead = synthetic_position("B01", "1", n_per_frame=1)
    dead.objects = {}
    path = write_cellh5(
        tmp_path / "plate.ch5",
        [synthetic_position("A01", "1"), dead],
        channel_names=["dna"],
        object_channels={"primary__primary": 0},
    )
    mapping = tmp_path / "mapping.txt"
    mapping.write_text("Position\tCondition\nA01_1\tneg. control\nB01_1\tTOXIC1\n")
    with pytest.warns(UserWarning, match=r"1 position\(s\) hold no cells.*B01_1 \(TOXIC1\)"):
        _, result = _drive(jobs.train_job(_request(path, mapping, _config(train_on="all"))))
    assert result.empty == "B01_1 (TOXIC1)"  # kept for the hit table's note


def test_blas_pools_are_limited_again_only_when_libraries_were_loaded(monkeypatch):
    # threadpoolctl's walk over every library (and its reset of the BLAS pools) ran at the
    # start of every job, while the viewer's thread might be in a BLAS call
    from unittest import mock

    from napari_cellae.pipeline import jobs

    loaded = {"libraries": frozenset({"libopenblas.so"})}
    monkeypatch.setattr(jobs, "_loaded_libraries", lambda: loaded["libraries"])
    monkeypatch.setattr(jobs, "_BLAS_LIMITED", {})
    with mock.patch("threadpoolctl.threadpool_limits") as limits:
        jobs.limit_threads()
        jobs.limit_threads()
        assert limits.call_count == 1
        loaded["libraries"] |= {"libscipy_openblas.so"}  # a BLAS library loaded since
        jobs.limit_threads()
        assert limits.call_count == 2
        monkeypatch.setattr(jobs, "_loaded_libraries", lambda: None)  # not Linux: every time
        jobs.limit_threads()
        jobs.limit_threads()
        assert limits.call_count == 4


def test_torch_threads_are_set_only_when_they_change(monkeypatch):
    # torch.set_num_threads resizes the intra-op pool, which another thread (the viewer's,
    # a map's) may be using: called at the start of every job, a test run crashed in it
    from unittest import mock

    import torch

    from napari_cellae.pipeline import jobs

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    with mock.patch("threadpoolctl.threadpool_limits"):
        monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
        jobs.limit_threads()
        assert calls == []  # one thread already: nothing to resize
        monkeypatch.setattr(torch, "get_num_threads", lambda: 64)
        jobs.limit_threads()
    assert len(calls) == 1 and 1 <= calls[0] < 64


def two_plate_run(tmp_path):
    """A run of the widget on one file of two plates, the second imaged brighter; with the
    mapping it was given."""
    from conftest import synthetic_position
    from napari_cellae.io.cellh5_writer import write_cellh5

    wells = ("A01", "A02", "B01", "B02")
    positions = [
        synthetic_position(
            well, "1", plate=plate, n_frames=1, n_per_frame=12, seed=10 * i + j, peak=peak
        )
        for i, (plate, peak) in enumerate((("P1", 150.0), ("P2", 250.0)))
        for j, well in enumerate(wells)
    ]
    path = write_cellh5(tmp_path / "two.ch5", positions, ["dna"], {"primary__primary": 0})
    mapping = tmp_path / "plates.txt"
    mapping.write_text(
        "Plate\tWell\tSite\tGene Symbol\tGroup\n"
        + "".join(
            f"{p}\t{w}\t1\t{'scrambled' if w < 'B' else 'PLK1'}\t{'neg' if w < 'B' else 'x'}\n"
            for p in ("P1", "P2")
            for w in wells
        )
    )
    _, result = _drive(jobs.train_job(_request(path, mapping, _config(train_on="all"))))
    return result, path, mapping


def h5ad_maps(result, method="pca"):
    """The maps cellae encode's .h5ad holds for the run's features (cells.embeddings)."""
    from napari_cellae.pipeline.cell_flags import without_signal
    from napari_cellae.pipeline.cell_ids import well_ids
    from napari_cellae.pipeline.cells import embeddings
    from napari_cellae.pipeline.discovery import cell_table

    obs = cell_table(result.crops, result.mapping)
    controls = obs["control"].to_numpy(bool) & ~without_signal(obs)
    plates = obs["plate"].to_numpy()
    return embeddings(result.features, method, 0, plates, controls, well_ids(obs))


def test_the_pca_map_scales_each_plate_as_the_h5ad_does(tmp_path):
    # The widget's PCA was made of the features as they are; cellae encode's .h5ad scales
    # each plate on its control cells first: for a file of two plates the maps differed.
    from napari_cellae.core.features import embed_2d
    from napari_cellae.pipeline.cells import run_encode_cells

    result, path, mapping = two_plate_run(tmp_path)
    assert len(set(np.unique([p.plate for p in result.crops.positions]))) == 2
    expected = h5ad_maps(result)["X_pca"]
    np.testing.assert_array_equal(result.embedding, expected)
    assert np.abs(embed_2d(result.features, "pca") - expected).max() > 0.1  # unscaled
    # and the very file cellae encode writes, of the same model (features within rounding)
    model = result.trained.save(tmp_path / "model.pt")
    done = run_encode_cells(
        [path], result.trained, tmp_path / "cells.h5ad", mapping, model_path=model, embedding="pca"
    )
    assert list(done.obs["object_index"]) == list(result.crops.object_index)
    np.testing.assert_allclose(result.embedding, done.embeddings["X_pca"], atol=1e-3)
