"""Intensity normalisation: the one place where stored pixel values become float.

Crops keep their stored dtype (uint8, uint16, float) until :class:`Normalisation` scales
them per channel to float32 in [0, 1]; the scaling is stored with a model so that encoding
uses the training scaling.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "Normalisation",
    "cell_ranges",
    "cell_scale_offset",
    "is_wide",
    "resolvable_step",
]

# Fraction of pixels clipped at each end when choosing the intensity range.
_LOW_PERCENTILE = 0.1
_HIGH_PERCENTILE = 99.9
# Crops sampled to choose the range: enough for stable percentiles, cheap for 1e6 crops.
_NORMALISATION_SAMPLE = 4096
# Per-cell scaling: each crop's own dark background and brightest cell pixels.
_CELL_LOW_PERCENTILE = 2.0
_CELL_HIGH_PERCENTILE = 99.5
_EPS = np.finfo(np.float32).eps
_TINY = np.finfo(np.float32).tiny


@dataclass
class Normalisation:
    """Per-channel linear scaling of stored pixel values to float32 in [0, 1].

    ``value -> clip((value - low) / (high - low), 0, 1)``, with ``low`` and ``high`` chosen
    from the data by :meth:`from_crops` and stored with a model so that encoding uses the
    training scaling.

    With ``per_cell``, every crop is instead scaled by its own range (its dark background
    and its brightest pixels, per channel): a cell then looks the same in a dim and in a
    bright well, under uneven illumination or with another expression level, and the
    features describe its shape and texture rather than the brightness of its well.
    """

    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    per_cell: bool = False

    def __post_init__(self) -> None:
        self.low = [float(v) for v in self.low]
        self.high = [float(v) for v in self.high]
        if len(self.low) != len(self.high) or not self.low:
            raise ValueError("Normalisation needs one low and one high value per channel")
        for lo, hi in zip(self.low, self.high, strict=True):
            if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
                raise ValueError(f"invalid normalisation range low={lo}, high={hi}")

    @property
    def n_channels(self) -> int:
        """Number of channels this scaling applies to."""
        return len(self.low)

    @classmethod
    def from_crops(cls, crops: np.ndarray, seed: int = 0, per_cell: bool = False) -> Normalisation:
        """Choose per-channel ranges from robust percentiles of (a sample of) the crops.

        Parameters
        ----------
        crops : ndarray (N, C, S, S)
            Crops in any numeric dtype (uint8, uint16, float ...).
        seed : int
            Seed of the crop subsample (used when there are many crops).
        per_cell : bool
            Scale every crop by its own range when applied (see the class description).

        Returns
        -------
        Normalisation
            ``low`` = 0.1th and ``high`` = 99.9th percentile per channel. A constant
            channel gets ``high = low + 1``, with a UserWarning.
        """
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[0] == 0:
            raise ValueError(f"need crops of shape (N, C, S, S) with N > 0, got {crops.shape}")
        n = crops.shape[0]
        if n > _NORMALISATION_SAMPLE:
            rng = np.random.default_rng(seed)
            pick = np.sort(rng.choice(n, _NORMALISATION_SAMPLE, replace=False))
            sample = crops[pick]
        else:
            sample = crops
        per_channel = np.moveaxis(sample, 1, 0).reshape(crops.shape[1], -1)
        if per_channel.dtype.kind == "f" and not np.isfinite(per_channel).all():
            raise ValueError("crops contain NaN or infinite pixels; cannot choose a normalisation")
        lows, highs = np.percentile(
            per_channel, [_LOW_PERCENTILE, _HIGH_PERCENTILE], axis=1
        ).astype(np.float64)
        flat = np.flatnonzero(highs <= lows)
        if len(flat):  # e.g. an empty z-plane or channel: the loss falls to 0 on nothing
            warnings.warn(
                f"channel(s) {', '.join(map(str, flat))} (0 = first cropped) of the "
                f"{n} crop(s) hold one value ({lows[flat[0]]:g}) in nearly every pixel: "
                "there is no image to learn from; check the channel, the z-plane and that "
                "the object centres lie on the cells",
                stacklevel=2,
            )
        high = np.where(highs > lows, highs, lows + resolvable_step(lows))
        return cls(low=lows.tolist(), high=high.tolist(), per_cell=per_cell)

    def scale_offset(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel ``scale`` and ``offset`` (float32) with ``x * scale + offset``."""
        low = np.asarray(self.low, dtype=np.float64)
        scale = self._scale64()
        return scale.astype(np.float32), (-low * scale).astype(np.float32)

    def _scale64(self) -> np.ndarray:
        scale = 1.0 / (np.asarray(self.high, dtype=np.float64) - np.asarray(self.low))
        # A range narrower than 1 / float32 max (float pixels about 1e-38 apart) would make
        # the scale infinite in float32 and every pixel 1 (or NaN): its largest value instead.
        return np.minimum(scale, np.finfo(np.float32).max)

    def apply(self, data: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Scale crops to float32 in [0, 1].

        Parameters
        ----------
        data : ndarray or torch.Tensor, shape (..., C, S, S)
            Pixels in any dtype; the channel axis is third from last.

        Returns
        -------
        ndarray or torch.Tensor
            float32, same shape (a tensor stays on its device).
        """
        if data.ndim < 3 or data.shape[-3] != self.n_channels:
            raise ValueError(
                f"expected (..., {self.n_channels}, S, S) data, got shape {tuple(data.shape)}"
            )
        if self.per_cell:
            return _per_cell(data)
        if is_wide(data):
            low = np.asarray(self.low)[:, None, None]
            return _exactly(data, low, self._scale64()[:, None, None])
        scale, offset = self.scale_offset()
        if isinstance(data, np.ndarray):
            out = data.astype(np.float32)
            out *= scale[:, None, None]
            out += offset[:, None, None]
            return np.clip(out, 0.0, 1.0, out=out)
        import torch

        s = torch.from_numpy(scale).to(data.device)[:, None, None]
        o = torch.from_numpy(offset).to(data.device)[:, None, None]
        return torch.addcmul(o, data.to(torch.float32), s).clamp_(0.0, 1.0)

    def saturated_pixels(self, crops: np.ndarray) -> np.ndarray | None:
        """Per channel, how many pixels of ``crops`` lie at or above the scale's top.

        Such pixels all become 1: cells brighter than the training images look alike.
        None with per-cell scaling, which adapts to every crop.

        Parameters
        ----------
        crops : ndarray (N, C, S, S)

        Returns
        -------
        ndarray (C,) int64 or None
        """
        if self.per_cell:
            return None
        high = np.asarray(self.high, dtype=np.float64)[:, None, None]
        return np.count_nonzero(np.asarray(crops) >= high, axis=(0, 2, 3)).astype(np.int64)

    def brightness(self, crops: np.ndarray) -> np.ndarray:
        """Each crop's brightness per channel: log of its own intensity range.

        What per-cell scaling takes out of the pixels (how bright a cell is), as a number
        the features can keep: ``log1p(high - low)`` of the crop's own percentiles.

        Parameters
        ----------
        crops : ndarray (N, C, S, S)

        Returns
        -------
        ndarray (N, C) float32
        """
        low, high = cell_ranges(crops)
        return np.log1p(np.maximum(high - low, 0.0)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, for saving with a model."""
        return {"low": list(self.low), "high": list(self.high), "per_cell": self.per_cell}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalisation:
        """Inverse of :meth:`to_dict` (validates the values)."""
        try:
            return cls(low=list(d["low"]), high=list(d["high"]), per_cell=bool(d.get("per_cell")))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"invalid normalisation record {d!r}: {exc}") from None


