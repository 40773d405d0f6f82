"""Data-parallel training across the processes torchrun starts (``torch.distributed``).

Each process ("rank") trains a copy of the network on its share of the training crops. The
copies start equal (rank 0's weights are broadcast) and stay equal: before every optimiser
step the gradients are averaged over the ranks with one ``all_reduce``, so every rank takes
the same step. This is what :class:`torch.nn.parallel.DistributedDataParallel` does; it is
done here with a step pre-hook on the optimiser instead because the trainer computes a
batch's gradients itself, in per-core shards with ``torch.autograd.grad``
(:func:`~napari_cellae.core.optimisation.sharded_step`), which DDP's backward hooks would not
see. Backend: gloo on the CPU, NCCL on GPUs.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from napari_cellae.core.optimisation import resolve_device
from napari_cellae.core.trainer import EpochReport

__all__ = [
    "TorchrunEnv",
    "average_gradients",
    "broadcast_object",
    "broadcast_weights",
    "check_same_run",
    "process_group",
    "rank_device",
    "rank_seed",
    "rank_share",
    "reduce_report",
    "sum_over_ranks",
    "torchrun_env",
]

# A rank waits this long for the others (e.g. while rank 0 still crops a big file).
_GROUP_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class TorchrunEnv:
    """Where this process stands among the ranks torchrun started.

    Attributes
    ----------
    rank, world_size : int
        Global rank and number of ranks.
    local_rank, local_world_size : int
        Rank and number of ranks on this machine (the GPU to use is ``local_rank``).
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files and prints."""
        return self.rank == 0


def torchrun_env(environ: Mapping[str, str] | None = None) -> TorchrunEnv | None:
    """The torchrun variables of this process, or None when torchrun did not start it.

    Parameters
    ----------
    environ : mapping, optional
        Default: ``os.environ``. torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``
        (and ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``).

    Returns
    -------
    TorchrunEnv or None

    Raises
    ------
    ValueError
        If the variables are partly set or not numbers in range.
    """
    environ = os.environ if environ is None else environ
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    given = [name for name in names if name in environ]
    if not given:
        return None
    # The rendezvous address too: without it torch fails only after every crop is cut.
    missing = [n for n in (*names, "MASTER_ADDR", "MASTER_PORT") if n not in environ]
    if missing:
        raise ValueError(
            f"torchrun variables incomplete: {', '.join(missing)} not set (start with torchrun)"
        )
    try:
        rank, world, local = (int(environ[n]) for n in names)
        local_world = int(environ.get("LOCAL_WORLD_SIZE", world))
    except ValueError:
        shown = ", ".join(f"{n}={environ[n]!r}" for n in names)
        raise ValueError(f"torchrun variables are not whole numbers: {shown}") from None
    if not (0 <= rank < world and 0 <= local < local_world <= world):
        raise ValueError(
            f"torchrun variables out of range: RANK={rank}, WORLD_SIZE={world}, "
            f"LOCAL_RANK={local}, LOCAL_WORLD_SIZE={local_world}"
        )
    return TorchrunEnv(rank, world, local, local_world)


def rank_device(env: TorchrunEnv, device: str) -> torch.device:
    """The device of this rank: its own GPU (``cuda:LOCAL_RANK``, made current) or the CPU.

    Parameters
    ----------
    env : TorchrunEnv
    device : str
        The configured device ("auto", "cpu", "cuda").

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If CUDA is asked for but absent, or this machine has fewer GPUs than ranks.
    """
    resolved = resolve_device(device)
    if resolved.type != "cuda":
        return resolved
    count = torch.cuda.device_count()
    if env.local_rank >= count:
        raise ValueError(
            f"rank {env.rank} needs GPU {env.local_rank} but this machine has {count}; start "
            "at most one process per GPU (torchrun --nproc-per-node)"
        )
    torch.cuda.set_device(env.local_rank)  # "cuda" now means this rank's GPU
    return torch.device("cuda", env.local_rank)


@contextlib.contextmanager
def process_group(env: TorchrunEnv, device: torch.device) -> Iterator[None]:
    """Join the ranks (``env://``: torchrun's ``MASTER_ADDR``/``MASTER_PORT``), leave on exit.

    Parameters
    ----------
    env : TorchrunEnv
    device : torch.device
        NCCL for CUDA devices, gloo otherwise.
    """
    backend = "nccl" if device.type == "cuda" else "gloo"
    with _default_signals():
        dist.init_process_group(
            backend, rank=env.rank, world_size=env.world_size, timeout=_GROUP_TIMEOUT
        )
    try:
        yield
    except RuntimeError as exc:
        if not _from_collective(exc):
            raise
        # Each surviving rank printed gloo's traceback ('Connection reset by peer')
        # above torchrun's report of the rank that died.
        raise ValueError(
            f"rank {env.rank} of {env.world_size} lost the other torchrun processes "
            f"({_reason(exc)}): one stopped (killed, out of memory or an error of its own) "
            "or the network failed; no model was written"
        ) from None
    finally:
        dist.destroy_process_group()


def _from_collective(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by a ``torch.distributed`` call (gloo raises plain
    RuntimeErrors, NCCL ``DistError``)."""
    if isinstance(exc, dist.DistError):
        return True
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith("distributed_c10d.py"):
            return True
        tb = tb.tb_next
    return False


def _reason(exc: BaseException) -> str:
    """The gist of a backend's error: its first sentence, without its source location."""
    text = " ".join(str(exc).split())
    text = re.sub(r"^\[[^\]]*:\d+\]\s*", "", text)  # [.../gloo/transport/tcp/pair.cc:537]
    return text.split(". ", 1)[0].rstrip(".")[:200] or type(exc).__name__


@contextlib.contextmanager
def _default_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM end the process at once while it waits for the other ranks.

    The wait is inside torch's C++ rendezvous, where Python's own handlers (the CLI turns
    both signals into a clean stop) never run: a process whose other ranks never came
    (torchrun's variables left set in a shell) could only be killed with SIGKILL for the
    whole group time-out. Nothing has been written yet, so there is nothing to clean up.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, signal.SIG_DFL)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def rank_seed(seed: int, rank: int) -> int:
    """The training seed of one rank (its own batch order, corruption and dropout): the
    run's seed plus the rank, wrapped into the seeds every library takes (0..2**32-1)."""
    return (seed + rank) % 2**32


def rank_share(n: int, rank: int, world_size: int, seed: int) -> np.ndarray:
    """This rank's rows of ``n`` training crops: a seeded split into equal shares.

    As ``torch.utils.data.DistributedSampler`` with ``drop_last=True``: the rows are
    shuffled with ``seed`` (the same on every rank) and rank ``r`` takes every
    ``world_size``-th from ``r``; the last ``n % world_size`` are left out, so every rank
    takes the same number of optimiser steps. One rank takes everything, in order.

    Parameters
    ----------
    n, rank, world_size, seed : int

    Returns
    -------
    ndarray of int64, sorted

    Raises
    ------
    ValueError
        If there are fewer crops than ranks.
    """
    if world_size == 1:
        return np.arange(n, dtype=np.int64)
    per_rank = n // world_size
    if per_rank == 0:
        raise ValueError(f"{n} training cells cannot be shared by {world_size} processes")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[rank::world_size][:per_rank]).astype(np.int64)


