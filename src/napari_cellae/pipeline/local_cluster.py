"""The local Dask cluster of ``cellae encode --workers N``, started and stopped quietly.

Split from :mod:`napari_cellae.pipeline.distributed`: what it takes to stop a local cluster
on Ctrl-C (or SIGTERM) with no more than the one line 'cellae: interrupted'.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client, LocalCluster
    from distributed.utils import LoopRunner
    from tornado.ioloop import IOLoop

__all__ = ["local_client"]

#: Module each worker process runs as it starts (:mod:`.worker_setup`).
_WORKER_SETUP = "napari_cellae.pipeline.worker_setup"

#: Seconds given to a half-started cluster to close.
_CLOSE_TIMEOUT = 10.0


class _QuietClose(logging.Filter):
    """Hides asyncio's log of Dask's tasks that closing the cluster cuts off, once a run
    has failed or was interrupted.

    Ctrl-C while the model was being sent to the workers printed a traceback ("Task
    exception was never retrieved ... KeyError: 'tcp://127.0.0.1:...'") above 'cellae:
    interrupted': the scheduler, which runs in this process, went on copying it to workers
    that were shutting down; Ctrl-C while they started, one ("Nanny failed to start") when
    the process exited. Once engaged it stays for the rest of the process, as such tasks
    are logged when they are garbage-collected; it hides only records whose exception was
    raised in distributed's code.
    """

    def engage(self) -> None:
        """Hide those records from now on."""
        logging.getLogger("asyncio").addFilter(self)  # added once, however often engaged

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        seen: set[int] = set()
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            tb = exc.__traceback__
            while tb is not None:
                if f"{os.sep}distributed{os.sep}" in tb.tb_frame.f_code.co_filename:
                    return False
                tb = tb.tb_next
            exc = exc.__cause__ or exc.__context__
        return True


_quiet = _QuietClose()


def _start(distributed: ModuleType, workers: int, processes: bool, loop: IOLoop | None):
    """A started :class:`distributed.LocalCluster`.

    Ctrl-C while its workers start left a half-made cluster that distributed closed when
    the process exited, with a traceback (``AssertionError: Status.init``) below 'cellae:
    interrupted': it is closed here, quietly, and distributed is told to leave it alone.
    """
    from distributed.deploy.spec import SpecCluster

    before = set(SpecCluster._instances)
    try:
        return distributed.LocalCluster(
            loop=loop,
            n_workers=workers,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
            # Task errors come back with their result, named; the workers' own log lines
            # would only repeat them around the one-line message.
            silence_logs=logging.CRITICAL,
            # Worker processes ignore the Ctrl-C that a terminal sends them too: this one
            # stops the run and closes them (else each printed a traceback).
            preload=[_WORKER_SETUP] if processes else [],
        )
    except BaseException:
        _quiet.engage()
        half_made: set[LocalCluster] = set(SpecCluster._instances) - before
        for cluster in half_made:
            with contextlib.suppress(Exception):
                cluster.close(timeout=_CLOSE_TIMEOUT)
            cluster.shutdown_on_close = False  # read by distributed's exit hook
        raise


@contextlib.contextmanager
def local_client(distributed: ModuleType, workers: int, processes: bool) -> Iterator[Client]:
    """A client of a new local cluster of ``workers`` single-threaded workers, closed on exit.

    Parameters
    ----------
    distributed : module
        The ``distributed`` package (imported by the caller, which names it when missing).
    workers : int
        Worker count, at least 1.
    processes : bool
        Workers as processes, or as threads of this process.

    Yields
    ------
    distributed.Client
    """
    runner = _deaf_loop() if processes else None
    try:
        with (
            _start(distributed, workers, processes, runner and runner.loop) as cluster,
            distributed.Client(cluster, set_as_default=False) as client,
        ):
            try:
                yield client
            except BaseException:
                _quiet.engage()  # before the cluster is closed
                raise
    finally:
        if runner is not None:
            runner.stop()


def _deaf_loop() -> LoopRunner:
    """A running event loop for the cluster, in a thread that never takes Ctrl-C.

    The workers' processes are started from threads of the cluster's loop, and a process
    starts with the signal mask of the thread that started it: SIGINT blocked there, a
    Ctrl-C that comes while the workers still import (before :mod:`.worker_setup` makes
    them ignore it) waits in them unseen, instead of printing one KeyboardInterrupt
    traceback per worker under 'cellae: interrupted'. Blocked only while the loop's
    thread is made (it inherits the mask): this thread still takes Ctrl-C at any time.
    """
    from distributed.utils import LoopRunner

    runner = LoopRunner()
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks to inherit
        runner.start()
        return runner
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        runner.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return runner
