"""Tests of the Deep Learning dock widget with real thread workers and a tiny network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_cellae import _widget
from napari_cellae._reader import METADATA_KEY
from napari_cellae._ui.runner import LATER_MS, Outcome
from napari_cellae._widget import EMBEDDING_LAYER, GALLERY_LAYER, SELECTED_LAYER, DeepLearningWidget
from napari_cellae.core.config import COLLAPSE_ADVICE, TrainConfig
from napari_cellae.core.crops import collect_crops
from napari_cellae.demo.screen import demo_paths
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.pipeline.messages import Alert
from napari_cellae.pipeline.results import RunResult

TINY = "c4.3r_p2_d16.0s"
TIMEOUT_MS = 120_000


def _pca(widget: DeepLearningWidget) -> None:
    """Show the PCA map only: UMAP's first run compiles numba code for ~20 s."""
    widget.panel.map.setCurrentIndex(widget.panel.map.findData("pca"))


def _tiny(widget: DeepLearningWidget, epochs: int = 2, samples: int = 300) -> None:
    _pca(widget)
    form = widget.form
    form.crop_size.value = 16
    form.architecture.value = TINY
    form.epochs.value = epochs
    form.samples.value = samples
    form.batch_size.value = 32


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
    assert Path(widget.form.file.value) == ch5
    assert Path(widget.form.mapping.value) == mapping
    assert widget.form.object.value == "primary__primary"
    assert widget.form.channel.value is not None
    assert len(viewer.layers) >= 2
    # the defaults of TrainConfig (the default preset)
    defaults = TrainConfig()
    assert widget.form.crop_size.value == defaults.crop_size == 40
    # the config's least box; at most the demo's 512 px images
    assert (widget.form.crop_size.min, widget.form.crop_size.max) == (4, 512)
    assert widget.form.learning_rate.value == pytest.approx(defaults.learning_rate)
    assert widget.form.batch_size.value == defaults.batch_size
    assert widget.form.epochs.value == defaults.epochs
    assert widget.form.train_on.value == defaults.train_on
    assert widget.form.learning_rate.tooltip
    # momentum only matters for Nesterov
    assert widget.form.momentum.native.isHidden()
    widget.form.optimizer.value = "nesterov"
    assert not widget.form.momentum.native.isHidden()
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
    assert widget.buttons.save_features.enabled and widget.buttons.save_model.enabled

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
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    np.testing.assert_allclose(camera.center[-2:], point[-2:])
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
    widget.form.crop_size.value = 40
    _run(qtbot, widget, lambda start: widget.load_model(model_path, start=start))
    assert not errors, errors
    assert widget.form.crop_size.value == 16
    np.testing.assert_allclose(widget.result.features, result.features, rtol=1e-4, atol=1e-5)

    # outputs that are inputs (the open file, the mapping, the loaded model) are refused
    ch5, mapping = widget.form.file_path(), widget.form.mapping_path()
    before = {p: p.read_bytes() for p in (ch5, mapping, model_path)}
    for target in before:
        assert widget.save_features(target) is None
        assert "refusing to write the features file" in errors[-1] and str(target) in errors[-1]
        assert widget.save_model(target) is None
        assert "refusing to write the model" in errors[-1]
    assert all(p.read_bytes() == content for p, content in before.items())


