"""Tests of the Deep Learning dock widget with real thread workers and a tiny network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_cellae import _widget
from napari_cellae._reader import METADATA_KEY
from napari_cellae._widget import (
    EMBEDDING_LAYER,
    GALLERY_LAYER,
    SELECTED_LAYER,
    DeepLearningWidget,
    gallery_grid,
)
from napari_cellae.core.crops import collect_crops
from napari_cellae.demo.screen import demo_paths
from napari_cellae.io.cellh5 import CellH5

TINY = "c4.3r_p2_d16.0s"
TIMEOUT_MS = 120_000


@pytest.fixture
def errors(monkeypatch) -> list[str]:
    """Messages the widget shows with napari's show_error."""
    shown: list[str] = []
    monkeypatch.setattr(_widget, "show_error", lambda message: shown.append(str(message)))
    return shown


def _tiny(widget: DeepLearningWidget, epochs: int = 2, samples: int = 300) -> None:
    widget.cell_size.value = 16
    widget.architecture.value = TINY
    widget.epochs.value = epochs
    widget.samples.value = samples
    widget.batch_size.value = 32


def _run(qtbot, widget: DeepLearningWidget, make_worker) -> None:
    worker = make_worker(start=False)
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=5000)


def _centres(viewer):
    return next(
        layer
        for layer in viewer.layers
        if layer.metadata.get(METADATA_KEY, {}).get("kind") == "centres"
    )


