"""GUI responsiveness of the Deep Learning widget while a real training worker runs.

A QTimer ticks every 10 ms on the GUI thread and records the gaps between ticks while the
widget trains on the bundled demo screen; long gaps mean a frozen viewer. Prints the
largest gap and the 99th percentile (aim: < 100 ms), also while the UMAP map is computed
in the background after training, for the seconds after the widget opens, while it loads
torch in a background thread (importing torch holds Python's lock for a few hundred ms at
a time), and for an idle viewer. Needs a display: run under Xvfb::

    xvfb-run -a python benchmarks/bench_gui.py                  # measure
    xvfb-run -a python benchmarks/bench_gui.py --screenshots docs   # docs/widget_*.png
    xvfb-run -a python benchmarks/bench_gui.py --screenshots /tmp/shots --window 1440x900

With ``--screenshots`` the viewer is photographed before, during and after training
(not timed: screenshots themselves block the GUI thread); after training, the embedding is
coloured by ``--colour`` and the strongest hit of the hit table is selected.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np


def _viewer(width: int, height: int):
    import napari

    warnings.filterwarnings("ignore", message=".*PyQt5 backend is deprecated.*")
    viewer = napari.Viewer(show=True, title="napari-cellae")
    viewer.window._qt_window.resize(width, height)
    return viewer


def _widget(viewer, args, configure: bool = True):
    from napari_cellae._widget import DeepLearningWidget

    widget = DeepLearningWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Deep Learning Module", area="right")
    if configure:
        _configure(widget, args)
    return widget


def _configure(widget, args) -> None:
    form = widget.form
    if args.lr:
        form.learning_rate.value = args.lr
    form.crop_size.value = args.size
    if args.arch:
        form.architecture.value = args.arch
    form.epochs.value = args.epochs
    form.samples.value = args.samples


def _run_until(app, worker, on_yield=None) -> float:
    from qtpy.QtCore import QEventLoop

    loop = QEventLoop()
    worker.finished.connect(loop.quit)
    if on_yield is not None:
        worker.yielded.connect(on_yield)
    t0 = time.perf_counter()
    worker.start()
    loop.exec_()
    return time.perf_counter() - t0


def measure(args: argparse.Namespace) -> None:
    """Train once while a 10 ms QTimer records the gaps between its ticks."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_cellae._ui.runner import warm_up_engine

    app = QApplication.instance()
    viewer = _viewer(1400, 900)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    widget = _widget(viewer, args)

    # the widget loads torch in a background thread as it opens; Train waits for nothing,
    # but the first training is smoother once it is done (measured separately here)
    timer.start()
    t0 = time.perf_counter()
    warm_up = warm_up_engine()
    while warm_up.is_alive():
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    print(f"engine warm-up after the widget opened: {time.perf_counter() - t0:.1f} s")
    _report("while the engine loads (widget just opened, idle)", ticks)
    for _ in range(20):
        app.processEvents()
    ticks.clear()

    # idle baseline: what the machine (shared CPU, Xvfb) gives a 10 ms timer anyway
    timer.start()
    t_end = time.perf_counter() + args.idle
    while time.perf_counter() < t_end:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    _report("idle (no training)", ticks)

    # cost of one window repaint: under Xvfb, Qt composes the whole window through the
    # (software) OpenGL canvas whenever any widget changes, e.g. a label's text
    ticks.clear()
    timer.start()
    t_end = time.perf_counter() + args.idle
    n = 0
    while time.perf_counter() < t_end:
        n += 1
        widget.status.setText(f"repaint probe {n}")
        t_next = time.perf_counter() + 0.5
        while time.perf_counter() < min(t_next, t_end):
            app.processEvents()
            time.sleep(0.001)
    timer.stop()
    _report("idle, one label change every 0.5 s", ticks)

    # time spent in the widget's GUI-thread handlers, to attribute long gaps
    handler_ms: dict[str, list[float]] = {"epoch report": [], "final result": []}

    events: list[tuple[float, str]] = []

    def timed(fn, key):
        def wrapper(*a):
            t0 = time.perf_counter()
            fn(*a)
            handler_ms[key].append((time.perf_counter() - t0) * 1000.0)
            label = type(a[0]).__name__ if key == "epoch report" else key
            events.append((t0, str(label)))

        return wrapper

    widget._on_yielded = timed(widget._on_yielded, "epoch report")
    widget._on_returned = timed(widget._on_returned, "final result")
    worker = widget.start_training(start=False)
    if worker is None:
        raise SystemExit("training could not start (see the notification)")
    worker.yielded.connect(lambda m: events.append((time.perf_counter(), type(m).__name__)))
    ticks.clear()
    timer.start()
    seconds = _run_until(app, worker)
    timer.stop()
    import torch

    n_cells = len(widget.result.crops) if widget.result else 0
    print(
        f"training: {len(widget.loss_plot.epochs)} epochs, crop {args.size} px, {n_cells} cells"
        f" ({widget.result.n_trained} trained, {widget.result.n_held_out} held out),"
        f" {seconds:.1f} s wall, torch threads in the worker: {torch.get_num_threads()}"
    )
    _report("during training", ticks)
    if args.verbose:
        t_start = ticks[0]
        stamps = np.asarray(ticks)
        for k in np.flatnonzero(np.diff(stamps) > 0.1):
            before = [name for t, name in events if t <= stamps[k + 1]]
            print(
                f"  gap {1000 * (stamps[k + 1] - stamps[k]):.0f} ms at "
                f"{stamps[k] - t_start:.2f} s, last GUI event: {before[-1] if before else '-'}"
            )
    for key, values in handler_ms.items():
        if values:
            shown = ", ".join(f"{v:.0f}" for v in values)
            print(f"  GUI handler '{key}' (ms per call): {shown}")
    # the UMAP map follows in the background (numba compiles on its first call)
    ticks.clear()
    timer.start()
    t0 = time.perf_counter()
    while widget.results.pending:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    print(f"UMAP map in the background: {time.perf_counter() - t0:.1f} s")
    _report("while the UMAP map is computed", ticks)
    viewer.close()


