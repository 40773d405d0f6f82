"""GUI-thread stalls of the Deep Learning widget through a whole user session.

A 10 ms QTimer on the GUI thread records the gaps between its ticks, labelled by the
phase of the session: open a screen, choose it, train, the results and the UMAP map
computed after, clicks in the embedding / the image / the hit table, colour modes, map
switches, saving features / AnnData / model, loading the model, a stopped run. Prints per
phase the longest gap and the total of gaps > 100 ms (stalls), and the longest and median
time of the widget's own GUI-thread handlers (what the widget does there, as opposed to
napari's repaints and to background threads holding Python's lock). With ``--dumps``,
faulthandler dumps the GUI thread's stack once per stall (it reads other threads' frames
without the lock: it may crash the process on large screens). Needs a display::

    cellae make-screen /tmp/s20k --cells 20000
    xvfb-run -a python benchmarks/bench_gui_stalls.py /tmp/s20k/benchmark_screen.ch5 \\
        --mapping /tmp/s20k/benchmark_screen_mapping.txt
"""

from __future__ import annotations

import argparse
import collections
import faulthandler
import functools
import os
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

STALL_MS = 100.0


class StallMonitor:
    """Ticks every 10 ms on the GUI thread; samples its stack during long gaps."""

    def __init__(self, dumps: bool = False) -> None:
        from qtpy.QtCore import QTimer

        self.dumps = dumps
        self.phase = "start"
        self.last = time.perf_counter()
        self.gaps: dict[str, list[float]] = collections.defaultdict(list)
        self.handlers: dict[str, dict[str, list[float]]] = collections.defaultdict(dict)
        self.order: list[str] = []
        self._timer = QTimer()
        self._timer.setInterval(10)
        self._timer.timeout.connect(self._tick)
        # faulthandler's watchdog is a C thread: it dumps the GUI thread's stack even
        # while Qt holds the GIL in a repaint (a Python sampler could not run then)
        fd, self._dump_path = tempfile.mkstemp(suffix=".stalls")
        self._dump = os.fdopen(fd, "w")

    def start(self) -> None:
        self.last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        faulthandler.cancel_dump_traceback_later()
        self._dump.flush()

    def enter(self, phase: str) -> None:
        self._tick()
        self.phase = phase
        self._dump.write(f"### PHASE {phase}\n")
        self._dump.flush()
        if phase not in self.order:
            self.order.append(phase)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps[self.phase].append((now - self.last) * 1000.0)
        self.last = now
        if self.dumps:
            faulthandler.dump_traceback_later(STALL_MS / 1000.0, repeat=False, file=self._dump)

    def timed(self, owner, name: str, label: str) -> None:
        """Time ``owner.name`` (a GUI-thread handler) per phase."""
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                ms = (time.perf_counter() - t0) * 1000.0
                self.handlers[self.phase].setdefault(label, []).append(ms)

        setattr(owner, name, wrapper)

    def stacks(self) -> dict[str, collections.Counter]:
        """Condensed stacks of the dumps per phase: the GUI thread's, and those of other
        threads that were running (not waiting), which may hold Python's lock."""
        ident = f"0x{threading.main_thread().ident:016x}"
        idle = ("threading.py", "queue.py", "selectors.py", "thread.py")
        out: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        phase, block, main = "start", [], False
        with open(self._dump_path) as dump:
            lines = [*dump.read().splitlines(), "### END"]
        for line in lines:
            if line.startswith(("### ", "Timeout", "Thread ", "Current thread")):
                if block and main:
                    out[phase][_condense(block)] += 1
                elif block and not any(name in block[0] for name in idle):
                    out[phase]["(other thread) " + _condense(block)] += 1
                block, main = [], line.startswith(("Thread ", "Current thread")) and ident in line
                if line.startswith("### PHASE "):
                    phase = line.removeprefix("### PHASE ")
            elif line.strip().startswith("File "):
                block.append(line.strip())
        return out

    def table(self, top: int = 6) -> str:
        lines = [f"{'phase':46s} {'longest ms':>10s} {'stalled ms':>10s} {'n>100':>6s}"]
        for phase in self.order:
            gaps = np.asarray(self.gaps.get(phase, [0.0]))
            long = gaps[gaps > STALL_MS]
            lines.append(f"{phase:46s} {gaps.max():10.0f} {long.sum():10.0f} {len(long):6d}")
        lines.append("\nwidget's GUI-thread handlers per phase: longest/median ms/calls:")
        for phase in self.order:
            calls = self.handlers.get(phase)
            if calls:
                worst = sorted(calls.items(), key=lambda kv: -max(kv[1]))[:6]
                shown = ", ".join(f"{k} {max(v):.0f}/{np.median(v):.0f}/{len(v)}" for k, v in worst)
                lines.append(f"[{phase}] {shown}")
        lines.append("\nmost dumped GUI-thread stacks during stalls (100 ms dumps):")
        stacks = self.stacks()
        for phase in self.order:
            for stack, n in stacks[phase].most_common(top):
                lines.append(f"[{phase}] x{n}: {stack}")
        return "\n".join(lines)


