"""Tests for napari_cellae.io.centres: centres of many positions, labels, groups, colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import synthetic_position
from napari_cellae.io.cellh5 import CellH5, PositionKey
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.io.centres import centres_table, group_positions, hex_rgba, position_labels


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


def test_groups_by_shape_and_type(tmp_path: Path) -> None:
    small = synthetic_position("A01", "1", n_frames=1)
    other = synthetic_position("A02", "1", n_frames=2)
    wide = synthetic_position("A03", "1", n_frames=1, dtype="uint16")
    path = write_cellh5(tmp_path / "g.ch5", [small, other, wide], ["dna"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        groups = group_positions(ch5)
    assert {key: [p.well for p in value] for key, value in groups.items()} == {
        ((1, 1, 1, 64, 80), "uint8"): ["A01"],
        ((1, 2, 1, 64, 80), "uint8"): ["A02"],
        ((1, 1, 1, 64, 80), "uint16"): ["A03"],
    }


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
