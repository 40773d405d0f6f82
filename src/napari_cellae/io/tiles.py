"""Image tiles never written: HDF5 chunks of a pixel dataset that were never stored.

HDF5 reads a chunk that was never stored as the dataset's fill value, without an error. A
crop lying wholly on such a tile is a cell without signal (:mod:`napari_cellae.core.blank`);
one reaching partly into it holds a flat rectangle beside the cell, which its features
describe as part of the cell. Which chunks are stored is asked of HDF5 once per position
(its count, and only where some are missing, their list), never per cell.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np

__all__ = ["cells_on_unwritten_tiles", "warn_unwritten_tiles"]

# Chunks a position's table of stored chunks may have; beyond it (only a damaged file
# declares such planes) nothing is said rather than allocating the table.
_MOST_CHUNKS = 1 << 24


def _missing(image: Any, channels: Sequence[int]) -> np.ndarray | None:
    """Per chunk of frames, rows and columns of plane 0: whether a chunk of ``channels``
    there was never stored; None where all are stored or that cannot be told."""
    try:
        dsid = image.id
        if dsid.get_create_plist().get_layout() != h5py.h5d.CHUNKED:
            return None  # contiguous (all or nothing: the blank check), virtual, external
        chunks, shape = tuple(image.chunks), tuple(image.shape)
        grid = tuple(-(-n // k) for n, k in zip(shape, chunks, strict=True))
        total = int(np.prod(grid, dtype=np.int64))
        # The count is cheap (HDF5 walks its index in C); the list only where it falls
        # short. Without chunk_iter (HDF5 before 1.12.3) nothing is said.
        if dsid.get_num_chunks() >= total or total > _MOST_CHUNKS:
            return None
        if not hasattr(dsid, "chunk_iter"):
            return None
        offsets: list[tuple[int, ...]] = []
        dsid.chunk_iter(lambda info: offsets.append(info.chunk_offset))
    except (AttributeError, OSError, RuntimeError, ValueError, TypeError):
        return None
    stored = np.zeros(grid, bool)
    if offsets:
        stored[tuple((np.asarray(offsets, np.int64) // np.asarray(chunks)).T)] = True
    rows = sorted({int(c) // chunks[0] for c in channels})
    return ~stored[rows][:, :, 0].all(axis=0)  # (frame chunks, row chunks, column chunks)


def cells_on_unwritten_tiles(
    image: Any,
    channels: Sequence[int],
    time_idx: np.ndarray,
    origins: tuple[np.ndarray, np.ndarray],
    size: int,
) -> np.ndarray:
    """Which cells' crop windows reach into a chunk of their frame never stored.

    Parameters
    ----------
    image : h5py.Dataset or ndarray
        Pixels of one position, axes (c, t, z, y, x); an array or an unchunked dataset
        has no tiles of its own (all False).
    channels : sequence of int
        The channels cropped.
    time_idx : ndarray of int, shape (n,)
        Each cell's frame.
    origins : (ndarray, ndarray)
        The windows' top-left corners (y0, x0) inside the image, plane 0.
    size : int
        The windows' edge in pixels.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    y0, x0 = (np.asarray(v, np.int64) for v in origins)
    touched = np.zeros(len(y0), bool)
    missing = _missing(image, channels) if len(y0) else None
    if missing is None or not missing.any():
        return touched
    _, ct, _, ch, cw = image.chunks
    # Missing chunks summed over rows and columns: any in a window in four lookups.
    summed = np.zeros((missing.shape[0], missing.shape[1] + 1, missing.shape[2] + 1), np.int64)
    summed[:, 1:, 1:] = missing.cumsum(axis=1).cumsum(axis=2)
    t = np.asarray(time_idx, np.int64) // ct
    r0, r1 = y0 // ch, (y0 + size - 1) // ch + 1
    c0, c1 = x0 // cw, (x0 + size - 1) // cw + 1
    inside = summed[t, r1, c1] - summed[t, r0, c1] - summed[t, r1, c0] + summed[t, r0, c0]
    return inside > 0


def warn_unwritten_tiles(
    image: Any,
    channels: Sequence[int],
    time_idx: np.ndarray,
    origins: tuple[np.ndarray, np.ndarray],
    size: int,
    where: str,
    blank: np.ndarray,
) -> None:
    """Warn, once for the position, how many cells' crops reach partly into tiles never
    written (the wholly blank ones, ``blank``, are warned about as cells without signal).

    Parameters
    ----------
    image, channels, time_idx, origins, size
        As :func:`cells_on_unwritten_tiles`.
    where : str
        The file and position, e.g. ``"plate.ch5, position A01_1"``.
    blank : ndarray of bool, shape (n,)
        The cells whose crops hold no signal.
    """
    touched = cells_on_unwritten_tiles(image, channels, time_idx, origins, size) & ~blank
    if touched.any():
        fill = getattr(image, "fillvalue", 0)
        warnings.warn(
            f"{where}: {int(touched.sum())} of {len(touched)} cells' crops reach into image "
            f"tiles never written (HDF5 chunks never stored, read as {fill}): part of each "
            "crop is a flat rectangle that their features take for the cell; the program "
            "writing the file stopped?",
            UserWarning,
            stacklevel=3,
        )
