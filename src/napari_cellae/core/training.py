"""Training of the denoising autoencoder: configuration, epoch generator, model files.

The training loop is a generator (:meth:`Trainer.run`) that yields one
:class:`EpochReport` per epoch; the CLI wraps it in a progress bar, the widget in a thread
worker. Crops stay in ONE tensor of their stored dtype (uint8 / uint16, shared with the
caller's array, never copied to float as a whole); each minibatch is gathered with a seeded
permutation, converted and normalised on the fly into a ``channels_last`` float tensor.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_cellae.core.architecture import DEFAULT_ARCHITECTURE, check_architecture
from napari_cellae.core.cores import usable_cores
from napari_cellae.core.crops import Normalisation
from napari_cellae.core.model import ConvAutoencoder, keep_mask

if TYPE_CHECKING:  # pragma: no cover - typing only
    from napari_cellae.core.crops import CropSet
    from napari_cellae.io.mapping import PositionMapping

__all__ = [
    "COLLAPSE_ADVICE",
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "EpochReport",
    "TrainConfig",
    "TrainedModel",
    "Trainer",
    "TrainingDiverged",
    "load_model",
    "resolve_device",
    "training_indices",
]

MODEL_FORMAT = "napari-cellae-model"
MODEL_VERSION = 1

# Held-out evaluation and reconstruction need no gradients: larger batches are cheaper.
_EVAL_BATCH = 512

# On a CPU a batch is split into shards of at least this many crops, one per core, each
# shard's forward and backward pass running in its own thread (the gradients are summed in a
# fixed order). Small tensors spread over cores by intra-op threading spend much of their
# time synchronising; whole shards per core do not (+15 % crops/s on 2 cores).
_MIN_SHARD = 32


def _shard_count(cores: int, batch: int) -> int:
    """Shards for a batch: one per core, each at least ``_MIN_SHARD`` crops (at least 1)."""
    return max(1, min(cores, batch // _MIN_SHARD))


def resolve_device(device: str) -> torch.device:
    """Turn a config device string into a torch device ("auto": CUDA if available, else CPU).

    Parameters
    ----------
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns
    -------
    torch.device
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu'")
    return torch.device(device)


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored with the model).

    Attributes
    ----------
    crop_size : int
        Crop edge length in pixels (must fit the architecture's pools).
    architecture : str
        Architecture string, see :mod:`napari_cellae.core.model`.
    optimizer : {"adagrad", "nesterov"}
        Adagrad, or SGD with Nesterov momentum.
    learning_rate, momentum : float
        ``momentum`` is used by "nesterov" only.
    batch_size : int
        Minibatch size.
    corruption : float
        Masking-noise rate: fraction of input pixels set to 0 during training (denoising).
    epochs : int
    samples : int
        Crops used for training + held-out (a seeded random subset if there are more).
    train_on : {"controls", "all"}
        Train on control positions only (needs a mapping) or on all positions.
    seed : int
        Seeds the subset, held-out split, weight init, shuffling, noise and dropout.
    device : str
        "auto" (CUDA if available, else CPU), "cpu", "cuda" or "cuda:N".
    held_out_fraction : float
        Fraction of the samples held out to measure the validation loss.
    augment : bool
        Show every training crop in a random one of its 8 orientations (rotations by
        multiples of 90 degrees, with or without mirroring), drawn anew each epoch from
        ``seed``. Cells have no preferred orientation, so this multiplies the training
        examples for free; held-out crops and encoding are never transformed. Off by
        default (as in the original): it guards against over-fitting small training
        sets, and on the demo (training loss = held-out loss) it changed nothing.
    """

    crop_size: int = 40
    architecture: str = DEFAULT_ARCHITECTURE
    optimizer: str = "adagrad"
    learning_rate: float = 0.05
    momentum: float = 0.9
    batch_size: int = 128
    corruption: float = 0.0
    epochs: int = 64
    samples: int = 50000
    train_on: str = "controls"
    seed: int = 0
    device: str = "auto"
    held_out_fraction: float = 0.2
    augment: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; raise ValueError naming the field and the allowed range."""

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"invalid training setting: {what}")

        for name in ("crop_size", "batch_size", "epochs", "samples", "seed"):
            value = getattr(self, name)
            need(
                isinstance(value, int | np.integer) and not isinstance(value, bool),
                f"{name} must be an integer, got {value!r}",
            )
        for name in ("learning_rate", "momentum", "corruption", "held_out_fraction"):
            value = getattr(self, name)
            need(
                isinstance(value, int | float | np.floating) and not isinstance(value, bool),
                f"{name} must be a number, got {value!r}",
            )
        need(4 <= self.crop_size <= 1024, f"crop_size must be 4..1024 px, got {self.crop_size}")
        need(
            self.optimizer in ("adagrad", "nesterov"),
            f"optimizer must be 'adagrad' or 'nesterov', got {self.optimizer!r}",
        )
        need(
            math.isfinite(self.learning_rate) and self.learning_rate > 0,
            f"learning_rate must be > 0, got {self.learning_rate}",
        )
        need(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        need(
            1 <= self.batch_size <= 100_000, f"batch_size must be 1..100000, got {self.batch_size}"
        )
        need(0 <= self.corruption < 1, f"corruption must be in [0, 1), got {self.corruption}")
        need(1 <= self.epochs <= 100_000, f"epochs must be 1..100000, got {self.epochs}")
        need(self.samples >= 1, f"samples must be >= 1, got {self.samples}")
        need(
            self.train_on in ("controls", "all"),
            f"train_on must be 'controls' or 'all', got {self.train_on!r}",
        )
        need(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        need(
            isinstance(self.device, str)
            and (self.device in ("auto", "cpu") or self.device.startswith("cuda")),
            f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}",
        )
        need(
            isinstance(self.augment, bool | np.bool_),
            f"augment must be true or false, got {self.augment!r}",
        )
        need(
            0 <= self.held_out_fraction <= 0.9,
            f"held_out_fraction must be in [0, 0.9], got {self.held_out_fraction}",
        )
        try:
            check_architecture(self.architecture, self.crop_size)
        except ValueError as exc:
            raise ValueError(f"invalid training setting: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from :meth:`to_dict` output; missing keys take defaults, unknown keys fail."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**d)


@dataclass
class EpochReport:
    """Progress of one epoch.

    Attributes
    ----------
    epoch : int
        1-based epoch number (for a stop before any batch: the last finished epoch).
    epochs : int
        Planned number of epochs.
    train_loss : float
        Mean training MSE over the epoch's batches (on corrupted input, dropout active).
    held_out_loss : float
        MSE on the held-out crops (clean input, eval mode); NaN if nothing is held out.
    seconds : float
        Wall time of the epoch including the held-out evaluation.
    samples_per_second : float
        Training crops per second (training steps only).
    stopped : bool
        True for the final report after :meth:`Trainer.stop`.
    collapsed : bool
        True when the network gives (nearly) the same reconstruction for every held-out
        cell: it has stopped learning anything cell-specific (typically every ReLU died
        after too large a step), so its features cannot separate cells.
        :data:`COLLAPSE_ADVICE` says what to do.
    """

    epoch: int
    epochs: int
    train_loss: float
    held_out_loss: float
    seconds: float
    samples_per_second: float
    stopped: bool = False
    collapsed: bool = False


# A collapsed network's reconstructions vary across cells less than this fraction of how
# much the cells themselves vary. Measured on the demo: dead networks 3e-9 (rounding
# only), learning ones from 8e-5 (early epochs, while they fit the mean cell) up to ~0.5.
_COLLAPSE_SPREAD = 1e-6


def _spread(total: torch.Tensor, squares: torch.Tensor, n: int) -> float:
    """Root-mean-square over pixels of the standard deviation across ``n`` cells, from the
    per-pixel sums of values and of squares."""
    variance = (squares / n - (total / n) ** 2).clamp_(min=0)
    return float(variance.mean().sqrt())


COLLAPSE_ADVICE = (
    "the network gives the same reconstruction for every cell: it stopped learning "
    "(its units died), so its features will not separate cells. Train again with a lower "
    "learning rate (e.g. a third of it) or another seed."
)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good weights were restored."""


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@dataclass
class TrainedModel:
    """A trained autoencoder with everything needed to encode new crops the same way.

    Attributes
    ----------
    model : ConvAutoencoder
        In eval mode.
    config : TrainConfig
    normalisation : Normalisation
        The training scaling; encoding must use it.
    channel_names : list of str
    object_name : str
    path : Path or None
        The file it was loaded from / saved to (for messages).
    """

    model: ConvAutoencoder
    config: TrainConfig
    normalisation: Normalisation
    channel_names: list[str] = field(default_factory=list)
    object_name: str = ""
    path: Path | None = None

    @property
    def n_channels(self) -> int:
        """Number of input channels."""
        return self.model.in_channels

    def _name(self) -> str:
        return f"model {self.path}" if self.path is not None else "the model"

    def check_compatible(self, crop_size: int, n_channels: int) -> None:
        """Raise ValueError if crops of this size / channel count cannot be encoded.

        Parameters
        ----------
        crop_size : int
        n_channels : int
        """
        if int(crop_size) != self.model.crop_size or int(n_channels) != self.n_channels:
            raise ValueError(
                f"{self._name()} was trained on {self.model.crop_size} px crops with "
                f"{self.n_channels} channel(s), but the data has {crop_size} px crops with "
                f"{n_channels} channel(s); use the model's crop size and channels or train anew"
            )

    def reconstruct(self, crops: np.ndarray, batch_size: int = _EVAL_BATCH) -> np.ndarray:
        """Reconstruct crops (N, C, S, S) of the stored dtype.

        Returns
        -------
        ndarray of float32 (N, C, S, S)
            Reconstructions in [0, 1] (compare with ``normalisation.apply(crops)``).
        """
        crops = np.asarray(crops)
        if crops.ndim != 4:
            raise ValueError(f"expected crops of shape (N, C, S, S), got {crops.shape}")
        self.check_compatible(crops.shape[-1], crops.shape[1])
        device = _model_device(self.model)
        out = np.empty(crops.shape, dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(crops), batch_size):
                    chunk = torch.from_numpy(
                        np.ascontiguousarray(crops[start : start + batch_size])
                    )
                    x = self.normalisation.apply(chunk.to(device))
                    out[start : start + len(chunk)] = self.model(x).float().cpu().numpy()
        finally:
            self.model.train(was_training)
        return out

    def metadata(self) -> dict[str, Any]:
        """JSON-able description stored beside the weights."""
        return {
            "config": self.config.to_dict(),
            "normalisation": self.normalisation.to_dict(),
            "channel_names": list(self.channel_names),
            "object_name": self.object_name,
            "in_channels": self.n_channels,
            "crop_size": self.model.crop_size,
            "architecture": self.model.architecture,
            "n_features": self.model.n_features,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write weights + JSON metadata to one torch file (temp name, then rename).

        The file is a dict ``{"format", "version", "config" (JSON str), "state_dict"}``
        and loads with ``torch.load(path, weights_only=True)``.

        Returns
        -------
        Path
            The written file.
        """
        path = Path(path)
        payload = {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "config": json.dumps(self.metadata(), sort_keys=True),
            # Plain contiguous CPU tensors: portable whatever device/memory format trained it.
            "state_dict": {
                k: v.detach().to("cpu").contiguous().clone()
                for k, v in self.model.state_dict().items()
            },
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            torch.save(payload, tmp)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        self.path = path
        return path


def load_model(path: str | os.PathLike) -> TrainedModel:
    """Load a model written by :meth:`TrainedModel.save` (weights-only unpickling).

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    TrainedModel
        On CPU, in eval mode.

    Raises
    ------
    ValueError
        Naming the file, if it is missing or not a napari-cellae model.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"{path} is not a napari-cellae model file (cannot be read by torch.load: "
            f"{type(exc).__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not a napari-cellae model file (no '{MODEL_FORMAT}' marker)")
    version = payload.get("version")
    if not isinstance(version, int) or version > MODEL_VERSION:
        raise ValueError(
            f"{path}: model file version {version!r} is newer than this napari-cellae "
            f"(reads up to {MODEL_VERSION}); update napari-cellae"
        )
    try:
        meta = json.loads(payload["config"])
        config = TrainConfig.from_dict(meta["config"])
        normalisation = Normalisation.from_dict(meta["normalisation"])
        model = ConvAutoencoder(
            config.architecture, int(meta["crop_size"]), int(meta["in_channels"])
        )
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path}: damaged napari-cellae model file: {exc}") from None
    model.eval()
    return TrainedModel(
        model=model,
        config=config,
        normalisation=normalisation,
        channel_names=[str(c) for c in meta.get("channel_names", [])],
        object_name=str(meta.get("object_name", "")),
        path=path,
    )


def training_indices(crops: CropSet, mapping: PositionMapping | None, train_on: str) -> np.ndarray:
    """Indices of the crops to train on.

    Parameters
    ----------
    crops : CropSet
    mapping : PositionMapping or None
    train_on : {"controls", "all"}
        "all" or no mapping: every crop. "controls": crops of positions the mapping marks
        as controls.

    Returns
    -------
    ndarray of int64
        Sorted crop indices.

    Raises
    ------
    ValueError
        If ``train_on`` is unknown or the mapping has no control position among the crops.
    """
    if train_on not in ("controls", "all"):
        raise ValueError(f"train_on must be 'controls' or 'all', got {train_on!r}")
    if train_on == "all" or mapping is None:
        return np.arange(len(crops), dtype=np.int64)
    is_control = np.zeros(len(crops.positions), dtype=bool)
    for i, pos in enumerate(crops.positions):
        info = mapping.lookup(pos)
        is_control[i] = info is not None and info.is_control
    if not is_control.any():
        source = getattr(mapping, "path", "the mapping")
        raise ValueError(
            f"{source}: no control position among the {len(crops.positions)} positions with "
            f"objects in {crops.source}; mark controls in the mapping (Group column) or "
            "train on all positions"
        )
    return np.flatnonzero(is_control[crops.position_index]).astype(np.int64)


def _as_tensor(crops: np.ndarray) -> torch.Tensor:
    """Zero-copy tensor view of the crops in their stored dtype (we never write to it)."""
    if (crops.dtype.kind == "u" and crops.dtype.itemsize > 2) or crops.dtype == np.float16:
        # Wide unsigned ints have little torch support; float32 keeps them usable.
        crops = crops.astype(np.float32)
    crops = np.ascontiguousarray(crops)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only arrays: we only read
        return torch.from_numpy(crops)


@contextlib.contextmanager
def _thread_count(n: int) -> Iterator[None]:
    """torch's intra-op thread count for the calling thread, restored on exit."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _default_threads() -> None:
    """Avoid oversubscription in containers that expose more CPUs than we may use."""
    allowed = usable_cores()
    if torch.get_num_threads() > allowed:
        torch.set_num_threads(allowed)


# The original module trained with Lasagne's adagrad: step = lr * g / sqrt(sum(g^2) + 1e-6).
# PyTorch's Adagrad divides by sqrt(sum(g^2)) + eps instead, so its first step moves EVERY
# weight by +-lr however tiny its gradient; at the default lr 0.05 that saturates this network
# into constant (blank) output. Starting the accumulator at 1e-6 gives Lasagne's formula.
_ADAGRAD_INITIAL_ACCUMULATOR = 1e-6


def _glorot_init(model: torch.nn.Module) -> None:
    """Initialise as the original module (Lasagne) did: Glorot-uniform weights
    (bound sqrt(6 / (fan_in + fan_out))), zero biases.

    PyTorch's default (bound 1 / sqrt(fan_in)) is 2.5x smaller for the wide dense layer
    (2048 -> 32). With TIED dense weights the code path scales with W^T W, so the network
    starts with almost no signal through the code and sits for many epochs on the plateau
    where it outputs the mean cell."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                torch.nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    torch.nn.init.zeros_(m.bias)


def _make_optimizer(config: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Adagrad (as in the original module) or SGD with Nesterov momentum; the fused kernel
    (one pass over all parameters, a few % faster) where torch and the device support it."""

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


def _random_orientation(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each crop of a batch (n, C, S, S) in one of its 8 orientations (dihedral group of
    the square: 4 rotations by 90 degrees, each with or without a mirror), drawn from
    ``gen``. Returns a new channels_last tensor (input and target of the step)."""
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


class Trainer:
    """Train an autoencoder on crops; iterate :meth:`run` for one report per epoch.

    Parameters
    ----------
    config : TrainConfig
    crops : ndarray (N, C, S, S)
        Crops in their stored dtype. Held by reference (no copy for C-contiguous uint8,
        uint16, int and float32 arrays); do not modify them while training.
    normalisation : Normalisation, optional
        Default: chosen from the crops with :meth:`Normalisation.from_crops`.
    channel_names : list of str, optional
        Stored with the model (default ``["channel 1", ...]``).
    object_name : str
        Stored with the model.
    source_indices : ndarray of int, optional
        Where each crop came from, e.g. its row in a :class:`~napari_cellae.core.crops.CropSet`
        (default: ``0 .. N-1``); kept as :attr:`source_indices` for reports.
    """

    def __init__(
        self,
        config: TrainConfig,
        crops: np.ndarray,
        normalisation: Normalisation | None = None,
        *,
        channel_names: list[str] | None = None,
        object_name: str = "",
        source_indices: np.ndarray | None = None,
    ) -> None:
        config.validate()
        self.config = config
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[2] != crops.shape[3]:
            raise ValueError(f"crops must have shape (N, C, S, S), got {crops.shape}")
        if crops.shape[0] < 1:
            raise ValueError("no crops to train on")
        if crops.shape[-1] != config.crop_size:
            raise ValueError(
                f"crops are {crops.shape[-1]} px but the configuration says crop_size="
                f"{config.crop_size}"
            )
        if crops.dtype.kind not in "uif":
            raise ValueError(f"crops must be numeric, got dtype {crops.dtype}")
        if crops.dtype.kind == "f" and np.isnan(crops).any():
            raise ValueError("crops contain NaN pixels")
        n_channels = crops.shape[1]
        if normalisation is None:
            normalisation = Normalisation.from_crops(crops, seed=config.seed)
        if normalisation.n_channels != n_channels:
            raise ValueError(
                f"normalisation has {normalisation.n_channels} channel(s), crops have {n_channels}"
            )
        self.normalisation = normalisation
        self.channel_names = (
            list(channel_names)
            if channel_names is not None
            else [f"channel {i + 1}" for i in range(n_channels)]
        )
        self.object_name = object_name
        self.source_indices = (
            np.arange(len(crops)) if source_indices is None else np.asarray(source_indices)
        )
        if self.source_indices.shape != (len(crops),):
            raise ValueError(
                f"source_indices has shape {self.source_indices.shape}, expected ({len(crops)},)"
            )
        self.device = resolve_device(config.device)

        # Sample subset and held-out split: fixed for a seed, independent of the device.
        rng = np.random.default_rng(config.seed)
        n = crops.shape[0]
        chosen = (
            np.sort(rng.choice(n, config.samples, replace=False))
            if n > config.samples
            else np.arange(n)
        )
        n_held = min(round(len(chosen) * config.held_out_fraction), len(chosen) - 1)
        split = rng.permutation(len(chosen))
        self._held_idx = torch.from_numpy(np.sort(chosen[split[:n_held]]).astype(np.int64))
        self._train_idx = torch.from_numpy(np.sort(chosen[split[n_held:]]).astype(np.int64))

        # ONE tensor of all crops in the stored dtype. On a GPU the whole (small, integer)
        # array is moved once, so batches never cross the bus.
        self._data = _as_tensor(crops)
        if self.device.type != "cpu":
            if self._data.dtype == torch.uint16:
                # GPU kernels barely support uint16; int32 is exact and still 2x below float32.
                self._data = self._data.to(self.device).to(torch.int32)
            else:
                self._data = self._data.to(self.device)
            self._train_idx = self._train_idx.to(self.device)
            self._held_idx = self._held_idx.to(self.device)
        scale, offset = normalisation.scale_offset()
        self._scale = torch.from_numpy(scale).to(self.device).view(1, -1, 1, 1)
        self._offset = torch.from_numpy(offset).to(self.device).view(1, -1, 1, 1)

        with torch.random.fork_rng(devices=[]):  # seeded init without touching global state
            torch.manual_seed(config.seed)
            model = ConvAutoencoder(config.architecture, config.crop_size, n_channels)
            _glorot_init(model)
        # channels_last: oneDNN / cuDNN convolutions run markedly faster (PERFORMANCE.md).
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.optimizer = _make_optimizer(config, list(self.model.parameters()))
        self._held_out_spread: float | None = None  # of the held-out cells, see _evaluate
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards weights during a step vs result()
        self._started = False
        self.epochs_done = 0
        self.history: list[EpochReport] = []

    @property
    def n_train(self) -> int:
        """Number of training crops."""
        return int(self._train_idx.numel())

    @property
    def n_held_out(self) -> int:
        """Number of held-out crops."""
        return int(self._held_idx.numel())

    def stop(self) -> None:
        """Ask :meth:`run` to stop before its next batch (safe from any thread)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def _batch(self, idx: torch.Tensor) -> torch.Tensor:
        """Gather crops by index and normalise them into a channels_last float32 batch."""
        raw = self._data.index_select(0, idx)
        x = torch.empty(
            raw.shape, dtype=torch.float32, device=self.device, memory_format=torch.channels_last
        )
        # One fused pass: x = raw * scale + offset (the dtype conversion happens inside).
        torch.addcmul(self._offset, raw, self._scale, out=x)
        return x.clamp_(0.0, 1.0)

    def _evaluate(self) -> tuple[float, bool]:
        """Held-out MSE (NaN if nothing is held out) and whether the network collapsed."""
        n = self.n_held_out
        if n == 0:
            return math.nan, False
        self.model.eval()
        total = 0.0
        # Per-pixel sums over cells of the reconstructions, for their spread; the inputs'
        # spread only on the first call (the held-out cells never change).
        with_inputs = self._held_out_spread is None
        moments = torch.zeros(
            4 if with_inputs else 2, *self._data.shape[1:], dtype=torch.float64, device=self.device
        )
        with torch.inference_mode():
            for start in range(0, n, _EVAL_BATCH):
                x = self._batch(self._held_idx[start : start + _EVAL_BATCH])
                y = self.model(x)
                total += F.mse_loss(y, x, reduction="sum").item()
                y = y.double()  # float32 squares would swamp a 1e-6 spread
                values = [y, y * y]
                if with_inputs:
                    x = x.double()
                    values += [x, x * x]
                for k, value in enumerate(values):
                    moments[k] += value.sum(0)
        self.model.train()
        if with_inputs:
            self._held_out_spread = _spread(moments[2], moments[3], n)
        cells, reconstructions = self._held_out_spread, _spread(moments[0], moments[1], n)
        collapsed = cells > 0 and reconstructions < _COLLAPSE_SPREAD * cells
        return total / (n * self._data[0].numel()), collapsed

    def _snapshot(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return (
            {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            copy.deepcopy(self.optimizer.state_dict()),
        )

    def _restore(self, snap: tuple[dict[str, torch.Tensor], dict[str, Any]]) -> None:
        with self._lock:
            self.model.load_state_dict(snap[0])
            self.optimizer.load_state_dict(snap[1])

    def _diverged(self, epoch: int) -> TrainingDiverged:
        lr = float(self.optimizer.param_groups[0]["lr"])
        return TrainingDiverged(
            f"training diverged in epoch {epoch} (loss became NaN or infinite) with learning "
            f"rate {lr:g}; try a lower learning rate (e.g. {lr / 10:g}). "
            "The weights of the last good epoch "
            f"({self.epochs_done}) were kept."
        )

    def run(self) -> Iterator[EpochReport]:
        """Train, yielding one :class:`EpochReport` per epoch.

        All randomness (batch order, corruption, dropout) comes from generators seeded with
        ``config.seed``, so equal seeds and thread counts give equal losses on the CPU;
        torch's global RNG is not touched. On a CPU with several threads each batch is
        split into shards trained in parallel threads (see ``_MIN_SHARD``).

        Yields
        ------
        EpochReport
            After every epoch; after :meth:`stop`, one final report with ``stopped=True``.

        Raises
        ------
        TrainingDiverged
            If a loss becomes NaN/inf; the weights of the last finished epoch are restored.
        """
        if self._started:
            raise RuntimeError("Trainer.run() can only be used once; create a new Trainer")
        self._started = True
        cfg = self.config
        shards, threads_per_shard = 1, 0
        if self.device.type == "cpu":
            _default_threads()
            threads = torch.get_num_threads()
            shards = _shard_count(threads, cfg.batch_size)
            threads_per_shard = threads // shards
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        # One dropout generator per shard, seeded from the run's: reproducible whatever
        # order the shard threads draw in, and torch's global RNG is left alone.
        shard_gens = [
            torch.Generator(device=self.device).manual_seed(
                int(torch.randint(2**62, (1,), generator=gen, device=self.device))
            )
            for _ in range(shards)
        ]
        pool = (
            ThreadPoolExecutor(
                shards,
                thread_name_prefix="cellae-shard",
                initializer=torch.set_num_threads,
                initargs=(threads_per_shard,),
            )
            if shards > 1
            else None
        )
        try:
            yield from self._epochs(gen, shard_gens, pool)
        finally:
            if pool is not None:
                pool.shutdown()

    def _step(
        self,
        inp: torch.Tensor,
        target: torch.Tensor,
        shard_gens: list[torch.Generator],
        pool: ThreadPoolExecutor | None,
    ) -> float:
        """One optimiser step on a batch (in shards on ``pool``); returns the batch's MSE."""
        model, opt = self.model, self.optimizer
        shards = _shard_count(len(shard_gens), target.shape[0])  # a short last batch: fewer
        if pool is None or shards == 1:
            opt.zero_grad(set_to_none=True)
            loss = F.mse_loss(model(inp, shard_gens[0]), target)
            loss.backward()
            opt.step()
            return loss.item()
        params = [p for p in model.parameters() if p.requires_grad]
        n_values = target.numel()

        def shard(part: tuple[torch.Tensor, torch.Tensor, torch.Generator]) -> tuple:
            x, t, g = part
            loss = F.mse_loss(model(x, g), t, reduction="sum") / n_values
            return loss.detach(), torch.autograd.grad(loss, params)

        parts = zip(
            inp.tensor_split(shards), target.tensor_split(shards), shard_gens[:shards], strict=True
        )
        results = list(pool.map(shard, parts))
        for k, param in enumerate(params):
            grad = results[0][1][k]
            for _, grads in results[1:]:
                grad.add_(grads[k])  # fixed order: equal seeds give equal weights
            if grad.stride() != param.stride():
                # backward() lays .grad out like its parameter (channels_last here) and the
                # fused optimiser kernels rely on it; autograd.grad gives no such promise.
                grad = torch.empty_like(param).copy_(grad)
            param.grad = grad
        opt.step()
        return float(sum(loss for loss, _ in results))

    def _epochs(
        self,
        gen: torch.Generator,
        shard_gens: list[torch.Generator],
        pool: ThreadPoolExecutor | None,
    ) -> Iterator[EpochReport]:
        cfg = self.config
        corrupt = cfg.corruption > 0
        bs = cfg.batch_size
        model = self.model
        model.train()
        last_train_loss = math.nan

        for epoch in range(1, cfg.epochs + 1):
            snap = self._snapshot()  # last good weights, restored on divergence
            t0 = time.perf_counter()
            order = self._train_idx[torch.randperm(self.n_train, generator=gen, device=self.device)]
            loss_sum, seen, stopped = 0.0, 0, False
            # With shards, this thread only gathers batches and waits; a thread team of its
            # own would spin idle in OpenMP and steal cores from the shards (~4 %).
            with _thread_count(1) if pool is not None else contextlib.nullcontext():
                for start in range(0, self.n_train, bs):
                    if self._stop.is_set():
                        stopped = True
                        break
                    x = self._batch(order[start : start + bs])
                    if cfg.augment:
                        x = _random_orientation(x, gen)
                    if corrupt:
                        # Masking noise on the input only; the target stays clean.
                        inp = torch.where(keep_mask(x.shape, cfg.corruption, gen, x.device), x, 0.0)
                    else:
                        inp = x
                    with self._lock:
                        value = self._step(inp, x, shard_gens, pool)
                    if not math.isfinite(value):
                        self._restore(snap)
                        raise self._diverged(epoch)
                    loss_sum += value * x.shape[0]
                    seen += x.shape[0]
            train_seconds = time.perf_counter() - t0

            if stopped and seen == 0:
                # Stopped between epochs: report the state of the last finished epoch.
                report_epoch, train_loss = epoch - 1, last_train_loss
            else:
                report_epoch, train_loss = epoch, loss_sum / seen
            finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
            held, collapsed = self._evaluate() if finite else (math.nan, False)
            if not finite or (self.n_held_out and not math.isfinite(held)):
                self._restore(snap)
                raise self._diverged(epoch)
            if not stopped:
                self.epochs_done = epoch
            last_train_loss = train_loss
            report = EpochReport(
                epoch=report_epoch,
                epochs=cfg.epochs,
                train_loss=float(train_loss),
                held_out_loss=float(held),
                seconds=time.perf_counter() - t0,
                samples_per_second=seen / train_seconds if train_seconds > 0 and seen else 0.0,
                stopped=stopped,
                collapsed=collapsed,
            )
            self.history.append(report)
            yield report
            if stopped:
                return

    def result(self) -> TrainedModel:
        """The current model (a CPU copy in eval mode), usable at any time.

        Returns
        -------
        TrainedModel
        """
        with self._lock:
            model = copy.deepcopy(self.model)
        model = model.to("cpu", memory_format=torch.contiguous_format).eval()
        return TrainedModel(
            model=model,
            config=copy.deepcopy(self.config),
            normalisation=copy.deepcopy(self.normalisation),
            channel_names=list(self.channel_names),
            object_name=self.object_name,
        )
