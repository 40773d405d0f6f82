"""The embedding of a large screen as a coloured 2-D histogram (an RGBA image).

napari draws every point of a points layer on each repaint, and its per-point bookkeeping
grows with the layer: 100k points take seconds to add, select or recolour, 1M do not
finish. A density image costs the same at any number of cells: each bin takes the colour
of its cells (majority category, or mean colour-map level) and an opacity that grows with
the log of their count. Plain numpy; about 50 ms per colouring for 1M cells
(``benchmarks/bench_embedding_layer.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_cellae._ui.colouring import Colouring

__all__ = ["DensityGrid"]

_MIN_ALPHA = 0.3  # a bin with one cell must still be visible
_DIM = 0.2  # opacity of the rest while a selection is spotlit


class DensityGrid:
    """Cells binned on a square grid over the unit square.

    Parameters
    ----------
    unit : ndarray (N, 2)
        Cell positions in [0, 1]², napari (row, column) order.
    bins : int
        Bins per side (the image is ``bins`` x ``bins``).
    """

    def __init__(self, unit: np.ndarray, bins: int = 512) -> None:
        self.bins = int(bins)
        unit = np.asarray(unit, np.float32)
        rows, columns = (
            np.minimum((unit[:, axis] * np.float32(self.bins)).astype(np.int32), self.bins - 1)
            for axis in (0, 1)
        )
        self.index = rows * np.int32(self.bins) + columns  # bin of every cell
        self.counts = np.bincount(self.index, minlength=self.bins**2)

    def render(self, colouring: Colouring, cells: np.ndarray | None = None) -> np.ndarray:
        """The RGBA image (bins, bins, 4) uint8 of ``cells`` (all when None).

        Parameters
        ----------
        colouring : Colouring
            Per cell, a code into its palette.
        cells : ndarray of int, optional
            Cells to draw (e.g. the selection).
        """
        n_bins = self.bins**2
        if cells is None:
            index, codes, counts = self.index, colouring.codes, self.counts
        else:
            index, codes = self.index[cells], colouring.codes[cells]
            counts = np.bincount(index, minlength=n_bins)
        filled = counts > 0
        if colouring.continuous:
            total = np.bincount(index, weights=codes, minlength=n_bins)
            level = np.zeros(n_bins, np.int64)
            level[filled] = np.round(total[filled] / counts[filled]).astype(np.int64)
            colour = colouring.palette[level]
        else:
            colour = colouring.palette[_majority(index, codes, len(colouring.palette), n_bins)]
        alpha = np.zeros(n_bins, np.float32)
        if filled.any():
            scale = np.log1p(counts.max())
            alpha[filled] = _MIN_ALPHA + (1 - _MIN_ALPHA) * np.log1p(counts[filled]) / scale
        image = np.empty((n_bins, 4), np.uint8)
        image[:, :3] = np.round(colour[:, :3] * 255)
        image[:, 3] = np.round(alpha * 255)
        return image.reshape(self.bins, self.bins, 4)

    @staticmethod
    def spotlight(base: np.ndarray, selected: np.ndarray) -> np.ndarray:
        """``selected`` drawn over a dimmed ``base`` (both from :meth:`render`)."""
        out = base.copy()
        out[..., 3] = (out[..., 3] * _DIM).astype(np.uint8)
        chosen = selected[..., 3] > 0
        out[chosen] = selected[chosen]
        return out


def _majority(index: np.ndarray, codes: np.ndarray, k: int, n_bins: int) -> np.ndarray:
    """Per bin, the most frequent code among its cells (0 for empty bins)."""
    if len(index) == 0:
        return np.zeros(n_bins, np.int64)
    # One sort of (bin, code) keys gives runs of equal keys: their lengths are the counts.
    key = index.astype(np.int64) * k + codes
    key.sort()
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    run_count = np.diff(np.append(starts, len(key)))
    run_bin, run_code = np.divmod(key[starts], k)
    best = np.zeros(n_bins, np.int64)
    np.maximum.at(best, run_bin, run_count)
    top = run_count == best[run_bin]
    out = np.zeros(n_bins, np.int64)
    out[run_bin[top]] = run_code[top]  # ties: any of the tied codes
    return out
