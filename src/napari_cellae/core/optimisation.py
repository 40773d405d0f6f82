"""The pieces the trainer assembles (device and threads, the crops tensor, weight init,
optimiser, augmentation, and the sharded step of :mod:`napari_cellae.core.shards`): small
torch functions used by :class:`~napari_cellae.core.trainer.Trainer`, each tested on its own.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from napari_cellae.core.config import TrainConfig
from napari_cellae.core.cores import usable_cores
from napari_cellae.core.normalisation import Normalisation, cell_scale_offset
from napari_cellae.core.shards import MIN_SHARD, shard_count, shard_pool, sharded_step

__all__ = [
    "MIN_SHARD",
    "as_tensor",
    "check_crops",
    "crops_tensor",
    "default_threads",
    "glorot_init",
    "make_optimizer",
    "random_orientation",
    "resolve_device",
    "scaled_crops",
    "shard_count",
    "shard_pool",
    "sharded_step",
    "spread",
    "thread_count",
]

# The original module trained with Lasagne's adagrad: step = lr * g / sqrt(sum(g^2) + 1e-6).
# PyTorch's Adagrad divides by sqrt(sum(g^2)) + eps instead, so its first step moves EVERY
# weight by +-lr however tiny its gradient; at lr 0.05 that saturates this network into
# constant (blank) output. Starting the accumulator at 1e-6 gives Lasagne's formula.
_ADAGRAD_INITIAL_ACCUMULATOR = 1e-6


def resolve_device(device: str) -> torch.device:
    """Turn a config device string into a torch device ("auto": CUDA if available, else CPU).

    Parameters
    ----------
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If CUDA is asked for but not available, or ``cuda:N`` names a GPU this machine lacks.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu'")
    resolved, count = torch.device(device), torch.cuda.device_count()
    if (resolved.index or 0) >= max(count, 1):  # torch: 'invalid device ordinal'
        raise ValueError(f"device {device!r} requested but this machine has {count} GPU(s)")
    return resolved


def check_crops(crops: np.ndarray, crop_size: int) -> np.ndarray:
    """Crops fit for training: (N, C, S, S) with S = ``crop_size``, numeric, finite.

    Parameters
    ----------
    crops : array-like
    crop_size : int

    Returns
    -------
    ndarray
        ``crops`` as an array (not copied).

    Raises
    ------
    ValueError
        Saying what is wrong.
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[2] != crops.shape[3]:
        raise ValueError(f"crops must have shape (N, C, S, S), got {crops.shape}")
    if crops.shape[0] < 1:
        raise ValueError("no crops to train on")
    if crops.shape[-1] != crop_size:
        raise ValueError(
            f"crops are {crops.shape[-1]} px but the network takes {crop_size} px crops"
        )
    if crops.dtype.kind not in "uif":
        raise ValueError(f"crops must be numeric, got dtype {crops.dtype}")
    if crops.dtype.kind == "f" and not np.isfinite(crops).all():  # per cell: inf * 0 = NaN
        raise ValueError("crops contain NaN or infinite pixels")
    return crops


def as_tensor(crops: np.ndarray) -> torch.Tensor:
    """Zero-copy tensor view of crops in their stored dtype (never written to).

    Parameters
    ----------
    crops : ndarray

    Returns
    -------
    torch.Tensor
        Sharing ``crops``' memory when it is C-contiguous and of a dtype torch handles;
        wide unsigned integers and float16 become float32.
    """
    if (crops.dtype.kind == "u" and crops.dtype.itemsize > 2) or crops.dtype == np.float16:
        crops = crops.astype(np.float32)  # little torch support for these
    crops = np.ascontiguousarray(crops)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only arrays: we only read
        return torch.from_numpy(crops)


def crops_tensor(crops: np.ndarray, device: torch.device) -> torch.Tensor:
    """ONE tensor of all crops in their stored dtype, on ``device``.

    On a GPU the whole (small, integer) array is moved once, so batches never cross the
    bus; on the CPU it shares ``crops``' memory (see :func:`as_tensor`).

    Parameters
    ----------
    crops : ndarray (N, C, S, S)
    device : torch.device

    Returns
    -------
    torch.Tensor
    """
    data = as_tensor(crops)
    if device.type == "cpu":
        return data
    if data.dtype == torch.uint16:
        # GPU kernels barely support uint16; int32 is exact and still 2x below float32.
        return data.to(device).to(torch.int32)
    return data.to(device)


def spread(total: torch.Tensor, squares: torch.Tensor, n: int) -> float:
    """How much ``n`` images differ: the RMS over pixels of their standard deviation.

    Parameters
    ----------
    total, squares : Tensor
        Per-pixel sums over the images of the values and of their squares.
    n : int
        Number of images.

    Returns
    -------
    float
    """
    variance = (squares / n - (total / n) ** 2).clamp_(min=0)
    return float(variance.mean().sqrt())


@contextlib.contextmanager
def thread_count(n: int) -> Iterator[None]:
    """torch's intra-op thread count for the calling thread, restored on exit.

    Parameters
    ----------
    n : int
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def default_threads() -> None:
    """Cap torch's threads at the usable cores (containers may expose more CPUs)."""
    allowed = usable_cores()
    if torch.get_num_threads() > allowed:
        torch.set_num_threads(allowed)