def _condense(block: list[str]) -> str:
    """Innermost project frames and the leaf, outermost first (faulthandler lists the
    innermost first)."""
    frames = []
    for line in block:  # File "/p/x.py", line 12 in name
        path, rest = line[len('File "') :].split('", line ', 1)
        lineno, name = rest.split(" in ", 1)
        frames.append((path, name, lineno))
    own = [f for f in frames if "napari_cellae" in f[0]][:4]
    picked = ([frames[0]] if frames and frames[0] not in own else []) + own
    if not own:
        picked = frames[:4]
    return " < ".join(f"{Path(p).stem}.{n}:{ln}" for p, n, ln in picked)


def pump(app, seconds: float = 0.0, until=None, timeout: float = 600.0) -> None:
    """Process events for ``seconds``, or until ``until()`` (then briefly more)."""
    t_end = time.perf_counter() + (timeout if until is not None else seconds)
    while time.perf_counter() < t_end:
        app.processEvents()
        time.sleep(0.002)
        if until is not None and until():
            break
    t_settle = time.perf_counter() + 0.3
    while time.perf_counter() < t_settle:
        app.processEvents()
        time.sleep(0.002)


def session(args: argparse.Namespace) -> StallMonitor:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_cellae._ui.runner import warm_up_engine
    from napari_cellae._widget import EMBEDDING_LAYER, DeepLearningWidget
    from napari_cellae.pipeline.messages import EpochDone

    warnings.filterwarnings("ignore", message=".*PyQt5 backend is deprecated.*")
    app = QApplication.instance() or napari.qt.get_qapp()
    viewer = napari.Viewer(show=True, title="stalls")
    viewer.window._qt_window.resize(1500, 1000)
    warm_up_engine().join()  # torch loaded: not part of the session measured
    mon = StallMonitor(args.dumps)
    _time_handlers(mon)
    mon.start()
    pump(app, 1.0)
    mon.enter("idle baseline")
    pump(app, 2.0)

    mon.enter("open the file (napari reader)")
    viewer.open(str(args.screen), plugin="napari-cellae")
    pump(app, 1.0)

    mon.enter("open the widget (presets the file)")
    widget = DeepLearningWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Deep Learning Module", area="right")
    pump(app, 1.0)
    if args.mapping:
        mon.enter("choose the mapping")
        widget.form.mapping.value = args.mapping
        pump(app, 1.0)

    mon.enter("choose the file again in the form")
    widget.form.file.value = None
    widget.form.file.value = args.screen
    pump(app, 1.0)

    form = widget.form
    form.epochs.value = args.epochs
    form.samples.value = args.samples
    epochs = [0]

    def on_message(message) -> None:
        if isinstance(message, EpochDone):
            epochs[0] += 1
            mon.enter("training epochs (loss plot, gallery)")

    mon.enter("press Train (until the first epoch)")
    orig_returned = widget._on_returned

    def returned(outcome):
        mon.enter("end: show results (_on_returned)")
        orig_returned(outcome)
        mon.enter("end: after results shown (UMAP in background)")

    widget._on_returned = returned  # runner.start takes it as the outcome callback
    worker = widget.start_training(start=False)
    assert worker is not None
    worker.yielded.connect(on_message)
    ended = [False]
    worker.finished.connect(lambda: ended.__setitem__(0, True))
    widget.runner.launch(worker)
    pump(app, until=lambda: ended[0] and widget._worker is None)
    pump(app, until=lambda: not widget.results.pending)
    del widget._on_returned  # the method again for later runs

    table = widget.results.table
    n = len(table)
    print(f"cells: {n}, epochs: {epochs[0]}", flush=True)
    rng = np.random.default_rng(0)
    layer = viewer.layers[EMBEDDING_LAYER]

    mon.enter("click a cell in the embedding")
    rows = len(layer.data)
    for row in rng.integers(0, rows, 5):
        layer.selected_data = {int(row)}
        pump(app, until=lambda: not widget.results.pending)
        pump(app, 0.3)

    mon.enter("click a cell in the viewer (centres)")
    centres = widget.link.centres
    for cell in rng.integers(0, n, 5):
        found = widget.link.locate(int(cell))
        if found is None:
            continue
        found[0].selected_data = {found[1]}
        pump(app, 0.5)

    mon.enter("click hit-table rows")
    hits = widget.panel.hits.table
    for row in range(min(5, hits.rowCount())):
        hits.selectRow(row)
        pump(app, until=lambda: not widget.results.pending)
        pump(app, 0.3)
    del centres

    mon.enter("switch colour modes")
    combo = widget.panel.colour_by
    for _ in range(2):
        for k in range(combo.count()):
            combo.setCurrentIndex(k)
            pump(app, 0.3)

    mon.enter("switch map (PCA <-> UMAP)")
    maps = widget.panel.map
    for k in [*range(maps.count()), *range(maps.count())]:
        maps.setCurrentIndex(k)
        pump(app, until=lambda: not widget.results.pending)
        pump(app, 0.3)

    out = Path(tempfile.mkdtemp())
    for name, save in (
        ("Save features", lambda: widget.save_features(out / "f.hdf")),
        ("Save AnnData", lambda: widget.save_anndata(out / "a.h5ad")),
    ):
        mon.enter(name)
        w = save()
        done = [False]
        w.finished.connect(lambda done=done: done.__setitem__(0, True))
        pump(app, until=lambda done=done: done[0])
    mon.enter("Save model")
    model = widget.save_model(out / "m.pt")
    pump(app, 0.5)

    mon.enter("Load model (encode all cells, show)")
    done = [False]
    w = widget.load_model(model, start=False)
    w.finished.connect(lambda: done.__setitem__(0, True))
    widget.runner.launch(w)
    pump(app, until=lambda: done[0] and widget._worker is None)
    pump(app, until=lambda: not widget.results.pending)

    mon.enter("Train again, Stop after 1 epoch")
    form.epochs.value = 50
    w = widget.start_training(start=False)
    done = [False]
    w.finished.connect(lambda: done.__setitem__(0, True))
    first = [True]

    def stop_on_first(message) -> None:
        if isinstance(message, EpochDone) and first[0]:
            first[0] = False
            mon.enter("Stop (to the end of the run)")
            widget.stop()

    w.yielded.connect(stop_on_first)
    widget.runner.launch(w)
    pump(app, until=lambda: done[0] and widget._worker is None)
    pump(app, until=lambda: not widget.results.pending)
    mon.enter("end")
    mon.stop()
    if args.screenshot:
        viewer.screenshot(args.screenshot, canvas_only=False, flash=False)
    viewer.close()
    return mon


