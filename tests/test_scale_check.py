"""Tests for napari_cellae.core.scale_check: a run's pixels on a model's fixed scale."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_cellae.core.normalisation import Normalisation
from napari_cellae.core.scale_check import ScaleCheck


def test_positions_merged_are_judged_as_one_run():
    # A position with 20 % of its pixels at the top, among four with none: 4 % of the
    # run's. Judged by position (--workers) it warned; the run is judged as a whole.
    norm = Normalisation([0.0], [100.0])
    crops = np.zeros((5, 1, 10, 10), np.uint8)
    crops[0, 0, :2] = 100
    crops[1:, 0, 0, 0] = 30
    run = ScaleCheck(norm)
    for position in np.split(crops, 5):
        own = ScaleCheck(norm)
        own.add(position)
        run.merge(own)
    run.merge(ScaleCheck(norm))  # a position without cells
    whole = ScaleCheck(norm)
    whole.add(crops)
    assert run.pixels == whole.pixels == 500
    np.testing.assert_array_equal(run.saturated, whole.saturated)
    np.testing.assert_array_equal(run.brightest, [100])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run.warn(["dna"])
    crops[1, 0, :2] = 100  # 8 % of the run's pixels
    run = ScaleCheck(norm)
    for position in np.split(crops, 5):
        own = ScaleCheck(norm)
        own.add(position)
        run.merge(own)
    with pytest.warns(UserWarning, match=r"more than 5% of the pixels of channel\(s\) dna"):
        run.warn(["dna"])
