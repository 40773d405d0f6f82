"""The crop box fitted to the cells of a file, measured from its bounding boxes.

The network is made for cells of a certain size in pixels (the preset's crop box, 40 px).
When the user gives no cell size and that box would cut off the cells of a file (imaged at
a higher magnification), they are cut with a box that holds them and resampled to the
network's size (``input_size``), so they keep their outline and reach the network at the
scale it is made for.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.core.resample import bbox_extents, box_for_cells
from napari_cellae.io.cellh5 import CellH5

if TYPE_CHECKING:
    from napari_cellae.core.config import TrainConfig

__all__ = ["fit_to_cells", "fitted_box", "measured_extents"]

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


def fitted_box(
    cellh5: CellH5, object_name: str, network: int, extent: np.ndarray | None = None
) -> int | None:
    """A crop box for the objects when a ``network``-pixel box would cut them off.

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
        See :func:`napari_cellae.core.resample.box_for_cells`, at most the images' shorter
        side; None when ``network`` holds the cells or the file stores no bounding boxes.
    """
    if extent is None:
        extent = measured_extents(cellh5, object_name)
    box = box_for_cells(extent, network)
    if box is None:
        return None
    smallest = min(min(cellh5.image_shape(key)[-2:]) for key in cellh5.positions)
    box = min(box, smallest // 8 * 8)
    return box if box >= 16 and box != network else None


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
    from napari_cellae.pipeline.steps import resolve_object

    network = config.network_size
    paths = [cellh5_path] if isinstance(cellh5_path, str | os.PathLike) else cellh5_path
    box = None
    for path in paths:  # a first plate without objects told nothing: no box was fitted
        with CellH5(path) as ch5:
            obj = object_name = resolve_object(ch5, object_name)  # the first plate's
            if any(ch5.object_count(key, obj) for key in ch5.positions):
                box = fitted_box(ch5, obj, network)
                break
    if box is None:
        return config, None
    fitted = dataclasses.replace(config, crop_size=box, input_size=network)
    message = (
        f"the '{obj}' objects are larger than the {network} px the network is made for (their "
        f"bounding boxes): cropping {box} px, which holds 95 % of them, and resampling to "
        f"{network} px"
    )
    return fitted, message
