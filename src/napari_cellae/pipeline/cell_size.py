"""The crop box fitted to the cells of a file, measured from its bounding boxes.

The network is made for cells of a certain size in pixels (the preset's crop box, 40 px).
When the user gives no cell size and that box would cut off the cells of a file (imaged at
a higher magnification), they are cut with a box that holds them and resampled to the
network's size (``input_size``), so they keep their outline and reach the network at the
scale it is made for. Images smaller than that box are cropped whole (their shorter side)
and resampled likewise.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.core.resample import (
    bbox_extents,
    box_for_cells,
    fills_images,
    fitting_box,
    largest_box,
)
from napari_cellae.io.cellh5 import CellH5

if TYPE_CHECKING:
    from napari_cellae.core.config import TrainConfig

__all__ = [
    "box_advice",
    "fit_to_cells",
    "fitted_box",
    "measured_extents",
    "shorter_side",
    "small_images_advice",
]

# Positions whose bounding boxes are read (evenly spread over the file): enough cells to
# know their size, a fraction of a second even on a plate of thousands of positions.
_SAMPLED_POSITIONS = 24


def measured_extents(cellh5: CellH5, object_name: str) -> np.ndarray | None:
    """The larger bounding-box side of the objects of up to 24 positions, in pixels.

    Parameters
    ----------
    cellh5 : CellH5
    object_name : str

    Returns
    -------
    ndarray or None
        None when the file stores no bounding boxes (centres only) or no objects.
    """
    positions = cellh5.positions
    if len(positions) > _SAMPLED_POSITIONS:
        picked = np.linspace(0, len(positions) - 1, _SAMPLED_POSITIONS).round().astype(int)
        positions = [positions[i] for i in picked]
    boxes = [
        cellh5.objects(key, object_name).bbox
        for key in positions
        if cellh5.object_count(key, object_name) > 0
    ]
    return bbox_extents(np.concatenate(boxes)) if boxes else None


def shorter_side(cellh5: CellH5) -> int:
    """The images' shorter side in pixels, over every position: the largest crop box."""
    return min(min(cellh5.image_shape(key)[-2:]) for key in cellh5.positions)


def fitted_box(
    cellh5: CellH5, object_name: str, network: int, extent: np.ndarray | None = None
) -> int | None:
    """A crop box for the objects when a ``network``-pixel box would cut them off or does
    not fit the images.

    Parameters
    ----------
    cellh5 : CellH5
    object_name : str
    network : int
        The box the network is made for.
    extent : ndarray, optional
        :func:`measured_extents` of the objects, where the caller has them already.

    Returns
    -------
    int or None
        The largest box the images allow (:func:`~napari_cellae.core.resample.largest_box`
        of their shorter side) where ``network`` is larger than they are; else
        :func:`napari_cellae.core.resample.box_for_cells`, at most that box. None when
        ``network`` fits the images and holds the cells, or the file stores no bounding
        boxes.
    """
    side = shorter_side(cellh5)
    limit = largest_box(side)
    if network > side:  # the network's box cannot be cut from these images at all
        return limit if limit >= 4 else None  # 4 px: the smallest cell size (config_checks)
    if extent is None:
        extent = measured_extents(cellh5, object_name)
    box = box_for_cells(extent, network)
    return None if box is None or min(box, limit) <= network else min(box, limit)


def box_advice(cellh5: CellH5, object_name: str, extent: np.ndarray, network: int) -> str:
    """Which crop box holds the objects, said as ``cellae train`` will choose it (what
    ``cellae info`` prints after the objects' sizes).

    Parameters
    ----------
    cellh5 : CellH5
    object_name : str
    extent : ndarray
        :func:`measured_extents` of the objects.
    network : int
        The box the network is made for (the default preset's crop size).

    Returns
    -------
    str
        Never a box larger than the images' shorter side; for objects as large as the
        images, that no box holds them and what to check instead.
    """
    side = shorter_side(cellh5)
    fitted = fitted_box(cellh5, object_name, network, extent)  # the extents read once
    fitting = fitting_box(extent)
    train = (
        f"cellae train crops {fitted} px and resamples to the network's {network} px"
        if fitted is not None
        else f"cellae train crops {network} px"
    )
    if fitting > side:  # no box the images allow holds 95 % of them
        if fills_images(extent, side):
            return (
                f"they span (nearly) the whole image (the images' shorter side is {side} px), "
                "so no crop box holds them: check the segmentation or the objects chosen "
                f"(--object); {train}"
            )
        box = fitted or min(network, side)
        return (
            f"the largest crop box the images allow (their shorter side is {side} px) holds "
            f"{np.mean(extent <= box):.0%} of them; {train}"
        )
    if network > side:
        return (
            f"a {fitting} px crop box holds them (the default {network} px box is larger "
            f"than the images; {train})"
        )
    if fitted is not None:  # what cellae train does unless told a cell size
        return f"a {fitted} px crop box holds them ({train})"
    if fitting < network:
        return f"a {fitting} px crop box holds them (the default {network} px box too)"
    return f"the default {network} px crop box holds them"


