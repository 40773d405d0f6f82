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


def test_one_layout_written_in_every_documented_form_maps_alike(tmp_path: Path) -> None:
    # CellCognition's table and the two-column form (whose condition marks the controls),
    # rows in another order with extra rows, a Plate column naming the one plate, Windows
    # line endings, a byte-order mark, trailing spaces, the control token in another case.
    layout = [("A01", "1", "neg scr", "neg"), ("A02", "1", "PLK1", "target")]
    layout += [("B01", "2", "NEG ctrl", "NEG"), ("B02", "1", "KIF11", "target")]
    header = "Position\tWell\tSite\tRow\tColumn\tGene Symbol\tsiRNA ID\tGroup"

    def table(rows, plate: str = "") -> list[str]:
        lines = [header + "\tPlate" * bool(plate)]
        for i, (well, site, gene, group) in enumerate(rows):
            cells = [f"{well}_{site}", well, site, well[0], well[1:], gene, f"s{i}", group]
            lines.append("\t".join(cells + [plate] * bool(plate)))
        return lines

    extra = [("H12", "1", "X", "target"), ("H11", "1", "neg scr", "neg")]
    forms = {
        "table": ("\n".join(table(layout)) + "\n", "neg"),
        "pairs": ("Well\tCondition\n" + "".join(f"{w}_{s}\t{c}\n" for w, s, c, _ in layout), "neg"),
        "reordered": ("\n".join(table(layout[::-1] + extra)) + "\n", "neg"),
        "plate": ("\n".join(table(layout, "Plate1 ")) + "\n", "neg"),
        "windows": ("\ufeff" + "  \r\n".join(table(layout)) + "  \r\n", "NeG "),
    }
    expected = [(gene, group.lower() == "neg") for _, _, gene, group in layout]
    for name, (text, token) in forms.items():
        path = tmp_path / f"{name}.txt"
        path.write_text(text, encoding="utf-8", newline="")
        mapping = read_mapping(path, token)
        found = [mapping.lookup(PositionKey("plate1", w, f"000{s}")) for w, s, _, _ in layout]
        assert [(info.condition, info.is_control) for info in found] == expected, name


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize(
    ("delimiter", "conditions"),
    [(",", ["drug; 1 uM", "neg; 24 h"]), (";", ["siRNA a,b,c", "neg, pool 1,2"])],
)
def test_every_condition_holding_the_other_separator_reads_as_under_a_header(
    tmp_path: Path, header: bool, delimiter: str, conditions: list[str]
) -> None:
    # Both separators split every row of a headerless file whose every condition holds the
    # other one: the first row's count (or the order of the separators) chose the other, so
    # 'A01,drug' was read as a well (with '1 uM' its condition) or 'A01;siRNA a' as a cell
    # of three; under a header the same rows were read. A position holds no separator.
    lines = ["Well" + delimiter + "Condition"] * header
    lines += [f"A0{i}{delimiter}{condition}" for i, condition in enumerate(conditions, 1)]
    path = tmp_path / "m.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mapping = read_mapping(path)
    found = [mapping.lookup(PositionKey("plate1", f"A0{i}", "1")) for i in (1, 2)]
    assert [(info.condition, info.is_control) for info in found] == [
        (conditions[0], False),
        (conditions[1], True),
    ]
