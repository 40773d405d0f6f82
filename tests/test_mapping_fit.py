"""A mapping checked against the files of a run together (napari_cellae.io.mapping_fit)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from napari_cellae.io.cellh5 import PositionKey
from napari_cellae.io.mapping import read_mapping
from napari_cellae.io.mapping_fit import check_fit, finish_run, open_run, rows_not_held

WELLS = ["A01", "A02", "A03", "B01"]


def _mapping(tmp_path: Path, wells: list[str]) -> Path:
    rows = "".join(f"{w}_1\t{w}\t1\tgene{w}\t{'neg' if w == 'A01' else 't'}\n" for w in wells)
    path = tmp_path / "plate_mapping.txt"
    path.write_text("Position\tWell\tSite\tGene Symbol\tGroup\n" + rows, encoding="utf-8")
    return path


def _file(well: str) -> tuple[str, list[PositionKey]]:
    """A CellCognition position file: one position of plate P."""
    return f"/data/hdf5/{well}_1.ch5", [PositionKey("P", well, "1")]


def test_position_files_of_one_plate_are_checked_together(tmp_path: Path) -> None:
    # Each of A01_1.ch5 ... B01_1.ch5 was checked alone: 4 warnings that the other 3 rows
    # "are left out", though the other inputs held them.
    mapping = read_mapping(_mapping(tmp_path, WELLS))
    open_run(mapping)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for well in WELLS:
            check_fit(mapping, *reversed(_file(well)))
        finish_run(mapping)
    assert mapping.run_files is None  # closed
    # A part of the plate: one warning, of the rows that no input holds
    open_run(mapping)
    for well in WELLS[:2]:
        check_fit(mapping, *reversed(_file(well)))
    with pytest.warns(UserWarning) as caught:
        finish_run(mapping)
    assert [str(w.message) for w in caught] == [
        f"{mapping.path}: the mapping names 2 position(s) that are not in any of the 2"
        " files of plate 'P' (A01_1.ch5, A02_1.ch5): A03_1, B01_1; their rows are left out"
        " (a plate imaged in part?)"
    ]


def test_a_position_file_the_mapping_lacks_is_judged_with_the_run(tmp_path: Path) -> None:
    # A02 has no row: checked alone, A02_1.ch5 (its position unmapped, the other rows not
    # in it) was refused as "the mapping of another plate?", and the run failed.
    mapping = read_mapping(_mapping(tmp_path, ["A01", "A03", "B01"]))
    open_run(mapping)
    for well in WELLS:
        check_fit(mapping, *reversed(_file(well)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        finish_run(mapping)  # every row held: A02 is named by warn_unmapped, not refused
    # Files that hold none of the mapping's positions are refused at the run's end
    open_run(mapping)
    for well in ("C01", "C02"):
        check_fit(mapping, *reversed(_file(well)))
    with pytest.raises(ValueError, match=r"any of the 2 files of plate 'P' .*no row maps C01_1"):
        finish_run(mapping)


def test_a_single_file_is_judged_at_once(tmp_path: Path) -> None:
    # The widget checks a mapping against one file (load_mapping(..., warn=False)): another
    # plate's mapping is still refused at once, for a file of several positions.
    mapping = read_mapping(_mapping(tmp_path, ["A01", "A02"]))
    open_run(mapping)
    keys = [PositionKey("P", well, "1") for well in ("C01", "C02")]
    with pytest.raises(ValueError, match="the mapping of another plate"):
        check_fit(mapping, keys, "other.ch5")
    # Two files of plates named alike (a position in both) are two plates, each judged
    open_run(mapping)
    check_fit(mapping, [PositionKey("P", "A01", "1"), PositionKey("P", "A02", "1")], "run1.ch5")
    check_fit(mapping, [PositionKey("P", "A01", "1")], "run2.ch5")
    with pytest.warns(UserWarning) as caught:
        finish_run(mapping)
    assert [str(w.message) for w in caught] == [
        f"{mapping.path}: the mapping names 1 position(s) that are not in run2.ch5: A02_1 (it"
        " holds A01_1); their rows are left out (a plate imaged in part?)"
    ]
    # without a run, a file lacking rows warns at once, as before
    with pytest.warns(UserWarning, match=r"not in one\.ch5: A02_1 \(it holds A01_1\)"):
        check_fit(read_mapping(mapping.path), [PositionKey("P", "A01", "1")], "one.ch5")
    assert rows_not_held(mapping, [PositionKey("P", "A02", "1")]) == ["A01_1"]
