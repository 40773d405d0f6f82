"""Finding the positions of a CellH5 file: sorting, and links that would merge positions."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from conftest import synthetic_position
from napari_cellae.io.cellh5 import CellH5, CellH5Error
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.io.positions import PositionKey, natural_key, position_path


def _write(path: Path, wells_sites: list[tuple[str, str]], split: bool = False) -> Path:
    positions = [
        synthetic_position(well, site, n_frames=1, n_per_frame=2, seed=i)
        for i, (well, site) in enumerate(wells_sites)
    ]
    return write_cellh5(path, positions, ["dna"], {"primary__primary": 0}, split_files=split)


def test_positions_are_sorted_naturally(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.ch5", [("A10", "1"), ("A2", "10"), ("A2", "2")])
    with CellH5(path) as ch5:
        assert [p.label for p in ch5.positions] == ["A2_2", "A2_10", "A10_1"]
    assert natural_key("A10") > natural_key("A2")
    assert position_path(PositionKey("P", "A01", "1")).endswith("P/experiment/A01/position/1")


@pytest.mark.parametrize("link", ["hard", "soft"])
def test_two_positions_linked_to_one_group_are_refused(tmp_path: Path, link: str) -> None:
    # B02 linked to A01's group: A01's cells came out twice, the second time as B02's
    # (under B02's condition), without a word.
    path = _write(tmp_path / "p.ch5", [("A01", "1"), ("C03", "1")])
    a01 = position_path(PositionKey("plate1", "A01", "1"))
    with h5py.File(path, "a") as root:
        target = root[a01] if link == "hard" else h5py.SoftLink("/" + a01)
        root[position_path(PositionKey("plate1", "B02", "1"))] = target
    with pytest.raises(CellH5Error, match="A01_1 and B02_1 of plate plate1 are one and the same"):
        CellH5(path)


def test_master_linking_two_positions_to_one_file_is_refused(tmp_path: Path) -> None:
    master = _write(tmp_path / "_all_positions.ch5", [("A01", "1"), ("B02", "1")], split=True)
    a01, b02 = (position_path(PositionKey("plate1", w, "1")) for w in ("A01", "B02"))
    with h5py.File(master, "a") as root:  # a copy-paste slip in a hand-made master file
        del root[b02]
        root[b02] = h5py.ExternalLink("A01_1.ch5", "/" + a01)
    with pytest.raises(CellH5Error) as info:
        CellH5(master)
    assert str(master) in str(info.value)
    assert "same HDF5 group (of A01_1.ch5)" in str(info.value)


def test_distinct_positions_with_one_label_are_refused(tmp_path: Path) -> None:
    # Both are shown, written and ranked as 'A01_x_1': their cells became one position.
    path = _write(tmp_path / "p.ch5", [("A01_x", "1"), ("A01", "x_1"), ("B02", "1")])
    with pytest.raises(CellH5Error, match="both called A01_x_1"):
        CellH5(path)


def test_one_label_on_two_plates_is_fine(tmp_path: Path) -> None:
    positions = [
        synthetic_position("A01", "1", plate=plate, n_frames=1, n_per_frame=2) for plate in "PQ"
    ]
    path = write_cellh5(tmp_path / "p.ch5", positions, ["dna"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        assert [(p.plate, p.label) for p in ch5.positions] == [("P", "A01_1"), ("Q", "A01_1")]


def test_samples_other_than_zero_are_said_to_be_left_out(tmp_path: Path) -> None:
    # /sample/1 was ignored without a word: its positions' cells were simply missing.
    path = _write(tmp_path / "p.ch5", [("A01", "1")])
    with h5py.File(path, "a") as root:
        root.copy(root["sample/0"], "sample/1")
    with pytest.warns(UserWarning, match=r"only /sample/0 is read .* also holds /sample/1"):
        ch5 = CellH5(path)
    assert [p.label for p in ch5.positions] == ["A01_1"]
    ch5.close()