def resolvable_step(level: float | np.ndarray) -> float | np.ndarray:
    """A step that float64 can add to ``level`` to widen a flat range: 1, or a millionth of
    ``level`` where 1 would vanish (``1e20 + 1 == 1e20``, leaving the range flat)."""
    return np.maximum(1.0, np.abs(level) * 1e-6)


def cell_ranges(crops: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Each crop's own low and high percentile per channel, (N, C) float32 each (float64
    for the dtypes of :func:`is_wide`, whose values float32 rounds).

    Computed chunk by chunk (bounded memory); the one definition per-cell scaling uses in
    training (once for all crops) and in encoding (per batch).
    """
    crops = np.asarray(crops)
    n, c = crops.shape[:2]
    dtype = np.float64 if is_wide(crops) else np.float32
    low = np.empty((n, c), dtype)
    high = np.empty((n, c), dtype)
    q = (_CELL_LOW_PERCENTILE / 100, _CELL_HIGH_PERCENTILE / 100)
    for start in range(0, n, chunk):
        part = crops[start : start + chunk].reshape(min(chunk, n - start), c, -1)
        low[start : start + chunk], high[start : start + chunk] = np.quantile(
            part.astype(dtype), q, axis=-1
        )
    return low, high


def is_wide(data: np.ndarray | torch.Tensor) -> bool:
    """Whether float32 rounds values of ``data``'s dtype: 32- and 64-bit integers and
    float64. A 3000-count signal on a base of 4e9 (uint32) keeps 9 grey levels in float32,
    so such pixels are scaled in float64."""
    if isinstance(data, np.ndarray):
        size, floating = data.dtype.itemsize, data.dtype.kind == "f"
    else:
        size, floating = data.element_size(), data.dtype.is_floating_point
    return size > 4 if floating else size >= 4


def _exactly(
    data: np.ndarray | torch.Tensor, low: np.ndarray, scale: np.ndarray
) -> np.ndarray | torch.Tensor:
    """``clip((data - low) * scale, 0, 1)`` in float64, as float32 (a tensor on its device):
    float32 first would round the pixels of :func:`is_wide` dtypes."""
    values = data if isinstance(data, np.ndarray) else data.detach().cpu().numpy()
    out = np.clip((values.astype(np.float64) - low) * scale, 0.0, 1.0).astype(np.float32)
    if isinstance(data, np.ndarray):
        return out
    import torch

    return torch.from_numpy(out).to(data.device)


def cell_scale_offset(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-crop, per-channel ``scale`` and ``offset`` (N, C) with ``x * scale + offset``."""
    low, high = cell_ranges(crops)
    scale = _cell_scale(low, high)
    return scale.astype(np.float32), (-low * scale).astype(np.float32)


