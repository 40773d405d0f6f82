"""Encode positions on a Dask cluster: a local one, or one a scheduler address points to.

``cellae encode ... --workers N`` starts a :class:`distributed.LocalCluster` of N worker
processes; ``--scheduler ADDRESS`` connects to a running scheduler (one started by
dask-jobqueue on an HPC queue, by dask-kubernetes, or by hand). Every position is one task;
the model is scattered to the workers once; at most a few tasks per worker are in flight,
and the results are handed on in task order, so the client's memory stays bounded and the
output is the serial one. The UserWarnings a task raises (labels not found in the label
image, objects sharing a label...) travel back with its result and are shown here, as when
encoding serially. Workers must see the CellH5 files at the same paths (a shared file
system) and have napari-cellae installed.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, TextIO

from napari_cellae.pipeline.streaming import EncodedPosition, PositionTask, encode_position

if TYPE_CHECKING:
    from distributed import Client, Future

    from napari_cellae.core.model_file import TrainedModel

__all__ = ["CONNECT_TIMEOUT", "cluster_runner", "dask_client", "encode_recording"]

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
        _check_scheme_and_port(scheduler)
        _check_greeting(scheduler, timeout)
        try:
            client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ValueError(
                f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s "
                f"({exc}); is it running, and is the address (tcp://HOST:PORT) right?"
            ) from None
        # The client's log of a lost scheduler (a traceback) is said in the error's line.
        with _quiet_client_log(), client:
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
    from napari_cellae.pipeline.local_cluster import local_client

    with local_client(distributed, workers, processes) as client:
        yield client


@contextlib.contextmanager
def _quiet_client_log() -> Iterator[None]:
    """Hide distributed's client-side log while connected to a scheduler, as a local
    cluster's is (``silence_logs``): a scheduler killed mid-run printed 'distributed.client
    - ERROR' and a traceback of its reconnection above the one-line error."""
    import logging

    logger = logging.getLogger("distributed.client")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _check_scheme_and_port(scheduler: str) -> None:
    """Refuse a scheme distributed has no transport for (``http://``) and a port out of range.

    distributed refuses such an address only after half making its Client, which then
    hung for 20 s on exit and printed a traceback ('Exception ignored in Client.__del__');
    a port of 0 or over 65535 was tried for the whole time-out.
    """
    from distributed.comm.registry import backends

    scheme = scheduler.split("://", 1)[0] if "://" in scheduler else "tcp"
    if scheme not in backends:
        known = ", ".join(f"{name}://" for name in sorted(backends))
        raise ValueError(
            f"{scheduler!r} is not a Dask scheduler address: unknown scheme '{scheme}://' "
            f"(Dask's are {known}); expected tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786"
        )
    if scheme != "inproc" and not 0 < int(scheduler.rsplit(":", 1)[1]) < 65536:
        raise ValueError(
            f"{scheduler!r} is not a Dask scheduler address: the port must be 1 to 65535 "
            "(8786 by default)"
        )


def _check_greeting(scheduler: str, timeout: float) -> None:
    """Refuse a TCP address where something else than a Dask scheduler listens.

    A scheduler greets a new connection at once, with its message size (8 bytes).
    distributed waits for that greeting without a time limit (an HTTP server, such as the
    dashboard's port 8787, left cellae hanging) and takes another server's first bytes
    for the size (an SSH banner asked for exabytes: a MemoryError). Addresses that cannot
    be reached are left to distributed, which names them.
    """
    if "://" in scheduler and not scheduler.startswith("tcp://"):
        return  # tls:// and other protocols greet differently
    host, port = scheduler.removeprefix("tcp://").rsplit(":", 1)
    try:
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    except OSError:
        return
    head = b""
    with sock:
        with contextlib.suppress(OSError):  # a time-out included: then no greeting
            while len(head) < 8 and (chunk := sock.recv(8 - len(head))):
                head += chunk
    if len(head) < 8 or not 0 < struct.unpack("Q", head)[0] < 2**26:
        raise ValueError(
            f"the server at {scheduler} does not answer like a Dask scheduler within "
            f"{timeout:g} s; is the address the scheduler's (port 8786 by default; 8787 is "
            "its dashboard)?"
        )


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
    run_id = uuid.uuid4().hex[:8]
    model = _model_future(client, trained, run_id)
    todo = iter(tasks)
    pending: deque[tuple[PositionTask, Future]] = deque()

    def submit_next() -> bool:
        task = next(todo, None)
        if task is None:
            return False
        key = f"cellae-encode-{run_id}-{task.index}"
        future = client.submit(encode_recording, task, model, batch_size, key=key)
        pending.append((task, future))
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


