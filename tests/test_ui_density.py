"""The density image of a large embedding: bins, majority colours, opacity, spotlight."""

from __future__ import annotations

import numpy as np

from napari_cellae._ui.colouring import categorical, continuous
from napari_cellae._ui.density import DensityGrid, _majority


def test_cells_land_in_their_bins():
    unit = np.array([[0.0, 0.0], [0.99, 0.0], [0.0, 0.6], [1.0, 1.0]])
    grid = DensityGrid(unit, bins=4)
    # (row, column) -> row * 4 + column; the far edge belongs to the last bin
    np.testing.assert_array_equal(grid.index, [0, 12, 2, 15])
    assert grid.counts.sum() == 4 and grid.counts.shape == (16,)


def test_a_bin_takes_its_majority_category_and_opacity_grows_with_count():
    unit = np.array([[0.1, 0.1]] * 3 + [[0.1, 0.9]] * 1 + [[0.9, 0.9]] * 2)
    colouring = categorical("condition", ["a", "b", "b", "a", "a", "b"])
    grid = DensityGrid(unit, bins=2)
    image = grid.render(colouring)
    assert image.shape == (2, 2, 4) and image.dtype == np.uint8
    red_b = np.round(colouring.palette[1, :3] * 255)
    red_a = np.round(colouring.palette[0, :3] * 255)
    np.testing.assert_array_equal(image[0, 0, :3], red_b)  # two b, one a
    np.testing.assert_array_equal(image[0, 1, :3], red_a)
    assert image[1, 0, 3] == 0  # empty
    assert image[0, 0, 3] == 255  # the fullest bin is opaque
    assert 0 < image[0, 1, 3] < image[1, 1, 3] < image[0, 0, 3]
    # only some cells: the bin of cell 3 alone
    part = grid.render(colouring, np.array([3]))
    assert part[0, 1, 3] == 255 and part[0, 0, 3] == 0


def test_continuous_colourings_average_the_level():
    unit = np.array([[0.2, 0.2], [0.2, 0.2], [0.8, 0.8]])
    colouring = continuous("novelty", np.array([0.0, 1.0, 1.0]), (0.0, 1.0))
    image = DensityGrid(unit, bins=2).render(colouring)
    middle = np.round(colouring.palette[128, :3] * 255)  # mean of levels 0 and 255
    np.testing.assert_array_equal(image[0, 0, :3], middle)
    np.testing.assert_array_equal(image[1, 1, :3], np.round(colouring.palette[255, :3] * 255))


def test_majority_equals_counting_by_hand():
    rng = np.random.default_rng(3)
    index = rng.integers(0, 20, 500)
    codes = rng.integers(0, 4, 500)
    got = _majority(index, codes, 4, 25)
    for b in range(25):
        counts = np.bincount(codes[index == b], minlength=4)
        if counts.sum() == 0:
            assert got[b] == 0
        else:
            assert counts[got[b]] == counts.max()
    assert np.all(_majority(index[:0], codes[:0], 4, 25) == 0)


def test_spotlight_dims_the_rest():
    base = np.full((2, 2, 4), 200, np.uint8)
    selected = np.zeros((2, 2, 4), np.uint8)
    selected[1, 1] = (1, 2, 3, 255)
    out = DensityGrid.spotlight(base, selected)
    np.testing.assert_array_equal(out[1, 1], (1, 2, 3, 255))
    assert out[0, 0, 3] == 40 and np.all(out[0, 0, :3] == 200)
    assert base[0, 0, 3] == 200  # not changed in place
