"""Encode positions on a Dask cluster: a local one, or one a scheduler address points to.

``cellae encode ... --workers N`` starts a :class:`distributed.LocalCluster` of N worker
processes; ``--scheduler ADDRESS`` connects to a running scheduler (one started by
dask-jobqueue on an HPC queue, by dask-kubernetes, or by hand). Every position is one task;
the model is scattered to the workers once; at most a few tasks per worker are in flight,
and the results are handed on in task order, so the client's memory stays bounded and the
output is the serial one. Workers must see the CellH5 files at the same paths (a shared
file system) and have napari-cellae installed.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from napari_cellae.pipeline.streaming import EncodedPosition, PositionTask, encode_position

if TYPE_CHECKING:
    from distributed import Client, Future

    from napari_cellae.core.model_file import TrainedModel

__all__ = ["CONNECT_TIMEOUT", "cluster_runner", "dask_client"]

#: Seconds to wait for a scheduler (and for its first worker) before giving up.
CONNECT_TIMEOUT = 10.0

# scheme://host:port, host a name, an IPv4 or a bracketed IPv6 address (or a scheduler
# in this process, inproc://...). Checked before
# connecting: distributed takes a malformed address as a host name, and its half-made Client
# then hangs for 20 s on exit.
_ADDRESS = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://)?(?:\[[0-9a-fA-F:.]+\]|[^\s/:\[\]]+):\d{1,5}|inproc://\S+"
)

_INSTALL = "install it with: pip install 'napari-cellae[cluster]' (or 'dask[distributed]')"


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ValueError(
            f"encoding on a Dask cluster needs the 'distributed' package; {_INSTALL}"
        ) from None
    return distributed


@contextlib.contextmanager
def dask_client(
    workers: int | None = None,
    scheduler: str | None = None,
    *,
    processes: bool = True,
    timeout: float | None = None,
) -> Iterator[Client]:
    """A Dask client: of a new local cluster of ``workers`` workers, or of ``scheduler``.

    Parameters
    ----------
    workers : int, optional
        Start a :class:`distributed.LocalCluster` with this many single-threaded workers
        (closed again on exit).
    scheduler : str, optional
        Address of a running scheduler, e.g. ``tcp://10.0.0.5:8786``.
    processes : bool
        Local workers as processes (default) or as threads of this process.
    timeout : float, optional
        Seconds to wait for the scheduler and for at least one of its workers; default
        :data:`CONNECT_TIMEOUT`.

    Yields
    ------
    distributed.Client

    Raises
    ------
    ValueError
        If neither or both of ``workers`` and ``scheduler`` are given, ``workers`` < 1, or
        the scheduler cannot be reached or has no worker (naming the address).
    """
    if (workers is None) == (scheduler is None):
        raise ValueError("give either a number of workers or a scheduler address, not both")
    distributed = _distributed()
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    if scheduler is not None:
        if not _ADDRESS.fullmatch(scheduler.strip()):
            raise ValueError(
                f"{scheduler!r} is not a Dask scheduler address: expected tcp://HOST:PORT, "
                "e.g. tcp://10.0.0.5:8786 (what the scheduler prints when it starts)"
            )
        scheduler = scheduler.strip()
        try:
            client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ValueError(
                f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s "
                f"({exc}); is it running, and is the address (tcp://HOST:PORT) right?"
            ) from None
        with client:
            try:
                client.wait_for_workers(1, timeout=timeout)
            except TimeoutError:
                raise ValueError(
                    f"the Dask scheduler at {scheduler} has no workers (waited {timeout:g} s); "
                    "start some, e.g. 'dask worker " + scheduler + "'"
                ) from None
            yield client
        return
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
            # Task errors come back with their result, named; the workers' own log lines
            # would only repeat them around the one-line message.
            silence_logs=logging.CRITICAL,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


def cluster_runner(
    client: Client, window: int | None = None
) -> Callable[[list[PositionTask], TrainedModel, int], Iterator[EncodedPosition]]:
    """A runner for :func:`napari_cellae.pipeline.streaming.encode_stream` on ``client``.

    Parameters
    ----------
    client : distributed.Client
    window : int, optional
        Most tasks submitted and not yet handed on; default two per worker thread plus two.
        Bounds the client's memory (results wait here until their turn).

    Returns
    -------
    callable
        ``runner(tasks, trained, batch_size)`` yielding one result per task, in task order.
    """

    def run(
        tasks: list[PositionTask], trained: TrainedModel, batch_size: int
    ) -> Iterator[EncodedPosition]:
        return _encode_on_cluster(client, tasks, trained, batch_size, window)

    return run


def _encode_on_cluster(
    client: Client,
    tasks: list[PositionTask],
    trained: TrainedModel,
    batch_size: int,
    window: int | None,
) -> Iterator[EncodedPosition]:
    if window is None:
        window = 2 * max(1, sum(client.nthreads().values())) + 2
    # Sent once; every worker keeps a copy and the tasks refer to it.
    model = client.scatter(trained, broadcast=True, hash=False)
    run_id = uuid.uuid4().hex[:8]
    todo = iter(tasks)
    pending: deque[tuple[PositionTask, Future]] = deque()

    def submit_next() -> bool:
        task = next(todo, None)
        if task is None:
            return False
        key = f"cellae-encode-{run_id}-{task.index}"
        pending.append((task, client.submit(encode_position, task, model, batch_size, key=key)))
        return True

    try:
        while len(pending) < window and submit_next():
            pass
        while pending:
            task, future = pending.popleft()
            result = _result(future, task)
            submit_next()
            yield result
    finally:
        # Nothing more is needed; a cluster already lost cannot be told and need not be.
        with contextlib.suppress(Exception):
            client.cancel([future for _, future in pending] + [model])


def _result(future: Future, task: PositionTask) -> EncodedPosition:
    """The task's result, or a ValueError that says which position failed and why."""
    distributed = _distributed()
    try:
        return future.result()
    except distributed.KilledWorker:
        raise ValueError(
            f"{task.where}: the Dask worker encoding it died (killed, out of memory or "
            "crashed), also when the task was retried; nothing was written"
        ) from None
    except distributed.CancelledError as exc:
        raise ValueError(
            f"{task.where}: the task was cancelled; the Dask cluster was lost or shut down "
            f"({exc}); nothing was written"
        ) from None
    except ValueError as exc:  # CellH5Error and every user error raised by the task
        raise ValueError(f"{task.where} failed on a Dask worker: {exc}") from None
    except OSError as exc:
        raise ValueError(
            f"{task.where}: lost the connection to the Dask cluster ({exc}); nothing was written"
        ) from None
