"""The condition palette stays readable for colour-blind users."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2lab

from napari_cellae.export.palette import PALETTE, condition_colours

# Machado, Oliveira and Fernandes (2009), full severity, on linear RGB.
_SIMULATION = {
    "deuteranopia": [[0.367, 0.861, -0.228], [0.280, 0.673, 0.047], [-0.012, 0.043, 0.969]],
    "protanopia": [[0.152, 1.053, -0.205], [0.115, 0.786, 0.099], [-0.004, -0.048, 1.052]],
}


def _as_seen(hexes: list[str], vision: str) -> np.ndarray:
    rgb = np.array([[int(h[i : i + 2], 16) / 255 for i in (1, 3, 5)] for h in hexes])
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    seen = np.clip(linear @ np.array(_SIMULATION[vision]).T, 0, 1)
    srgb = np.where(seen <= 0.0031308, seen * 12.92, 1.055 * seen ** (1 / 2.4) - 0.055)
    return rgb2lab(srgb[None])[0]


@pytest.mark.parametrize("vision", sorted(_SIMULATION))
def test_the_first_conditions_differ_for_red_green_colour_blind_users(vision):
    # matplotlib's tab10 gave the 3rd and 4th conditions green and red (CIELAB distance 7
    # as a deuteranope sees them) and the 2nd and 3rd orange and green (5 for a protanope)
    lab = _as_seen(list(PALETTE[:7]), vision)
    distance = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    assert distance.min() > 15


def test_conditions_get_colours_in_order_of_first_appearance():
    colours = condition_colours(["neg", "PLK1", "neg", *[f"c{i}" for i in range(7)]])
    assert list(colours) == ["neg", "PLK1", *[f"c{i}" for i in range(7)]]
    assert colours["neg"] == PALETTE[0] and colours["PLK1"] == PALETTE[1]
    assert colours["c6"] == PALETTE[0]  # the ninth cycles back to the first
    assert len(set(PALETTE)) == len(PALETTE) and "#000000" not in PALETTE  # a black canvas
