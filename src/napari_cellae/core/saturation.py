"""Cells clipped at the camera's maximum (saturated pixels).

A camera turns all light above its full scale into one value: 255 at 8 bits, 4095 at 12 bits
(often stored in 16-bit files), 65535 at 16. A cell with several pixels at that value has
lost the shape of its brightest part, so its brightness and texture features understate it,
and cells brighter still look alike. Nothing in the file says how many bits the camera had,
so a crop counts as clipped when at least :data:`CLIPPED_PIXELS` of its pixels (the cell's
own, once neighbours are painted out) sit at one of the full-scale values and that value is
the largest the crops hold.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = [
    "CLIPPED_PIXELS",
    "CLIPPED_SHARE",
    "clipped_at",
    "clipped_counts",
    "warn_clipped",
    "warn_clipped_counts",
]

# The full scales of 8- to 16-bit cameras.
_FULL_SCALES = frozenset(2**bits - 1 for bits in (8, 10, 12, 14, 16))
# One pixel at the maximum is as often a hot pixel or a lucky photon count.
CLIPPED_PIXELS = 3
# Share of the cells above which a run warns: a few bright mitotic or apoptotic cells touch
# the top in well-exposed screens too (3.5 % on the bundled demo). And at least this many
# cells: in a file of a few dozen, two touching bright cells are no call to re-image.
CLIPPED_SHARE = 0.05
_CLIPPED_CELLS = 10


def clipped_at(crops: np.ndarray) -> np.ndarray:
    """Per crop, the full-scale value at which at least :data:`CLIPPED_PIXELS` of its pixels
    sit, or 0.

    Parameters
    ----------
    crops : ndarray (N, C, S, S)
        Crops of one position (or more), in the stored dtype.

    Returns
    -------
    ndarray (N,) int64
        0 for crops that are not clipped, and for all crops of float images or where the
        largest value is no camera's full scale.
    """
    crops = np.asarray(crops)
    none = np.zeros(len(crops), np.int64)
    if len(crops) == 0 or not np.issubdtype(crops.dtype, np.integer):
        return none
    top = int(crops.max())
    if top not in _FULL_SCALES:
        return none
    at_top = np.count_nonzero(crops.reshape(len(crops), -1) == top, axis=1)
    return np.where(at_top >= CLIPPED_PIXELS, top, 0)


def clipped_counts(clipped: np.ndarray) -> dict[int, int]:
    """How many cells :func:`clipped_at` found clipped at each full-scale value.

    A streamed run keeps these few numbers per run instead of one value per cell.

    Parameters
    ----------
    clipped : ndarray (N,) int
        :func:`clipped_at` of some cells.

    Returns
    -------
    dict of int to int
        Full-scale value -> cells clipped there (cells not clipped are left out).
    """
    values, counts = np.unique(np.asarray(clipped), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True) if v != 0}


def warn_clipped(clipped: np.ndarray, source: object = None) -> None:
    """Say when more than :data:`CLIPPED_SHARE` of the cells (and 10 or more) are clipped.

    Parameters
    ----------
    clipped : ndarray (N,) int
        :func:`clipped_at` of every cell of a run (``CropSet.clipped_at``). Only the largest
        full scale counts: a dim position of a 16-bit screen may top out at 4095 by chance.
    source : path-like, optional
        The file, named at the start of the message.
    """
    clipped = np.asarray(clipped)
    warn_clipped_counts(clipped_counts(clipped), len(clipped), source, stacklevel=4)


def warn_clipped_counts(
    counts: dict[int, int], cells: int, source: object = None, stacklevel: int = 3
) -> None:
    """:func:`warn_clipped` from :func:`clipped_counts` of all ``cells`` of a run.

    Parameters
    ----------
    counts : dict of int to int
        Full-scale value -> cells clipped there, summed over the run.
    cells : int
        Cells of the run, clipped or not.
    source : path-like, optional
        The file, named at the start of the message.
    stacklevel : int
        Of the warning, as :func:`warnings.warn` takes it.
    """
    if cells == 0 or not counts:
        return
    top = max(counts)
    n = counts[top]
    if n <= CLIPPED_SHARE * cells or n < _CLIPPED_CELLS:
        return
    where = f"{source}: " if source is not None else ""
    warnings.warn(
        f"{where}{n / cells:.0%} of the cells ({n:,} of {cells:,}) have "
        f"{CLIPPED_PIXELS} or more pixels at the camera's maximum ({top}): their brightest "
        "parts are clipped, so their brightness and texture features understate them and "
        "the brightest cells look alike. Image at a shorter exposure if you can",
        stacklevel=stacklevel,
    )
