"""Reading a position-mapping file as text: its bytes, lines, separator, cells and header.

The rows' meaning (conditions, controls, plates) is :mod:`napari_cellae.io.mapping`'s; this
module only turns the file into numbered rows of cells, tells which kind of header the first
row is (CellCognition table, two-column file, none) and where a table's columns are, and
explains the rows that do not split as they should.
"""

from __future__ import annotations

import codecs
import csv
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Row",
    "column_name",
    "extra_cells_problem",
    "header_kind",
    "name_past_token",
    "plain",
    "read_text",
    "short_row_problem",
    "spaces_problem",
    "split_rows",
    "table_columns",
]

_DELIMITERS = ("\t", ";", ",")
# Far above any screen's table (a few dozen bytes per position); more is no mapping file,
# and /dev/zero would fill the memory.
_MAX_BYTES = 64 * 2**20
_DELIMITER_NAMES = {"\t": "tabs", ";": "semicolons", ",": "commas"}
# Files that are no text at all, by their first bytes: said by name, as "not UTF-8 text
# (byte 0)" leaves a user guessing what the file is.
_SIGNATURES = {
    b"\x89HDF\r\n\x1a\n": "an HDF5 file (a CellH5 file given as the mapping?)",
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx workbook?)",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "an Excel .xls workbook",
    b"%PDF": "a PDF document",
}

_REQUIRED_COLUMNS = ("Well", "Gene Symbol", "Group")
# Header names (normalised, see column_name). A first row naming a position column, or any
# of the table markers, is a header; data rows hold wells and conditions instead.
_POSITION_NAMES = frozenset({"position", "well", "pos", "position id"})
_TABLE_MARKERS = ("well", "gene symbol", "group")
# Plate among them: a header "Well, Plate" is an incomplete table, not plates as conditions.
_OTHER_NAMES = {"site", "row", "column", "gene symbol", "sirna id", "group", "plate"}
_KNOWN_NAMES = _POSITION_NAMES | _OTHER_NAMES


def read_text(path: Path) -> str:
    """The text of a mapping file (UTF-8, or UTF-16 with a byte-order mark)."""
    if path.is_dir():
        raise ValueError(
            f"{path}: is a folder; expected a mapping file (a tab-, comma- or semicolon-"
            "separated table of positions and conditions)"
        )
    try:
        with path.open("rb") as file:  # a pipe too: --mapping <(...)
            raw = file.read(_MAX_BYTES + 1)
    except OSError as err:
        raise ValueError(f"{path}: cannot read the mapping file ({err.strerror})") from None
    if len(raw) > _MAX_BYTES:
        raise ValueError(
            f"{path}: is larger than {_MAX_BYTES // 2**20} MiB, so not a mapping file (a table"
            " of positions and conditions)"
        )
    for signature, what in _SIGNATURES.items():
        if raw.startswith(signature):
            raise ValueError(
                f"{path}: is {what}, not a mapping file; save the table of positions and"
                " conditions as tab-separated text"
            )
    # Excel's "Unicode Text" is UTF-16 with a byte-order mark.
    utf16 = raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    try:
        text = raw.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError as err:
        if utf16:
            raise ValueError(
                f"{path}: the mapping file is not UTF-16 text (byte {err.start}); save it as UTF-8"
            ) from None
        raise ValueError(_not_utf8(path, raw, err.start)) from None
    if "\x00" in text:
        # UTF-16 without a byte-order mark decodes as UTF-8 with a NUL between letters:
        # its wells would never match ('\x00A\x000\x001') or its rows look one column wide.
        raise ValueError(
            f"{path}: the mapping file holds NUL bytes (byte {raw.index(0)}): it is UTF-16 or"
            " not a text file; save it as UTF-8 text"
        )
    return text


def _not_utf8(path: Path, raw: bytes, start: int) -> str:
    """Name the line and the byte that are not UTF-8, and the line as Windows-1252 reads it:
    a byte offset is nothing an editor shows, and Excel's "CSV" on Windows (``Kontrolle ü``
    as ``0xfc``) is the usual cause."""
    breaks = list(re.finditer(rb"\r\n|\r|\n", raw))
    line = 1 + sum(1 for found in breaks if found.end() <= start)
    begin = max((found.end() for found in breaks if found.end() <= start), default=0)
    end = next((found.start() for found in breaks if found.start() >= start), len(raw))
    # Control bytes before the bad one or soon after it (a PNG's, JPEG's or .npy's first
    # byte is no UTF-8 already; they were said to be Latin-1 text): no text.
    if re.search(rb"[\x00-\x08\x0e-\x1f]", raw[: start + 1024]):
        return (
            f"{path}: line {line} holds byte 0x{raw[start]:02x}, which is not UTF-8, near"
            " bytes that no text holds: not a text file? Give the mapping file (a tab-, comma-"
            " or semicolon-separated table of positions and conditions, saved as UTF-8)"
        )
    shown = raw[max(begin, start - 40) : min(end, start + 40)].decode("cp1252", errors="replace")
    return (
        f"{path}: line {line} is not UTF-8 text (byte 0x{raw[start]:02x} in {shown!r}); the"
        ' mapping file was saved as Latin-1 or Windows-1252 (Excel\'s "CSV" on Windows)?'
        ' Save it as UTF-8 (Excel: "CSV UTF-8" or "Unicode Text")'
    )


