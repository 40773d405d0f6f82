"""Crops resampled to the network's input size."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellae.core.resample import resample_crops


def _disc(size: int, radius: float, dtype: str = "uint16") -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    return ((np.hypot(yy, xx) <= radius) * 200 + 20).astype(dtype)[None, None]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_shapes_dtype_and_a_cell_keeps_its_share_of_the_box(dtype: str) -> None:
    small = _disc(24, 6, dtype)
    for size in (40, 16):  # enlarged and shrunk
        out = resample_crops(np.repeat(small, 3, axis=0), size)
        assert out.shape == (3, 1, size, size) and out.dtype == small.dtype
        inside = out > (out.max() + out.min()) / 2
        # a disc of radius 6 in 24 px covers the same share of any box size
        assert inside[0, 0].mean() == pytest.approx(np.pi * 36 / 24**2, rel=0.12)
        np.testing.assert_array_equal(out[0], out[2])


def test_flat_crops_stay_flat_and_values_stay_in_range() -> None:
    flat = np.full((2, 2, 20, 20), 4095, np.uint16)
    np.testing.assert_array_equal(resample_crops(flat, 40), np.full((2, 2, 40, 40), 4095))
    np.testing.assert_array_equal(resample_crops(flat, 8), np.full((2, 2, 8, 8), 4095))
    full = np.zeros((1, 1, 10, 10), np.uint8)
    full[..., ::2, :] = 255  # stripes: bilinear overshoot must not wrap around
    out = resample_crops(full, 33)
    assert out.min() >= 0 and out.max() <= 255


def test_turning_a_crop_turns_its_resampled_crop() -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 4000, (4, 1, 24, 24)).astype(np.uint16)
    turned = np.rot90(crops, axes=(2, 3)).copy()
    np.testing.assert_allclose(
        np.rot90(resample_crops(crops, 40), axes=(2, 3)).astype(float),
        resample_crops(turned, 40).astype(float),
        atol=1,
    )


def test_same_size_is_returned_as_is_and_bad_shapes_are_refused() -> None:
    crops = np.zeros((2, 1, 16, 16), np.uint16)
    assert resample_crops(crops, 16) is crops
    assert resample_crops(np.zeros((0, 1, 16, 16), np.uint16), 40).shape == (0, 1, 40, 40)
    with pytest.raises(ValueError, match="square crops"):
        resample_crops(np.zeros((2, 1, 16, 12)), 40)
    with pytest.raises(ValueError, match="positive"):
        resample_crops(crops, 0)
