"""Cells whose crops hold no signal: every pixel of a channel has one value.

A live camera never gives one value over a whole crop: there is always noise. A crop of a
single value comes from images that were never acquired or written (an acquisition stopped
early, a channel left out at some positions, an HDF5 chunk never stored reads as its fill
value). Such cells have features all alike and far from every control cell, so a position
of them topped the hit list as a perfect hit. The run says which positions hold them, and
the cell table marks them (``no_signal``), so that novelty and hit lists leave them out.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.core.listing import first_few, position_name

if TYPE_CHECKING:  # pragma: no cover - typing only
    from napari_cellae.io.cellh5 import PositionKey

__all__ = ["blank_crops", "warn_blank"]


def blank_crops(crops: np.ndarray) -> np.ndarray:
    """Whether each crop has a channel whose pixels all have one value.

    Parameters
    ----------
    crops : ndarray (N, C, S, S)
        Crops in any dtype (neighbours may be painted out already: a cell's own pixels
        still vary).

    Returns
    -------
    ndarray (N,) bool
    """
    crops = np.asarray(crops)
    if crops.size == 0:
        return np.zeros(len(crops), bool)
    pixels = crops.reshape(*crops.shape[:2], -1)
    return (pixels.max(axis=2) == pixels.min(axis=2)).any(axis=1)


def warn_blank(
    blank: Sequence[tuple[PositionKey, int, int]],
    n_cells: int,
    object_name: str,
    source: object,
    with_plates: bool | None = None,
) -> None:
    """Warn when any cell's crop is blank, naming the positions that hold most of them.

    Parameters
    ----------
    blank : sequence of (PositionKey, int, int)
        Per position with blank crops: the position, its blank cells and all its cells.
    n_cells : int
        Cells of the run.
    object_name : str
    source : path-like or None
        The file (or the plates), named at the start of the message; None for several
        plates.
    with_plates : bool, optional
        Name each position with its plate (``plate1/C03_1``), as a run of several plates
        must; default: when ``source`` is None.
    """
    if not blank:
        return
    n_blank = sum(n for _, n, _ in blank)
    plates = source is None if with_plates is None else with_plates
    worst = sorted(
        ((position_name(key, plates), n, total) for key, n, total in blank),
        key=lambda e: (-e[1], e[0]),
    )
    named = first_few([f"{label} ({n} of {total})" for label, n, total in worst])
    where = f"{source}: " if source is not None else ""
    warnings.warn(
        f"{where}{n_blank:,} of {n_cells:,} '{object_name}' cells have crops without signal "
        f"(a channel of a single value, as images never acquired or written read): "
        f"{named}. Their features describe no cell, so novelty and hit lists leave "
        "them out (cell column no_signal); check these images",
        stacklevel=3,
    )
