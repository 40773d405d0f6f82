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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from napari.qt.threading import FunctionWorker, create_worker

__all__ = ["SideTaskWorker", "side_task"]


class SideTaskWorker(FunctionWorker):
    """A :class:`napari.qt.threading.FunctionWorker` whose run does not touch the warning
    filters or ``warnings.showwarning``; signals as usual (``returned``, ``errored``,
    ``finished``)."""

    def run(self) -> None:
        """Called by Qt's thread pool; :meth:`WorkerBase.run` without the warning swap."""
        self.started.emit()
        self._running = True
        try:
            result = self.work()
            if isinstance(result, Exception):
                raise result
            if not self.abort_requested:
                self.returned.emit(result)
        except Exception as exc:  # delivered to the GUI thread, as superqt does
            self.errored.emit(exc)
        self._running = False
        self.finished.emit()
        self._finished.emit(self)


def side_task(
    function: Callable[..., Any],
    *args: Any,
    errored: Callable[[BaseException], Any] | None = None,
) -> SideTaskWorker:
    """An unstarted :class:`SideTaskWorker` running ``function(*args)``.

    Parameters
    ----------
    function, *args
        The work and its arguments.
    errored : callable, optional
        Connected before anything can fail (pytest-qt reports exceptions that reach Qt's
        event loop unhandled).

    Returns
    -------
    SideTaskWorker
        Call ``start()``; its ``returned`` signal carries ``function``'s result.
    """
    connect = {"errored": errored} if errored is not None else None
    return create_worker(
        function, *args, _start_thread=False, _connect=connect, _worker_class=SideTaskWorker
    )
