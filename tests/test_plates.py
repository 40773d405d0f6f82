"""The plates a run's inputs stand for (napari_cellae.pipeline.plates)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from conftest import synthetic_position
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.io.hdf5 import CellH5Error
from napari_cellae.pipeline.plates import plate_files


def test_one_file_by_several_names_is_one_plate(cellcognition_file: Path, tmp_path: Path) -> None:
    # Spelt with '..' or through a linked folder, the same file was encoded twice: every
    # cell came out twice, as two plates.
    folder = cellcognition_file.parent
    (tmp_path / "sub").mkdir()
    (tmp_path / "linked").symlink_to(folder)
    names = [
        cellcognition_file,
        tmp_path / "sub" / ".." / folder.relative_to(tmp_path) / cellcognition_file.name,
        tmp_path / "linked" / cellcognition_file.name,
        tmp_path / "linked",
    ]
    with pytest.warns(UserWarning, match="each plate's cells are read once") as caught:
        assert plate_files(names) == [cellcognition_file.absolute()]
    message = str(caught[0].message)
    assert f"{names[1]} is {cellcognition_file}" in message
    assert f"{names[2]} is {cellcognition_file}" in message


def test_a_plate_given_twice_is_named_in_a_warning(cellcognition_file: Path) -> None:
    # Most likely a typo for another plate, which would otherwise be left out unnoticed.
    with pytest.warns(UserWarning, match=f"{cellcognition_file} is given twice"):
        assert plate_files([cellcognition_file] * 2) == [cellcognition_file.absolute()]


def test_one_file_under_names_of_no_common_spelling_is_one_plate(tmp_path: Path) -> None:
    # On a case-insensitive disk (macOS, Windows) Plate1.ch5 and plate1.ch5 are one file
    # that resolve() leaves two paths: the plate was read twice. A hard link stands for
    # such a second name here, in the same folder and in another one.
    plate = tmp_path / "Plate1.ch5"
    write_cellh5(plate, [synthetic_position("A01", "1")], ["dna"], {"primary__primary": 0})
    alias, elsewhere = tmp_path / "plate1.ch5", tmp_path / "copy" / "p.ch5"
    elsewhere.parent.mkdir()
    alias.hardlink_to(plate)
    elsewhere.hardlink_to(plate)
    with pytest.warns(UserWarning, match="each plate's cells are read once") as caught:
        assert plate_files([plate, alias, elsewhere]) == [plate.absolute()]
    message = str(caught[0].message)
    assert f"{alias} is {plate}; {elsewhere} is {plate}" in message


def test_a_hard_linked_master_that_links_other_files_is_another_plate(
    cellcognition_file: Path, tmp_path: Path
) -> None:
    # The same master file in another folder links that folder's position files (its
    # external links are relative): another plate, read as such without a word.
    other = tmp_path / "other" / "hdf5"
    shutil.copytree(cellcognition_file.parent, other)
    (other / cellcognition_file.name).unlink()
    (other / cellcognition_file.name).hardlink_to(cellcognition_file)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = plate_files([cellcognition_file, other / cellcognition_file.name])
    assert found == [cellcognition_file.absolute(), (other / cellcognition_file.name).absolute()]


def test_plates_on_a_disk_without_inode_numbers_stay_two(
    tmp_path: Path, disk_without_inodes: None
) -> None:
    # Some network, FUSE and FAT disks give every file inode 0: two plates of one folder
    # then had one identity and, both linking no file, were merged into one plate.
    plates = [tmp_path / "plate1.ch5", tmp_path / "plate2.ch5"]
    for plate in plates:
        write_cellh5(plate, [synthetic_position("A01", "1")], ["dna"], {"primary__primary": 0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = plate_files(plates)
    assert found == [plate.absolute() for plate in plates]


def test_a_plate_given_once_gives_no_warning(cellcognition_file: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plate_files([cellcognition_file]) == [cellcognition_file.absolute()]


def test_a_plate_folder_without_one_master_is_named_not_skipped(
    cellcognition_file: Path, tmp_path: Path
) -> None:
    # Such a sub-folder was skipped without a word: the plate's cells were missing.
    root = tmp_path / "screen"
    (root / "p1").mkdir(parents=True)
    (root / "notes").mkdir()  # no .ch5 files: not a plate, skipped
    (root / "p2").mkdir()
    plate = root / "p2" / "p2.ch5"
    write_cellh5(plate, [synthetic_position("A01", "1")], ["dna"], {"primary__primary": 0})
    assert plate_files([root]) == [plate.absolute()]
    cellcognition_file.unlink()  # the master is lost, its position files stay
    cellcognition_file.parent.rename(root / "p1" / "hdf5")
    with pytest.raises(CellH5Error, match=r"p1: is a folder with 2 \.ch5 files but no master"):
        plate_files([root])


def test_a_sub_folder_that_is_no_plate_is_named_with_its_folder_of_plates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 'cellae train .' (or '') in a folder with a sub-folder of two plate files said only
    # 'same: is a folder with 2 .ch5 files but no master', of a folder never named.
    for name in ("x", "y"):
        path = tmp_path / "same" / f"{name}.ch5"
        path.parent.mkdir(exist_ok=True)
        write_cellh5(path, [synthetic_position("A01", "1")], ["dna"], {"primary__primary": 0})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CellH5Error) as caught:
        plate_files(["."])
    assert str(caught.value).startswith("same: is a folder with 2 .ch5 files but no master")
    assert str(caught.value).endswith(
        "[same is a sub-folder of ., read as a folder of plates: one plate per sub-folder "
        "or .ch5 file]"
    )


def test_a_lone_file_beside_plate_folders_is_one_plate_of_several(
    cellcognition_file: Path, tmp_path: Path
) -> None:
    # The lone file passed for the folder's master file: the sub-folder's plate was lost.
    root = cellcognition_file.parent.parent  # cellcognition/hdf5/_all_positions.ch5
    lone = root.parent / "p2.ch5"
    write_cellh5(lone, [synthetic_position("A01", "1")], ["dna"], {"primary__primary": 0})
    master = root.rename(lone.parent / "p1") / "hdf5" / cellcognition_file.name
    assert plate_files([lone.parent]) == [master.absolute(), lone.absolute()]
    assert plate_files([master.parent.parent]) == [master.absolute()]  # its hdf5/: one plate


def test_position_files_given_beside_their_master_are_not_plates(
    cellcognition_file: Path,
) -> None:
    # 'cellae train hdf5/*.ch5' named the master and its position files: every cell was
    # trained on (and encoded) twice, its position once more as a plate of its own.
    everything = sorted(cellcognition_file.parent.glob("*.ch5"))
    assert len(everything) == 3
    assert plate_files(everything) == [cellcognition_file.absolute()]
    assert plate_files(everything[::-1]) == [cellcognition_file.absolute()]
    parts = [f for f in everything if f != cellcognition_file]  # no master: each its own
    assert plate_files(parts) == [f.absolute() for f in parts]


def test_plates_of_the_mapping_that_no_input_holds_are_named(tmp_path: Path) -> None:
    import warnings

    from napari_cellae.io.cellh5 import PositionKey
    from napari_cellae.io.mapping import read_mapping
    from napari_cellae.pipeline.plates import warn_unused_plates

    # Rows for every plate, and rows for plate P1 and a misspelt "P 2": the cells of P2
    # silently took the plate-less rows; now the unused plate is named.
    path = tmp_path / "map.txt"
    path.write_text(
        "Plate\tWell\tSite\tGene Symbol\tGroup\n"
        "\tA01\t1\tscrambled\tneg\n\tB02\t1\tPLK1\ttarget\n"
        "P1\tB02\t1\tKIF11\ttarget\nP 2\tB02\t1\tINCENP\ttarget\n"
    )
    mapping = read_mapping(path)
    keys = [PositionKey(plate, well, "1") for plate in ("P1", "P2") for well in ("A01", "B02")]
    assert mapping.unused_plates(keys) == ["P 2"]
    assert mapping.lookup(PositionKey("P2", "B02", "1")).condition == "PLK1"
    with pytest.warns(UserWarning, match=r"map\.txt: the Plate column names plate\(s\) 'P 2'"):
        warn_unused_plates(mapping, keys)
    # every named plate held (a plate renamed after its file is still that plate): quiet
    keys.append(PositionKey("p 2 (run2/plate.ch5)", "B02", "1"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_unused_plates(mapping, keys)
        warn_unused_plates(None, keys)
    assert mapping.unused_plates(keys) == []


def test_unmapped_positions_are_counted_and_named_once(tmp_path: Path) -> None:
    import warnings

    from napari_cellae.io.cellh5 import PositionKey
    from napari_cellae.io.mapping import read_mapping
    from napari_cellae.pipeline.plates import warn_unmapped

    # Only A01 has a row (the rows of the others forgotten): the cells of the other twelve
    # positions became conditions of their own, never controls, without a word.
    path = tmp_path / "map.txt"
    path.write_text("A01\tneg. control\n")
    mapping = read_mapping(path)
    wells = ["A01", "B02", *(f"C{i:02d}" for i in range(1, 12))]
    keys = [PositionKey("P1", well, "1") for well in wells]
    with pytest.warns(UserWarning) as caught:
        warn_unmapped(mapping, keys, "screen.ch5")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(f"{path}: no row maps 12 of the 13 positions of screen.ch5: ")
    assert "B02_1, C01_1, C02_1, C03_1, C04_1, C05_1, C06_1, C07_1 and 4 more;" in message
    assert "C08_1" not in message and "A01_1" not in message
    assert "kept as conditions of their own, not as negative controls" in message
    # several plates (or files): the plate tells the positions apart, the run is "the inputs"
    two = [PositionKey(plate, well, "1") for plate in ("P1", "P2") for well in ("A01", "B02")]
    with pytest.warns(UserWarning) as caught:
        warn_unmapped(mapping, two)
    assert [str(w.message) for w in caught] == [
        f"{path}: no row maps 2 of the 4 positions of the inputs: B02_1 of plate 'P1',"
        " B02_1 of plate 'P2'; they are kept as conditions of their own, not as negative"
        " controls (is a well misspelt, or a row missing?)"
    ]
    # every position mapped, or no mapping: quiet
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_unmapped(mapping, keys[:1], "screen.ch5")
        warn_unmapped(None, keys, "screen.ch5")
        warn_unmapped(mapping, [])


def test_a_cellcognition_plate_folder_with_its_positions_folder_is_one_plate(
    tmp_path: Path,
) -> None:
    # CellCognition 1.6 keeps a plate file's positions in cellh5/ beside it until the run
    # ends: that folder was taken for a plate of its own, and the plate folder refused.
    from test_cellh5_producers import cellcognition_plate

    plate = cellcognition_plate(tmp_path)
    assert plate_files([tmp_path]) == [plate.absolute()]


def _position_files(folder: Path, wells: list[str]) -> list[Path]:
    """A CellCognition plate as position files: A01_1.ch5, ..., one position each."""
    folder.mkdir()
    return [
        write_cellh5(
            folder / f"{well}_1.ch5",
            [synthetic_position(well, "1", plate="plate1", seed=i)],
            ["rfp"],
            {"primary__primary": 0},
        )
        for i, well in enumerate(wells)
    ]


def test_position_files_of_one_plate_given_as_inputs_are_one_plate(tmp_path: Path) -> None:
    # 'cellae encode A01_1.ch5 A02_1.ch5 ... --mapping plate_mapping.txt' warned once per
    # file that the other files' rows "are left out", and named each file a plate of its
    # own ('plate1 (A01_1.ch5)'), so novelty scaled each file's cells by its own controls.
    from napari_cellae.pipeline.streaming import plan_encode
    from test_streaming import random_model

    wells = ["A01", "A02", "B01", "B02"]
    files = _position_files(tmp_path / "hdf5", wells)
    mapping = tmp_path / "plate_mapping.txt"
    rows = "".join(f"{w}_1\t{w}\t1\tg{w}\t{'neg' if w[0] == 'A' else 't'}\n" for w in wells)
    mapping.write_text("Position\tWell\tSite\tGene Symbol\tGroup\n" + rows, encoding="utf-8")
    trained = random_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = plan_encode(files, trained, tmp_path / "cells.h5ad", mapping_path=mapping)
    assert [key.plate for key in plan.distinct_positions()] == ["plate1"] * 4
    # Half the plate: one warning, of the rows that no input holds
    with pytest.warns(UserWarning) as caught:
        plan_encode(files[:2], trained, tmp_path / "cells.h5ad", mapping_path=mapping)
    said = [str(w.message) for w in caught if "left out" in str(w.message)]
    assert said == [
        f"{mapping}: the mapping names 2 position(s) that are not in any of the 2 files of"
        " plate 'plate1' (A01_1.ch5, A02_1.ch5): B01_1, B02_1; their rows are left out (a"
        " plate imaged in part?)"
    ]
    # Files of two plates named alike that share a position stay apart (each file a plate)
    other = _position_files(tmp_path / "run2", ["A01"])
    with pytest.warns(UserWarning, match=r"not in .*run2/A01_1\.ch5: A02_1, B01_1, B02_1 "):
        plan = plan_encode([*files[:2], *other], trained, tmp_path / "c.h5ad", mapping)
    assert [key.plate for key in plan.distinct_positions()] == [
        "plate1 (hdf5/A01_1.ch5)",
        "plate1 (hdf5/A02_1.ch5)",
        "plate1 (run2/A01_1.ch5)",
    ]


def test_an_empty_position_of_several_plates_names_its_plate() -> None:
    # Encoding two plates, "1 position(s) hold no cells: A01_1" did not say which plate's
    # A01 had no cells (both plates hold an A01_1).
    from napari_cellae.io.positions import PositionKey
    from napari_cellae.pipeline.plates import warn_empty

    keys = [PositionKey(plate, well, "1") for plate in ("p1", "p2") for well in ("A01", "A02")]
    with pytest.warns(UserWarning, match=r"1 position\(s\) hold no cells") as caught:
        warn_empty(None, keys, [k for k in keys if k != PositionKey("p2", "A01", "1")])
    assert "A01_1 of plate 'p2'" in str(caught[0].message)
    with pytest.warns(UserWarning) as caught:  # one plate: the plate says nothing more
        warn_empty(None, keys[:2], keys[1:2])
    assert "hold no cells" in str(caught[0].message) and "of plate" not in str(caught[0].message)