def test_stop_keeps_usable_model(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    _tiny(widget, epochs=200, samples=2000)
    widget.buttons.train.native.click()  # the real buttons
    worker = widget._worker
    assert worker is not None and widget.buttons.stop.enabled
    assert not widget.panel.isEnabled()  # no hit rows of an old run while training
    qtbot.waitUntil(lambda: len(widget.loss_plot.epochs) >= 1, timeout=TIMEOUT_MS)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        widget.buttons.stop.native.click()
    assert not errors, errors
    result = widget.result
    assert result is not None and result.stopped
    assert len(widget.loss_plot.epochs) < 200
    recon = result.trained.reconstruct(result.crops.crops[:3])
    assert recon.shape == (3, 1, 16, 16)
    assert EMBEDDING_LAYER in viewer.layers
    assert widget.buttons.train.enabled and not widget.buttons.stop.enabled
    assert widget.panel.isEnabled()


def test_stop_before_training_began_leaves_no_blank_layers(
    make_napari_viewer, qtbot, errors, monkeypatch
):
    # The blank gallery and empty map prepared for the run stayed in the layer list.
    import threading
    import time

    from napari_cellae.pipeline import steps

    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    _tiny(widget, epochs=200, samples=2000)
    reading, cut = threading.Event(), steps.crops_for

    def slow_reading(*args, **kwargs):  # the Stop arrives while the cells are read
        reading.set()
        request = widget._request
        for _ in range(TIMEOUT_MS // 10):  # a worker thread: no Qt event loop here
            if request.stopped:
                break
            time.sleep(0.01)
        return cut(*args, **kwargs)

    monkeypatch.setattr(steps, "crops_for", slow_reading)
    widget.buttons.train.native.click()
    worker = widget._worker
    qtbot.waitUntil(reading.is_set, timeout=TIMEOUT_MS)  # the job started, in a worker
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        widget.buttons.stop.native.click()
    qtbot.waitUntil(lambda: widget.buttons.train.enabled, timeout=TIMEOUT_MS)
    assert not errors, errors
    assert widget.result is None and widget.status.text() == "Stopped before training began."
    assert GALLERY_LAYER not in viewer.layers and EMBEDDING_LAYER not in viewer.layers


def _training_in_a_dock(make_napari_viewer, qtbot):
    """A docked widget one epoch into a long run: (viewer, widget, worker)."""
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    viewer.window.add_dock_widget(widget)
    _tiny(widget, epochs=200, samples=2000)
    widget.buttons.train.native.click()
    worker = widget._worker
    assert worker is not None
    qtbot.waitUntil(lambda: len(widget.loss_plot.epochs) >= 1, timeout=TIMEOUT_MS)
    return viewer, widget, worker


def test_closing_the_dock_stops_training(make_napari_viewer, qtbot, errors):
    # napari's ✕ on a dock takes the widget out (setParent(None)) without closing it: the
    # run went on out of sight, and a reopened widget could start a second one beside it.
    viewer, widget, worker = _training_in_a_dock(make_napari_viewer, qtbot)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        viewer.window.remove_dock_widget(widget)  # what the ✕ button does
    assert len(widget.loss_plot.epochs) < 200
    assert not errors, errors


def test_a_dock_closed_and_docked_again_links_its_cells(make_napari_viewer, qtbot, errors):
    # Closed with its ✕ and docked again, clicks in the embedding did nothing until the
    # next run, and the "Shown position" label stopped following the sliders.
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    viewer.window.add_dock_widget(widget)
    _tiny(widget)
    _run(qtbot, widget, widget.start_training)
    viewer.window.remove_dock_widget(widget)  # what the dock's ✕ does
    viewer.window.add_dock_widget(widget)
    embedding, centres = viewer.layers[EMBEDDING_LAYER], _centres(viewer)
    crops = widget.result.crops
    i = len(crops) - 1
    embedding.selected_data = {i}
    (row,) = centres.selected_data
    assert int(centres.features["object_index"][row]) == int(crops.object_index[i])
    widget.position_label.setText("")
    viewer.dims.set_current_step(0, 0)
    viewer.dims.set_current_step(0, 1)  # another position
    assert widget.position_label.text().startswith("Shown position")
    assert not errors, errors


def test_closing_the_viewer_during_training_is_quiet(make_napari_viewer, qtbot, errors):
    # The worker's end used to reach the deleted widget: "wrapped C/C++ object ... deleted".
    viewer, widget, worker = _training_in_a_dock(make_napari_viewer, qtbot)
    runner, request = widget.runner, widget._request
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        viewer.close()
        # the trainer ends within a batch: quitting alone waited for the epoch's end
        assert request.stopped
    qtbot.wait(50)  # let the queued end-of-run callbacks run (pytest-qt reports errors)
    assert runner.worker is None and runner._progress is None


def test_a_closed_dock_draws_nothing_of_its_run(make_napari_viewer, qtbot, qtlog, errors):
    # Closed while its run was stopping, the widget still drew the run's late epoch, its
    # features (embedding, gallery) and its "Done" into the viewer it had left.
    viewer, widget, worker = _training_in_a_dock(make_napari_viewer, qtbot)
    widget.buttons.stop.native.click()  # stopping: the batch ends, then the features
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        viewer.window.remove_dock_widget(widget)  # what the dock's ✕ does
        epochs = list(widget.loss_plot.epochs)
    qtbot.wait(3 * LATER_MS)  # the worker's queued signals and the widget's timers
    assert widget.loss_plot.epochs == epochs and widget.result is None
    assert not widget.status.text().startswith("Done")
    # the blank gallery and embedding the run had added for its results are gone
    assert GALLERY_LAYER not in viewer.layers and EMBEDDING_LAYER not in viewer.layers
    assert widget.runner.worker is None and widget.runner._progress is None
    assert not errors, errors
    assert not [r for r in qtlog.records if "QObject" in r.message or "deleted" in r.message]


def test_choosing_a_file_during_a_run_leaves_its_progress(
    make_napari_viewer, qtbot, errors, cellcognition_file
):
    # The status line said '<file>: press Train to learn features of its cells.' while
    # the run went on (Train disabled) until its next epoch.
    _viewer, widget, worker = _training_in_a_dock(make_napari_viewer, qtbot)
    widget.form.file.value = cellcognition_file
    assert widget.form.file_path() == cellcognition_file
    assert "press Train" not in widget.status.text()
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        widget.buttons.stop.native.click()
    assert not errors, errors


def test_bad_file_shows_notification(make_napari_viewer, qtbot, errors, tmp_path):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    assert widget.form.mapping.value is not None  # the demo's mapping
    bad = tmp_path / "broken.ch5"
    bad.write_bytes(b"not an hdf5 file at all")
    widget.form.file.value = bad
    assert errors and "broken.ch5" in errors[-1]
    # training on it fails in the worker and is reported, the widget stays usable
    errors.clear()
    _tiny(widget)
    widget.form.channel.choices = [("H2B", 0)]
    widget.form.object.choices = ["primary__primary"]
    _run(qtbot, widget, widget.start_training)
    assert errors and "broken.ch5" in errors[-1]
    assert widget.buttons.train.enabled
    # the blank gallery and embedding added at the click do not stay behind
    assert GALLERY_LAYER not in viewer.layers and EMBEDDING_LAYER not in viewer.layers


def test_other_file_drops_the_demo_mapping(make_napari_viewer, errors, cellprofiler_file):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    assert widget.form.mapping.value is not None
    widget.form.file.value = cellprofiler_file
    assert widget.form.mapping.value is None  # the demo's mapping belongs to the demo
    assert widget.form.object.value == "Nuclei"
    assert any(
        layer.metadata.get(METADATA_KEY, {}).get("path") == str(cellprofiler_file)
        for layer in viewer.layers
    )
    assert not errors


def test_bad_setting_shows_notification(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    widget.form.crop_size.value = 16
    widget.form.architecture.value = "c16.5r_p2_p2_p2_p2_p2_d8.0s"  # pools 16 px away
    widget.status.setText("Done (learnt from 480 cells)")  # a last run's message
    assert widget.start_training() is None
    assert errors
    assert widget.status.text() == f"Failed: {errors[-1]}"


def test_a_model_that_does_not_load_says_so_in_the_status_line(
    make_napari_viewer, errors, cellcognition_file, tmp_path
):
    widget = DeepLearningWidget(make_napari_viewer())
    widget.form.file.value = cellcognition_file
    assert "press Train" in widget.status.text()
    junk = tmp_path / "model.pt"
    junk.write_bytes(b"not a model")
    assert widget.load_model(junk) is None
    assert errors and str(junk) in errors[-1]
    assert widget.status.text() == f"Failed: {errors[-1]}"


def test_tooltips_carry_the_parameter_guide(make_napari_viewer, errors):
    from napari_cellae.core.config import PARAMETER_GUIDE

    widget = DeepLearningWidget(make_napari_viewer())
    assert widget.form.learning_rate.tooltip == PARAMETER_GUIDE["learning_rate"]
    assert widget.form.crop_size.tooltip == PARAMETER_GUIDE["crop_size"]
    assert widget.form.epochs.tooltip == PARAMETER_GUIDE["epochs"]


def test_stuck_training_warning_is_shown(make_napari_viewer, monkeypatch, errors):
    shown: list[str] = []
    monkeypatch.setattr(_widget, "show_warning", lambda message: shown.append(message))
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    text = f"Training got stuck: {COLLAPSE_ADVICE}"
    widget._on_yielded(Alert(text))
    assert shown == [text]
    assert "learning rate" in widget.status.text()


def test_divergence_is_reported_and_model_kept(make_napari_viewer, qtbot, errors, monkeypatch):
    from napari_cellae.core.trainer import TrainingDiverged
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
    assert widget.buttons.save_model.enabled and widget.buttons.train.enabled


def test_widget_after_features_were_stopped(make_napari_viewer, errors, cellcognition_file):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    with CellH5(cellcognition_file) as f:
        crops = collect_crops(f, "primary__primary", 16)
    from napari_cellae.core.trainer import Trainer

    trained = Trainer(TrainConfig(crop_size=16, architecture=TINY, epochs=1), crops.crops).result()
    widget._on_returned(Outcome(RunResult(trained, crops, stopped=True)))
    assert widget.result is None and widget._trained is trained
    assert "Stopped while computing features" in widget.status.text()
    assert EMBEDDING_LAYER not in viewer.layers
    assert not errors, errors


def _nuclei_model(path, cellprofiler_file, channels: dict[int, str]):
    """A model trained for an epoch on the Nuclei of ``channels`` (index: name), saved to
    ``path``; and its crops."""
    from napari_cellae.core.trainer import Trainer

    with CellH5(cellprofiler_file) as f:
        crops = collect_crops(f, "Nuclei", 16, channels=list(channels))
    config = TrainConfig(crop_size=16, architecture=TINY, epochs=1)
    names = list(channels.values())
    trainer = Trainer(config, crops.crops, channel_names=names, object_name="Nuclei")
    list(trainer.run())
    return trainer.result().save(path), crops


def test_load_model_shows_its_objects_and_channel(
    make_napari_viewer, qtbot, errors, cellprofiler_file, tmp_path
):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    widget.form.file.value = cellprofiler_file
    path, crops = _nuclei_model(tmp_path / "gfp.pt", cellprofiler_file, {1: "GFP"})
    widget.form.channel.value = 0  # DNA
    _pca(widget)
    _run(qtbot, widget, lambda start: widget.load_model(path, start=start))
    assert not errors, errors
    assert widget.form.object.value == "Nuclei" and widget.form.channel.value == 1
    assert widget.result is not None and widget.result.features.shape[0] == len(crops)


def test_load_model_of_two_channels_shows_both(
    make_napari_viewer, qtbot, errors, cellprofiler_file, tmp_path
):
    # The Channel box kept the DNA chosen before, though the features used DNA and GFP.
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    widget.form.file.value = cellprofiler_file
    path, _ = _nuclei_model(tmp_path / "both.pt", cellprofiler_file, {0: "DNA", 1: "GFP"})
    widget.form.channel.value = 0  # DNA
    _pca(widget)
    _run(qtbot, widget, lambda start: widget.load_model(path, start=start))
    assert not errors, errors
    assert widget.form.channel.current_choice == "DNA + GFP"
    assert widget.start_training() is None  # a new model's one channel: the user's to say
    assert len(errors) == 1 and "choose it in 'Channel'" in errors[0]
    widget.form.channel.value = 1
    assert widget.form.request().channel == 1


def test_without_mapping_trains_on_all_cells_and_says_so(
    make_napari_viewer, qtbot, errors, cellcognition_file
):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    widget.form.file.value = cellcognition_file
    assert widget.form.mapping_path() is None
    assert widget.form.train_on.value == "all"  # follows the missing mapping
    _tiny(widget)
    texts: list[str] = []
    worker = widget.start_training(start=False)
    worker.yielded.connect(lambda message: texts.append(getattr(message, "text", "")))
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=5000)
    assert not errors, errors
    result = widget.result
    assert result.n_trained + result.n_held_out == len(result.crops)
    said = next(t for t in texts if "training on all cells" in t)
    assert said.startswith("No position mapping")
    assert f"{result.n_trained} cells ({result.n_held_out} held out)" in said
    done = widget.status.text()
    assert f"learnt from {result.n_trained}, {result.n_held_out} held out" in done
    # the embedding is coloured by position (no conditions without a mapping)
    embedding = viewer.layers[EMBEDDING_LAYER]
    assert set(embedding.features["condition"]) == {"A01_0001", "B02_0001"}


def test_explicit_controls_without_mapping_is_an_error(
    make_napari_viewer, errors, cellcognition_file
):
    widget = DeepLearningWidget(make_napari_viewer())
    widget.form.file.value = cellcognition_file
    widget.form.train_on.value = "controls"  # the user's own choice
    assert widget.start_training() is None
    assert "needs a position mapping" in errors[-1]
    assert widget._worker is None and widget.buttons.train.enabled


def test_importing_the_widget_loads_no_torch():
    import subprocess
    import sys

    code = "import sys, napari_cellae._widget; assert 'torch' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_shown_position_follows_hidden_and_removed_layers(
    make_napari_viewer, cellcognition_file
):
    # It followed the slider only: a file's layers hidden (or shown again by a found cell)
    # left it naming a position of a file no longer shown.
    viewer = make_napari_viewer()
    viewer.open(str(cellcognition_file), plugin="napari-cellae")
    widget = DeepLearningWidget(viewer)
    viewer.dims.set_point(0, 1)
    assert widget.position_label.text() == "Shown position: B02_0001"
    image = next(layer for layer in viewer.layers if layer.name == "rfp")
    image.visible = False
    assert widget.position_label.text() == ""
    image.visible = True
    assert widget.position_label.text() == "Shown position: B02_0001"
    viewer.layers.remove(image)
    assert widget.position_label.text() == ""
    viewer.layers.append(image)  # a layer added later is followed too
    image.visible = False
    image.visible = True
    assert widget.position_label.text() == "Shown position: B02_0001"
    widget.close()
    image.visible = False  # no longer followed once closed
    assert widget.position_label.text() == "Shown position: B02_0001"


def test_choosing_another_file_shows_it_alone(make_napari_viewer, cellcognition_file, tmp_path):
    from conftest import synthetic_position
    from napari_cellae.io.cellh5_writer import write_cellh5

    other = write_cellh5(
        tmp_path / "plate2.ch5",
        [synthetic_position("C03", "1", plate="plate2", n_frames=1, seed=9)],
        channel_names=["rfp"],
        object_channels={"primary__primary": 0},
    )
    viewer = make_napari_viewer()
    viewer.open(str(cellcognition_file), plugin="napari-cellae")
    widget = DeepLearningWidget(viewer)
    viewer.dims.set_point(0, 1)
    assert widget.position_label.text() == "Shown position: B02_0001"
    first = list(viewer.layers)
    widget.form.file.value = other  # one position: no position slider
    # the first plate's layers stayed visible under the second's, and its position named
    assert not any(layer.visible for layer in first)
    assert [layer.name for layer in viewer.layers if layer.visible] == [
        "rfp (plate2)",
        "primary__primary centres (plate2)",
    ]
    assert widget.position_label.text() == ""


def test_a_model_loaded_for_another_file_shows_its_cells_in_the_gallery(
    make_napari_viewer, qtbot, errors, cellcognition_file, mapping_file, tmp_path
):
    from napari_cellae.pipeline import jobs

    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    widget.form.file.value = cellcognition_file
    _tiny(widget)
    _run(qtbot, widget, widget.start_training)
    qtbot.waitUntil(lambda: not widget.results.pending, timeout=TIMEOUT_MS)
    model = widget.save_model(tmp_path / "model.pt")
    trained_gallery = viewer.layers[GALLERY_LAYER].data.copy()
    other = _demo_like_copy(cellcognition_file, tmp_path)  # another plate of the screen
    widget.form.file.value = other
    widget.form.mapping.value = mapping_file
    _run(qtbot, widget, lambda start: widget.load_model(model, start=start))
    qtbot.waitUntil(lambda: not widget.results.pending, timeout=TIMEOUT_MS)
    assert not errors, errors
    # the gallery kept the crops of the training file's cells under the other file's image
    result, findings = widget.result, widget.results.findings
    assert result.crops.source == other
    top = findings.most_novel(np.arange(len(result.crops)), jobs.GALLERY_PAIRS)
    expected = jobs.gallery_grid(*jobs.reconstruct_gallery(result.trained, result.crops.crops[top]))
    shown = viewer.layers[GALLERY_LAYER].data
    assert shown.shape != trained_gallery.shape or not np.array_equal(shown, trained_gallery)
    np.testing.assert_allclose(shown, expected, atol=1e-5)


def _demo_like_copy(path: Path, tmp_path: Path) -> Path:
    """Another plate of the screen: the same wells and channel, other cells."""
    from conftest import synthetic_position
    from napari_cellae.io.cellh5_writer import write_cellh5

    return write_cellh5(
        tmp_path / "plate2.ch5",
        [synthetic_position(w, "0001", seed=s) for s, w in ((11, "A01"), (12, "B02"))],
        channel_names=["rfp"],
        object_channels={"primary__primary": 0},
    )


def test_status_line_shows_a_long_message_whole(make_napari_viewer, qtbot, errors):
    # The status line was 4 lines tall, fixed: at the dock's width (345 px) the end of a
    # run's message ("... to see its cells.") needed 5 and its last line was cut off.
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 720)
    widget = DeepLearningWidget(viewer)
    viewer.window.add_dock_widget(widget)  # napari's style: its font, the dock's width
    qtbot.waitExposed(widget)
    status = widget.status
    status.setText("Epoch 3/40: loss 6.09e-02 (held-out 5.82e-02), 2586 cells/s")
    qtbot.wait(10)
    least = status.height()  # an epoch's message: the line keeps its height (no re-layout)
    assert least >= 4 * status.fontMetrics().lineSpacing()
    status.setText(
        "Done (stopped early; learnt from 240, 60 held out; features of 2556 cells). Click "
        f"a point in '{EMBEDDING_LAYER}' or a row of the hit table to see its cells."
    )
    qtbot.waitUntil(lambda: status.height() >= status.heightForWidth(status.width()))
    assert status.height() > least
    status.setText("Epoch 4/40: loss 5.79e-02 (held-out 5.27e-02), 1495 cells/s")
    qtbot.waitUntil(lambda: status.height() == least)
