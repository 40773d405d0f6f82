"""Tests for napari_cellae.core.windows: origins, borders, dtypes, one read per frame,
objects centred in their crops at the image border."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import asymmetric_image, centred_crop, image_window, naive_crop
from napari_cellae.core.windows import centre_crops, crop_origins, extract_crops


def test_crop_origins_centred_and_shifted_inside() -> None:
    y0, x0 = crop_origins(np.array([15, 0, 29, 3]), np.array([25, 49, 0, 47]), 10, 30, 50)
    np.testing.assert_array_equal(y0, [10, 0, 20, 0])
    np.testing.assert_array_equal(x0, [20, 40, 0, 40])


def test_crop_origins_too_large() -> None:
    with pytest.raises(ValueError, match=r"crop size 40 px is larger than the image \(30 x 50"):
        crop_origins(np.array([1]), np.array([1]), 40, 30, 50)
    # and says what to do: a box the image holds
    with pytest.raises(ValueError, match=r"of at most 30 px \(--crop-size"):
        crop_origins(np.array([1]), np.array([1]), 40, 30, 50)


@pytest.mark.parametrize(
    ("dtype", "value", "message"),
    [
        # Within float32, but max - min overflows: percentiles and scaling gave NaN.
        ("float32", 3.4e38, r"beyond the float32 range .*\(e\.g\. 3\.4e\+38, where at most"),
        # Finite in float64, all 0 in float32: the network saw blank crops, silently.
        ("float64", 1e-300, r"only pixels below the float32 range .*\(at most 1e-300\)"),
        # Not exact in float64: the scaling's range collapsed ("invalid normalisation range").
        ("int64", -(2**62), r"beyond ±2\*\*53 .*\(e\.g\. 4\.612e\+18\)"),
        ("uint64", 2**63, r"beyond ±2\*\*53 .*\(e\.g\. 9\.223e\+18\)"),
    ],
)
def test_pixels_that_cannot_be_computed_with_are_refused(
    dtype: str, value: float, message: str
) -> None:
    image = np.zeros((1, 1, 1, 20, 30), dtype)
    image[0, 0, 0, 5:15, 5:15] = value
    with pytest.raises(ValueError, match=r"^the image .*" + message):
        extract_crops(image, np.array([0]), np.array([10]), np.array([10]), 8, [0])
    # Ordinary magnitudes pass: 1e-30 floats, 2**53 integers, an all-zero float image.
    fine = np.full_like(image, 2**53 if image.dtype.kind in "iu" else 1e-30)
    assert extract_crops(fine, np.array([0]), np.array([10]), np.array([10]), 8, [0]).size
    zero = np.zeros((1, 1, 1, 20, 30), "float64")
    assert not extract_crops(zero, np.array([0]), np.array([10]), np.array([10]), 8, [0]).any()


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
    image[0, 0, 0, 10, 10] = np.inf
    with pytest.raises(ValueError, match="contains NaN or infinite pixels"):
        extract_crops(image, np.array([0]), np.array([10]), np.array([10]), 6, [0])
    # Finite in float64 but infinite in the network's float32: it seemed to diverge.
    wide = image.astype(np.float64)
    wide[0, 0, 0, 10, 10] = -1e300
    with pytest.raises(ValueError, match=r"beyond the float32 range .*\(e\.g\. 1e\+300,"):
        extract_crops(wide, np.array([0]), np.array([10]), np.array([10]), 6, [0])
    image[0, 0, 0, 10, 10] = np.nan
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


# Objects at the four edges, the four corners and (last) inside a 30 x 50 image.
BORDER_YX = [(0, 25), (29, 25), (15, 0), (15, 49), (0, 0), (1, 48), (29, 0), (28, 49), (15, 25)]


@pytest.mark.parametrize("size", [10, 9])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_centre_crops_moves_border_objects_to_the_centre(dtype: str, size: int) -> None:
    image = asymmetric_image(dtype, c=2, t=2)
    cy, cx = (np.array(v) for v in zip(*BORDER_YX, strict=True))
    t = np.arange(len(cy)) % 2
    crops = extract_crops(image, t, cy, cx, size, [1, 0])
    before = crops.copy()
    y0, x0 = crop_origins(cy, cx, size, 30, 50)
    new_y, new_x = centre_crops(crops, cy, cx, y0, x0)
    half = size // 2
    assert new_y.dtype == new_x.dtype == np.int32
    np.testing.assert_array_equal(new_y, cy - half)
    np.testing.assert_array_equal(new_x, cx - half)
    assert crops.dtype == np.dtype(dtype)
    for i in range(len(cy)):
        for j, c in enumerate([1, 0]):
            crop = crops[i, j]
            # The object's own pixel at the centre; the in-image part is the image itself.
            assert crop[half, half] == image[c, t[i], 0, cy[i], cx[i]]
            window, inside = image_window(image[c, t[i], 0], int(new_y[i]), int(new_x[i]), size)
            np.testing.assert_array_equal(crop[inside], window[inside])
            # Outside: the lower median (a pixel value) of the edge ring of the window as
            # read (shifted inside).
            read = before[i, j]
            ring = np.concatenate([read[0], read[-1], read[1:-1, 0], read[1:-1, -1]])
            level = np.quantile(ring, 0.5, method="lower")
            assert (~inside).any() == (i < len(cy) - 1)
            np.testing.assert_array_equal(crop[~inside], np.asarray(level, dtype))
            np.testing.assert_array_equal(crop, centred_crop(image, c, t[i], cy[i], cx[i], size))
    # The object inside the image: untouched, byte for byte.
    assert crops[-1].tobytes() == before[-1].tobytes()


def test_centre_crops_leaves_crops_that_were_not_moved() -> None:
    image = asymmetric_image("uint16", c=1, t=1)
    cy, cx = np.array([10, 0, 20]), np.array([10, 3, 30])
    crops = extract_crops(image, np.zeros(3, int), cy, cx, 8, [0])
    before = crops.copy()
    y0, x0 = crop_origins(cy, cx, 8, 30, 50)
    centre_crops(crops, cy, cx, y0, x0)
    assert crops[[0, 2]].tobytes() == before[[0, 2]].tobytes()
    assert crops[1].tobytes() != before[1].tobytes()
    with pytest.raises(ValueError, match="same length"):
        centre_crops(crops, cy[:2], cx, y0, x0)


def _centred(image, t, cy, cx, size, channels) -> np.ndarray:
    """Crops as collect_crops makes them: extracted, then border objects centred."""
    crops = extract_crops(image, t, cy, cx, size, channels)
    centre_crops(crops, cy, cx, *crop_origins(cy, cx, size, *image.shape[-2:]))
    return crops


def test_extract_then_centre_matches_the_reference() -> None:
    image = asymmetric_image("uint8")
    t, cy, cx = np.array([0, 1, 2]), np.array([0, 15, 29]), np.array([49, 25, 0])
    crops = _centred(image, t, cy, cx, 12, [0, 1])
    for i in range(3):
        for j in range(2):
            expected = centred_crop(image, j, t[i], cy[i], cx[i], 12)
            np.testing.assert_array_equal(crops[i, j], expected)


def test_centre_crops_in_several_blocks_matches_the_reference() -> None:
    # 64 px crops in a 70 x 90 image: nearly all move, in blocks of 256 crops.
    rng = np.random.default_rng(3)
    image = rng.integers(0, 4000, (1, 1, 1, 70, 90)).astype(np.uint16)
    n = 600
    cy, cx = rng.integers(0, 70, n), rng.integers(0, 90, n)
    crops = _centred(image, np.zeros(n, int), cy, cx, 64, [0])
    for i in range(n):
        np.testing.assert_array_equal(crops[i, 0], centred_crop(image, 0, 0, cy[i], cx[i], 64))


def test_cells_far_apart_are_read_in_smaller_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """One window spanning a frame's cells was read: for cells in opposite corners of a
    huge image it could not be allocated (931 GiB for a 10**6 px square image)."""
    from napari_cellae.core import windows
    from napari_cellae.io.planes import PlaneReader

    image = asymmetric_image("uint16", c=1, t=2)
    t = np.array([0, 0, 0, 1, 1])
    cy, cx = np.array([3, 26, 15, 2, 27]), np.array([3, 46, 25, 47, 2])
    expected = extract_crops(image, t, cy, cx, 6, [0])
    areas: list[int] = []
    original = PlaneReader.windows

    def read(self, channels, frame, r0, r1, q0, q1):
        areas.append((r1 - r0) * (q1 - q0))
        return original(self, channels, frame, r0, r1, q0, q1)

    monkeypatch.setattr(windows, "_WINDOW_PIXELS", 100)
    monkeypatch.setattr(PlaneReader, "windows", read)
    np.testing.assert_array_equal(extract_crops(image, t, cy, cx, 6, [0]), expected)
    assert max(areas) <= 100
