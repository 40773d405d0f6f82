"""Crops resampled to the network's input size."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from napari_cellae.core.resample import (
    bbox_extents,
    box_for_cells,
    fitting_box,
    resample_crops,
    small_for_box,
    warn_box_fit,
    warn_extents,
)


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


@pytest.mark.parametrize("dtype", ["int32", "uint32"])
def test_32_bit_maxima_stay_maxima(dtype: str) -> None:
    # float32 holds 2**31 - 1 and 2**32 - 1 as 2**31 and 2**32; clipped there, the cast back
    # wrapped them to the dtype's minimum, with a RuntimeWarning.
    top = np.iinfo(dtype).max
    crops = np.zeros((2, 1, 8, 8), dtype)
    crops[0] = top  # saturated
    crops[1, ..., 4:] = top  # half saturated
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for size in (4, 16):
            out = resample_crops(crops, size)
            assert np.all(out[0] == top) and out[1].max() == top and out.min() == 0


@pytest.mark.parametrize(("dtype", "base"), [("uint32", 4_000_000_000), ("float64", 1e10)])
def test_a_small_range_on_a_large_base_keeps_its_grey_levels(dtype: str, base: float) -> None:
    # Resampled in float32, 4e9 + 0 .. 3000 came back in steps of 512 (1e10: of 1024).
    rng = np.random.default_rng(1)
    narrow = rng.integers(0, 3000, (3, 1, 24, 24)).astype(np.uint16)
    wide = (narrow.astype(np.float64) + base).astype(dtype)
    for size in (12, 40):
        expected = resample_crops(narrow, size).astype(np.float64) + base
        np.testing.assert_allclose(resample_crops(wide, size).astype(np.float64), expected, atol=1)


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


def _cells(extents: list[int], box: int) -> SimpleNamespace:
    """What the box checks read of a CropSet: bounding boxes and the crop box."""
    bbox = np.array([[0, e - 1, 0, e - 1] for e in extents], np.int32)
    return SimpleNamespace(bbox=bbox, box=box)


def test_small_cells_are_told_a_box_that_fits_them() -> None:
    # 95 % of the cells at most 19 px across: a 24 px box, seen by a 40 px network
    small = _cells([14] * 90 + [19] * 10, 40)
    assert small_for_box(small) == 24
    # the widget's names too: napari shows the warning beside a form without options
    with pytest.warns(UserWarning, match=r"f\.ch5: .*small for the 40 px crop box.*"
                      r"--crop-size 24 --input-size 40; 'Cell size' and 'Network input' "
                      r"in the widget"):  # fmt: skip
        warn_box_fit(small, "nuclei", "f.ch5")
    assert small_for_box(_cells([23] * 90 + [32] * 10, 40)) is None  # they fit a 40 px box
    assert small_for_box(_cells([0] * 10, 40)) is None  # no bounding boxes stored
    assert small_for_box(_cells([3] * 10, 24)) == 16  # never below 16 px
    assert small_for_box(_cells([3] * 10, 16)) is None  # ... so nothing to advise at 16 px


def test_cells_larger_than_the_box_are_told_a_box_that_holds_them() -> None:
    with pytest.warns(UserWarning, match=r"larger than the 16 px crop box.*about 24 px"):
        warn_box_fit(_cells([20] * 10, 16), "nuclei", "f.ch5")


def test_extents_are_the_larger_bounding_box_side() -> None:
    bbox = np.array([[10, 19, 5, 34], [0, 0, 0, 0]])  # 10 x 30 px; a centre-only box
    assert bbox_extents(bbox).tolist() == [30, 1]
    assert bbox_extents(np.zeros((3, 4), np.int32)) is None  # centres only: no sizes
    assert bbox_extents(np.zeros((0, 4), np.int32)) is None  # no cells


def test_fitting_box_holds_95_percent_with_a_margin() -> None:
    assert fitting_box(np.array([20] * 96 + [200] * 4)) == 24  # 20 + 4, the outliers left
    assert fitting_box(np.array([60] * 100)) == 64
    assert fitting_box(np.array([3] * 100)) == 16  # never below 16 px


def test_the_box_for_cells_changes_only_when_the_network_box_cuts_them() -> None:
    assert box_for_cells(np.array([50] * 100), 40) == 56  # cut off: a box that holds them
    assert box_for_cells(np.array([14] * 90 + [19] * 10), 40) is None  # small: left alone
    assert box_for_cells(np.array([22] * 100 + [36] * 10), 40) is None  # they fit 40 px
    # up to 5 % may be larger than the box (a few clumps) without changing it
    assert box_for_cells(np.array([30] * 96 + [48] * 4), 40) is None
    assert box_for_cells(np.array([30] * 90 + [48] * 10), 40) == 56
    assert box_for_cells(None, 40) is None  # no bounding boxes in the file


def test_cut_cells_are_never_told_a_box_larger_than_the_images() -> None:
    # every object spans the whole 64 x 80 px image: 'a cell size of about 88 px' was
    # advised, which the crop box check then refuses (88 px > the 64 px shorter side)
    with pytest.warns(UserWarning) as told:
        warn_extents(np.full(32, 80), 64, "nuclei", "f.ch5", image_side=64)
    (text,) = [str(w.message) for w in told]
    assert "100% of the 'nuclei' objects are larger than the 64 px crop box" in text
    assert "whole image" in text and "segmentation" in text and "--object" in text
    assert "88 px" not in text and "cell size of" not in text
    # large cells, not image-sized: the largest box the images allow, and what it holds
    cells = np.array([50] * 15 + [53] * 5)  # 95 % within 53 + 4 px: 64 px, > the 60 px side
    with pytest.warns(UserWarning, match=r"cell size of 56 px, the largest the images allow "
                      r"\(their shorter side is 60 px\), would hold 100% of them"):  # fmt: skip
        warn_extents(cells, 40, "nuclei", "f.ch5", image_side=60)
    with pytest.warns(UserWarning, match=r"no larger crop box fits the images"):
        warn_extents(np.array([40] * 18 + [58] * 2), 56, "nuclei", "f.ch5", image_side=60)
    with pytest.warns(UserWarning, match=r"about 64 px would hold 95 %"):  # it fits: as before
        warn_extents(cells, 40, "nuclei", "f.ch5", image_side=64)


def _interpolation(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of bilinear resampling with pixel centres at half steps: a
    triangle of one input pixel's reach, clamped at the edges, when enlarging; widened to
    the scale (anti-aliasing) and normalised when shrinking."""
    scale = n_in / n_out
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        if scale <= 1:
            source = max((i + 0.5) * scale - 0.5, 0.0)
            left = min(int(source), n_in - 1)
            weights[i, left] += 1 - (source - left)
            weights[i, min(left + 1, n_in - 1)] += source - left
        else:
            distance = np.abs(np.arange(n_in) + 0.5 - (i + 0.5) * scale) / scale
            weights[i] = np.maximum(1 - distance, 0) / np.maximum(1 - distance, 0).sum()
    return weights


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32", "float64"])
def test_resampling_is_bilinear_and_antialiased_as_a_weight_matrix(dtype: str) -> None:
    """Against separable weights computed pixel by pixel, over odd and even sizes both
    ways: exact but for float32 rounding, so integers within one count (a rounding tie of
    float32 can round the other way), floats within 1e-5 of the crops' largest value."""
    rng = np.random.default_rng(len(dtype))
    for _ in range(30):
        side, size = int(rng.integers(1, 40)), int(rng.integers(1, 70))
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 3)), side, side)
        if dtype.startswith("float"):
            crops = rng.normal(0, 100, shape).astype(dtype)
        else:
            info = np.iinfo(dtype)
            crops = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
        weights = _interpolation(side, size)
        expected = np.einsum("ij,ncjk,lk->ncil", weights, crops.astype(np.float64), weights)
        if dtype.startswith("float"):
            tolerance = 1e-5 * float(np.abs(crops).max())
        else:
            expected = np.clip(np.rint(expected), np.iinfo(dtype).min, np.iinfo(dtype).max)
            tolerance = 1
        got = resample_crops(crops, size)
        assert got.dtype == crops.dtype and got.shape == (*shape[:2], size, size)
        np.testing.assert_allclose(got.astype(np.float64), expected, rtol=0, atol=tolerance)
