"""Crops resampled to the network's input size (``TrainConfig.input_size``).

The crop box is the cell size the user gives; the network is made for cells of a certain
size in pixels. Resampling every crop to a fixed input size lets a screen imaged at another
magnification reach the network at the scale it is made for, and keeps the training cost of
large cells at that of the input size. Crops are resampled after masking (the label images
are used at their own resolution) and before intensity scaling, keeping their dtype.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.core.normalisation import is_wide

if TYPE_CHECKING:
    from napari_cellae.core.crops import CropSet

__all__ = [
    "RESAMPLE_CHUNK",
    "bbox_extents",
    "box_for_cells",
    "cell_extents",
    "cut_by_box",
    "cut_off",
    "fills_images",
    "fitting_box",
    "known_extents",
    "larger_sides",
    "largest_box",
    "resample_crops",
    "small_for_box",
    "to_network_size",
    "warn_box_fit",
    "warn_extents",
]

# Crops resampled at once: bounds the float32 copy (4096 x 64 x 64 px = 64 MiB per channel).
RESAMPLE_CHUNK = 4096
# Cells are small for their box when 95 % of them (with a 4 px margin) span at most this
# share of it: at 0.6x the benchmark's magnification (nuclei 19 px, 95th percentile, in a
# 40 px box) enlarging them to the network raised novelty AUROC by 2.7 points; at 1x
# (32 px) the box fits.
_SMALL_SHARE = 0.6
# Cells are cut off by their box when more than this share of them are wider or taller.
_CUT_SHARE = 0.05
# A box fits the cells when it holds 95 % of their bounding boxes with this margin (px).
_MARGIN = 4
# Objects fill their images when half of them span at least this share of the images'
# shorter side: no crop box holds them, and such objects are rarely single cells.
_FILL_SHARE = 0.9


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
    # float32 rounds 32- and 64-bit pixels (4e9 + 3000 counts to steps of 512): float64.
    work = np.float64 if is_wide(crops) else np.float32
    for start in range(0, len(crops), RESAMPLE_CHUNK):
        part = torch.from_numpy(np.ascontiguousarray(crops[start : start + RESAMPLE_CHUNK], work))
        scaled = F.interpolate(
            part, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
        ).numpy()
        if limits is not None:
            # Clipped in float64: float32 rounds a 32-bit maximum (2**31 - 1) up to 2**31,
            # which the cast back wrapped to the dtype's minimum (a saturated pixel black).
            scaled = np.clip(np.rint(scaled.astype(np.float64)), limits.min, limits.max)
        out[start : start + RESAMPLE_CHUNK] = scaled
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


def bbox_extents(bbox: np.ndarray) -> np.ndarray | None:
    """Each cell's larger bounding-box side in pixels, from ``(N, 4)`` boxes (x0, x1, y0,
    y1); None when there are no boxes (no cells, or a file that stores centres only)."""
    return known_extents(larger_sides(bbox))


def larger_sides(bbox: np.ndarray) -> np.ndarray:
    """Each box's larger side in pixels, from ``(N, 4)`` boxes (x0, x1, y0, y1), as they
    are (1 for the zero boxes of a file that stores centres only)."""
    box = np.asarray(bbox).reshape(-1, 4)
    return np.maximum(box[:, 1] - box[:, 0], box[:, 3] - box[:, 2]) + 1


def known_extents(extent: np.ndarray) -> np.ndarray | None:
    """:func:`larger_sides` of some cells, or None where they tell nothing (no cells, or
    no side above 1 px: no bounding boxes stored)."""
    return None if len(extent) == 0 or np.all(extent <= 1) else extent


def cell_extents(crops: CropSet) -> np.ndarray | None:
    """Each cell's larger bounding-box side in pixels; None when the file stores no
    bounding boxes (centres only)."""
    return bbox_extents(crops.bbox)


def fitting_box(extent: np.ndarray) -> int:
    """The crop box (a multiple of 8 px, at least 16) that holds 95 % of the cells'
    bounding boxes with a 4 px margin."""
    return int(max(16, np.ceil((np.percentile(extent, 95) + _MARGIN) / 8) * 8))


def largest_box(side: int) -> int:
    """The largest crop box advised for images whose shorter side is ``side`` px: a
    multiple of 8 px where they allow 16 or more, else the side itself."""
    return side // 8 * 8 if side >= 16 else side


def fills_images(extent: np.ndarray, side: int) -> bool:
    """Whether the objects span (nearly) their whole images: half of their bounding boxes'
    larger sides reach 90 % of the images' shorter side ``side`` or more."""
    return float(np.median(extent)) >= _FILL_SHARE * side


def cut_off(extent: np.ndarray | None, box: int) -> tuple[float, int] | None:
    """Share of the cells larger than ``box`` and :func:`fitting_box`, when more than 5 %
    are; None otherwise or without extents (:func:`bbox_extents`)."""
    if extent is None:
        return None
    share = float(np.mean(extent > box))
    return (share, fitting_box(extent)) if share > _CUT_SHARE else None


