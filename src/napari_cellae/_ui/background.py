"""Side tasks (2-D maps, gallery reconstructions, file writers) in thread workers that leave
Python's warning state alone.

napari's thread workers (superqt) swap Python's process-wide warning filters and
``warnings.showwarning`` for their run and put back what they found when they end. Two
workers whose runs overlap without nesting (a map computed while a job runs, the job ending
first) leave the stale state of one of them in place for the rest of the session: warnings
from then on go to a finished worker's relay, napari's own notifications included. Only the
job itself (:class:`~napari_cellae._ui.runner.JobRunner`, one at a time) needs the swap, to
show its warnings as alerts; a side task's warnings go wherever warnings go at the time
(the running job's alerts, or napari's notifications).

A side task that swaps the state itself (the UMAP map quiets UMAP's notes in a
``warnings.catch_warnings()``) is started with ``swaps_warnings=True``: it and a job never
run at the same time (:func:`hold_warning_state`), each waits for the other to end.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Generator
from typing import Any

from napari.qt.threading import (
    FunctionWorker,
    GeneratorWorker,
    GeneratorWorkerSignals,
    WorkerBaseSignals,
    create_worker,
)
from qtpy.QtCore import QMetaMethod, QObject, QTimer, Signal

__all__ = [
    "JobWorker",
    "SideTaskWorker",
    "hold_warning_state",
    "let_go_when_finished",
    "side_task",
    "warning_state_held",
    "warning_state_holder",
]

WAIT_POLL_MS = 50  # how often a task waiting for the warning state looks again
#: what the running workers that swap the warning state do, by id
_holders: dict[int, str] = {}
UMAP_MAP = "the map (UMAP) of the last run"
#: a worker's signals (superqt's own ``_finished`` is left: it lets superqt forget it)
_SIGNALS = ("started", "yielded", "warned", "returned", "errored", "aborted", "finished", "ended")


class _SideTaskSignals(WorkerBaseSignals):
    # the worker, once ``finished`` was sent to every slot (:func:`let_go_when_finished`);
    # sent, not held by the slot: a worker never started would be kept alive by it
    ended = Signal(object)


class _JobSignals(GeneratorWorkerSignals):
    ended = Signal(object)


class JobWorker(GeneratorWorker):
    """napari's generator worker that also emits ``ended`` once its run is over: after
    ``finished`` was sent to every slot, for :func:`let_go_when_finished`."""

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(func, *args, SignalsClass=_JobSignals, **kwargs)

    def run(self) -> None:
        """Called by Qt's thread pool: napari's run, then ``ended``."""
        super().run()
        with contextlib.suppress(RuntimeError):  # the signals' Qt object is gone
            self.ended.emit(self)


def warning_state_held() -> bool:
    """Whether a running worker has swapped Python's warning state (and will put it back)."""
    return bool(_holders)


def warning_state_holder() -> str:
    """What the worker holding the warning state does ("" when none does), for a job
    that waits for it to say what it waits for."""
    return next(iter(_holders.values()), "")


def hold_warning_state(worker: Any, what: str = UMAP_MAP) -> None:
    """Mark ``worker`` (doing ``what``) as swapping the warning state until its
    ``finished`` signal.

    Call it on the GUI thread just before ``worker.start()``, after
    :func:`warning_state_held` said False. The state is put back before ``finished``
    is emitted (at the end of the worker's run).
    """
    key = id(worker)
    _holders[key] = what
    worker.finished.connect(lambda: _holders.pop(key, None))


def let_go_when_finished(worker: Any, job: Generator[Any, Any, Any] | None = None) -> None:
    """Leave ``worker`` holding nothing of the widget's, nor of its run, once it finished.

    napari keeps every thread worker made while a viewer is open in that window's task
    list (for its close dialog) as long as the window object lives, which is past its
    closing (napari's theme holds it). Through their slots, finished workers held the
    widget, its viewer, the run's cells and network: closed docks and viewers stayed in
    memory all day. Once all that is connected to ``finished`` has run, its slots are
    disconnected and ``job`` (the worker's generator, which ``quit()`` leaves suspended
    with the run's crops) is closed, as the garbage collector would close it.
    """
    # `ended` (a JobWorker's or SideTaskWorker's) is emitted after `finished` was queued to
    # every slot: a slot of `finished` runs while the worker's thread may still be queueing
    # the others (the runner's end was dropped so)
    worker.ended.connect(functools.partial(_let_go, job=job))


