"""Tests for napari_cellae.core.normalisation: per-channel ranges, scaling, round trip."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_cellae.core.normalisation import Normalisation


def test_normalisation_uint8_uint16_and_round_trip() -> None:
    rng = np.random.default_rng(0)
    for dtype, top in (("uint8", 255), ("uint16", 40000)):
        crops = rng.integers(0, top + 1, (500, 2, 8, 8)).astype(dtype)
        crops[:, 1] //= 4
        norm = Normalisation.from_crops(crops)
        assert len(norm.low) == 2
        assert norm.high[1] < norm.high[0]  # per-channel ranges
        assert norm.high[0] > 0.95 * top  # 16-bit range used, not 8-bit
        out = norm.apply(crops)
        assert out.dtype == np.float32
        assert out.min() == 0.0 and out.max() == 1.0
        tensor_out = norm.apply(torch.from_numpy(crops))
        np.testing.assert_allclose(tensor_out.numpy(), out, atol=1e-6)
        again = Normalisation.from_dict(norm.to_dict())
        assert again == norm


def test_normalisation_constant_and_errors() -> None:
    crops = np.full((3, 2, 4, 4), 7, np.uint8)
    crops[:, 0, 1, 1] = 200  # channel 0 has an image, channel 1 is blank
    with pytest.warns(UserWarning, match=r"channel\(s\) 1 \(0 = first cropped\) of the 3 crop"):
        norm = Normalisation.from_crops(crops)
    norm = Normalisation(norm.low[1:], norm.high[1:])
    assert norm.high[0] > norm.low[0]
    assert (norm.apply(np.full((1, 1, 4, 4), 7, np.uint8)) == 0).all()
    with pytest.raises(ValueError, match="NaN"):
        Normalisation.from_crops(np.full((2, 1, 4, 4), np.nan, np.float32))
    infinite = np.ones((2, 1, 4, 4), np.float32)
    infinite[0, 0, 0, 0] = np.inf  # warned 'invalid value in subtract', then 'invalid range'
    with pytest.raises(ValueError, match="infinite pixels; cannot choose"):
        Normalisation.from_crops(infinite)
    with pytest.raises(ValueError, match="invalid normalisation"):
        Normalisation.from_dict({"low": [1.0], "high": [0.0]})
    with pytest.raises(ValueError, match="expected"):
        Normalisation(low=[0.0], high=[1.0]).apply(np.zeros((1, 2, 4, 4)))


def test_per_cell_scaling_ignores_the_brightness_of_the_well() -> None:
    import torch

    rng = np.random.default_rng(0)
    cell = rng.integers(100, 1000, (3, 2, 16, 16)).astype(np.uint16)
    brighter = (cell.astype(np.float64) * 1.7 + 50).round().astype(np.uint16)
    norm = Normalisation.from_crops(cell, per_cell=True)
    a, b = norm.apply(cell), norm.apply(brighter)
    assert a.dtype == np.float32 and a.min() == 0.0 and a.max() == 1.0
    np.testing.assert_allclose(a, b, atol=2e-3)  # only rounding of the brighter copy differs
    t = norm.apply(torch.from_numpy(cell.astype(np.int32)))
    np.testing.assert_allclose(t.numpy(), a, atol=1e-5)
    back = Normalisation.from_dict(norm.to_dict())
    assert back == norm and back.per_cell
    assert not Normalisation.from_dict({"low": [0.0], "high": [1.0]}).per_cell
    flat = np.full((1, 1, 4, 4), 7, np.uint8)  # a constant crop must not divide by zero
    assert np.all(np.isfinite(norm.apply(np.repeat(flat, 2, axis=1))))


def test_saturated_pixels_counts_the_top_of_a_fixed_scale_per_channel():
    norm = Normalisation([0.0, 0.0], [100.0, 10.0])
    crops = np.zeros((3, 2, 4, 4), np.uint16)
    crops[0, 0, 0, :2] = 100  # at the top counts
    crops[1, 1, 1, 1] = 11
    crops[2, 0, 2, 2] = 99
    np.testing.assert_array_equal(norm.saturated_pixels(crops), [2, 1])
    assert Normalisation([0.0], [1.0], per_cell=True).saturated_pixels(crops[:, :1]) is None


def test_flat_or_tiny_float_crops_still_scale() -> None:
    # A flat float image at 1e20: high = low + 1 equalled low and the run stopped with
    # "invalid normalisation range", naming no file; now it warns like any flat channel.
    flat = np.full((4, 1, 6, 6), 1e20, np.float32)
    with pytest.warns(UserWarning, match="hold one value"):
        norm = Normalisation.from_crops(flat)
    assert norm.high[0] > norm.low[0]
    assert np.all(norm.apply(flat) == 0)
    # Float pixels of 1e-35: the fixed 1e-6 floor of the per-cell range made every crop 0.
    rng = np.random.default_rng(1)
    cells = rng.uniform(5, 200, (3, 1, 8, 8)).astype(np.float32)
    per_cell = Normalisation([0.0], [1.0], per_cell=True)
    expected = per_cell.apply(cells)
    tiny = per_cell.apply(cells * np.float32(1e-35))
    assert tiny.max() == 1.0
    np.testing.assert_allclose(tiny, expected, atol=1e-5)
    np.testing.assert_allclose(
        per_cell.apply(torch.from_numpy(cells * np.float32(1e-35))).numpy(), expected, atol=1e-5
    )
    # Flat crops still scale to 0 without dividing by zero, at every level.
    for level in (0.0, 1e-30, 7.0, 6e4):
        crop = np.full((1, 1, 4, 4), level, np.float32)
        assert np.all(per_cell.apply(crop) == 0)


def test_scale_check_adds_up_batches_per_channel():
    from napari_cellae.core.scale_check import ScaleCheck

    check = ScaleCheck(Normalisation([0.0, 0.0], [100.0, 1000.0]))
    first = np.zeros((2, 2, 4, 4), np.uint16)
    first[0, 0, 0, :2] = 100  # 2 channel-0 pixels at the top
    second = np.zeros((1, 2, 4, 4), np.uint16)
    second[0, 1, 1, 1] = 120  # channel 1's brightest: 12 % of its scale
    check.add(first)
    check.add(second)
    check.add(second[:0])
    assert check.pixels == 48
    np.testing.assert_array_equal(check.saturated, [2, 0])
    np.testing.assert_array_equal(check.brightest, [100, 120])
    with pytest.warns(UserWarning) as caught:
        check.warn(["dna", "actin"])
    assert [str(w.message)[:40] for w in caught] == [
        "the brightest pixels of channel(s) actin",
    ]  # 2 of 48 pixels at the top of channel 0: below 5 %
    assert "actin (scale 0 to 1000)" in str(caught[0].message)


def test_a_range_too_narrow_for_float32_keeps_the_image() -> None:
    # Float pixels 1e-39 apart near 2e-38 (finite, normal float32): 1 / range overflowed
    # float32, every pixel became 1 and the cast warned of an overflow.
    crops = (2e-38 + np.linspace(0, 1e-39, 32)).astype(np.float32).reshape(2, 1, 4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        norm = Normalisation.from_crops(crops)
        scale, offset = norm.scale_offset()
        out = norm.apply(crops)
    assert np.all(np.isfinite(scale)) and np.all(np.isfinite(offset))
    assert out.min() == 0.0 and 0.0 < out.max() <= 1.0
    assert np.all(np.diff(out.ravel()) >= 0) and len(np.unique(out)) > 10  # contrast kept


@pytest.mark.parametrize(
    ("dtype", "base"),
    [(np.uint32, 4_000_000_000), (np.int64, 2**40), (np.float64, 1e10), (np.int32, -(2**31) + 7)],
)
@pytest.mark.parametrize("per_cell", [True, False])
def test_wide_dtypes_keep_a_small_range_on_a_large_base(dtype, base, per_cell) -> None:
    # A 3000-count signal on a base of 4e9 (uint32), 2**40 (int64) or 1e10 (float64):
    # float32 holds such values 512 ... 2**17 apart, so scaling them in float32 left 9, 1
    # or 4 grey levels of 3000 (int64: every pixel the same) where uint16 keeps them all.
    rng = np.random.default_rng(0)
    narrow = rng.integers(0, 3000, (4, 1, 20, 20)).astype(np.uint16)
    wide = (narrow.astype(np.float64) + base).astype(dtype)
    expected = Normalisation.from_crops(narrow, per_cell=per_cell).apply(narrow)
    norm = Normalisation.from_crops(wide, per_cell=per_cell)
    for data in (wide, torch.from_numpy(wide)):
        out = np.asarray(norm.apply(data))
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, expected, atol=1e-5)
    brightness = norm.brightness(wide)
    np.testing.assert_allclose(brightness, norm.brightness(narrow), rtol=1e-6)