def _cell_scale(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    # Flat crops must not divide by zero. Below 1e-6 the floor follows the crop's level
    # (what float32 resolves there), so float images of tiny values (1e-35) keep their
    # contrast instead of all scaling to 0.
    level = np.maximum(np.abs(low), np.abs(high))
    floor = np.minimum(np.float32(1e-6), np.maximum(level * _EPS, _TINY))
    return 1.0 / np.maximum(high - low, floor)


def _per_cell(data: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Scale every crop and channel by its own low and high percentile to [0, 1]."""
    if is_wide(data):
        values = data if isinstance(data, np.ndarray) else data.detach().cpu().numpy()
        low, high = cell_ranges(values.reshape(-1, *data.shape[-3:]))
        low, scale = low[:, :, None, None], _cell_scale(low, high)[:, :, None, None]
        flat = data.reshape(-1, *data.shape[-3:])
        return _exactly(flat, low, scale).reshape(data.shape)
    if isinstance(data, np.ndarray):
        scale, offset = cell_scale_offset(data.reshape(-1, *data.shape[-3:]))
        out = data.astype(np.float32).reshape(-1, *data.shape[-3:])
        out *= scale[:, :, None, None]
        out += offset[:, :, None, None]
        return np.clip(out, 0.0, 1.0, out=out).reshape(data.shape)
    import torch

    scale, offset = cell_scale_offset(data.detach().cpu().numpy().reshape(-1, *data.shape[-3:]))
    s = torch.from_numpy(scale).to(data.device)[:, :, None, None]
    o = torch.from_numpy(offset).to(data.device)[:, :, None, None]
    flat = data.reshape(-1, *data.shape[-3:]).to(torch.float32)
    return torch.addcmul(o, flat, s).clamp_(0.0, 1.0).reshape(data.shape)