@dataclass(frozen=True)
class Row:
    """One row of the table and the line it is on, counted as an editor counts lines."""

    line: int
    cells: list[str]
    text: str


def plain(text: str) -> str:
    """``text`` in Unicode's NFKC form, as names are compared: an ``ä`` written as ``a`` and a
    combining mark (as macOS writes file and folder names) is ``ä``, and full-width ``Ａ01``
    (typed with an East Asian input method) is ``A01``; both looked alike in messages that
    said they differ."""
    return unicodedata.normalize("NFKC", text)


def column_name(cell: str) -> str:
    """Header names compare without case or extra spaces (``gene symbol `` is ``Gene Symbol``)."""
    return " ".join(plain(cell).split()).casefold()


def split_rows(path: Path, text: str) -> tuple[list[Row], str]:
    """The non-blank, non-comment rows and the separator (:func:`_delimiter`)."""
    # Number the lines before dropping blank and comment lines, so that messages give the
    # line numbers the user sees; a cell spanning lines is not a thing in mapping files.
    lines = [
        (number, line)
        for number, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1)
        if line.strip() and not line.lstrip().startswith("#")  # indented comments too
    ]
    stated = re.fullmatch(r"\s*sep=(.)\s*", lines[0][1]) if lines else None
    if stated:  # Excel's first line naming the separator, not a row
        lines = lines[1:]
    delimiter = stated.group(1) if stated else _delimiter([line for _, line in lines])
    rows = []
    for number, line in lines:
        try:
            cells = next(csv.reader([line], delimiter=delimiter))
        except csv.Error as err:  # a cell over csv's field size limit (131072 characters)
            raise ValueError(
                f"{path}: line {number} cannot be read as a table row ({err}); is this a"
                " position-mapping file?"
            ) from None
        rows.append(Row(number, [cell.strip() for cell in cells], line))
    return rows, delimiter


def _delimiter(lines: list[str]) -> str:
    """The one that splits every row (tabs first), else the first row's: guessed from the
    first row alone, rows starting ``A01<TAB>siRNA a,b,c`` were split at commas and refused,
    the same rows in another order read. Where two split every row (each condition holding
    the other), the one whose first cells hold no other: a position holds no separator.
    The first row's, where none splits every row, names the rows that differ from it."""
    firsts = {candidate: _first_cells(lines, candidate) for candidate in _DELIMITERS}
    fits = [candidate for candidate, cells in firsts.items() if lines and cells is not None]
    plain_firsts = [
        candidate
        for candidate in fits
        if not any(other in cell for cell in firsts[candidate] or [] for other in _DELIMITERS)
    ]
    fits = plain_firsts or fits
    if "\t" in fits:
        return "\t"
    sample = lines[0] if lines else ""
    delimiter = max(fits or _DELIMITERS, key=sample.count)
    return delimiter if sample.count(delimiter) else "\t"


def _first_cells(lines: list[str], delimiter: str) -> list[str] | None:
    """Each line's first cell where ``delimiter`` splits every line into two cells or more,
    else None."""
    firsts = []
    try:
        for line in lines:
            cells = next(csv.reader([line], delimiter=delimiter))
            if len(cells) < 2:
                return None
            firsts.append(cells[0])
    except csv.Error:  # a cell too long: split_rows names it
        return None
    return firsts


def short_row_problem(row: Row, delimiter: str) -> str | None:
    """Explain a row that splits into too few columns: a quote left open, or spaces."""
    opens = re.search(f'(^|{re.escape(delimiter)})"', row.text)  # a quote mid-cell is text
    if opens and row.text.count('"') % 2:
        # csv reads from an opening quote to the closing one as one cell: a quote never
        # closed took the rest of the line (its separators too), or a cell went on to the
        # next line, which mapping files do not do; "has 6 columns" alone blamed the row.
        return (
            'a quote (") in it is never closed, so the cells after it are read as one; a '
            "quoted cell must end with a quote on its own line"
        )
    return spaces_problem(row, delimiter)


def spaces_problem(row: Row, delimiter: str) -> str | None:
    """Explain a row that splits into too few columns because spaces separate them."""
    if delimiter in row.text or not re.search(r"\S\s+\S", row.text):
        return None
    # Spaces cannot separate columns: names and conditions ("Gene Symbol") contain them.
    wanted = (
        "tabs (or commas, or semicolons: one kind in the whole file)"
        if delimiter == "\t"
        else f"{_delimiter_name(delimiter)}, as in the first row"
    )
    return f"its columns are separated by spaces, but they must be separated by {wanted}"


