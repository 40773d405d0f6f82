"""Whether the pixels a model encodes sit on its fixed intensity scale: too many at its
top (images brighter than the training images), or the brightest far below it (dimmer, or
of another bit depth).

A run counts all its crops in one :class:`ScaleCheck` (positions encoded elsewhere merged
in) and warns once, so that a screen encoded in one call, in batches or on workers is
judged alike. Moved out of :mod:`napari_cellae.core.normalisation`.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_cellae.core.normalisation import Normalisation

__all__ = ["DIM_SHARE", "SATURATED_SHARE", "ScaleCheck", "warn_saturated"]

# With one scale for all cells, training clips 0.1 % of pixels at the top; a file where
# more than this share is clipped was imaged brighter (or in another bit depth).
SATURATED_SHARE = 0.05
# A file whose brightest pixel reaches less than this share of a fixed scale looks nearly
# black to the model: an 8-bit file on a 12- or 16-bit model (1/16 or less), or far dimmer.
DIM_SHARE = 0.125


def warn_saturated(normalisation: Normalisation, share: np.ndarray, names: list[str]) -> None:
    """Warn when more than :data:`SATURATED_SHARE` of a channel's pixels were clipped.

    Parameters
    ----------
    normalisation : Normalisation
        The model's scaling (a fixed one; per-cell scaling never clips this way).
    share : ndarray (C,)
        Share of the encoded pixels at or above the scale's top, per channel.
    names : list of str
        Channel names, for the message.
    """
    over = [
        f"{name} (top {high:g})"
        for name, high, s in zip(names, normalisation.high, share, strict=True)
        if s > SATURATED_SHARE
    ]
    if over:  # no per-call numbers in the text: a streamed run shows it once
        warnings.warn(
            f"more than {SATURATED_SHARE:.0%} of the pixels of channel(s) {', '.join(over)} "
            "are at or above the top of the model's intensity scale, which was set on its "
            "training images: brighter cells all look alike to it. Train a model on these "
            "images, or with 'intensity: cell' (each cell scaled by its own range)",
            stacklevel=4,
        )


class ScaleCheck:
    """How the pixels of encoded crops sit on a model's fixed intensity scale, batch by
    batch: how many reach its top (:func:`warn_saturated`) and how far the brightest
    reaches. Per-cell scaling adapts to every crop: then it checks nothing. One check
    counts a whole run (positions encoded elsewhere :meth:`merge` in), judged once.

    Parameters
    ----------
    normalisation : Normalisation
        The model's scaling.
    """

    def __init__(self, normalisation: Normalisation) -> None:
        self.normalisation = normalisation
        self.pixels = 0
        self.saturated = np.zeros(normalisation.n_channels, np.int64)
        self.brightest = np.full(normalisation.n_channels, -np.inf)

    def add(self, crops: np.ndarray) -> None:
        """Count a batch of crops (N, C, S, S) in their stored dtype."""
        counts = self.normalisation.saturated_pixels(crops)
        if counts is None or not np.size(crops):
            return
        self.saturated += counts
        self.pixels += crops.shape[0] * crops.shape[2] * crops.shape[3]
        self.brightest = np.fmax(self.brightest, np.asarray(crops).max(axis=(0, 2, 3)))

    def merge(self, other: ScaleCheck) -> None:
        """Add what ``other`` counted (the crops of a position encoded elsewhere)."""
        self.pixels += other.pixels
        self.saturated += other.saturated
        self.brightest = np.fmax(self.brightest, other.brightest)

    def warn(self, names: list[str]) -> None:
        """Warn about what :meth:`add` counted (UserWarning): more than
        :data:`SATURATED_SHARE` of a channel's pixels at or above the scale's top, or its
        brightest pixel below :data:`DIM_SHARE` of the scale.

        Parameters
        ----------
        names : list of str
            Channel names, for the messages.
        """
        if not self.pixels:
            return
        warn_saturated(self.normalisation, self.saturated / self.pixels, names)
        low, high = np.asarray(self.normalisation.low), np.asarray(self.normalisation.high)
        reach = (self.brightest - low) / (high - low)
        dim = [
            f"{name} (scale {lo:g} to {hi:g})"
            for name, lo, hi, r in zip(names, low, high, reach, strict=True)
            if r < DIM_SHARE
        ]
        if dim:  # no per-call numbers in the text: a streamed run shows it once
            warnings.warn(
                f"the brightest pixels of channel(s) {', '.join(dim)} reach less than "
                f"{DIM_SHARE:.1%} of the model's intensity scale, which was set on its "
                "training images: these cells look nearly black to it, and their features "
                "barely differ (images of another bit depth, 8-bit against 12- or 16-bit, "
                "or far dimmer). Train a model on these images, or with 'intensity: cell' "
                "(each cell scaled by its own range)",
                stacklevel=3,
            )
