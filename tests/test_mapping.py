"""Position-mapping files: CellCognition tables, two-column files and their errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from napari_cellae.io.cellh5 import CellH5, PositionKey
from napari_cellae.io.mapping import PositionInfo, read_mapping
from napari_cellae.io.mapping_fit import check_fit

HEADER = "Position\tWell\tSite\tRow\tColumn\tGene Symbol\tsiRNA ID\tGroup\n"


def _key(well: str, site: str) -> PositionKey:
    return PositionKey("plate1", well, site)


def test_cellcognition_mapping(mapping_file: Path, cellcognition_file: Path) -> None:
    mapping = read_mapping(mapping_file)
    assert len(mapping) == 2
    assert mapping.conditions == ["scrambled", "PLK1"]
    assert mapping.control_conditions == ["scrambled"]
    with CellH5(cellcognition_file) as ch5:
        check_fit(mapping, ch5.positions, cellcognition_file)
        infos = [mapping.lookup(p) for p in ch5.positions]
    assert infos == [
        PositionInfo("scrambled", True, "neg"),
        PositionInfo("PLK1", False, "target"),
    ]


def test_sites_match_as_text_and_number(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text(HEADER + "38\tC3\t0038\tC\t3\tKIF11\ts1\ttarget\n")
    mapping = read_mapping(path)
    assert mapping.lookup(_key("C03", "38")).condition == "KIF11"
    assert mapping.lookup(_key("C03", "0038")).condition == "KIF11"
    assert mapping.lookup(_key("C03", "39")) is None


def test_oligo_column_and_control_token(tmp_path: Path) -> None:
    path = tmp_path / "m.tsv"
    path.write_text(
        "Position\tWell\tSite\tRow\tColumn\tGene Symbol\tsiRNA ID\tOligoID\tGroup\n"
        "1\tA01\t1\tA\t1\tmock\t-\t-\tneg. control\n"
        "2\tA02\t1\tA\t2\tINCENP\ts2\to2\tpos\n"
    )
    mapping = read_mapping(path)
    assert mapping.lookup(_key("A01", "1")).is_control
    assert not mapping.lookup(_key("A02", "1")).is_control
    assert read_mapping(path, control_token="pos").lookup(_key("A02", "1")).is_control


@pytest.mark.parametrize("separator", ["\t", ",", ";"])
def test_two_column_file(tmp_path: Path, separator: str) -> None:
    path = tmp_path / "two.txt"
    path.write_text(f"C03{separator}neg. control\nC04_2{separator}taxol\n")
    mapping = read_mapping(path)
    # A bare well maps every site of that well.
    assert mapping.lookup(_key("C03", "1")) == PositionInfo("neg. control", True, "neg")
    assert mapping.lookup(_key("C03", "7")).is_control
    assert mapping.lookup(_key("C04", "02")).condition == "taxol"
    assert mapping.lookup(_key("C04", "1")) is None


def test_two_column_file_with_header(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("position,condition\nB01,neg\nB02,nocodazole\n")
    assert read_mapping(path).conditions == ["neg", "nocodazole"]


def _error(path: Path, *fragments: str) -> None:
    with pytest.raises(ValueError) as info:
        read_mapping(path)
    assert str(path) in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("\n\n")
    _error(path, "empty")


def test_header_only(tmp_path: Path) -> None:
    path = tmp_path / "header.txt"
    path.write_text(HEADER)
    _error(path, "no rows")


def test_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("Position\tWell\tSite\tGene Symbol\n1\tA01\t1\tmock\n")
    _error(path, "lacks column(s) Group")


def test_two_column_file_with_one_column(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("A01\nA02\n")
    _error(path, "line 1", "two columns")


def test_duplicate_rows(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text(HEADER + "1\tA01\t1\tA\t1\tmock\t-\tneg\n2\tA01\t0001\tA\t1\tmock\t-\tneg\n")
    _error(path, "line 3", "first on line 2", "duplicate")


def test_utf16_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    # Excel's "Unicode Text": it was refused as "not UTF-8".
    text = HEADER + "1\tA01\t1\tA\t1\tβ-catenin\t-\ttarget\r\n2\tA02\t1\tA\t2\tscr\t-\tneg\r\n"
    for encoding in ("utf-16", "utf-16-be"):
        path = tmp_path / f"{encoding}.txt"
        raw = text.encode(encoding)
        path.write_bytes(raw if encoding == "utf-16" else b"\xfe\xff" + raw)
        mapping = read_mapping(path)
        assert mapping.lookup(_key("A01", "1")).condition == "β-catenin"
        assert mapping.lookup(_key("A02", "1")).is_control
    broken = tmp_path / "broken.txt"
    broken.write_bytes(b"\xff\xfe" + "A01\tneg\n".encode("utf-16-le") + b"\x00\xd8")
    _error(broken, "not UTF-16")


def test_excel_separator_line(tmp_path: Path) -> None:
    # Excel's "sep=;" first line was read as a one-column row: "line 1 needs two columns".
    path = tmp_path / "m.csv"
    path.write_text("sep=;\nWell;Condition\nA01;neg\nA02;PLK1, siRNA 2\n")
    mapping = read_mapping(path)
    assert mapping.lookup(_key("A01", "1")).is_control
    assert mapping.lookup(_key("A02", "1")).condition == "PLK1, siRNA 2"


def test_latin1_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_bytes((HEADER + "1\tA01\t1\tA\t1\tcaténine\t-\ttarget\n").encode("latin-1"))
    _error(path, "not UTF-8")


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_latin1_names_the_line_and_the_byte(tmp_path: Path, newline: str) -> None:
    # German Excel's "CSV" is Windows-1252: the message said "byte 41", which no editor shows.
    path = tmp_path / "m.csv"
    lines = ["Well;Condition", "A01;neg. control", "", "B02;Kontrolle \u00fc"]
    path.write_bytes(newline.join(lines).encode("cp1252"))
    _error(path, "line 4", "0xfc", "Kontrolle", "Windows-1252", "UTF-8")
    path.write_bytes(bytes(range(256)))  # no text at all: not blamed on Excel's CSV
    _error(path, "0x80", "not a text file")


def test_short_row(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text(HEADER + "1\tA01\t1\n")
    _error(path, "line 2", "columns")


def test_positions_the_file_lacks(mapping_file: Path, cellprofiler_file: Path) -> None:
    # A whole plate's mapping for a file of part of it was refused outright; now its rows
    # for the missing positions are named and left out.
    mapping = read_mapping(mapping_file)
    with CellH5(cellprofiler_file) as ch5:
        positions = [key for key in ch5.positions if mapping.lookup(key) is not None]
        unmapped = [key for key in ch5.positions if mapping.lookup(key) is None]
    with pytest.warns(UserWarning) as caught:  # every position of the file is mapped
        check_fit(mapping, positions, cellprofiler_file)
    message = str(caught[0].message)
    assert str(mapping_file) in message and str(cellprofiler_file) in message
    assert "B02_0001" in message and "their rows are left out (a plate imaged in part?)" in message
    # Where the file holds positions the mapping lacks too, the layouts differ both ways,
    # as another plate's mapping does: refused.
    assert unmapped
    with pytest.raises(ValueError, match=r"position\(s\) that are not in .*B02_0001") as info:
        check_fit(mapping, positions + unmapped, cellprofiler_file)
    # and says why (the file's own positions are unmapped, named) and what to do
    unmapped_label = unmapped[0].label
    assert f"no row maps {unmapped_label}: the mapping of another plate?" in str(info.value)
    assert "Give this plate's mapping, or correct the Well and Site" in str(info.value)


def test_unreadable_path(tmp_path: Path) -> None:
    _error(tmp_path / "absent.txt", "cannot read")


def test_folder_given_for_the_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=rf"^{tmp_path}: is a folder; expected a mapping file"):
        read_mapping(tmp_path)


def test_endless_or_huge_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The whole file was read: /dev/zero given as the mapping filled the memory (a hang).
    import napari_cellae.io.mapping_text as mapping_text

    monkeypatch.setattr(mapping_text, "_MAX_BYTES", 2**20)
    path = tmp_path / "big.txt"
    path.write_text("A01\tneg!\n" * 2**17)  # 1 MiB and 128 KiB
    for big in (path, Path("/dev/zero")):
        if big.exists():
            _error(big, "is larger than 1 MiB, so not a mapping file")


ROW_A01 = "1\tA01\t1\tA\t1\tmock\t-\tneg\n"
ROW_B02 = "2\tB02\t1\tB\t2\tPLK1\ts2\ttarget\n"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_numbers_count_blank_and_comment_lines(tmp_path: Path, newline: str) -> None:
    # Lines 1-7 as an editor shows them: comment, header, blank, A01, B02, blank, A01 again.
    text = "# plate 1\n" + HEADER + "\n" + ROW_A01 + ROW_B02 + "  \n" + ROW_A01
    path = tmp_path / "m.txt"
    path.write_bytes(text.replace("\n", newline).encode())
    _error(path, "line 7 maps position A01_1 again (first on line 4)")


def test_short_row_line_number_counts_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("\n" + HEADER + "\n" + ROW_A01 + "2\tB02\t1\n")
    _error(path, "line 5 has 3 columns, the header (line 2) has 8")


def test_two_column_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("Well\tCondition\n\nA01\tneg\n# B02 was empty\nB02\n")
    _error(path, "line 5 needs two columns")


def test_header_names_ignore_case_and_spaces(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    header = " position \tWELL\tsite\trow\tcolumn\t gene symbol\tsirna id\tgroup \n"
    path.write_text(header + ROW_A01 + ROW_B02)
    mapping = read_mapping(path)
    assert mapping.conditions == ["mock", "PLK1"]
    assert mapping.control_conditions == ["mock"]
    assert mapping.lookup(_key("B02", "1")) == PositionInfo("PLK1", False, "target")


@pytest.mark.parametrize(
    "header",
    # headers of other words were read as a position "ID" mapped to "Condition", warned of
    # as a row of a position the file lacks ("a plate imaged in part?")
    [
        "Well\tCondition",
        "Position\tCondition",
        "WELL\ttreatment",
        "ID\tCondition",
        "Sample\tCompound",
    ],
)
def test_two_column_file_with_named_header(tmp_path: Path, header: str) -> None:
    path = tmp_path / "m.txt"
    path.write_text(f"{header}\nA01\tneg\nB02_1\tPLK1\n")
    mapping = read_mapping(path)
    assert mapping.conditions == ["neg", "PLK1"]
    assert mapping.control_conditions == ["neg"]
    assert mapping.lookup(_key("B02", "0001")).condition == "PLK1"


@pytest.mark.parametrize(
    ("header", "missing", "found"),
    [
        ("Well\tGene Symbol", "lacks column(s) Group", "found: Well, Gene Symbol"),
        ("Well\tGroup", "lacks column(s) Gene Symbol", "found: Well, Group"),
        (
            "Position\tCondition\tNotes",
            "lacks column(s) Well, Gene Symbol, Group",
            "found: Position, Condition, Notes",
        ),
    ],
)
def test_incomplete_header_names_found_and_needed_columns(
    tmp_path: Path, header: str, missing: str, found: str
) -> None:
    path = tmp_path / "m.txt"
    path.write_text(f"{header}\nA01\tneg\tx\n")
    _error(path, "line 1", missing, found, "needs Well, Gene Symbol and Group", "two-column")


@pytest.mark.parametrize("spaces", ["    ", " "])
def test_space_separated_file(tmp_path: Path, spaces: str) -> None:
    path = tmp_path / "m.txt"
    path.write_text((HEADER + ROW_A01).replace("\t", spaces))
    _error(path, "line 1:", "separated by spaces", "must be separated by tabs")


def test_space_separated_row_in_tab_separated_table(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text(HEADER + ROW_A01 + ROW_B02.replace("\t", "  "))
    _error(path, "line 3 has 1 columns", "separated by spaces", "must be separated by tabs")


def test_space_separated_row_in_comma_separated_file(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("A01,neg\nB02 PLK1\n")
    _error(path, "line 2:", "separated by spaces", "must be separated by commas")


@pytest.mark.parametrize("token", ["", "   ", "\t"])
def test_blank_control_token_is_refused(mapping_file: Path, token: str) -> None:
    with pytest.raises(ValueError) as info:
        read_mapping(mapping_file, control_token=token)
    assert str(mapping_file) in str(info.value)
    assert "control token is empty" in str(info.value)


def test_duplicate_column_name(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("# plate 1\nWell\tSite\tGene Symbol\tGroup\tgroup\nA01\t1\tscr\tneg\ttarget\n")
    _error(path, "line 2", "column 'group' twice", "columns 4 and 5")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_byte_order_mark(tmp_path: Path, encoding: str) -> None:
    # Valid UTF-8 with a NUL between letters: big-endian files read as wells '\x00A\x000...'.
    path = tmp_path / "m.txt"
    path.write_bytes("A01\tneg\nA02\tPLK1\n".encode(encoding))
    _error(path, "NUL bytes", "UTF-16", "save it as UTF-8")


def test_cell_too_long_to_read(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("A01\tneg\nA02\t" + "x" * 200_000 + "\n")
    _error(path, "line 2 cannot be read as a table row", "field limit")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("C03\tneg. control\nC3_1\tPLK1\n", "C3_1 to 'PLK1', but line 1 maps its whole well to"),
        ("C03_01\tPLK1\n\nc3\tneg\n", "line 1 maps position C03_01 to 'PLK1', but line 3"),
        (
            HEADER + "1\tA01\t\tA\t1\tmock\t-\tneg\n2\tA01\t1\tA\t1\tmock\t-\ttarget\n",
            "A01_1 to 'mock', but line 2 maps its whole well to 'mock' (control)",
        ),
    ],
)
def test_site_row_contradicting_its_well_row(tmp_path: Path, text: str, where: str) -> None:
    # The site row won without a word: the control well C03 lost its control site.
    path = tmp_path / "m.txt"
    path.write_text(text)
    _error(path, where, "maps its whole well to", "keep one of them")


def test_site_row_agreeing_with_its_well_row(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("C03\tneg\nC03_1\tneg\nC04\tPLK1\n")
    assert read_mapping(path).lookup(_key("C03", "2")).is_control


# Plate column: screens whose plates have different layouts.
PLATE_HEADER = "Plate\tWell\tSite\tGene Symbol\tGroup\n"


def _plate_mapping(tmp_path: Path, rows: str, header: str = PLATE_HEADER) -> Path:
    path = tmp_path / "plates.txt"
    path.write_text(header + rows)
    return path


def test_plates_with_different_layouts(tmp_path: Path) -> None:
    # The Plate column was ignored: A01 on two plates was refused as a duplicate row.
    path = _plate_mapping(
        tmp_path,
        "P1\tA01\t1\tscr\tneg\nP1\tB02\t1\tPLK1\tt\nP2\tA01\t1\tKIF11\tt\nP2\tB02\t1\tscr\tneg\n",
    )
    mapping = read_mapping(path)
    assert mapping.lookup(PositionKey("P1", "A01", "1")) == PositionInfo("scr", True, "neg")
    assert mapping.lookup(PositionKey("P2", "A01", "1")) == PositionInfo("KIF11", False, "t")
    assert mapping.lookup(PositionKey("P1", "B02", "1")).condition == "PLK1"
    assert mapping.lookup(PositionKey("P2", "B02", "01")).is_control
    assert mapping.lookup(PositionKey("P3", "A01", "1")) is None  # no row for P3
    assert mapping.conditions == ["scr", "PLK1", "KIF11"]
    assert mapping.control_conditions == ["scr"]
    assert len(mapping) == 4


def test_rows_without_a_plate_are_the_fallback_and_plate_rows_win(tmp_path: Path) -> None:
    path = _plate_mapping(
        tmp_path,
        "\tA01\t\tscr\tneg\n"  # every plate, whole well
        "\tA02\t2\tmock\tneg\n"  # every plate, one site
        "P2\tA01\t\tKIF11\tt\n"  # P2's whole well beats the whole well of every plate
        "P2\tA02\t\tPLK1\tt\n"  # ... and the site of every plate
        "P3\tA01\t2\tINCENP\tt\n",  # P3's site beats the whole well of every plate
    )
    mapping = read_mapping(path)

    def condition(plate: str, well: str, site: str) -> str | None:
        info = mapping.lookup(PositionKey(plate, well, site))
        return None if info is None else info.condition

    assert [condition("P1", "A01", s) for s in "12"] == ["scr", "scr"]
    assert [condition("P1", "A02", s) for s in "12"] == [None, "mock"]
    assert [condition("P2", "A01", s) for s in "12"] == ["KIF11", "KIF11"]
    assert [condition("P2", "A02", s) for s in "12"] == ["PLK1", "PLK1"]
    assert [condition("P3", "A01", s) for s in "12"] == ["scr", "INCENP"]
    assert [condition("P3", "A02", s) for s in "12"] == [None, "mock"]


def test_a_table_without_plate_column_maps_every_plate(mapping_file: Path) -> None:
    mapping = read_mapping(mapping_file)
    for plate in ("plate1", "LT0001_01"):
        assert mapping.lookup(PositionKey(plate, "B02", "1")).condition == "PLK1"


def test_plate_names_match_without_case_or_spaces(tmp_path: Path) -> None:
    header = "Position\tWell\tSite\tRow\tColumn\tGene Symbol\tsiRNA ID\tGroup\t PLATE \n"
    path = _plate_mapping(tmp_path, ROW_A01.replace("\n", "\t LT0001_01 \n"), header)
    mapping = read_mapping(path)
    assert mapping.lookup(PositionKey("lt0001_01", "A01", "1")).condition == "mock"
    assert mapping.lookup(PositionKey(" LT0001_01", "A01", "1")).condition == "mock"
    assert mapping.lookup(PositionKey("LT0001_02", "A01", "1")) is None
    check_fit(mapping, [PositionKey("Lt0001_01 ", "A01", "1")], "screen.ch5")


def test_a_plate_renamed_after_its_file_keeps_its_rows(tmp_path: Path) -> None:
    # distinct_keys renames plate1 of two files "plate1 (b/plate.ch5)": still plate1's rows.
    path = _plate_mapping(tmp_path, "\tA01\t1\tscr\tneg\nplate1\tA01\t1\tPLK1\tt\n")
    mapping = read_mapping(path)
    assert mapping.lookup(PositionKey("plate1 (b (2)/plate.ch5)", "A01", "1")).condition == "PLK1"
    assert mapping.lookup(PositionKey("plate2 (b/plate.ch5)", "A01", "1")).condition == "scr"


def test_duplicates_within_a_plate_are_refused_across_plates_accepted(tmp_path: Path) -> None:
    rows = "P1\tA01\t1\tscr\tneg\nP2\tA01\t1\tscr\tneg\n\tA01\t1\tmock\tneg\n"
    assert len(read_mapping(_plate_mapping(tmp_path, rows))) == 3
    path = _plate_mapping(tmp_path, rows + "p1 \tA01\t0001\tPLK1\tt\n")
    _error(path, "line 5 maps position A01_0001 of plate 'p1' again (first on line 2)")
    path = _plate_mapping(tmp_path, rows + "\tA1\t1\tPLK1\tt\n")
    _error(path, "line 5 maps position A1_1 again (first on line 4)")


def test_site_row_contradicting_its_well_row_per_plate(tmp_path: Path) -> None:
    # Different plates (or a plate and the rows for every plate) never contradict ...
    rows = "P1\tC03\t\tscr\tneg\nP2\tC03\t1\tPLK1\tt\n\tC03\t1\tKIF11\tt\n"
    mapping = read_mapping(_plate_mapping(tmp_path, rows))
    assert mapping.lookup(PositionKey("P1", "C03", "1")).is_control
    # ... but on one plate the site row would silently win over the control well.
    path = _plate_mapping(tmp_path, rows + "P1\tC03\t2\tPLK1\tt\n")
    _error(
        path,
        "line 5 maps position C03_2 of plate 'P1' to 'PLK1', but line 2 maps its whole well"
        " to 'scr' (control); keep one of them",
    )


def _keys(plate: str, *wells: str) -> list[PositionKey]:
    return [PositionKey(plate, well, "1") for well in wells]


def test_check_skips_rows_of_other_plates(tmp_path: Path) -> None:
    path = _plate_mapping(tmp_path, "P1\tA01\t1\tscr\tneg\nP2\tB02\t1\tPLK1\tt\n")
    mapping = read_mapping(path)
    # Each file of the run holds one of the plates: P2's B02 is not asked of a.ch5.
    check_fit(mapping, _keys("P1", "A01"), "a.ch5")
    check_fit(mapping, _keys("P2", "B02"), "b.ch5")
    with pytest.raises(ValueError) as info:  # but a row of the file's plate must fit
        check_fit(mapping, _keys("P2", "A01"), "b.ch5")
    assert "names 1 position(s) that are not in b.ch5: B02_1 of plate 'P2'" in str(info.value)
    # a file holding a plate that no row names is refused only without rows for every plate
    with_fallback = _plate_mapping(tmp_path, "P1\tA01\t1\tscr\tneg\n\tB02\t1\tPLK1\tt\n")
    check_fit(read_mapping(with_fallback), _keys("P1", "A01") + _keys("P9", "B02"), "c.ch5")


def test_check_refuses_a_plate_column_naming_other_plates(tmp_path: Path) -> None:
    # A single-plate user wrote plate1 in the Plate column; the file's plate is LT0001_01.
    path = _plate_mapping(tmp_path, "plate1\tA01\t1\tscr\tneg\nplate2\tA01\t1\tPLK1\tt\n")
    mapping = read_mapping(path)
    with pytest.raises(ValueError) as info:
        check_fit(mapping, _keys("LT0001_01", "A01"), "screen.ch5")
    message = str(info.value)
    assert message.startswith(f"{path}: the Plate column names plate(s) 'plate1', 'plate2'")
    assert "screen.ch5 holds plate(s) 'LT0001_01'" in message
    assert "Correct the Plate column" in message and "remove the column" in message
    # a file holding a named plate and an unnamed one is refused as well
    with pytest.raises(ValueError, match=r"no row maps plate\(s\) 'P3'"):
        check_fit(mapping, _keys("plate1", "A01") + _keys("P3", "A01"), "two.ch5")


def test_unmapped_positions_in_the_order_given(tmp_path: Path) -> None:
    # A well row maps every site, a site row its site only, a plate row its plate only.
    path = _plate_mapping(tmp_path, "\tA01\t\tscr\tneg\n\tB02\t2\tPLK1\tt\nP2\tC03\t1\tKIF11\tt\n")
    mapping = read_mapping(path)
    keys = [
        PositionKey("P1", "A01", "7"),
        PositionKey("P1", "B02", "1"),  # another site of B02
        PositionKey("P1", "b2", "02"),
        PositionKey("P1", "C03", "1"),  # C03 is mapped on P2 only
        PositionKey("p2 ", "C03", "1"),
        PositionKey("P2", "A1", "1"),
    ]
    assert mapping.unmapped(keys) == [keys[1], keys[3]]
    assert mapping.unmapped(iter(keys[::-1])) == [keys[3], keys[1]]
    assert mapping.unmapped([keys[0], keys[2], keys[4]]) == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        # a third column without a header (the controls' Group) was ignored: no control
        (
            "A01\tscrambled\tneg\nC03\tPLK1\ttarget\n",
            "line 1 has 3 columns where 2 are expected ('neg' is extra); a cell cannot hold a"
            " tab. A file without CellCognition's header has two, position and condition",
        ),
        (
            "Well,Condition\nA01,scrambled,neg\n",
            "line 2 has 3 columns where 2 are expected ('neg' is extra); a cell that holds commas"
            ' must be quoted ("scr, pool")',
        ),
        # an unquoted comma shifted the columns: Group read ' pool', and A01 was no control
        (
            "Well,Gene Symbol,Group\nA01,scr, pool,neg\n",
            "line 2 has 4 columns where 3 are expected ('neg' is extra); a cell that holds commas",
        ),
    ],
)
def test_cells_beyond_the_columns_are_refused(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text)
    _error(path, fragment)


def test_quoted_separators_and_trailing_separators_are_read(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text('Well,Gene Symbol,Group,\nA01,"scr, pool",neg,,\nC03,PLK1,target\n')
    mapping = read_mapping(path)
    assert mapping.lookup(_key("A01", "1")) == PositionInfo("scr, pool", True, "neg")
    path.write_text("A01\tneg. control\t\t\nC03\tPLK1\t\n")
    assert read_mapping(path).lookup(_key("A01", "1")).is_control


@pytest.mark.parametrize(
    "text",
    [
        'Well\tGene Symbol\tGroup\nA01\t"scrambled\tneg\n',  # a quote never closed
        'Well,Gene Symbol,Group\nA01,"scr\npool",neg\n',  # a quoted cell over two lines
    ],
)
def test_a_quote_left_open_is_named(tmp_path: Path, text: str) -> None:
    # Was only "line 2 has 2 columns, the header (line 1) has 3" for a row that shows 3
    path = tmp_path / "m.txt"
    path.write_text(text)
    _error(path, "line 2 has 2 columns", 'a quote (") in it is never closed')
    path.write_text('Well\tGene Symbol\tGroup\nA01\t5" UTR\n')  # a quote inside a cell
    with pytest.raises(ValueError) as info:
        read_mapping(path)
    assert 'a quote (")' not in str(info.value)


def test_a_stated_separator_of_any_character_is_named(tmp_path: Path) -> None:
    # Excel's sep= line may name any character; a space-separated row then raised KeyError.
    path = tmp_path / "m.csv"
    path.write_text("sep=|\nA01|neg\nB02 neg\n")
    _error(path, "line 3: its columns are separated by spaces", "separated by '|' characters")


def test_a_well_naming_another_site_than_the_site_column_is_refused(tmp_path: Path) -> None:
    # Well 'A01_0002' with Site 0001: the Well's site won without a word.
    path = tmp_path / "m.txt"
    path.write_text("Well\tSite\tGene Symbol\tGroup\nA01_0002\t0001\tscr\tneg\n")
    _error(path, "line 2: Well 'A01_0002' names site '0002', but the Site column says '0001'")
    path.write_text("Well\tSite\tGene Symbol\tGroup\nA01_2\t0002\tscr\tneg\nB02_1\t\tPLK1\tt\n")
    mapping = read_mapping(path)  # the same site, or none in the Site column: fine
    assert mapping.lookup(_key("A01", "2")).is_control
    assert mapping.lookup(_key("B02", "0001")).condition == "PLK1"
    # Position stands in for Site only where there is none; a Well's site wins over it.
    path.write_text("Position\tWell\tGene Symbol\tGroup\n0007\tA01_2\tscr\tneg\n")
    assert read_mapping(path).lookup(_key("A01", "2")).is_control


def test_a_position_column_naming_another_position_is_refused(tmp_path: Path) -> None:
    # Rows are mapped by Well and Site: a Position column sorted apart from them gave A01
    # and A02 each other's conditions without a word
    path = tmp_path / "m.txt"
    path.write_text(
        HEADER + "A02_01\tA01\t1\tA\t1\tscr\ts1\tneg\nA01_01\tA02\t1\tA\t2\tPLK1\ts2\tt\n"
    )
    _error(path, "line 2: its Position 'A02_01' names another position than its Well 'A01'")
    # other forms of Position ('0037'), zero padding and whole-well rows are no contradiction
    path.write_text(
        HEADER + "0037\tA01\t1\tA\t1\tscr\ts1\tneg\nb2_0001\tB02\t1\tB\t2\tP\ts2\tt\n"
        "C03_01\tC03\t\tC\t3\tKIF11\ts3\tt\n"
    )
    assert read_mapping(path).lookup(_key("B2", "1")) == PositionInfo("P", False, "t")


def test_a_row_without_any_condition_is_refused(tmp_path: Path) -> None:
    # Its cells were written and ranked under an empty condition ''.
    path = tmp_path / "m.txt"
    path.write_text(HEADER + "1\tA01\t1\tA\t1\tscr\ts1\tneg\n2\tD04\t1\tD\t4\t\t\t\n")
    _error(path, "line 3 gives D04 no condition (Gene Symbol, siRNA ID and Group are empty)")


@pytest.mark.parametrize(
    ("start", "what"),
    [
        (b"\x89HDF\r\n\x1a\n", "is an HDF5 file (a CellH5 file given as the mapping?)"),
        (b"PK\x03\x04", "is a ZIP archive (an Excel .xlsx workbook?)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "is an Excel .xls workbook"),
    ],
)
def test_files_that_are_no_text_are_named(tmp_path: Path, start: bytes, what: str) -> None:
    # They were "not UTF-8 text (byte 0)" or "holds NUL bytes: UTF-16?".
    path = tmp_path / "plate_mapping.txt"
    path.write_bytes(start + bytes(64))
    _error(path, what, "save the table of positions and conditions as tab-separated text")


@pytest.mark.parametrize(
    "start", [b"\x89PNG\r\n\x1a\n\x00\x00", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\x93NUMPY\x01\x00"]
)
def test_pictures_and_arrays_are_no_text(tmp_path: Path, start: bytes) -> None:
    # A PNG (the gallery 'cellae encode' writes), a JPEG or a .npy file given as the
    # mapping was "not UTF-8 text ...; saved as Latin-1 or Windows-1252?"
    path = tmp_path / "plate_mapping.txt"
    path.write_bytes(start + b"rest")
    _error(path, "line 1 holds byte", "not a text file?")


def test_cellh5_file_given_as_mapping(cellcognition_file: Path) -> None:
    _error(cellcognition_file, "is an HDF5 file")


def test_indented_comment_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("  # controls first\n\t# (tab-indented)\nA01\tneg\nC03\tPLK1\n")
    mapping = read_mapping(path)
    assert len(mapping) == 2 and mapping.lookup(_key("A01", "1")).is_control


def test_invisible_characters_in_unknown_positions_are_shown(tmp_path: Path) -> None:
    # 'A01' with a zero-width space before it was named as A01, which the file has.
    path = tmp_path / "m.txt"
    path.write_text("\u200bA01\tneg\n")
    with pytest.raises(ValueError) as info:
        check_fit(read_mapping(path), [_key("A01", "1")], "p.ch5")
    assert "not in p.ch5: '\\u200bA01'" in str(info.value)


def test_names_compare_in_one_unicode_form(tmp_path: Path) -> None:
    # 'Plätte' with a combining mark (NFD, as macOS writes names) was refused as another
    # plate than the file's 'Plätte' (NFC), in a message showing the two alike; a site '²'
    # raised "invalid literal for int()" naming no file; a full-width 'Ａ01' matched nothing.
    path = tmp_path / "m.txt"
    path.write_text("Plate\tWell\tSite\tGene Symbol\tGroup\nPla\u0308tte\tＡ01\t²\tscr\tneg\n")
    mapping = read_mapping(path)
    key = PositionKey("Pl\u00e4tte", "A01", "2")
    check_fit(mapping, [key], "p.ch5")
    assert mapping.lookup(key).is_control
    assert read_mapping(path).unused_plates([key]) == []


def test_positions_of_cellcognition_runs_without_wells(tmp_path: Path) -> None:
    # A run without a plate layout has well '0' and positions 0013, ...: cellae info lists
    # them as 0_0013, and a two-column mapping naming 0_0013 was refused as not in the file.
    path = tmp_path / "m.txt"
    path.write_text("0_0013\tneg. control\n0_0014\tKIF11\n")
    mapping = read_mapping(path)
    keys = [_key("0", "0013"), _key("0", "0014")]
    check_fit(mapping, keys, "movie.ch5")
    assert mapping.lookup(keys[0]).is_control and mapping.lookup(keys[1]).condition == "KIF11"
    # The bare position number names a well, which the file lacks: the refusal shows how
    # the file names its positions.
    path.write_text("0013\tneg. control\n")
    with pytest.raises(ValueError, match=r"not in movie\.ch5: 0013 \(it holds 0_0013, 0_0014\)"):
        check_fit(read_mapping(path), keys, "movie.ch5")


def test_a_gene_starting_with_the_control_token_is_warned_about(tmp_path: Path) -> None:
    # NEGR1 starts with 'neg': counted as a negative control without a word, so the
    # controls' cells (training, novelty) held a knock-down.
    path = tmp_path / "m.txt"
    path.write_text("A01\tneg control\nA02\tNEGR1\nA03\tNegative Control\nA04\tneg1\nA05\tNEGR1\n")
    with pytest.warns(UserWarning) as caught:
        mapping = read_mapping(path)
    assert len(caught) == 1
    text = str(caught[0].message)
    assert str(path) in text and "'NEGR1' (line 2)" in text and "line 5" not in text
    assert "the widget's 'Controls'" in text  # where the widget sets the token
    assert "Negative Control" not in text and "'neg1'" not in text  # usual names: no word
    assert mapping.lookup(_key("A02", "1")).is_control  # as documented: said, not changed
    assert all(mapping.lookup(_key(w, "1")).is_control for w in ("A01", "A03", "A04"))


def test_a_gene_of_the_token_and_letters_is_warned_about(tmp_path: Path) -> None:
    # SCRIB starts with 'scr' and goes on with letters only: a control, without a word.
    path = tmp_path / "m.txt"
    path.write_text("A01\tscrambled\nA02\tSCRIB\nA03\tScramble\nA04\tscr\n")
    with pytest.warns(UserWarning) as caught:
        read_mapping(path, control_token="scr")
    assert len(caught) == 1 and "'SCRIB' (line 2)" in str(caught[0].message)
    assert "scrambled" not in str(caught[0].message).split("start(s)")[0]
    path.write_text("A01\tsiNeg\nA02\tsiPLK1\nA03\tLuciferase\nA04\tLUZP1\n")
    for token, gene in (("si", "siPLK1"), ("lu", "LUZP1")):
        with pytest.warns(UserWarning, match=f"'{gene}'") as caught:
            read_mapping(path, control_token=token)
        assert "siNeg" not in str(caught[0].message) and "Luciferase" not in str(caught[0].message)
    # the usual names of controls, by a token that starts them: no word
    usual = {
        "scr": ["scrambled", "scramble", "Scrambled2"],
        "neg": ["neg. control", "negative control", "NegCtrl", "neg", "neg1", "Neg_ctrl"],
        "non": ["non-targeting", "nontargeting", "NonTargetingControl", "nonsilencing"],
        "dm": ["DMSO"],
        "mo": ["mock"],
        "nt": ["NTC", "NT"],
        # the reporter genes and kits that RNAi screens take for negative controls
        "luc": ["Luciferase", "luc", "LucGL3"],
        "all": ["AllStars", "AllStarsNeg"],
        "si": ["siNeg", "siGFP", "siLuc", "siControl", "siRNA_neg"],
        "gl": ["GL2", "GL3"],
    }
    for token, names in usual.items():
        path.write_text("".join(f"A{i:02}\t{name}\n" for i, name in enumerate(names, 1)))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            mapping = read_mapping(path, control_token=token)
        assert mapping.control_conditions == names, token


def test_the_controls_hint_names_the_token_and_what_the_rows_hold(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("A01\tDMSO\nA02\tPLK1\n")
    hint = read_mapping(path).controls_hint()
    assert "control token 'neg'" in hint and "conditions: 'DMSO', 'PLK1'" in hint
    table = tmp_path / "t.txt"
    table.write_text("Well\tGene Symbol\tGroup\nA01\tDMSO\tcontrol\nA02\tPLK1\ttarget\n")
    hint = read_mapping(table).controls_hint()
    assert "Groups: 'control', 'target'" in hint and "--control-token" in hint
    assert "starts with" not in read_mapping(table, "control").controls_hint()


def test_wt1_by_a_knockdown_token_is_warned_about(tmp_path: Path) -> None:
    # 'wt' counted as a control's usual word, so siWT1 (Wilms tumour 1, a common target)
    # by the token 'si' was taken for a control without a word, where before it was warned.
    path = tmp_path / "m.txt"
    path.write_text("A01\tsiNeg\nA02\tsiWT1\nA03\tshWT1\n")
    for token, gene in (("si", "siWT1"), ("sh", "shWT1")):
        with pytest.warns(UserWarning, match=f"'{gene}'") as caught:
            read_mapping(path, control_token=token)
        assert "siNeg" not in str(caught[0].message).split("start(s)")[0]