def broadcast_object(obj: object, src: int = 0) -> object:
    """``obj`` of rank ``src`` on every rank (pickled; for small objects). Every rank calls
    it; the others pass anything, e.g. None."""
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def check_same_run(run: dict, env: TorchrunEnv) -> None:
    """Refuse to train when the ranks were not given the same run; every rank calls it.

    Ranks started with other settings or other files (each node's own torchrun command)
    took other steps: gloo aborted rank 0 ('collective mismatch') and left the others a
    traceback, or a rank waited for the others' steps until the group time-out.

    Parameters
    ----------
    run : dict
        What must be equal on every rank (settings, training cells, channels), picklable.
    env : TorchrunEnv

    Raises
    ------
    ValueError
        On every rank alike, naming the first rank that differs from rank 0 and how.
    """
    runs: list[dict | None] = [None] * env.world_size
    dist.all_gather_object(runs, run)
    for rank, other in enumerate(runs):
        if other != runs[0]:
            first = runs[0] or {}
            keys = sorted(set(first) | set(other or {}), key=str)
            diff = [k for k in keys if first.get(k) != (other or {}).get(k)]
            shown = "; ".join(f"{k}: {first.get(k)!r} / {(other or {}).get(k)!r}" for k in diff)
            raise ValueError(
                f"the torchrun processes were not started alike: rank {rank} differs from "
                f"rank 0 in {shown}; give every node the same command and files"
            )


def _tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    return [t.data for t in (*module.parameters(), *module.buffers())]


def broadcast_weights(module: torch.nn.Module, src: int = 0) -> None:
    """Give every rank the weights (and buffers) of rank ``src``, in place."""
    tensors = _tensors(module)
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])  # one message, any memory format
    dist.broadcast(flat, src)
    _unflatten(flat, tensors)


def _unflatten(flat: torch.Tensor, tensors: list[torch.Tensor]) -> None:
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view(t.shape))
        offset += t.numel()


def average_gradients(optimizer: torch.optim.Optimizer, world_size: int):
    """Average the gradients over the ranks just before every step of ``optimizer``.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    world_size : int

    Returns
    -------
    torch.utils.hooks.RemovableHandle
        ``.remove()`` ends the averaging.
    """

    def hook(opt: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])  # one all_reduce per step
        dist.all_reduce(flat)
        flat.div_(world_size)
        _unflatten(flat, grads)

    return optimizer.register_step_pre_hook(hook)


def sum_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums of ``values`` over all ranks (float64)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def reduce_report(
    report: EpochReport, n_train: int, n_held_out: int, world_size: int, device: torch.device
) -> EpochReport:
    """One epoch's report for all ranks: losses averaged by cells, speeds summed.

    Parameters
    ----------
    report : EpochReport
        This rank's report (its own crops).
    n_train, n_held_out : int
        This rank's training and held-out crops.
    world_size : int
    device : torch.device
        Where the collective runs (the rank's device).

    Returns
    -------
    EpochReport
        The same on every rank. With one rank, ``report`` itself.
    """
    if world_size == 1:
        return report
    held = report.held_out_loss if n_held_out and math.isfinite(report.held_out_loss) else 0.0
    train_sum, n, held_sum, m, speed, collapsed = sum_over_ranks(
        [
            report.train_loss * n_train,
            n_train,
            held * n_held_out,
            n_held_out if math.isfinite(report.held_out_loss) else 0,
            report.samples_per_second,
            float(report.collapsed),
        ],
        device,
    )
    return replace(
        report,
        train_loss=train_sum / n if n else math.nan,
        held_out_loss=held_sum / m if m else math.nan,
        samples_per_second=speed,
        collapsed=collapsed == world_size,  # every rank sees the collapse
    )
