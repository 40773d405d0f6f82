"""The dock widget closed while its job waits for the engine's warm-up."""

from __future__ import annotations

import threading

from napari_cellae import _widget
from napari_cellae._ui import runner as runner_module
from napari_cellae._widget import DeepLearningWidget
from ui_helpers import tiny, use_pca


def test_closing_the_dock_during_the_warm_up_leaves_no_job(make_napari_viewer, qtbot, monkeypatch):
    # Train pressed while the engine warmed up, then the dock closed: the job, never
    # started, stayed a pending task, and napari's close dialog asked about "tasks in
    # progress" for a run that never came.
    errors: list[str] = []
    monkeypatch.setattr(_widget, "show_error", errors.append)
    release = threading.Event()
    warming = threading.Thread(target=release.wait, daemon=True)
    warming.start()
    monkeypatch.setattr(runner_module, "_warm_up", warming)
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    viewer.window.add_dock_widget(widget)
    use_pca(widget)
    tiny(widget)
    tasks = viewer.window._task_status_manager  # what napari's close dialog asks
    widget.buttons.train.native.click()
    worker = widget._worker
    assert worker is not None and tasks.is_busy()  # waiting for the warm-up
    with qtbot.waitSignal(worker.finished, timeout=5000):
        viewer.window.remove_dock_widget(widget)  # what the dock's ✕ does
    assert widget.runner.worker is None and not tasks.is_busy()
    release.set()
    warming.join()
    qtbot.wait(5 * runner_module.WAIT_POLL_MS)  # the launch's polls come and go
    assert widget.loss_plot.epochs == [] and widget.result is None
    assert widget.status.text() == "Stopped: the Deep Learning Module was closed."
    assert not tasks.is_busy() and not errors, errors