def _small(extent: np.ndarray | None, box: int) -> int | None:
    """:func:`fitting_box` when 95 % of the cells, with the margin, need at most 0.6 of
    ``box`` and it is smaller; None otherwise or without extents."""
    if extent is None:
        return None
    fitting = fitting_box(extent)
    needed = float(np.percentile(extent, 95)) + _MARGIN
    return fitting if needed <= _SMALL_SHARE * box and fitting < box else None


def cut_by_box(crops: CropSet) -> tuple[float, int] | None:
    """Share of the cells wider or taller than their crop box, and a box that would fit.

    From the objects' bounding boxes in the file; cells cut off by the box lose their
    outline, and their size and shape features with it.

    Parameters
    ----------
    crops : CropSet

    Returns
    -------
    (float, int) or None
        The share of cells whose bounding box is larger than the crop, and a crop size (a
        multiple of 8 px) that holds 95 % of them with a 4 px margin; None when at most 5 %
        are cut or the file stores no bounding boxes.
    """
    return cut_off(cell_extents(crops), crops.box)


def small_for_box(crops: CropSet) -> int | None:
    """A crop box that fits the cells, when they are small for their own.

    Parameters
    ----------
    crops : CropSet

    Returns
    -------
    int or None
        A box (a multiple of 8 px, at least 16) that holds 95 % of the cells' bounding
        boxes with a 4 px margin, when they need at most 0.6 of ``crops.box`` and it is
        smaller; None otherwise or when the file stores no bounding boxes.
    """
    return _small(cell_extents(crops), crops.box)


def box_for_cells(extent: np.ndarray | None, network: int) -> int | None:
    """A crop box that holds the cells when more than 5 % are larger than ``network``.

    Crops cut with that box and resampled to ``network`` pixels (``input_size``) keep the
    cells' outlines and show them to the network at the scale it is made for. On the
    benchmark screen drawn at 2x magnification this raised novelty AUROC from 0.840 to
    0.882 and F1 from 0.881 to 0.904 over a 40 px box that cut 69 % of the cells. Small
    cells are left alone: enlarging them helped at 0.6x and not at 0.5x.

    Parameters
    ----------
    extent : ndarray or None
        The cells' larger bounding-box sides (:func:`bbox_extents`).
    network : int
        The box the network is made for (the preset's crop size).

    Returns
    -------
    int or None
        :func:`fitting_box`, or None when ``network`` holds the cells or there are no
        bounding boxes.
    """
    cut = cut_off(extent, network)
    return None if cut is None else cut[1]


def warn_box_fit(crops: CropSet, object_name: str, source: object) -> None:
    """Warn when the cells do not fit their crop box (cut off), or are small in it.

    Parameters
    ----------
    crops : CropSet
        As cut, before any resampling.
    object_name : str
    source : path-like
        The file, named at the start of the message.
    """
    warn_extents(cell_extents(crops), crops.box, object_name, source)


def warn_extents(
    extent: np.ndarray | None,
    box: int,
    object_name: str,
    source: object,
    image_side: int | None = None,
) -> None:
    """:func:`warn_box_fit` from the cells' extents (:func:`bbox_extents`) and the box.

    ``image_side`` (the images' shorter side, where known) bounds the cell size advised:
    a larger box cannot be cut from the images.
    """
    where = "" if source is None else f"{source}: "  # several files: no one file to name
    cut = cut_off(extent, box)
    if cut is not None:
        warnings.warn(
            f"{where}{cut[0]:.0%} of the '{object_name}' objects are larger than the "
            f"{box} px crop box (their bounding boxes), so their outline is cut off; "
            + _cut_advice(extent, cut[1], box, image_side),
            stacklevel=3,
        )
    fitting = _small(extent, box)
    if fitting is not None:
        warnings.warn(
            f"{where}the '{object_name}' objects are small for the {box} px crop box "
            f"(95 % of them fit {fitting} px); a cell size of {fitting} px with a network input "
            f"of {box} px (--crop-size {fitting} --input-size {box}; 'Cell size' and 'Network "
            "input' in the widget) shows them to the network enlarged, at the scale it is made "
            "for",
            stacklevel=3,
        )


def _cut_advice(extent: np.ndarray, fitting: int, box: int, side: int | None) -> str:
    """What to do about cells cut off by ``box``: the :func:`fitting_box` where the images
    (shorter side ``side``) allow it, else the largest box they allow or, for objects as
    large as the images, a look at the segmentation."""
    if side is None or fitting <= side:
        return f"a cell size of about {fitting} px would hold 95 % of them"
    if fills_images(extent, side):
        return (
            f"they span (nearly) the whole image (median {np.median(extent):.0f} px; the "
            f"images' shorter side is {side} px), so no crop box holds them: such objects are "
            "rarely single cells. Check the segmentation (a label covering the background?) "
            "or the objects chosen (--object, 'Objects' in the widget)"
        )
    largest = largest_box(side)
    if largest <= box:
        return f"no larger crop box fits the images (their shorter side is {side} px)"
    return (
        f"a cell size of {largest} px, the largest the images allow (their shorter side is "
        f"{side} px), would hold {np.mean(extent <= largest):.0%} of them"
    )
