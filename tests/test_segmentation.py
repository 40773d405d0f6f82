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
