"""Tests for napari_cellae.core.saturation: cells clipped at the camera's maximum."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_cellae.core.saturation import clipped_at, warn_clipped


def _crops(n: int, dtype: str = "uint16", level: int = 1000) -> np.ndarray:
    return np.full((n, 1, 8, 8), level, dtype)


def test_a_crop_is_clipped_with_three_pixels_at_a_full_scale() -> None:
    crops = _crops(4)
    crops[0, 0, :3, 0] = 4095  # three pixels at 12-bit full scale
    crops[1, 0, :2, 0] = 4095  # two: a hot pixel or a lucky count, not clipping
    crops[2, 0, 0, :] = 4095  # a whole row
    np.testing.assert_array_equal(clipped_at(crops), [4095, 0, 4095, 0])
    eight_bit = _crops(2, "uint8", 100)
    eight_bit[1, 0, 2:5, 2] = 255
    np.testing.assert_array_equal(clipped_at(eight_bit), [0, 255])


def test_no_full_scale_no_clipping() -> None:
    crops = _crops(3)
    crops[:, 0, :4, 0] = 3000  # the largest value, but no camera's maximum
    assert not clipped_at(crops).any()
    floats = crops.astype(np.float32)
    floats[:, 0, :4, 0] = 4095.0  # float images have no full scale
    assert not clipped_at(floats).any()
    assert clipped_at(_crops(0)).shape == (0,)
    # the largest value counts: at 65535, cells at 4095 are not clipped
    both = _crops(2)
    both[0, 0, :3, 0], both[1, 0, :3, 0] = 4095, 65535
    np.testing.assert_array_equal(clipped_at(both), [0, 65535])


def test_a_run_warns_above_five_percent_and_ten_cells() -> None:
    clipped = np.zeros(200, np.int64)
    clipped[:12] = 4095
    with pytest.warns(UserWarning, match=r"^plate\.ch5: 6% of the cells \(12 of 200\) have 3"):
        warn_clipped(clipped, "plate.ch5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_clipped(clipped[:12].repeat(0), "plate.ch5")  # no cells
        warn_clipped(np.r_[clipped[:12], np.zeros(300, np.int64)], None)  # 3.8 %
        warn_clipped(np.r_[np.full(9, 4095), np.zeros(20, np.int64)], None)  # 9 cells
        # positions that top out at 1023 by chance do not count beside those at 4095
        warn_clipped(np.r_[np.full(30, 1023), np.full(10, 4095), np.zeros(300, int)], None)
