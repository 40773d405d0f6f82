"""Tests for napari_cellae.core.blank: cells whose crops hold no signal."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellae.core.blank import blank_crops, warn_blank
from napari_cellae.io.cellh5 import PositionKey


def test_a_crop_with_a_channel_of_one_value_is_blank() -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 50, size=(4, 2, 8, 8)).astype(np.uint16)
    crops[1] = 0  # never written: every channel at the fill value
    crops[2, 1] = 7  # one channel not acquired
    crops[3, 0, 2:5, 2:5] = 900  # a bright cell on a noisy background is no blank crop
    assert blank_crops(crops).tolist() == [False, True, True, False]
    assert blank_crops(np.zeros((0, 1, 8, 8))).shape == (0,)
    assert blank_crops(crops.astype(np.float32)).tolist() == [False, True, True, False]


def test_the_warning_names_the_positions_with_most_blank_cells() -> None:
    keys = [PositionKey("p1", w, "1") for w in ("A01", "B02", "C03", "D04", "E05", "F06", "G07")]
    blank = [(key, n, 60) for key, n in zip(keys, (1, 60, 2, 3, 4, 5, 6), strict=True)]
    with pytest.warns(UserWarning) as said:
        warn_blank(blank, 420, "primary__primary", "s.ch5")
    text = str(said[0].message)
    assert text.startswith("s.ch5: 81 of 420 'primary__primary' cells have crops without signal")
    assert "B02_1 (60 of 60), G07_1 (6 of 60), F06_1 (5 of 60), E05_1 (4 of 60)" in text
    assert "D04_1 (3 of 60) and 2 more" in text and "A01_1" not in text
    with pytest.warns(UserWarning, match=r": p1/B02_1 \(60 of 60\)"):  # several plates
        warn_blank(blank[1:2], 420, "primary__primary", None)


def test_no_blank_cell_no_warning(recwarn) -> None:
    warn_blank([], 100, "primary__primary", "s.ch5")
    assert not recwarn.list