def small_images_advice(cellh5: CellH5, network: int) -> str | None:
    """What ``cellae info`` says of objects whose size is unknown (no bounding boxes, or
    one-pixel ones) where the images are smaller than the network's box.

    Parameters
    ----------
    cellh5 : CellH5
    network : int
        The box the network is made for (the default preset's crop size).

    Returns
    -------
    str or None
        None where the images hold a ``network``-pixel box.
    """
    side = shorter_side(cellh5)
    if network <= side:
        return None
    fitted = fitted_box(cellh5, "", network, np.empty(0))  # no extents read: the side rules
    train = (
        f"cellae train crops {fitted} px and resamples to the network's {network} px"
        if fitted is not None
        else "cellae train cannot crop images this small"
    )
    return (
        f"the default {network} px crop box is larger than the images (their shorter side "
        f"is {side} px); {train}"
    )


def fit_to_cells(
    cellh5_path: str | os.PathLike | Sequence[str | os.PathLike],
    config: TrainConfig,
    object_name: str | None = None,
) -> tuple[TrainConfig, str | None]:
    """``config`` with its crop box fitted to the cells of a file, and what changed.

    The network keeps its size: crops cut with the fitted box are resampled to the
    configuration's crop size (``input_size``). Use it when the user gave neither a cell
    size nor an input size.

    Parameters
    ----------
    cellh5_path : path-like or sequence of path-like
        A CellH5 file, or several plates: the first that holds objects stands for all
        (plates of one screen share a magnification).
    config : TrainConfig
    object_name : str, optional
        Default: the (first) file's default object; every plate read must have it.

    Returns
    -------
    (TrainConfig, str or None)
        The configuration to train with, and a sentence saying what was fitted (None when
        the configuration's box suits the cells and nothing changed).
    """
    from napari_cellae.pipeline.selection import resolve_object

    network = config.network_size
    paths = [cellh5_path] if isinstance(cellh5_path, str | os.PathLike) else cellh5_path
    box = None
    for path in paths:  # a first plate without objects told nothing: no box was fitted
        with CellH5(path) as ch5:
            obj = object_name = resolve_object(ch5, object_name)  # the first plate's
            if any(ch5.object_count(key, obj) for key in ch5.positions):
                side = shorter_side(ch5)
                extent = measured_extents(ch5, obj)
                box = fitted_box(ch5, obj, network, extent)
                break
    if box is None:
        return config, None
    fitted = dataclasses.replace(config, crop_size=box, input_size=network)
    return fitted, _fit_note(obj, network, box, side, extent)


def _fit_note(obj: str, network: int, box: int, side: int, extent: np.ndarray | None) -> str:
    """:func:`fit_to_cells`'s sentence: why the box changed, and what it holds."""
    if network > side:
        return (
            f"the images' shorter side ({side} px) is smaller than the {network} px crop box "
            f"the network is made for: cropping {box} px and resampling to {network} px"
        )
    if extent is not None and box < fitting_box(extent):  # capped by the images
        share = np.mean(extent <= box)
        held = f"the largest the images allow ({side} px shorter side), which holds {share:.0%}"
    else:
        held = "which holds 95 %"
    return (
        f"the '{obj}' objects are larger than the {network} px the network is made for (their "
        f"bounding boxes): cropping {box} px, {held} of them, and resampling to {network} px"
    )
