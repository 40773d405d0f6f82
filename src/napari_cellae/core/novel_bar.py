"""The bar a cell's novelty score must pass: a percentile of the control cells' scores.

Shared by the scoring (:func:`napari_cellae.core.novelty.novelty_scores`) and by
``cellae hits``, which draws the bar again through stored scores, so that both flag the
same cells.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ROUNDING", "above_bar", "novel_bar"]

# A score within this share of the bar is at the bar, not above it. Identical cells (a cell
# that does not move between frames, objects that share a crop) get one score, and the bar,
# a percentile of the control cells' scores, lies on it when it falls among them. Encoded
# in other batches, such cells' features differ in the last float32 bits (the convolution
# kernels round otherwise), and one of them came out above the bar in one run and not in
# another: the widget's findings (encoded in chunks) counted one novel control cell more
# than the cells file of 'cellae encode'. Those differences move a score by about 2e-7.
ROUNDING = 1e-5


def above_bar(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Which scores are above ``threshold`` by more than their rounding.

    Parameters
    ----------
    scores : ndarray (N,)
    threshold : float

    Returns
    -------
    ndarray (N,) bool
    """
    return np.asarray(scores) > threshold + ROUNDING * max(1.0, abs(threshold))


def novel_bar(
    scores: np.ndarray, controls: np.ndarray, percentile: float
) -> tuple[float, np.ndarray]:
    """The bar at ``percentile`` of the control cells' scores, and which cells pass it.

    Parameters
    ----------
    scores : ndarray (N,) float64
        As stored (float32 values), so that the bar drawn again through a file's scores
        is this one.
    controls : ndarray (N,) bool
        The control cells the bar is taken from.
    percentile : float
        0 to 100.

    Returns
    -------
    threshold : float
    novel : ndarray (N,) bool
    """
    threshold = float(np.percentile(scores[controls], percentile))
    return threshold, above_bar(scores, threshold)
