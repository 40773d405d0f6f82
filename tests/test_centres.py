"""Tests for napari_cellae.io.centres: centres of many positions, labels, groups, colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_cellae.io.cellh5 import CellH5, PositionKey
from napari_cellae.io.centres import centres_table, hex_rgba, position_labels


def test_position_labels_add_the_plate_only_when_needed() -> None:
    one = [PositionKey("P1", "A01", "1"), PositionKey("P1", "B02", "3")]
    assert position_labels(one) == ["A01_1", "B02_3"]
    two = [*one, PositionKey("P2", "A01", "1")]
    assert position_labels(two) == ["P1/A01_1", "P1/B02_3", "P2/A01_1"]


def test_hex_colours() -> None:
    np.testing.assert_allclose(hex_rgba("#00FF00"), [0, 1, 0, 1])
    np.testing.assert_allclose(hex_rgba("#f00"), [1, 0, 0, 1])
    np.testing.assert_allclose(hex_rgba(" #0000FF80 "), [0, 0, 1, 128 / 255])
    assert hex_rgba("red") is None and hex_rgba("#12345") is None and hex_rgba("#GGGGGG") is None


def test_centres_table(cellcognition_file: Path) -> None:
    with CellH5(cellcognition_file) as ch5:
        positions = ch5.positions
        tables = [ch5.objects(p, "primary__primary") for p in positions]
        coords, features, colors = centres_table(ch5, positions, "primary__primary", True)
        single, _, _ = centres_table(ch5, positions[1:], "primary__primary", False)
    np.testing.assert_array_equal(
        coords[:, 1:],
        np.concatenate([np.stack([t.time_idx, t.center_y, t.center_x], 1) for t in tables]),
    )
    np.testing.assert_array_equal(coords[:, 0], [0] * 15 + [1] * 15)
    np.testing.assert_array_equal(single, coords[15:, 1:])
    assert list(features["position"][[0, 15]]) == ["A01_0001", "B02_0001"]
    np.testing.assert_array_equal(features["object_index"][:15], np.arange(15))
    classes = np.concatenate([t.class_idx for t in tables])
    assert list(features["class_name"]) == [["interphase", "mitotic"][c] for c in classes]
    expected = np.array([[0, 1, 0, 1], [1, 0, 0, 1]], np.float32)[classes]
    np.testing.assert_allclose(colors, expected)