def _report(what: str, ticks: list[float]) -> None:
    gaps = np.diff(np.asarray(ticks)) * 1000.0
    if len(gaps) == 0:
        print(f"{what}: no ticks")
        return
    print(
        f"GUI timer gaps {what} (10 ms timer, {len(gaps)} ticks): max {gaps.max():.1f} ms, "
        f"p99 {np.percentile(gaps, 99):.1f} ms, median {np.median(gaps):.1f} ms, "
        f"gaps > 100 ms: {int((gaps > 100).sum())}"
    )


def screenshots(args: argparse.Namespace) -> None:
    """Photograph the whole viewer before, during and after training."""
    from qtpy.QtWidgets import QApplication

    from napari_cellae._widget import EMBEDDING_LAYER
    from napari_cellae.pipeline.messages import EpochDone

    out = Path(args.screenshots)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance()
    width, height = (int(v) for v in args.window.lower().split("x"))
    viewer = _viewer(width, height)
    widget = _widget(viewer, args, configure=False)

    def shoot(name: str) -> None:
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        # toasts (e.g. napari's PyQt5 deprecation notice) would cover the canvas
        for toast in widget.window().findChildren(NapariQtNotification):
            toast.close()
        for _ in range(30):
            app.processEvents()
        viewer.screenshot(str(out / name), canvas_only=False, flash=False)

    shoot("widget_before.png")  # with the module's defaults
    _configure(widget, args)
    worker = widget.start_training(start=False)
    taken = []

    def during(message) -> None:
        epoch = message.report.epoch if isinstance(message, EpochDone) else 0
        if epoch == max(2, args.epochs // 2) and not taken:
            shoot("widget_during.png")
            taken.append(True)

    _run_until(app, worker, during)
    # the UMAP map replaces the PCA map in the background
    t_end = time.perf_counter() + 300
    while widget.results.pending and time.perf_counter() < t_end:
        app.processEvents()
        time.sleep(0.01)
    viewer.layers.selection.active = viewer.layers[EMBEDDING_LAYER]
    # show the findings: novelty colours, the strongest hit's cells and its most novel cells
    widget.panel.colour_by.setCurrentText(args.colour)
    widget.panel.hits.table.selectRow(0)
    while widget.results.pending and time.perf_counter() < t_end:
        app.processEvents()
        time.sleep(0.01)
    viewer.reset_view()
    shoot("widget_after.png")
    print("wrote", *sorted(p.name for p in out.glob("widget_*.png")))
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=0.0, help="learning rate (default: 0.05)")
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--switch", type=float, default=0.0, help="sys.setswitchinterval (s)")
    parser.add_argument("--no-progress", action="store_true", help="diagnose: no napari progress")
    parser.add_argument("--verbose", action="store_true", help="list the gaps > 100 ms")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle baseline")
    parser.add_argument("--arch", default="", help="network (default: the module's default)")
    parser.add_argument("--screenshots", default="", help="folder for widget_*.png")
    parser.add_argument("--window", default="1500x1000", help="window size of the screenshots")
    parser.add_argument("--colour", default="novelty", help="embedding colours in the screenshot")
    args = parser.parse_args()
    if args.no_progress:
        import contextlib

        from napari_cellae._ui import runner

        class _NoProgress(contextlib.nullcontext):
            def update(self, n: int = 1) -> None:
                pass

            def close(self) -> None:
                pass

        runner.progress = lambda **kw: _NoProgress()
    if args.switch:
        import sys

        sys.setswitchinterval(args.switch)
    from qtpy.QtWidgets import QApplication

    QApplication.instance() or __import__("napari").qt.get_qapp()
    if args.screenshots:
        screenshots(args)
    else:
        measure(args)


if __name__ == "__main__":
    main()