def glorot_init(model: torch.nn.Module) -> None:
    """Initialise as the original module (Lasagne) did: Glorot-uniform weights, zero biases.

    PyTorch's default (bound ``1 / sqrt(fan_in)``) is 2.5x smaller for the wide dense
    layer; with tied dense weights the code path scales with ``W^T W``, so the network
    would sit for many epochs on the plateau where it outputs the mean cell.

    Parameters
    ----------
    model : torch.nn.Module
        Every Conv2d and Linear in it is initialised in place.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                torch.nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    torch.nn.init.zeros_(m.bias)


def make_optimizer(config: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Adagrad (Lasagne's formula, as in the original module) or SGD with Nesterov momentum.

    The fused kernel (one pass over all parameters, a few % faster) is used where torch and
    the device support it.

    Parameters
    ----------
    config : TrainConfig
        ``optimizer``, ``learning_rate`` and ``momentum`` are read.
    params : list of Parameter

    Returns
    -------
    torch.optim.Optimizer
    """

    def build(**extra: Any) -> torch.optim.Optimizer:
        if config.optimizer == "adagrad":
            return torch.optim.Adagrad(
                params,
                lr=config.learning_rate,
                initial_accumulator_value=_ADAGRAD_INITIAL_ACCUMULATOR,
                eps=1e-10,
                **extra,
            )
        return torch.optim.SGD(
            params, lr=config.learning_rate, momentum=config.momentum, nesterov=True, **extra
        )

    try:
        return build(fused=True)
    except (RuntimeError, TypeError, ValueError):  # fused unsupported here: the plain loop
        return build()


def random_orientation(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each crop of a batch in one of its 8 orientations, drawn from ``gen``.

    The 8 orientations of a square: 4 rotations by 90 degrees, each with or without a
    mirror; all channels of a crop turn together.

    Parameters
    ----------
    x : Tensor (n, C, S, S)
    gen : torch.Generator

    Returns
    -------
    Tensor
        A new channels_last tensor (input and target of the step).
    """
    choice = torch.randint(0, 8, (x.shape[0],), generator=gen, device=x.device)
    out = torch.empty_like(x, memory_format=torch.channels_last)
    for k in range(8):
        idx = torch.nonzero(choice == k).flatten()
        if idx.numel() == 0:
            continue
        part = x.index_select(0, idx)
        if k >= 4:
            part = part.flip(-1)
        if k % 4:
            part = torch.rot90(part, k % 4, dims=(-2, -1))
        out.index_copy_(0, idx, part)
    return out


def scaled_crops(normalisation: Normalisation, crops: np.ndarray) -> np.ndarray:
    """``normalisation.apply(crops)`` chunk by chunk: float32 (N, C, S, S) in [0, 1].

    For crops of :func:`~napari_cellae.core.normalisation.is_wide` dtypes, scaled once
    before training: the trainer's float32 ``raw * scale + offset`` would round them.
    """
    out = np.empty(crops.shape, np.float32)
    for start in range(0, len(crops), 4096):
        out[start : start + 4096] = normalisation.apply(crops[start : start + 4096])
    return out


def scaling_tensors(
    normalisation: Normalisation, crops: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``scale`` and ``offset`` tensors with ``x = raw * scale + offset`` for the trainer:
    (1, C, 1, 1) for one scaling of the whole screen, (N, C, 1, 1) per crop (gathered with
    the batch) when every cell is scaled by its own range, computed once for all crops."""
    if normalisation.per_cell:
        scale, offset = cell_scale_offset(crops)
        return (
            torch.from_numpy(scale).to(device)[:, :, None, None],
            torch.from_numpy(offset).to(device)[:, :, None, None],
        )
    scale, offset = normalisation.scale_offset()
    return (
        torch.from_numpy(scale).to(device).view(1, -1, 1, 1),
        torch.from_numpy(offset).to(device).view(1, -1, 1, 1),
    )
