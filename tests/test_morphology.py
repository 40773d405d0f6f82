"""core.morphology: outline measurements of masks, as scikit-image measures them, for a whole
stack at once; measured on every masked crop; the feature columns novelty scores apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.measure import regionprops

from conftest import synthetic_position
from napari_cellae.core.crops import collect_crops
from napari_cellae.core.morphology import MORPHOLOGY_NAMES, mask_morphology, novelty_views
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5


def _disc(size: int, cy: float, cx: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def _shapes(n: int = 24, size: int = 40, seed: int = 0) -> np.ndarray:
    """Random blobs: unions of 1-3 ellipses, some far apart (two nuclei in one mask)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    masks = np.zeros((n, size, size), bool)
    for mask in masks:
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(8, size - 8, 2)
            a, b = rng.uniform(2, 7, 2)
            t = rng.uniform(0, np.pi)
            u = (yy - cy) * np.cos(t) + (xx - cx) * np.sin(t)
            v = -(yy - cy) * np.sin(t) + (xx - cx) * np.cos(t)
            mask |= (u / a) ** 2 + (v / b) ** 2 <= 1
    return masks


def test_the_measurements_are_those_of_regionprops():
    masks = _shapes()
    got = mask_morphology(masks)
    assert got.shape == (len(masks), 5) and got.dtype == np.float32
    for mask, row in zip(masks, got, strict=True):
        props = regionprops(mask.astype(np.uint8))[0]
        expected = [props.area, props.axis_major_length, props.axis_minor_length]
        np.testing.assert_allclose(row[:3], expected, rtol=1e-4)
        assert row[3] == pytest.approx(props.eccentricity, abs=1e-4)
        # the hull's pixels counted from its polygon, not from a drawn hull image
        assert row[4] == pytest.approx(props.solidity, rel=0.03)


def test_solidity_of_thin_and_tiny_masks_is_that_of_regionprops():
    # The hull's pixels were once estimated from its area and perimeter (Pick's theorem),
    # which counted a slanted edge's length, not the pixel centres on it: a diagonal line
    # came out 0.73 convex and two diagonal pixels 0.83, where regionprops says 1.
    small = np.zeros((6, 12, 12), bool)
    np.fill_diagonal(small[0], True)  # a diagonal line
    small[1, 4, 4] = small[1, 5, 5] = True  # two diagonal pixels
    small[2, 2:9, 3] = small[2, 8, 3:9] = True  # an L
    small[3, 0, 0] = True  # one pixel in the corner
    small[4, 1, 1] = small[4, 9, 3] = True  # two pixels apart, slanted
    small[5, 3, 2:10] = small[5, 4, 1:11] = True  # a thin slab
    masks = np.concatenate([small, _shapes(size=12 * 3)[:, :12, :12]])
    masks = masks[masks.any(axis=(1, 2))]
    got = mask_morphology(masks)[:, 4]
    expected = np.array([regionprops(m.astype(np.uint8))[0].solidity for m in masks])
    np.testing.assert_allclose(got[: len(small)], expected[: len(small)], rtol=1e-6)
    assert np.median(np.abs(got - expected) / expected) < 1e-6


def test_a_disc_and_two_discs():
    one = _disc(40, 20, 20, 8)
    two = _disc(40, 12, 12, 5) | _disc(40, 28, 28, 5)
    area, major, minor, eccentricity, solidity = mask_morphology(np.stack([one, two])).T
    assert area[0] == one.sum() and major[0] == pytest.approx(minor[0], rel=0.01)
    assert major[0] == pytest.approx(16, rel=0.03) and eccentricity[0] < 0.1
    assert solidity[0] == pytest.approx(0.925, abs=0.01)  # regionprops' for this disc
    assert solidity[1] < 0.6 and eccentricity[1] > 0.9  # two nuclei apart: far from convex


def test_turned_and_mirrored_masks_measure_the_same():
    masks = _shapes(seed=3)
    base = mask_morphology(masks)
    for turned in (np.rot90(masks, 1, axes=(1, 2)), masks[:, ::-1], masks[:, :, ::-1]):
        np.testing.assert_allclose(mask_morphology(np.ascontiguousarray(turned)), base, rtol=1e-5)


def test_empty_masks_and_bad_shapes():
    np.testing.assert_array_equal(mask_morphology(np.zeros((2, 8, 8), bool)), 0)
    assert mask_morphology(np.zeros((0, 8, 8), bool)).shape == (0, 5)
    with pytest.raises(ValueError, match="stack"):
        mask_morphology(np.zeros((8, 8), bool))


def test_novelty_views():
    names = ["code_0", "conv1_max_0", *MORPHOLOGY_NAMES, "brightness_H2B"]
    learned, outline = novelty_views(names)
    assert learned.tolist() == [0, 1, 7] and outline.tolist() == [2, 3, 4, 5, 6]
    assert novelty_views(["code_0", "code_1"]) is None
    assert novelty_views(list(MORPHOLOGY_NAMES)) is None  # nothing else: one score


def test_masked_crops_carry_their_cells_outline(cellcognition_file: Path):
    with CellH5(cellcognition_file) as ch5:
        masked = collect_crops(ch5, "primary__primary", 24, mask="cell")
        plain = collect_crops(ch5, "primary__primary", 24)
    assert np.isnan(plain.morphology).all()  # not masked: not measured
    # Each cell's area is its label's pixel count in its frame (boxes of up to 9 x 9 px,
    # partly painted over by later ones where they overlap).
    with CellH5(cellcognition_file) as ch5:
        expected = []
        cells = zip(masked.position_index, masked.time_idx, masked.label_id, strict=True)
        for p, t, label in cells:
            dataset, row = ch5.labels(masked.positions[p], "primary__primary")
            expected.append(np.count_nonzero(dataset[row, t, 0] == label))
    np.testing.assert_array_equal(masked.morphology[:, 0], expected)
    whole = masked.morphology[:, 0] == 81
    np.testing.assert_allclose(masked.morphology[whole, 4], 1.0, atol=1e-6)  # squares
    assert masked.subset([3, 1]).morphology.tolist() == masked.morphology[[3, 1]].tolist()


def test_a_cell_without_its_label_is_measured_by_segmentation(tmp_path: Path):
    position = synthetic_position("A01", "1", n_frames=1, n_per_frame=5, seed=2)
    position.objects["primary__primary"].label_id[1] = 999  # not in the label image
    path = write_cellh5(tmp_path / "p.ch5", [position], ["H2B"], {"primary__primary": 0})
    with CellH5(path) as ch5, pytest.warns(UserWarning, match="left unmasked"):
        masked = collect_crops(ch5, "primary__primary", 24, mask="cell")
        from napari_cellae.core.masking import warn_unmatched

        warn_unmatched(masked.unmatched_positions, "primary__primary", path)
    assert masked.unmatched_positions and masked.morphology[1, 0] > 0
    assert np.isfinite(masked.morphology).all()


def test_chunks_measure_alike(monkeypatch):
    import napari_cellae.core.morphology as morphology

    masks = _shapes(30, seed=5)
    whole = mask_morphology(masks)
    monkeypatch.setattr(morphology, "_BUDGET", 1)  # one mask at a time
    np.testing.assert_array_equal(mask_morphology(masks), whole)
