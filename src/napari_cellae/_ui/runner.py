"""Runs one job at a time in a napari thread worker, with a progress bar.

The job's typed messages and its result reach the widget through the callbacks given to
:meth:`JobRunner.start`; the runner owns the worker, the progress bar and the slowed
activity spinner. :func:`viewer_job` also looks for hits (novelty against the controls,
phenotype groups, hit lists) and builds the embedding layer's table in the worker, so
that the GUI thread only assigns ready arrays.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from napari.qt.threading import create_worker
from napari.utils import progress
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QLabel, QWidget

from napari_cellae._ui.background import (
    WAIT_POLL_MS,
    JobWorker,
    hold_warning_state,
    let_go_when_finished,
    warning_state_held,
    warning_state_holder,
)
from napari_cellae._ui.cell_table import CellTable, cell_table
from napari_cellae._ui.embedding_view import BINS, DENSE_ABOVE
from napari_cellae._ui.findings import Findings, find
from napari_cellae.io.centres import position_labels
from napari_cellae.pipeline.jobs import guarded, warm_up
from napari_cellae.pipeline.messages import Alert, Message, Status
from napari_cellae.pipeline.results import RunResult

if TYPE_CHECKING:
    from napari_cellae.pipeline.discovery import DiscoveryOptions

__all__ = ["QUIT", "JobRunner", "Outcome", "viewer_job", "warm_up_engine"]

_SPINNER_SPEED = 10  # percent of napari's activity-spinner frame rate while a job runs
LATER_MS = 40  # delay of cosmetic updates, see JobRunner.later
#: the status after :meth:`JobRunner.quit` stopped a job (applying a loaded model)
QUIT = "Stopped before the features were computed; the results shown, if any, are older."
_warm_up: threading.Thread | None = None
#: what a job waits for while another dock's job runs
ANOTHER_RUN = "the run of another Deep Learning Module"


def warm_up_engine() -> threading.Thread:
    """Start loading torch in a background thread, once per process.

    See :func:`napari_cellae.pipeline.jobs.warm_up`; ``join()`` the thread to wait for it.
    """
    global _warm_up
    if _warm_up is None:

        def run() -> None:
            with contextlib.suppress(Exception):  # a broken engine is reported when training
                warm_up()

        _warm_up = threading.Thread(target=run, name="napari-cellae warm-up", daemon=True)
        _warm_up.start()
    return _warm_up


def _end_unstarted(worker: Any) -> None:
    """End a worker that will never start as one quit before its first step ends.

    napari lists every worker made while a viewer is open as a pending task until it
    ends (its close dialog asks about "tasks in progress"), and the worker keeps the
    job's arguments and the widget's slots until ``ended``
    (:func:`~napari_cellae._ui.background.let_go_when_finished`). Starting it instead
    would swap the warning state beside the warm-up it waited for.
    """
    with contextlib.suppress(RuntimeError):  # its Qt object is gone (the viewer closed)
        worker.aborted.emit()  # napari: cancelled
        worker.finished.emit()
        worker.ended.emit(worker)


def _drive(run: Generator[Message, None, Outcome]) -> Generator[Message, None, Outcome]:
    """The worker's generator: ``run``, which the runner keeps to close it."""
    return (yield from run)


@dataclass
class Outcome:
    """What a job hands to the GUI: its result and, with features, findings and table.

    Attributes
    ----------
    result : RunResult or None
        None when the job was stopped before training began.
    table : CellTable or None
        The embedding's cell table (PCA map).
    findings : Findings or None
        Novelty, phenotype groups and hit lists (``discovery.note`` says why novelty is
        missing without controls).
    """

    result: RunResult | None
    table: CellTable | None = None
    findings: Findings | None = None


def viewer_job(
    job: Callable[..., Generator[Message, None, RunResult | None]],
    *args: Any,
    discovery: DiscoveryOptions | None = None,
) -> Generator[Message, None, Outcome]:
    """Run ``job(*args)``, then look for hits (with ``discovery``, the novelty boxes'
    options; default: ``cellae encode``'s) and build the embedding's table in the same
    thread."""
    result = yield from job(*args)
    if result is None or result.embedding is None or result.features is None:
        return Outcome(result)
    yield Status("Scoring novelty against the negative controls…")
    findings = find(result, discovery)
    table = cell_table(result, position_labels(result.crops.positions, shown=True), findings)
    if len(table) > DENSE_ABOVE:
        table.prepare_density(BINS)  # here rather than on the GUI thread
    return Outcome(result, table, findings)