def _held(trained: TrainedModel) -> TrainedModel:
    return trained


def _model_future(client: Client, trained: TrainedModel, run_id: str) -> Future:
    """The model on the workers, as a task the scheduler can run again.

    Scattered data cannot be recomputed: once every worker holding the scattered model
    had died (the one worker of ``--workers 1``, or all first workers of a cluster whose
    batch jobs were replaced), each retried position failed as 'cancelled ... already
    forgotten', although Dask had a worker to retry it on. Sent once in the task, the
    model is rebuilt on a new worker instead; the others fetch it from a peer.
    """
    import dask

    # The model travels once, with its task; Dask would warn about a large graph.
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1 TiB"}):
        model = client.submit(_held, trained, key=f"cellae-model-{run_id}", pure=False)
    with contextlib.suppress(Exception):  # a copy on every worker at once, as scatter did
        client.replicate([model])
    return model


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
        if getattr(exc, "reason", None) == "scheduler-connection-lost":
            raise ValueError(
                f"{task.where}: lost the connection to the Dask scheduler (stopped, or the "
                "network failed); nothing was written"
            ) from None
        raise ValueError(  # distributed's reason may take two lines: the message one
            f"{task.where}: the task was cancelled; the Dask cluster was lost or shut down "
            f"({_one_line(exc)}); nothing was written"
        ) from None
    except ValueError as exc:  # CellH5Error and every user error raised by the task
        raise ValueError(f"{task.where} failed on a Dask worker: {exc}") from None
    except OSError as exc:
        raise ValueError(
            f"{task.where}: lost the connection to the Dask cluster ({exc}); nothing was written"
        ) from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class _Recorder:
    """Collects the UserWarnings of the threads that are encoding a position.

    The warnings module's state belongs to the whole process, and a Dask worker may run
    several tasks at once in threads, so a ``warnings.catch_warnings`` per task would undo
    another task's: one is entered by the first task and left by the last, and its hook
    hands each warning to the list of the thread that raised it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: warnings.catch_warnings | None = None
        self._forward = warnings.showwarning
        self._local = threading.local()

    @contextlib.contextmanager
    def record(self) -> Iterator[list[str]]:
        caught: list[str] = []
        with self._lock:
            if self._users == 0:
                self._saved = warnings.catch_warnings()
                self._saved.__enter__()
                self._forward = warnings.showwarning
                # Every time: the worker's registry would hide a text shown by an earlier
                # task or run, and the client drops repeats anyway.
                warnings.simplefilter("always", UserWarning)
                warnings.showwarning = self._show
            self._users += 1
        self._local.caught = caught
        try:
            yield caught
        finally:
            self._local.caught = None
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._saved is not None:
                    self._saved.__exit__(None, None, None)
                    self._saved = None

    def _show(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        caught = getattr(self._local, "caught", None)
        if caught is not None and issubclass(category, UserWarning):
            caught.append(str(message))
        else:  # another thread of the worker, or not the user's business: as before
            self._forward(message, category, filename, lineno, file, line)


_recorder = _Recorder()


def encode_recording(
    task: PositionTask, trained: TrainedModel, batch_size: int = 512
) -> EncodedPosition:
    """:func:`~napari_cellae.pipeline.streaming.encode_position` on a worker, with the
    UserWarnings it raised in ``EncodedPosition.warned`` (in the order raised).

    Parameters
    ----------
    task : PositionTask
    trained : TrainedModel
    batch_size : int

    Returns
    -------
    EncodedPosition
    """
    with _recorder.record() as caught:
        encoded = encode_position(task, trained, batch_size)
    return replace(encoded, warned=tuple(caught))
