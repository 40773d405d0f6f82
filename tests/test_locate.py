"""Tests for napari_cellae.io.locate: a folder given for a CellH5 file."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import h5py
import pytest

from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.hdf5 import CellH5Error
from napari_cellae.io.locate import input_files, locate_cellh5


def test_a_file_is_itself(cellcognition_file: Path) -> None:
    assert locate_cellh5(cellcognition_file) == cellcognition_file


def test_cellcognition_hdf5_folder_and_its_analysis_folder(cellcognition_file: Path) -> None:
    hdf5 = cellcognition_file.parent
    assert hdf5.name == "hdf5"
    assert locate_cellh5(hdf5) == cellcognition_file
    assert locate_cellh5(hdf5.parent) == cellcognition_file  # .../cellcognition/hdf5/
    with CellH5(hdf5) as ch5:
        assert ch5.path == cellcognition_file
        assert [p.label for p in ch5.positions] == ["A01_0001", "B02_0001"]


def test_cellprofiler_folder(cellprofiler_file: Path) -> None:
    folder = cellprofiler_file.parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "screen.ch5",
        "screen_A01_1.ch5",
        "screen_A02_1.ch5",
    ]
    assert locate_cellh5(folder) == cellprofiler_file


def test_folder_without_master_lists_the_files(cellcognition_file: Path) -> None:
    cellcognition_file.unlink()
    folder = cellcognition_file.parent
    with pytest.raises(CellH5Error) as info:
        CellH5(folder)
    message = str(info.value)
    assert message.startswith(f"{folder}: is a folder with 2 .ch5 files but no master")
    assert "A01_0001.ch5, B02_0001.ch5" in message
    assert "_all_positions.ch5" in message  # what was expected


def test_two_masters_are_ambiguous(cellcognition_file: Path) -> None:
    analysis = cellcognition_file.parent.parent
    shutil.copy(cellcognition_file, analysis / "_all_positions.ch5")
    with pytest.raises(CellH5Error, match=r"is a folder with 2 master files \(_all_positions"):
        locate_cellh5(analysis)


def test_empty_folder_and_nothing(tmp_path: Path) -> None:
    with pytest.raises(CellH5Error, match=r"is a folder without \.ch5 files; expected a CellH5"):
        locate_cellh5(tmp_path)
    with pytest.raises(CellH5Error, match="no such file or folder"):
        CellH5(tmp_path / "missing.ch5")


def test_input_files_of_a_folder_name_every_linked_file(cellcognition_file: Path) -> None:
    folder = cellcognition_file.parent
    parts = [folder / "A01_0001.ch5", folder / "B02_0001.ch5"]
    assert set(input_files(folder)) == {folder, cellcognition_file, *parts}
    assert set(input_files(cellcognition_file)) == {cellcognition_file, *parts}
    assert input_files(parts[0]) == [parts[0]]
    parts[1].unlink()  # dangling: still named, so an output cannot take its place
    assert set(input_files(folder)) == {folder, cellcognition_file, *parts}
    assert input_files(folder.parent / "missing") == [folder.parent / "missing"]


def test_input_files_end_at_a_group_hard_linked_into_itself(cellcognition_file: Path) -> None:
    """The search walked such a group for ever, so train and encode hung before reading."""
    folder = cellcognition_file.parent
    with h5py.File(cellcognition_file, "a") as f:
        f["sample/0/plate/plate1/again"] = f["sample/0"]
    found: list[Path] = []
    search = threading.Thread(target=lambda: found.extend(input_files(folder)), daemon=True)
    search.start()
    search.join(timeout=30)
    assert not search.is_alive(), "input_files did not finish"
    parts = [folder / "A01_0001.ch5", folder / "B02_0001.ch5"]
    assert set(found) == {folder, cellcognition_file, *parts}


def test_input_files_are_found_again_only_when_a_file_changed(tmp_path: Path, monkeypatch) -> None:
    import os

    from napari_cellae.io import locate

    for name in ("a.ch5", "b.ch5"):
        with h5py.File(tmp_path / name, "w") as f:
            f["x"] = [1]
    master = tmp_path / "master.ch5"
    with h5py.File(master, "w") as f:
        f["pos"] = h5py.ExternalLink("a.ch5", "/x")
    walks = []
    real = locate._external_files
    monkeypatch.setattr(locate, "_external_files", lambda h5: walks.append(1) or real(h5))
    assert input_files(master) == [master, tmp_path / "a.ch5"]
    walked = len(walks)
    assert input_files(master) == [master, tmp_path / "a.ch5"] and len(walks) == walked
    with h5py.File(master, "w") as f:  # the master now links elsewhere
        f["pos"] = h5py.ExternalLink("b.ch5", "/x")
    os.utime(master, ns=(1, 1))  # a new modification time, whatever the clock's resolution
    assert input_files(master) == [master, tmp_path / "b.ch5"] and len(walks) > walked


def test_input_files_of_a_cellprofiler_master(cellprofiler_file: Path) -> None:
    folder = cellprofiler_file.parent
    expected = {cellprofiler_file, folder / "screen_A01_1.ch5", folder / "screen_A02_1.ch5"}
    assert set(input_files(cellprofiler_file)) == expected


def test_broken_and_looping_symbolic_links(tmp_path: Path) -> None:
    loop = tmp_path / "loop.ch5"
    loop.symlink_to(loop)
    with pytest.raises(CellH5Error, match=r"loop\.ch5: a symbolic link to .*loop of symbolic"):
        CellH5(loop)
    dangling = tmp_path / "dangling.ch5"
    dangling.symlink_to(tmp_path / "gone.ch5")
    with pytest.raises(CellH5Error, match=r"gone\.ch5', which leads nowhere"):
        locate_cellh5(dangling)


def test_input_files_through_a_loop_of_symbolic_links(cellcognition_file: Path) -> None:
    # Path.resolve raised RuntimeError ('Symlink loop'): a traceback before any message.
    loop = cellcognition_file.parent / "loop.ch5"
    loop.symlink_to(loop)
    assert input_files(loop) == [loop]
    part = next(p for p in cellcognition_file.parent.glob("B02_*.ch5"))
    part.unlink()
    part.symlink_to(part)  # a position file the master links to
    assert part in input_files(cellcognition_file)


def test_input_files_of_a_cellcognition_plate_file(tmp_path: Path) -> None:
    # Positions whose data are still in cellh5/ beside the plate file are inputs too.
    (tmp_path / "cellh5").mkdir()
    (tmp_path / "cellh5" / "A01_01.ch5").write_bytes(b"")
    with h5py.File(tmp_path / "P1.ch5", "w") as f:
        f["layout/P1"] = [1]
        f.create_group("sample/0/plate/P1/experiment/A01/position/1")
    assert input_files(tmp_path / "P1.ch5") == [tmp_path / "P1.ch5", tmp_path / "cellh5/A01_01.ch5"]