class JobRunner:
    """Starts, stops and tracks the widget's one background job.

    Parameters
    ----------
    owner : QWidget
        The dock widget (owns the timers; its window holds the spinner).
    on_owner_deleted : callable, optional
        Called when Qt deletes ``owner`` (closing the viewer does, without a close event),
        after the running job was detached.
    """

    def __init__(self, owner: QWidget, on_owner_deleted: Callable[[], None] | None = None) -> None:
        self.owner = owner
        self._on_owner_deleted = on_owner_deleted
        self.worker: Any = None
        self._waiting: Any = None  # the worker that launch() holds back (warm-up, a map)
        self._progress: Any = None
        self._warned: set[str] = set()  # warnings shown in this run
        self._on_message: Callable[[Message], None] = lambda message: None
        # the run whose signals reach the owner; detach() replaces it, so a job abandoned
        # with a closed widget draws nothing there
        self._run = object()
        # closing the viewer deletes the widget without a close event: what the job sends
        # later must not reach it ("wrapped C/C++ object ... has been deleted"). A method,
        # never a lambda: Qt sends `destroyed` when it deletes the widget, which can be after
        # Python's garbage collector took the widget's Python side apart. PyQt holds a
        # lambda strongly, and one whose closure the collector had cleared crashed Python
        # (segmentation fault); a method's object it holds weakly, and skips once collected.
        owner.destroyed.connect(self._owner_deleted)

    @property
    def running(self) -> bool:
        """Whether a job is running."""
        return self.worker is not None

    def start(
        self,
        job: Callable[..., Generator[Message, None, Any]],
        *args: Any,
        on_message: Callable[[Message], None],
        on_outcome: Callable[[Outcome], None],
        on_error: Callable[[BaseException], None],
        on_finished: Callable[[], None],
        total: int | None = None,
        description: str = "",
        start: bool = True,
        discovery: DiscoveryOptions | None = None,
    ) -> Any:
        """Run ``viewer_job(job, *args)`` in a thread worker.

        Parameters
        ----------
        job, *args
            The generator job and its arguments.
        on_message, on_outcome, on_error, on_finished : callable
            GUI-thread callbacks: every message, the outcome, an exception, the end.
        total : int, optional
            Steps of the progress bar (epochs); None shows no bar.
        description : str
            The progress bar's text.
        start : bool
            False returns the worker unstarted (call ``worker.start()``), so that a
            caller can connect to its signals first.
        discovery : DiscoveryOptions, optional
            How the findings are made (see :func:`viewer_job`).

        Returns
        -------
        GeneratorWorker
        """
        self._run = object()
        live = self._live
        run = guarded(viewer_job)(job, *args, discovery=discovery)  # closed when it ends
        worker = create_worker(
            _drive,
            run,
            _start_thread=False,
            _connect={"errored": live(on_error)},
            _worker_class=JobWorker,
        )
        let_go_when_finished(worker, run)
        worker.yielded.connect(live(on_message))
        # napari's workers are meant to turn a job's warnings into notifications, but its
        # relay is never connected (its mixin's __init__ does not run under superqt's
        # worker): "no image to learn from", unmapped positions ... vanished. They are
        # shown as Alerts, once per run.
        self._warned = set()
        self._on_message = on_message
        worker.warned.connect(live(self._relay_warning))
        worker.returned.connect(live(on_outcome))
        # a quit job returns nothing: without a word its last "Computing features: 2048/
        # 5000 cells" stayed in the status line
        worker.aborted.connect(live(lambda: self._tell(Status(QUIT))))
        worker.finished.connect(live(lambda: self._finished(on_finished)))
        if total is not None:
            self._progress = progress(total=total, desc=description)
        self.worker = worker
        self._throttle_spinners(True)
        if start:
            self.launch(worker)
        return worker

    def launch(self, worker: Any, told: bool = False) -> None:
        """Start ``worker`` once the engine's warm-up thread and any side task that swaps
        the warning state (the UMAP map) are done.

        Python's warning filters and ``showwarning`` are one per process, and a thread
        worker swaps in its own for its run (superqt), as the warm-up's UMAP call does for
        its own. Overlapping, the one that ends last restores what it found at its start:
        a finished run's relay, or "ignore" for everything, so later runs' warnings
        vanished. The warm-up takes a few seconds after the widget opens; a run's map a few
        seconds after the run (:mod:`~napari_cellae._ui.background`), which the job's
        ``on_message`` is told once (``told``).
        """
        if worker is not self.worker:  # detached while it waited: the owner closed
            return
        self._waiting = worker
        if (_warm_up is not None and _warm_up.is_alive()) or warning_state_held():
            if warning_state_held() and not told:  # seconds, or a minute for a whole plate
                # a map, or another dock's run (it said 'the map' then)
                self._on_message(Status(f"Waiting for {warning_state_holder()} to finish…"))
                told = True
            QTimer.singleShot(WAIT_POLL_MS, lambda: self.launch(worker, told))
        else:
            self._waiting = None
            hold_warning_state(worker, ANOTHER_RUN)
            worker.start()

    def advance(self) -> None:
        """Advance the progress bar by one step."""
        if self._progress is not None:
            self._progress.update(1)

    def _relay_warning(self, args: tuple[Any, ...]) -> None:
        # args: those of warnings.showwarning (message, category, filename, lineno, ...)
        text = str(args[0])
        if text not in self._warned:
            self._warned.add(text)
            self._tell(Alert(text))

    def quit(self) -> None:
        """Ask the worker to quit at its next message (``on_message`` gets :data:`QUIT`)."""
        if self.worker is not None:
            self.worker.quit()

    def detach(self) -> bool:
        """Abandon the running job: the owner closed. The job is asked to quit; nothing it
        sends later (messages, outcome, error, end) nor any :meth:`later` update reaches
        the owner, and its progress bar closes now.

        Returns
        -------
        bool
            Whether a job was running.
        """
        self._run = object()
        worker, self.worker = self.worker, None
        if worker is None:
            return False
        worker.quit()
        if worker is self._waiting:  # never started: launch() will not start it now
            self._waiting = None
            _end_unstarted(worker)
        self._close_progress()
        with contextlib.suppress(RuntimeError):  # the viewer's window is gone already
            self._throttle_spinners(False)
        return True

    def _owner_deleted(self, *_: Any) -> None:
        self.detach()
        if self._on_owner_deleted is not None:
            self._on_owner_deleted()

    def _live(self, callback: Callable[..., Any]) -> Callable[..., None]:
        """``callback``, called only while the run now starting is not detached."""
        run = self._run

        def call(*args: Any) -> None:
            if self._run is run:
                callback(*args)

        return call

    def _tell(self, message: Message) -> None:
        # RuntimeError: the viewer (and the widget) closed, which quit the job, before a
        # warning it relays (queued signal) or its end arrived
        with contextlib.suppress(RuntimeError):
            self._on_message(message)

    def later(self, action: Callable[[], Any]) -> None:
        """Run a cosmetic update in a later event-loop turn (timer owned by the widget).

        E.g. a gallery update redraws the canvas: done a moment after the dock's repaint,
        the two repaints do not add up into one long stall.
        """
        timer = QTimer(self.owner)
        timer.setSingleShot(True)
        live = self._run

        def run() -> None:
            timer.deleteLater()
            # KeyError: napari's canvas forgot the layers because the viewer closed meanwhile
            with contextlib.suppress(KeyError):
                if self._run is live:  # not after the owner closed
                    action()

        timer.timeout.connect(run)
        timer.start(LATER_MS)

    def _finished(self, on_finished: Callable[[], None]) -> None:
        self.worker = None
        self._close_progress()
        try:
            self._throttle_spinners(False)
        except RuntimeError:  # the viewer was closed during the run: its widgets are gone
            return
        on_finished()

    def _close_progress(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    def _throttle_spinners(self, slow: bool) -> None:
        # napari's "in progress" spinner is a GIF at ~38 frames/s; without a GPU (remote
        # desktops, Xvfb) every frame repaints the window around the OpenGL canvas and
        # starves the event loop. A slower spinner keeps the viewer responsive.
        for label in self.owner.window().findChildren(QLabel):
            movie = label.movie()
            if movie is not None:
                movie.setSpeed(_SPINNER_SPEED if slow else 100)
