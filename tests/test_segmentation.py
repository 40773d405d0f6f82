"""Tests for napari_cellae.core.segmentation (cells told apart without label images)."""

from __future__ import annotations

import numpy as np

from napari_cellae.core.segmentation import neighbour_centres, threshold_labels

SIZE = 32


def _disc(cy: float, cx: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def _crop(*cells: tuple[float, float, float, float], background: float = 100.0) -> np.ndarray:
    """One crop (1, s, s) of flat discs (cy, cx, radius, brightness) on a flat background."""
    pixels = np.full((SIZE, SIZE), background)
    for cy, cx, radius, value in cells:
        pixels[_disc(cy, cx, radius)] = value
    return pixels[None].astype(np.uint16)


def _no_neighbours(n: int = 1) -> np.ndarray:
    return np.full((n, 1, 2), np.nan, np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_a_lone_cell_is_found_and_everything_else_is_background() -> None:
    crop = _crop((16, 16, 7, 900))
    labels = threshold_labels(crop, np.array([16]), np.array([16]), _no_neighbours())
    assert _iou(labels[0] == 1, _disc(16, 16, 7)) > 0.9
    assert not (labels == 2).any()


def test_a_dim_cell_beside_a_bright_one_keeps_its_whole_body() -> None:
    # A threshold for the whole crop (Otsu) would sit between the bright neighbour and the
    # background and cut the dim cell; the cell's own centre sets the level here.
    crop = _crop((16, 9, 6, 300), (16, 25, 6, 4000))
    labels = threshold_labels(crop, np.array([16]), np.array([9]), _no_neighbours())
    assert _iou(labels[0] == 1, _disc(16, 9, 6)) > 0.85
    assert (labels[0][_disc(16, 25, 4)] == 2).all()  # the neighbour is another cell


def test_touching_cells_are_split_at_the_midline_between_their_centres() -> None:
    crop = _crop((16, 11, 6, 800), (16, 21, 6, 800))  # one merged blob in the threshold
    neighbours = np.array([[[16.0, 21.0]]], np.float32)
    labels = threshold_labels(crop, np.array([16]), np.array([11]), neighbours)
    own = labels[0] == 1
    assert own.any() and not own[:, 17:].any()  # nothing right of the midline (x = 16)
    assert _iou(own, _disc(16, 11, 6) & (np.arange(SIZE) <= 16)[None]) > 0.85
    assert (labels[0][_disc(16, 21, 4)] == 2).all()


def test_a_dark_centre_is_filled_and_still_the_cell() -> None:
    # A ring (e.g. a nucleus with a dark nucleolus at its centre pixel).
    crop = _crop((16, 16, 8, 900), (16, 16, 1.5, 100))
    labels = threshold_labels(crop, np.array([16]), np.array([16]), _no_neighbours())
    assert _iou(labels[0] == 1, _disc(16, 16, 8)) > 0.9


def test_a_flat_crop_has_no_cell_and_so_is_left_as_it_is() -> None:
    crop = np.full((1, SIZE, SIZE), 7, np.uint8)
    labels = threshold_labels(crop, np.array([16]), np.array([16]), _no_neighbours())
    assert not labels.any()


def test_no_crops_give_no_labels() -> None:
    empty = np.zeros((0, SIZE, SIZE), np.uint16)
    labels = threshold_labels(empty, np.array([]), np.array([]), _no_neighbours(0))
    assert labels.shape == (0, SIZE, SIZE)
    assert neighbour_centres(np.array([]), np.array([]), np.array([]), 10.0).shape[0] == 0


def test_crops_are_segmented_independently_in_one_call() -> None:
    crops = np.concatenate([_crop((16, 16, 5, 900)), _crop((10, 20, 8, 2000), background=300)])
    labels = threshold_labels(crops, np.array([16, 10]), np.array([16, 20]), _no_neighbours(2))
    assert _iou(labels[0] == 1, _disc(16, 16, 5)) > 0.85
    assert _iou(labels[1] == 1, _disc(10, 20, 8)) > 0.85


def test_a_centre_near_the_window_edge_is_handled() -> None:
    crop = _crop((1, 30, 6, 900))
    labels = threshold_labels(crop, np.array([1]), np.array([30]), _no_neighbours())
    assert _iou(labels[0] == 1, _disc(1, 30, 6)) > 0.85


def test_neighbour_centres_are_the_other_objects_of_the_same_frame_within_reach() -> None:
    frame = np.array([0, 0, 0, 1, 0])
    cy = np.array([10, 10, 10, 10, 200])
    cx = np.array([10, 20, 10, 12, 10])  # object 2 sits exactly on object 0
    found = neighbour_centres(frame, cy, cx, reach=40.0)
    first = found[0][~np.isnan(found[0, :, 0])]
    assert sorted(map(tuple, first.tolist())) == [(10.0, 10.0), (10.0, 20.0)]  # not itself
    assert np.isnan(found[3]).all()  # alone in its frame
    assert np.isnan(found[4]).all()  # the others are out of reach
    assert found.shape[1] > 8 and found.dtype == np.float32


def _reference_labels(pixels: np.ndarray, cy: int, cx: int, others: np.ndarray) -> np.ndarray:
    """One crop as the module describes it, step by step: smoothed (1 px, nearest edge),
    threshold 40 % from the 5th percentile to the median of the 3 px disk at the centre
    (none where the centre is not brighter), holes filled, the 4-connected region covering
    most of the disk (the first met row by row among equals), cut to the pixels nearer
    its centre than to every other one."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(pixels.astype(np.float32), 1.0, mode="nearest")
    yy, xx = np.mgrid[: pixels.shape[0], : pixels.shape[1]]
    own = (yy - cy) ** 2 + (xx - cx) ** 2
    disk = own <= 9
    dark, centre = np.percentile(smooth, 5), np.median(smooth[disk])
    foreground = smooth > dark + 0.4 * (centre - dark) if centre > dark else disk & False
    cross = ndimage.generate_binary_structure(2, 1)
    foreground = ndimage.binary_fill_holes(foreground, structure=cross)
    regions, _ = ndimage.label(foreground, structure=cross)
    covered = [((regions == r) & disk).sum() for r in regions[disk & (regions > 0)]]
    cell = regions == (regions[disk & (regions > 0)][np.argmax(covered)] if covered else -1)
    for oy, ox in others:
        cell &= own <= (yy - oy) ** 2 + (xx - ox) ** 2
    return np.where(cell, 1, np.where(foreground, 2, 0))


def test_crops_are_segmented_as_one_at_a_time() -> None:
    """The stack segmented at once (labels across crops, Voronoi split in chunks) against
    the per-crop reference: random blobs, neighbours inside and outside the window, centres
    at the window's edges, odd and even sizes, integer and float pixels."""
    for seed in range(60):
        rng = np.random.default_rng(seed)
        n, side = int(rng.integers(1, 6)), int(rng.integers(3, 25))
        cy, cx = rng.integers(0, side, n), rng.integers(0, side, n)
        yy, xx = np.mgrid[:side, :side]
        pixels = rng.normal(10, 3, (n, side, side))
        neighbours = np.full((n, 6, 2), np.nan, np.float32)
        for i in range(n):
            others = rng.uniform(-5, side + 5, (int(rng.integers(0, 6)), 2))
            neighbours[i, : len(others)] = others
            for py, px in [(cy[i], cx[i]), *others]:
                spread = 2 * rng.uniform(1, 4) ** 2
                pixels[i] += 100 * np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / spread)
        pixels = pixels.clip(0).astype(["uint8", "uint16", "float32"][seed % 3])
        labels = threshold_labels(pixels, cy, cx, neighbours)
        for i in range(n):
            others = neighbours[i][~np.isnan(neighbours[i, :, 0])]
            expected = _reference_labels(pixels[i], cy[i], cx[i], others)
            np.testing.assert_array_equal(labels[i], expected, err_msg=f"seed {seed}, crop {i}")


def test_neighbour_centres_are_the_nearest_others_within_reach_as_by_brute_force() -> None:
    for seed in range(60):
        rng = np.random.default_rng(seed)
        n, reach = int(rng.integers(1, 40)), float(rng.integers(1, 30))
        frame, cy, cx = rng.integers(0, 3, n), rng.integers(0, 50, n), rng.integers(0, 50, n)
        found = neighbour_centres(frame, cy, cx, reach)
        for i in range(n):
            distance = np.hypot(cy - cy[i], cx - cx[i])
            near = (frame == frame[i]) & (distance < reach) & (np.arange(n) != i)
            got = found[i][~np.isnan(found[i, :, 0])]
            got_distance = np.hypot(got[:, 0] - cy[i], got[:, 1] - cx[i])
            expected = np.sort(distance[near])[: found.shape[1] - 1]  # the nearest 16
            np.testing.assert_allclose(np.sort(got_distance), expected)