def _let_go(worker: Any, job: Generator[Any, Any, Any] | None = None) -> None:
    if job is not None:
        with contextlib.suppress(Exception):  # its clean-up; nobody waits for it now
            job.close()
    for name in _SIGNALS:
        # AttributeError: a function's worker yields nothing; RuntimeError: its Qt object is
        # gone already
        with contextlib.suppress(AttributeError, RuntimeError):
            signal = getattr(worker, name)
            if _has_slots(worker.signals, signal):
                signal.disconnect()


def _has_slots(owner: QObject, signal: Any) -> bool:
    # Disconnecting a signal without slots raises a TypeError in PyQt but makes PySide6 warn
    # (a RuntimeWarning, shown to the user), and the warning filters are not ours to swap here
    if hasattr(QMetaMethod, "fromSignal"):  # PySide6; its receivers() wants a signature
        return owner.isSignalConnected(QMetaMethod.fromSignal(signal))
    return owner.receivers(signal) > 0  # PyQt: no fromSignal; receivers() takes the signal


def _call(work: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> Any:
    # the worker keeps its arguments (napari keeps the worker): only this emptied list
    function, args = work.pop()
    return function(*args)


class SideTaskWorker(FunctionWorker):
    """A :class:`napari.qt.threading.FunctionWorker` whose run does not touch the warning
    filters or ``warnings.showwarning``; signals as usual (``returned``, ``errored``,
    ``finished``), then ``ended``. With ``swaps_warnings`` (its function swaps them),
    :meth:`start` waits until no job holds the warning state."""

    swaps_warnings = False

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(func, *args, **kwargs)
        self.signals = _SideTaskSignals()  # before anything is connected (create_worker)

    def start(self) -> None:
        """Start now, or once the running job (if it swaps the warning state) ends."""
        if not self.swaps_warnings:
            super().start()
        elif warning_state_held():
            QTimer.singleShot(WAIT_POLL_MS, self.start)
        else:
            hold_warning_state(self)
            super().start()

    def run(self) -> None:
        """Called by Qt's thread pool; :meth:`WorkerBase.run` without the warning swap."""
        # RuntimeError: the signals' Qt object was deleted (Python exits after the viewer
        # closed); raised in Qt's thread pool, it aborted the process
        with contextlib.suppress(RuntimeError):
            self.started.emit()
        self._running = True
        try:
            result = self.work()
            if isinstance(result, Exception):
                raise result
            if not self.abort_requested:
                self.returned.emit(result)
        except Exception as exc:  # delivered to the GUI thread, as superqt does
            with contextlib.suppress(RuntimeError):
                self.errored.emit(exc)
        self._running = False
        with contextlib.suppress(RuntimeError):
            self.finished.emit()
            # superqt forgets a started worker only on its private `_finished`, which its
            # own run (the warning swap) emits; none in a superqt without it: none to send
            forget = getattr(self.signals, "_finished", None)
            if forget is not None:
                forget.emit(self)
            self.ended.emit(self)


def side_task(
    function: Callable[..., Any],
    *args: Any,
    errored: Callable[[BaseException], Any] | None = None,
    swaps_warnings: bool = False,
) -> SideTaskWorker:
    """An unstarted :class:`SideTaskWorker` running ``function(*args)``.

    Parameters
    ----------
    function, *args
        The work and its arguments.
    errored : callable, optional
        Connected before anything can fail (pytest-qt reports exceptions that reach Qt's
        event loop unhandled).
    swaps_warnings : bool
        ``function`` swaps Python's warning state (``warnings.catch_warnings``): it never
        runs beside a job.

    Returns
    -------
    SideTaskWorker
        Call ``start()``; its ``returned`` signal carries ``function``'s result.
    """
    connect = {"errored": errored} if errored is not None else None
    worker = create_worker(
        _call,
        [(function, args)],
        _start_thread=False,
        _connect=connect,
        _worker_class=SideTaskWorker,
    )
    worker.swaps_warnings = swaps_warnings
    let_go_when_finished(worker)
    return worker