def test_opens_demo_on_empty_viewer(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    viewer.window.add_dock_widget(widget)
    ch5, mapping = demo_paths()
    assert Path(widget.file.value) == ch5
    assert Path(widget.mapping.value) == mapping
    assert widget.object.value == "primary__primary"
    assert widget.channel.value is not None
    assert len(viewer.layers) >= 2
    # defaults of the original module
    assert widget.cell_size.value == 40
    assert (widget.cell_size.min, widget.cell_size.max) == (16, 256)
    assert widget.learning_rate.value == pytest.approx(0.05)
    assert widget.batch_size.value == 128
    assert widget.epochs.value == 64
    assert widget.train_on.value == "controls"
    assert widget.learning_rate.tooltip
    # momentum only matters for Nesterov
    assert widget.momentum.native.isHidden()
    widget.optimizer.value = "nesterov"
    assert not widget.momentum.native.isHidden()
    assert not errors


def test_train_link_save_and_load(make_napari_viewer, qtbot, errors, tmp_path):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    viewer.window.add_dock_widget(widget)
    _tiny(widget)
    _run(qtbot, widget, widget.start_training)
    assert not errors, errors
    result = widget.result
    assert result is not None and not result.stopped
    assert len(widget.loss_plot.epochs) == 2
    assert GALLERY_LAYER in viewer.layers
    # the gallery of inputs beside reconstructions is filled in (one event-loop turn later)
    qtbot.waitUntil(lambda: viewer.layers[GALLERY_LAYER].data.max() > 0, timeout=5000)
    gallery = viewer.layers[GALLERY_LAYER].data
    assert gallery.ndim == 2 and np.isfinite(gallery).all()
    embedding = viewer.layers[EMBEDDING_LAYER]
    assert len(embedding.data) == len(result.crops)
    for column in ("embedding_1", "embedding_2", "condition", "position", "object_index"):
        assert column in embedding.features.columns
    np.testing.assert_allclose(embedding.features["embedding_1"], result.embedding[:, 0])
    assert embedding.features["condition"].nunique() > 1  # from the demo's mapping
    assert widget.save_features_button.enabled and widget.save_model_button.enabled

    # embedding -> image: select a cell, its centre is selected and brought into view
    centres = _centres(viewer)
    i = len(result.crops) // 2
    embedding.selected_data = {i}
    (row,) = centres.selected_data
    pos_key = result.crops.positions[result.crops.position_index[i]]
    meta = centres.metadata[METADATA_KEY]
    assert meta["positions"][int(centres.features["position_index"][row])] == pos_key
    assert int(centres.features["object_index"][row]) == int(result.crops.object_index[i])
    offset = viewer.dims.ndim - centres.ndim
    point = centres.data[row]
    assert viewer.dims.point[offset] == pytest.approx(point[0])  # position slider
    assert viewer.dims.point[offset + 1] == pytest.approx(point[1])  # frame
    np.testing.assert_allclose(viewer.camera.center[-2:], point[-2:])
    assert SELECTED_LAYER in viewer.layers
    assert viewer.layers[SELECTED_LAYER].data.shape == (16, 33)

    # image -> embedding
    other = (row + 7) % len(centres.data)
    centres.selected_data = {other}
    (j,) = embedding.selected_data
    assert (
        result.crops.positions[result.crops.position_index[j]]
        == meta["positions"][int(centres.features["position_index"][other])]
    )
    assert int(result.crops.object_index[j]) == int(centres.features["object_index"][other])

    # several cells selected in the embedding -> all of them selected among the centres
    embedding.selected_data = {i, j}
    assert set(centres.selected_data) == {row, other}

    # save features (worker) and model; load the model again and encode
    worker = widget.save_features(tmp_path / "features.hdf", start=False)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    from napari_cellae.export.explorer import read_explorer_hdf

    data = read_explorer_hdf(tmp_path / "features.hdf")
    assert data.features.shape == result.features.shape
    model_path = widget.save_model(tmp_path / "model.pt")
    assert model_path is not None and model_path.is_file()
    widget.cell_size.value = 40
    _run(qtbot, widget, lambda start: widget.load_model(model_path, start=start))
    assert not errors, errors
    assert widget.cell_size.value == 16
    np.testing.assert_allclose(widget.result.features, result.features, rtol=1e-4, atol=1e-5)


def test_stop_keeps_usable_model(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    _tiny(widget, epochs=200, samples=2000)
    widget.train_button.native.click()  # the real buttons
    worker = widget._worker
    assert worker is not None and widget.stop_button.enabled
    qtbot.waitUntil(lambda: len(widget.loss_plot.epochs) >= 1, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        widget.stop_button.native.click()
    assert not errors, errors
    result = widget.result
    assert result is not None and result.stopped
    assert len(widget.loss_plot.epochs) < 200
    recon = result.trained.reconstruct(result.crops.crops[:3])
    assert recon.shape == (3, 1, 16, 16)
    assert EMBEDDING_LAYER in viewer.layers
    assert widget.train_button.enabled and not widget.stop_button.enabled


def test_bad_file_shows_notification(make_napari_viewer, qtbot, errors, tmp_path):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    assert widget.mapping.value is not None  # the demo's mapping
    bad = tmp_path / "broken.ch5"
    bad.write_bytes(b"not an hdf5 file at all")
    widget.file.value = bad
    assert errors and "broken.ch5" in errors[-1]
    # training on it fails in the worker and is reported, the widget stays usable
    errors.clear()
    _tiny(widget)
    widget.channel.choices = [("H2B", 0)]
    widget.object.choices = ["primary__primary"]
    _run(qtbot, widget, widget.start_training)
    assert errors and "broken.ch5" in errors[-1]
    assert widget.train_button.enabled


def test_other_file_drops_the_demo_mapping(make_napari_viewer, errors, cellprofiler_file):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    assert widget.mapping.value is not None
    widget.file.value = cellprofiler_file
    assert widget.mapping.value is None  # the demo's mapping belongs to the demo
    assert widget.object.value == "Nuclei"
    assert any(
        layer.metadata.get(METADATA_KEY, {}).get("path") == str(cellprofiler_file)
        for layer in viewer.layers
    )
    assert not errors


def test_bad_setting_shows_notification(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    widget.cell_size.value = 16
    widget.architecture.value = "c16.5r_p2_p2_p2_p2_p2_d8.0s"  # pools 16 px away
    assert widget.start_training() is None
    assert errors


def test_tooltips_carry_the_parameter_guide(make_napari_viewer, errors):
    from napari_cellae.core.guide import PARAMETER_GUIDE

    widget = DeepLearningWidget(make_napari_viewer())
    assert widget.learning_rate.tooltip == PARAMETER_GUIDE["learning_rate"]
    assert widget.cell_size.tooltip == PARAMETER_GUIDE["crop_size"]
    assert widget.epochs.tooltip == PARAMETER_GUIDE["epochs"]


def test_gallery_grid_layout():
    inputs = np.ones((5, 4, 4), np.float32)
    outputs = np.full((5, 4, 4), 0.5, np.float32)
    grid = gallery_grid(inputs, outputs, columns=2)
    assert grid.shape == (3 * 4 + 2 * 3, 2 * 9 + 3)
    np.testing.assert_array_equal(grid[:4, :4], 1)
    np.testing.assert_array_equal(grid[:4, 5:9], 0.5)


def test_stuck_training_warning_is_shown(make_napari_viewer, monkeypatch, errors):
    shown: list[str] = []
    monkeypatch.setattr(_widget, "show_warning", lambda message: shown.append(message))
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    widget._on_yielded(("warning", _widget.COLLAPSED_WARNING))
    assert shown == [_widget.COLLAPSED_WARNING]
    assert "learning rate" in widget.status.text()


def test_divergence_is_reported_and_model_kept(make_napari_viewer, qtbot, errors, monkeypatch):
    from napari_cellae.core.training import TrainingDiverged
    from napari_cellae.pipeline import steps as pipeline

    original = pipeline.make_trainer

    def diverging(crops, mapping, config):
        trainer = original(crops, mapping, config)
        real_run = trainer.run

        def run():
            for report in real_run():
                yield report
                raise TrainingDiverged("the loss became infinite: lower the learning rate")

        trainer.run = run
        return trainer

    monkeypatch.setattr(pipeline, "make_trainer", diverging)
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    _tiny(widget, epochs=5)
    _run(qtbot, widget, widget.start_training)
    assert errors and "learning rate" in errors[-1]
    assert widget._trained is not None  # last good weights stay usable
    assert widget.save_model_button.enabled and widget.train_button.enabled


def test_train_job_generator_without_threads(cellcognition_file, mapping_file):
    from napari_cellae.core.training import TrainConfig

    config = TrainConfig(
        crop_size=16, architecture=TINY, epochs=2, samples=100, batch_size=16, train_on="all"
    )
    request = _widget.TrainRequest(cellcognition_file, "primary__primary", 0, mapping_file, config)
    kinds = []
    job = _widget.train_job(request)
    while True:
        try:
            message = next(job)
        except StopIteration as stop:
            result = stop.value
            break
        kinds.append(message[0])
        if message[0] == "epoch":
            assert message[2].ndim == 2  # the gallery image
    assert kinds.count("epoch") == 2 and kinds[0] == "status" and kinds[-1] == "encode"
    assert len(result.features) == len(result.crops) == len(result.embedding)
    assert result.embedding.shape[1] == 2 and not result.stopped


def _drive(job, on_message=None):
    """Run a job generator to the end without threads; return (messages, result)."""
    messages = []
    while True:
        try:
            message = next(job)
        except StopIteration as stop:
            return messages, stop.value
        messages.append(message)
        if on_message is not None:
            on_message(message)


def test_stop_while_computing_features_skips_them(cellcognition_file, mapping_file):
    from napari_cellae.core.training import TrainConfig

    config = TrainConfig(
        crop_size=16, architecture=TINY, epochs=3, samples=100, batch_size=16, train_on="all"
    )
    # A stop during training ends training, but the features are still computed.
    request = _widget.TrainRequest(cellcognition_file, "primary__primary", 0, mapping_file, config)

    def stop_after_first_epoch(message):
        if message[0] == "epoch":
            request.stop()

    messages, result = _drive(_widget.train_job(request), stop_after_first_epoch)
    assert result.stopped and result.features is not None
    assert [m[0] for m in messages].count("encode") >= 1
    # A stop once features are being computed skips them and keeps the model.
    request = _widget.TrainRequest(cellcognition_file, "primary__primary", 0, mapping_file, config)

    def stop_at_features(message):
        if message == ("status", "Computing features of all cells…"):
            request.stop()

    messages, result = _drive(_widget.train_job(request), stop_at_features)
    assert result.stopped and result.features is None and result.embedding is None
    assert [m[0] for m in messages].count("epoch") == 3  # training itself ran to the end
    assert "encode" not in [m[0] for m in messages]
    assert result.trained.reconstruct(result.crops.crops[:2]).shape == (2, 1, 16, 16)


def test_widget_after_features_were_stopped(make_napari_viewer, errors, cellcognition_file):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    with CellH5(cellcognition_file) as f:
        crops = collect_crops(f, "primary__primary", 16)
    from napari_cellae.core.training import TrainConfig, Trainer

    trained = Trainer(TrainConfig(crop_size=16, architecture=TINY, epochs=1), crops.crops).result()
    widget._on_returned(_widget.JobResult(trained, crops, None, None, None, stopped=True))
    assert widget.result is None and widget._trained is trained
    assert "Stopped while computing features" in widget.status.text()
    assert EMBEDDING_LAYER not in viewer.layers
    assert not errors, errors


def test_load_model_shows_its_objects_and_channel(
    make_napari_viewer, qtbot, errors, cellprofiler_file, tmp_path
):
    from napari_cellae.core.training import TrainConfig, Trainer

    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    widget.file.value = cellprofiler_file
    with CellH5(cellprofiler_file) as f:
        crops = collect_crops(f, "Nuclei", 16, channels=[1])  # the GFP channel
    trainer = Trainer(
        TrainConfig(crop_size=16, architecture=TINY, epochs=1),
        crops.crops,
        channel_names=["GFP"],
        object_name="Nuclei",
    )
    list(trainer.run())
    path = trainer.result().save(tmp_path / "gfp.pt")
    widget.channel.value = 0  # DNA
    _run(qtbot, widget, lambda start: widget.load_model(path, start=start))
    assert not errors, errors
    assert widget.object.value == "Nuclei" and widget.channel.value == 1
    assert widget.result is not None and widget.result.features.shape[0] == len(crops)