def _time_handlers(mon: StallMonitor) -> None:
    from napari_cellae import _widget
    from napari_cellae._ui import (
        embedding_view,
        files,
        form,
        linking,
        loss_plot,
        result_layers,
        results,
        runner,
    )

    wanted = {
        _widget.DeepLearningWidget: "_on_file_changed start_training _on_yielded _on_returned "
        "load_model save_model save_features save_anndata stop _set_running _on_finished",
        runner.JobRunner: "start launch _throttle_spinners _finished",
        results.Results: "show recolour choose_map _map_ready select_hits focus_cell show_cell "
        "_gallery_ready _show_gallery _mark _link",
        result_layers.ResultLayers: "show_gallery show_pair mark prepare",
        loss_plot.LossPlot: "add paintEvent clear reveal",
        embedding_view.EmbeddingView: "show recolour select moved",
        linking.SelectionLink: "connect focus select _go_to",
        form.ParameterForm: "request show_file show_model",
        _widget: "read_file_info",
        files: "open_file show_centres",
    }
    for owner, names in wanted.items():
        for name in names.split():
            mon.timed(owner, name, f"{getattr(owner, '__name__', '')}.{name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("screen", type=Path)
    parser.add_argument("--mapping", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=2000, help="training cells")
    parser.add_argument("--screenshot", default="", help="PNG of the viewer at the end")
    parser.add_argument("--dumps", action="store_true", help="GUI-thread stack per stall")
    args = parser.parse_args()
    mon = session(args)
    print(mon.table())


if __name__ == "__main__":
    main()
