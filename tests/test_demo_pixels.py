"""Pixel primitives and placement shared by the synthetic screens."""

from __future__ import annotations

import math

import numpy as np

from napari_cellae.demo.nuclei import place_cells
from napari_cellae.demo.pixels import (
    gauss_kernel,
    measure_labels,
    moments,
    outline_distance,
    smooth,
)


def test_gauss_kernel_and_smooth_keep_the_total() -> None:
    kernel = gauss_kernel(1.5)
    assert len(kernel) == 2 * math.ceil(4.5) + 1
    assert math.isclose(kernel.sum(), 1.0) and kernel.argmax() == len(kernel) // 2
    field = np.zeros((32, 32))
    field[10, 20] = 5.0
    blurred = smooth(field, 2.0)
    assert math.isclose(blurred.sum(), 5.0) and blurred.max() < 1.0
    assert np.unravel_index(blurred.argmax(), blurred.shape) == (10, 20)


def test_moments_of_a_horizontal_bar() -> None:
    ys, xs = np.mgrid[10:13, 4:21]  # 3 rows x 17 columns
    cy, cx, angle, ecc = moments(ys.ravel(), xs.ravel())
    assert (cy, cx) == (11, 12)
    assert abs(angle) < 1e-12 and 0.95 < ecc < 1.0


def test_outline_distance_of_a_circle() -> None:
    u = np.array([0.0, 3.0, 5.0, 8.0])
    dist, rn = outline_distance(u, np.zeros_like(u), 5.0, 5.0)
    np.testing.assert_allclose(dist, [5.0, 2.0, 0.0, -3.0])
    np.testing.assert_allclose(rn, u / 5.0)


def test_measure_labels_drops_small_objects() -> None:
    lab = np.zeros((20, 20), np.uint16)
    lab[2:8, 3:9] = 1  # 36 px
    lab[15, 15] = 2  # 1 px: dropped from the table and the image
    lab[12:16, 2:4] = 3  # 8 px
    rows = measure_labels(lab, 3, min_area=5)
    assert [r[0] for r in rows] == [1, 3]
    assert rows[0][1:7] == (6, 5, 3, 8, 2, 7)  # cx, cy, left, right, top, bottom
    assert lab[15, 15] == 0 and (lab == 3).sum() == 8


class _Disc:
    def __init__(self, extent: float) -> None:
        self.extent, self.y, self.x = extent, 0.0, 0.0


def test_place_cells_keeps_neighbours_apart() -> None:
    rng = np.random.default_rng(0)
    cells = place_cells(rng, [_Disc(6.0) for _ in range(40)], (120, 120), snuggle=0.5)
    assert len(cells) > 30
    centres = np.array([(c.y, c.x) for c in cells])
    d = np.hypot(*(centres[:, None] - centres[None]).transpose(2, 0, 1))
    d[np.diag_indices(len(cells))] = np.inf
    assert d.min() >= 0.78 * 12.0
    assert np.all((centres >= 0) & (centres < 120))
