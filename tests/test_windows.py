"""Tests for napari_cellae.core.windows: origins, borders, dtypes, one read per frame."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import asymmetric_image, naive_crop
from napari_cellae.core.windows import crop_origins, extract_crops


def test_crop_origins_centred_and_shifted_inside() -> None:
    y0, x0 = crop_origins(np.array([15, 0, 29, 3]), np.array([25, 49, 0, 47]), 10, 30, 50)
    np.testing.assert_array_equal(y0, [10, 0, 20, 0])
    np.testing.assert_array_equal(x0, [20, 40, 0, 40])


def test_crop_origins_too_large() -> None:
    with pytest.raises(ValueError, match=r"crop size 40 px is larger than the image \(30 x 50"):
        crop_origins(np.array([1]), np.array([1]), 40, 30, 50)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_extract_equals_naive_no_transpose(dtype: str) -> None:
    image = asymmetric_image(dtype)
    t = np.array([2, 0, 1, 2, 0])
    cy = np.array([0, 29, 15, 7, 28])
    cx = np.array([49, 0, 25, 3, 48])
    crops = extract_crops(image, t, cy, cx, 12, [1, 0])
    assert crops.dtype == np.dtype(dtype)
    assert crops.shape == (5, 2, 12, 12)
    assert crops.flags.c_contiguous
    y0, x0 = crop_origins(cy, cx, 12, 30, 50)
    for i in range(5):
        for j, c in enumerate([1, 0]):
            np.testing.assert_array_equal(crops[i, j], naive_crop(image, c, t[i], cy[i], cx[i], 12))
            # crop[y, x] == image[y0 + y, x0 + x]: check one off-diagonal pixel explicitly
            assert crops[i, j, 3, 7] == image[c, t[i], 0, y0[i] + 3, x0[i] + 7]


def test_extract_border_window_is_not_padded() -> None:
    image = asymmetric_image("uint16", c=1, t=1)
    crop = extract_crops(image, np.array([0]), np.array([0]), np.array([0]), 8, [0])[0, 0]
    np.testing.assert_array_equal(crop, image[0, 0, 0, :8, :8])
    assert (crop > 0).sum() == 63  # only the image's own (0, 0) pixel is 0: no padding


def test_extract_uint16_keeps_high_values() -> None:
    image = np.full((1, 1, 1, 20, 20), 60000, dtype=np.uint16)
    crops = extract_crops(image, np.array([0]), np.array([10]), np.array([10]), 6, [0])
    assert crops.dtype == np.uint16
    assert crops.max() == 60000


def test_extract_single_and_zero_objects() -> None:
    image = asymmetric_image("uint8", c=1, t=1)
    one = extract_crops(image, np.array([0]), np.array([5]), np.array([5]), 4, [0])
    assert one.shape == (1, 1, 4, 4)
    none = extract_crops(image, np.array([], int), np.array([], int), np.array([], int), 4, [0])
    assert none.shape == (0, 1, 4, 4)


def test_extract_errors() -> None:
    image = asymmetric_image("uint8", c=1, t=2)
    one = np.array([0])
    with pytest.raises(ValueError, match="larger than the image"):
        extract_crops(image, one, one, one, 31, [0])
    with pytest.raises(ValueError, match="channel 3"):
        extract_crops(image, one, one, one, 4, [3])
    with pytest.raises(ValueError, match="time_idx"):
        extract_crops(image, np.array([2]), one, one, 4, [0])


def test_extract_nan_pixels(tmp_path: Path) -> None:
    image = np.zeros((1, 1, 1, 20, 20), dtype=np.float32)
    image[0, 0, 0, 10, 10] = np.nan
    path = tmp_path / "nan.h5"
    with h5py.File(path, "w") as f:
        f["img"] = image
    with (
        h5py.File(path, "r") as f,
        pytest.raises(ValueError, match=r"/img in .*nan\.h5 contains NaN"),
    ):
        extract_crops(f["img"], np.array([0]), np.array([10]), np.array([10]), 6, [0])
    # NaN outside every crop is harmless
    crops = extract_crops(image, np.array([0]), np.array([2]), np.array([2]), 4, [0])
    assert not np.isnan(crops).any()


def test_extract_reads_each_frame_once(tmp_path: Path) -> None:
    """h5py reads: one per (frame, channel), not one per object."""
    image = asymmetric_image("uint16", c=2, t=3)
    rng = np.random.default_rng(0)
    n = 200
    t, cy, cx = rng.integers(0, 3, n), rng.integers(0, 30, n), rng.integers(0, 50, n)

    class CountingDataset:
        def __init__(self, data: np.ndarray) -> None:
            self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, 0

        def __getitem__(self, key: tuple) -> np.ndarray:
            self.reads += 1
            return self.data[key]

    counting = CountingDataset(image)
    crops = extract_crops(counting, t, cy, cx, 10, [0, 1])
    assert counting.reads == 3 * 2
    np.testing.assert_array_equal(crops, extract_crops(image, t, cy, cx, 10, [0, 1]))
