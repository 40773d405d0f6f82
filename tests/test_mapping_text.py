"""Splitting a mapping file into rows (io/mapping_text): the separator is the file's, not
the first row's."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_cellae.io.cellh5 import PositionKey
from napari_cellae.io.mapping import read_mapping

# Conditions holding the other separators; each file holds one condition per position.
ROWS = [("A01", "siRNA a,b,c"), ("A02", "neg"), ("B01", "DMSO 0.1%; 24h"), ("B02", "PLK1")]


def _lookups(path: Path) -> list[tuple[str, bool]]:
    mapping = read_mapping(path)
    found = [mapping.lookup(PositionKey("plate1", well, "1")) for well, _ in ROWS]
    return [(info.condition, info.is_control) for info in found]


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("first", range(len(ROWS)))
@pytest.mark.parametrize("delimiter", ["\t", ";", ","])
def test_the_separator_does_not_depend_on_the_row_that_comes_first(
    tmp_path: Path, header: bool, first: int, delimiter: str
) -> None:
    # A two-column file without a header had its separator guessed from its first row
    # alone: tab-separated rows starting with 'A01<TAB>siRNA a,b,c' (more commas than tabs)
    # were split at commas and refused ('3 columns where 2 are expected'), comma-separated
    # ones starting with 'B01,"DMSO 0.1%; 24h"' at semicolons; the same rows in another
    # order, or under a header, were read (found by a metamorphic test of the mapping).
    def cell(text: str) -> str:
        return f'"{text}"' if delimiter in text else text

    rows = ROWS[first:] + ROWS[:first]
    lines = ["Well" + delimiter + "Condition"] * header
    lines += [f"{well}{delimiter}{cell(condition)}" for well, condition in rows]
    path = tmp_path / "m.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert _lookups(path) == [(c, c == "neg") for _, c in ROWS]


def test_a_row_with_another_separator_is_still_blamed(tmp_path: Path) -> None:
    # No separator fits every row: the first row's is taken and the odd row named, as before.
    path = tmp_path / "m.txt"
    path.write_text("A01\tneg\nA02;PLK1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 needs two columns"):
        read_mapping(path)


def test_a_tab_in_every_row_is_the_separator(tmp_path: Path) -> None:
    # Every condition holds two commas: more commas than tabs in each row, yet tabs split them.
    path = tmp_path / "m.txt"
    path.write_text("A01\tneg, pool a,b\nA02\tPLK1, siRNA 1,2\n", encoding="utf-8")
    mapping = read_mapping(path)
    assert mapping.lookup(PositionKey("plate1", "A02", "1")).condition == "PLK1, siRNA 1,2"
    assert mapping.lookup(PositionKey("plate1", "A01", "1")).is_control
