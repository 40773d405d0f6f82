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


def test_centres_table_per_class_not_per_object(tmp_path: Path) -> None:
    # Names, colours and position columns were built with a Python object per centre
    # (2 of 2.8 s for 1.9 M centres); now per class and position. Same table as before:
    # unknown class ids and classes of bad colours gray, categories only of values present.
    import pandas as pd

    from conftest import synthetic_position
    from napari_cellae.io.cellh5_writer import write_cellh5

    positions = [synthetic_position(w, "1", seed=i) for i, w in enumerate(["A01", "B02", "C03"])]
    for position, classes in zip(positions, ([0, 1, -1, 7, 2], [2, 2, 0, 0, 1], None), strict=True):
        obj = position.objects["primary__primary"]
        if classes is None:  # an empty well: no objects at all
            position.objects = {}
        else:
            obj.class_idx = np.resize(np.array(classes, np.int32), len(obj.class_idx))
    labels = [(0, "interphase", "#00FF00"), (1, "mitotic", "#FF0000"), (2, "dead", "pink")]
    path = write_cellh5(
        tmp_path / "c.ch5", positions, ["dna"], {"primary__primary": 0},
        class_labels={"primary__primary": labels},
    )  # fmt: skip
    with CellH5(path) as ch5:
        _, features, colors = centres_table(ch5, ch5.positions, "primary__primary", True)
        classes = np.concatenate(
            [ch5.objects(p, "primary__primary").class_idx for p in ch5.positions[:2]]
        )
    # Class 7, beyond the file's 3 classes, is named as the .h5ad's obs["class"] names it
    # (it was "unclassified", as a cell without a prediction, -1, is).
    names = {0: "interphase", 1: "mitotic", 2: "dead", -1: "unclassified", 7: "unknown (7)"}
    expected = pd.Categorical([names[c] for c in classes])
    assert features["class_name"].equals(expected)
    gray = [0.7, 0.7, 0.7, 1.0]
    palette = {0: [0, 1, 0, 1], 1: [1, 0, 0, 1]}
    np.testing.assert_allclose(colors, [palette.get(c, gray) for c in classes])
    assert list(features["well"].categories) == ["A01", "B02"]  # C03 holds no objects
    assert features["position"].equals(pd.Categorical(["A01_1"] * 15 + ["B02_1"] * 15))


def test_predictions_without_a_class_table_name_their_class(tmp_path: Path) -> None:
    # The README promises the class in the centres' features "when the file stores
    # classifier predictions"; without /definition's class table they were left out,
    # while the .h5ad's obs["class"] names each class by its number.
    from conftest import synthetic_position
    from napari_cellae.io.cellh5_writer import write_cellh5
    from napari_cellae.pipeline.plate_cells import class_labels

    position = synthetic_position("A01", "1", seed=0)
    position.objects["primary__primary"].class_idx[:3] = [-1, 7, 1]
    path = write_cellh5(tmp_path / "c.ch5", [position], ["dna"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        assert ch5.class_labels("primary__primary") is None
        _, features, colors = centres_table(ch5, ch5.positions, "primary__primary", False)
        classes = ch5.objects(ch5.positions[0], "primary__primary").class_idx
    assert colors is None  # no class colours stored
    expected = [name or "unclassified" for name in class_labels(classes, None)]
    assert list(features["class_name"]) == expected
    assert list(features["class_name"][:3]) == ["unclassified", "7", "1"]