def _delimiter_name(delimiter: str) -> str:
    """``commas``; a separator stated by Excel's ``sep=`` line may be any character."""
    return _DELIMITER_NAMES.get(delimiter, f"{delimiter!r} characters")


def extra_cells_problem(row: Row, width: int, delimiter: str) -> str | None:
    """Explain a row with filled cells beyond the ``width`` columns it may have.

    Parameters
    ----------
    row : Row
        A data row.
    width : int
        Its columns: the header's, or 2 in a file without a header.
    delimiter : str
        The file's separator.

    Returns
    -------
    str or None
        None where the cells past ``width`` are empty (trailing separators), else what the
        extra cells are and why they cannot be read: an unquoted ``scr, pool`` in a comma-
        separated table shifted the columns after it (its Group read ``pool``: no control),
        and a third column of a file without a header (the controls' group) was ignored.
    """
    extra = [cell for cell in row.cells[width:] if cell]
    if not extra:
        return None
    quote = (
        f'a cell that holds {_delimiter_name(delimiter)} must be quoted ("scr{delimiter} pool")'
        if delimiter != "\t"
        else "a cell cannot hold a tab"
    )
    return f"{len(row.cells)} columns where {width} are expected ({extra[0]!r} is extra); {quote}"


def header_kind(names: list[str], other_words: bool = False) -> str | None:
    """Which kind of header the first row is, if any.

    Parameters
    ----------
    names : list of str
        The first row's cells as :func:`column_name` normalises them.
    other_words : bool
        Also take two cells of other words ("ID, Condition") for a two-column header, as
        a file given as the mapping has one (no position is written without a digit); not
        where any text file is guessed at ("cell, area" of a table of measurements).

    Returns
    -------
    str or None
        ``"table"`` (CellCognition header), ``"pair"`` (two-column header) or None (the
        first row holds data).
    """
    if not names:
        return None
    if len(names) == 2 and names[1] not in _KNOWN_NAMES:
        if names[0] in _POSITION_NAMES or (other_words and not any(map(str.isdigit, names[0]))):
            return "pair"
    if names[0] in _POSITION_NAMES or any(name in names for name in _TABLE_MARKERS):
        return "table"
    return None


def table_columns(path: Path, header: Row, names: list[str]) -> dict[str, int]:
    """Column index of each (normalised) name of a CellCognition header.

    Parameters
    ----------
    path : Path
        The mapping file, for messages.
    header : Row
        The header row.
    names : list of str
        Its cells as :func:`column_name` normalises them, trailing empty ones dropped.

    Returns
    -------
    dict of str to int

    Raises
    ------
    ValueError
        If a column is named twice, or Well, Gene Symbol or Group is missing.
    """
    column: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in column:
            # Which of the two would be meant is unknowable; reading either could be wrong.
            raise ValueError(
                f"{path}: line {header.line}: the header names column"
                f" {header.cells[index]!r} twice (columns {column[name] + 1} and {index + 1});"
                " keep one"
            )
        if name:
            column[name] = index
    missing = [name for name in _REQUIRED_COLUMNS if column_name(name) not in column]
    if missing:
        found = ", ".join(cell or "(empty)" for cell in header.cells[: len(names)])
        raise ValueError(
            f"{path}: the header on line {header.line} lacks column(s) {', '.join(missing)}"
            f" (found: {found}); a CellCognition table needs Well, Gene Symbol and Group, a"
            " two-column file's header names the position (Position or Well), then the"
            " condition"
        )
    return column


# The words of a control's usual names: a word that the token starts and that is made of
# them ('Negative', 'NegCtrl', 'scrambled', 'nontargeting') is no name of its own.
# Not 'wt': with the digits a control may end in, siWT1 (a gene) read as a control.
_CONTROL_WORD = re.compile(
    "(?:negative|neg|controls?|ctrl|ctl|scrambled?|scr|nontargeting|non|targeting|silencing"
    "|ntc|nt|dmso|mock|untreated|untransfected|vehicle|empty|vector|luciferase|luc|gl|lacz"
    "|e?gfp|allstars|stars|si|sh|sg|rna|wildtype|parental|water|pbs|blank)+[0-9]*"
)


def name_past_token(condition: str, token: str) -> bool:
    """Whether the word that starts with the control token goes on as a name of its own,
    as a gene symbol does (``NEGR1`` by ``neg``, ``SCRIB`` by ``scr``), rather than as a
    control's usual name (``neg``, ``neg1``, ``Negative control``, ``scrambled``)."""
    rest = re.match(r"[^\W_]*", condition[len(token) :]).group()
    if not any(c.isalpha() for c in rest):  # 'neg', 'neg1', 'neg. control'
        return False
    # the token's last word goes on in ``rest``: 'non-t' + 'argeting'
    word = re.search(r"[^\W_]*$", condition[: len(token)]).group() + rest
    return _CONTROL_WORD.fullmatch(word.casefold()) is None
