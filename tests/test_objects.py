"""Tests for napari_cellae.io.objects: object tables checked before any crop is cut."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import damage_chunk, synthetic_position
from napari_cellae.core.crops import collect_crops
from napari_cellae.io.cellh5 import CellH5, CellH5Error
from napari_cellae.io.cellh5_writer import write_cellh5

POSITION = "sample/0/plate/plate1/experiment/A01/position/1"
FEATURE = f"{POSITION}/feature/primary__primary"


def _file(tmp_path: Path) -> Path:
    position = synthetic_position("A01", "1", n_frames=2)
    return write_cellh5(tmp_path / "cells.ch5", [position], ["dna"], {"primary__primary": 0})


def _replace(path: Path, name: str, edit) -> None:
    """Rewrite table ``name`` with float columns and let ``edit`` change the values."""
    with h5py.File(path, "a") as f:
        old = f[name][()]
        new = np.zeros(len(old), [(field, "<f8") for field in old.dtype.names])
        for field in old.dtype.names:
            new[field] = old[field]
        edit(new)
        del f[name]
        f[name] = new


def _objects(path: Path):
    with CellH5(path) as ch5:
        return ch5.objects(ch5.positions[0], "primary__primary")


def _set(field: str, rows: list[int], value: float):
    def edit(table: np.ndarray) -> None:
        table[field][rows] = value

    return edit


def test_nan_centres_are_named_not_shown_as_huge_numbers(tmp_path: Path) -> None:
    path = _file(tmp_path)
    _replace(path, f"{FEATURE}/center", _set("x", [2, 7], np.nan))
    for read in (
        _objects,
        lambda p: collect_crops(CellH5(p), "primary__primary", 16),
    ):
        with pytest.raises(CellH5Error) as info:
            read(path)
        message = str(info.value)
        assert message.startswith(f"{path}: object 'primary__primary' of position A01_1:")
        assert "x is missing (NaN) for 2 object(s) in feature/primary__primary/center" in message
        assert "object row(s) 2, 7" in message
        assert "2147483648" not in message


@pytest.mark.parametrize(
    ("table", "field", "value", "fragment"),
    [
        (f"{FEATURE}/center", "y", np.inf, "y is missing (NaN)"),
        (f"{FEATURE}/bounding_box", "left", np.nan, "left is missing (NaN) for 1 object(s) in"),
        (f"{POSITION}/object/primary__primary", "time_idx", np.nan, "time_idx is missing"),
        (f"{FEATURE}/object_classification/prediction", "label_idx", np.nan, "label_idx"),
    ],
)
def test_other_missing_numbers(tmp_path: Path, table, field, value, fragment) -> None:
    path = _file(tmp_path)
    _replace(path, table, _set(field, [4], value))
    with pytest.raises(CellH5Error, match="object row\\(s\\) 4") as info:
        _objects(path)
    assert fragment in str(info.value)


def test_float_centres_are_rounded(tmp_path: Path) -> None:
    path = _file(tmp_path)
    before = _objects(path)
    _replace(path, f"{FEATURE}/center", _set("x", [1], float(before.center_x[1]) + 0.6))
    after = _objects(path)
    assert after.center_x.dtype == np.int32
    assert after.center_x[1] == before.center_x[1] + 1
    np.testing.assert_array_equal(np.delete(after.center_x, 1), np.delete(before.center_x, 1))


def test_tables_of_different_length(tmp_path: Path) -> None:
    path = _file(tmp_path)
    with h5py.File(path, "a") as f:
        box = f[f"{FEATURE}/bounding_box"][()]
        del f[f"{FEATURE}/bounding_box"]
        f[f"{FEATURE}/bounding_box"] = box[:-1]
    with pytest.raises(
        CellH5Error, match="bounding_box has 9 rows, object/primary__primary has 10"
    ):
        _objects(path)


def test_damaged_compressed_centre_table(tmp_path: Path) -> None:
    path = _file(tmp_path)
    with h5py.File(path, "a") as f:
        center = f[f"{FEATURE}/center"][()]
        del f[f"{FEATURE}/center"]
        f.create_dataset(f"{FEATURE}/center", data=np.tile(center, 100), compression="gzip")
        objects = f[f"{POSITION}/object/primary__primary"][()]
        del f[f"{POSITION}/object/primary__primary"]
        f[f"{POSITION}/object/primary__primary"] = np.tile(objects, 100)
    damage_chunk(path, f"{FEATURE}/center", (0,))
    with pytest.raises(CellH5Error) as info:
        _objects(path)
    message = str(info.value)
    assert message.startswith(f"{path}: object 'primary__primary' of position A01_1")
    assert "feature/primary__primary/center) is damaged" in message
