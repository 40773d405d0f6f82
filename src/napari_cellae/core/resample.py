"""Crops resampled to the network's input size (``TrainConfig.input_size``).

The crop box is the cell size the user gives; the network is made for cells of a certain
size in pixels. Resampling every crop to a fixed input size lets a screen imaged at another
magnification reach the network at the scale it is made for, and keeps the training cost of
large cells at that of the input size. Crops are resampled after masking (the label images
are used at their own resolution) and before intensity scaling, keeping their dtype.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_cellae.core.crops import CropSet

__all__ = ["resample_crops", "to_network_size"]

# Crops resampled at once: bounds the float32 copy (4096 x 64 x 64 px = 64 MiB per channel).
_CHUNK = 4096


def resample_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """Resample square crops to ``size`` x ``size`` pixels.

    Bilinear, with anti-aliasing when shrinking (so fine texture averages out rather than
    aliasing). Integer crops are rounded and clipped back to their dtype.

    Parameters
    ----------
    crops : ndarray (N, C, S, S)
        Any numeric dtype.
    size : int
        Edge of the resampled crops.

    Returns
    -------
    ndarray (N, C, size, size)
        Same dtype; ``crops`` itself when it already has that size.
    """
    import torch
    import torch.nn.functional as F

    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != crops.shape[-2]:
        raise ValueError(f"expected square crops (N, C, S, S), got shape {crops.shape}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    if crops.shape[-1] == size:
        return crops
    out = np.empty((*crops.shape[:2], size, size), dtype=crops.dtype)
    shrink = size < crops.shape[-1]
    integer = np.issubdtype(crops.dtype, np.integer)
    limits = np.iinfo(crops.dtype) if integer else None
    for start in range(0, len(crops), _CHUNK):
        part = torch.from_numpy(np.ascontiguousarray(crops[start : start + _CHUNK], np.float32))
        scaled = F.interpolate(
            part, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
        ).numpy()
        if limits is not None:
            scaled = np.clip(np.rint(scaled), limits.min, limits.max)
        out[start : start + _CHUNK] = scaled
    return out


def to_network_size(crops: CropSet, size: int) -> CropSet:
    """``crops`` with its pixels resampled to ``size`` (in place; returned for chaining).

    Parameters
    ----------
    crops : CropSet
    size : int
        The network's input edge (``TrainConfig.network_size`` or a model's ``crop_size``).

    Returns
    -------
    CropSet
    """
    if crops.crops.shape[-1] != size:
        crops.crops = resample_crops(crops.crops, size)
    return crops
