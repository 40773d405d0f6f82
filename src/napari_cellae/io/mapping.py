"""Position-mapping files: which perturbation condition each position shows.

Two forms are read (tab, comma or semicolon separated, UTF-8 or UTF-16 with a byte-order
mark; blank lines and lines starting with ``#`` are skipped, but line numbers in messages
count them, as an editor does; Excel's ``sep=;`` first line sets the separator):

* CellCognition's table with a header: ``Position, Well, Site, Row, Column, Gene Symbol,
  siRNA ID, Group`` (``OligoID`` may be added; names match without case or surrounding
  spaces). ``Gene Symbol`` is the condition shown to the user, ``Group`` marks controls
  (``neg`` by default).
* A plain two-column file ``position<TAB>condition``, where the position is a well (``C03``)
  or a well and site (``C03_01``), with an optional header naming the position column
  (``Position`` or ``Well``) and then the condition column (``Well<TAB>Condition``). A
  condition that starts with the control token (``neg. control``) marks a control.

See ``docs/formats.md`` (position-mapping files).
"""

from __future__ import annotations

import codecs
import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from napari_cellae.io.cellh5 import PositionKey

_DELIMITERS = ("\t", ";", ",")
# Far above any screen's table (a few dozen bytes per position); more is no mapping file,
# and /dev/zero would fill the memory.
_MAX_BYTES = 64 * 2**20
_DELIMITER_NAMES = {"\t": "tabs", ";": "semicolons", ",": "commas"}
_REQUIRED_COLUMNS = ("Well", "Gene Symbol", "Group")
_SITE_COLUMN_NAMES = ("site", "position")  # normalised; Position is the site if Site is absent
# Header names (normalised, see _column_name). A first row naming a position column, or any
# of the table markers, is a header; data rows hold wells and conditions instead.
_POSITION_NAMES = frozenset({"position", "well", "pos", "position id"})
_TABLE_MARKERS = ("well", "gene symbol", "group")
_KNOWN_NAMES = _POSITION_NAMES | {"site", "row", "column", "gene symbol", "sirna id", "group"}


@dataclass(frozen=True)
class PositionInfo:
    """Condition of one position and whether it is a (negative) control."""

    condition: str
    is_control: bool
    group: str


def _canonical_site(site: str) -> str:
    """``0038`` and ``38`` are one site: CellCognition zero-pads, users often don't."""
    site = site.strip()
    return str(int(site)) if site.isdigit() else site


def _canonical_well(well: str) -> str:
    """``C3`` and ``c03`` are one well."""
    well = well.strip().upper()
    match = re.fullmatch(r"([A-Z]+)0*(\d+)", well)
    return f"{match.group(1)}{int(match.group(2))}" if match else well


def _canonical(well: str, site: str | None) -> tuple[str, str | None]:
    return _canonical_well(well), None if site is None else _canonical_site(site)


class PositionMapping:
    """Conditions of the positions of a screen, read from a mapping file.

    Use :func:`read_mapping` to build one.
    """

    def __init__(self, path: Path, entries: list[tuple[str, str | None, PositionInfo]]) -> None:
        self.path = path
        # (well, site-or-None) -> info; site None means "every site of the well".
        self._entries = {_canonical(well, site): info for well, site, info in entries}
        self._order = entries

    def __len__(self) -> int:
        return len(self._order)

    @property
    def conditions(self) -> list[str]:
        """Conditions in file order, each once."""
        return list(dict.fromkeys(info.condition for _, _, info in self._order))

    @property
    def control_conditions(self) -> list[str]:
        """Conditions marked as controls, in file order."""
        return list(dict.fromkeys(i.condition for _, _, i in self._order if i.is_control))

    def lookup(self, key: PositionKey) -> PositionInfo | None:
        """Condition of a position (well + site, site matched as text or number), or None."""
        well, site = _canonical(key.well, key.site)
        info = self._entries.get((well, site))
        return info if info is not None else self._entries.get((well, None))

    def check(self, positions: list[PositionKey], source: str | os.PathLike) -> None:
        """Raise if a row of the mapping names a position that ``source`` does not hold.

        A mapping that names a well or site absent from the file is almost always a mapping
        of another plate; failing early avoids silently training on the wrong cells.
        """
        available = {_canonical(key.well, key.site) for key in positions}
        available |= {(well, None) for well, _ in available}
        missing = [
            f"{well}_{site}" if site is not None else well
            for well, site, _ in self._order
            if _canonical(well, site) not in available
        ]
        if missing:
            shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
            raise ValueError(
                f"{self.path}: the mapping names {len(missing)} position(s) that are not in"
                f" {source}: {shown}"
            )


def _read_text(path: Path) -> str:
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
    # Excel's "Unicode Text" is UTF-16 with a byte-order mark.
    utf16 = raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    try:
        text = raw.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError as err:
        what = "UTF-16" if utf16 else "UTF-8"
        raise ValueError(
            f"{path}: the mapping file is not {what} text (byte {err.start}); save it as UTF-8"
        ) from None
    if "\x00" in text:
        # UTF-16 without a byte-order mark decodes as UTF-8 with a NUL between letters:
        # its wells would never match ('\x00A\x000\x001') or its rows look one column wide.
        raise ValueError(
            f"{path}: the mapping file holds NUL bytes (byte {raw.index(0)}): it is UTF-16 or"
            " not a text file; save it as UTF-8 text"
        )
    return text


@dataclass(frozen=True)
class _Row:
    """One row of the table and the line it is on, counted as an editor counts lines."""

    line: int
    cells: list[str]
    text: str


def _column_name(cell: str) -> str:
    """Header names compare without case or extra spaces (``gene symbol `` is ``Gene Symbol``)."""
    return " ".join(cell.split()).casefold()


def _split_rows(path: Path, text: str) -> tuple[list[_Row], str]:
    """The non-blank, non-comment rows and the separator, guessed from the first row."""
    # Number the lines before dropping blank and comment lines, so that messages give the
    # line numbers the user sees; a cell spanning lines is not a thing in mapping files.
    lines = [
        (number, line)
        for number, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1)
        if line.strip() and not line.startswith("#")
    ]
    stated = re.fullmatch(r"\s*sep=(.)\s*", lines[0][1]) if lines else None
    if stated:  # Excel's first line naming the separator, not a row
        lines = lines[1:]
    sample = lines[0][1] if lines else ""
    delimiter = max(_DELIMITERS, key=sample.count)
    if stated:
        delimiter = stated.group(1)
    elif sample.count(delimiter) == 0:
        delimiter = "\t"
    rows = []
    for number, line in lines:
        try:
            cells = next(csv.reader([line], delimiter=delimiter))
        except csv.Error as err:  # a cell over csv's field size limit (131072 characters)
            raise ValueError(
                f"{path}: line {number} cannot be read as a table row ({err}); is this a"
                " position-mapping file?"
            ) from None
        rows.append(_Row(number, [cell.strip() for cell in cells], line))
    return rows, delimiter


def _spaces_problem(row: _Row, delimiter: str) -> str | None:
    """Explain a row that splits into too few columns because spaces separate them."""
    if delimiter in row.text or not re.search(r"\S\s+\S", row.text):
        return None
    # Spaces cannot separate columns: names and conditions ("Gene Symbol") contain them.
    wanted = (
        "tabs (or commas, or semicolons: one kind in the whole file)"
        if delimiter == "\t"
        else f"{_DELIMITER_NAMES[delimiter]}, as in the first row"
    )
    return f"its columns are separated by spaces, but they must be separated by {wanted}"


def _suffix(problem: str | None) -> str:
    return "" if problem is None else f"; {problem}"


def _header_kind(names: list[str]) -> str | None:
    """``"table"`` (CellCognition header), ``"pair"`` (two-column header) or None (no header)."""
    if not names:
        return None
    if len(names) == 2 and names[0] in _POSITION_NAMES and names[1] not in _KNOWN_NAMES:
        return "pair"
    if names[0] in _POSITION_NAMES or any(name in names for name in _TABLE_MARKERS):
        return "table"
    return None


def _table_columns(path: Path, header: _Row, names: list[str]) -> dict[str, int]:
    """Column index of each (normalised) name of a CellCognition header."""
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
    missing = [name for name in _REQUIRED_COLUMNS if _column_name(name) not in column]
    if missing:
        found = ", ".join(cell or "(empty)" for cell in header.cells[: len(names)])
        raise ValueError(
            f"{path}: the header on line {header.line} lacks column(s) {', '.join(missing)}"
            f" (found: {found}); a CellCognition table needs Well, Gene Symbol and Group, a"
            " two-column file's header names the position (Position or Well), then the"
            " condition"
        )
    return column


def _split_position(text: str, site: str | None) -> tuple[str, str | None]:
    """``C03_01`` -> (C03, 01); ``C03`` -> (C03, site)."""
    match = re.fullmatch(r"([A-Za-z]+\d+)[_\-](\w+)", text)
    if match:
        return match.group(1), match.group(2)
    return text, site


def read_mapping(path: str | os.PathLike, control_token: str = "neg") -> PositionMapping:
    """Read a position-mapping file.

    Parameters
    ----------
    path : path-like
        CellCognition mapping table or a two-column ``position, condition`` file. Header
        names are matched without case or surrounding spaces.
    control_token : str
        Positions whose ``Group`` (or, in two-column files, condition) starts with this
        token, case-insensitively, are negative controls. Must not be blank.

    Returns
    -------
    PositionMapping

    Raises
    ------
    ValueError
        If the control token is blank, or the file is empty, not UTF-8 (or holds NUL
        bytes), has an incomplete header or a column named twice, rows lacking columns, a
        cell too long to read, duplicate rows, or a site's row contradicting its well's row;
        the message names the file and the line (as an editor counts lines).
    """
    path = Path(path)
    token = control_token.strip().lower()
    if not token:
        # Every group starts with the empty string: each position would become a control.
        raise ValueError(
            f"{path}: the control token is empty, so every position would count as a negative"
            " control; give the text that starts the Group of the controls (for example neg)"
        )
    rows, delimiter = _split_rows(path, _read_text(path))
    if not rows:
        raise ValueError(f"{path}: the mapping file is empty")
    header = rows[0]
    names = [_column_name(cell) for cell in header.cells]
    while names and not names[-1]:  # trailing separators leave empty header cells
        names.pop()
    kind = _header_kind(names)
    entries: list[tuple[str, str | None, PositionInfo]] = []
    seen: dict[tuple[str, str | None], int] = {}

    def add(line: int, well: str, site: str | None, info: PositionInfo) -> None:
        ident = _canonical(well, site)
        if ident in seen:
            raise ValueError(
                f"{path}: line {line} maps position {well}{'' if site is None else '_' + site}"
                f" again (first on line {seen[ident]}); remove the duplicate row"
            )
        seen[ident] = line
        entries.append((well, site, info))

    if kind == "table":
        column = _table_columns(path, header, names)
        site_column = next((column[c] for c in _SITE_COLUMN_NAMES if c in column), None)
        for row in rows[1:]:
            if len(row.cells) < len(names):
                raise ValueError(
                    f"{path}: line {row.line} has {len(row.cells)} columns, the header (line"
                    f" {header.line}) has {len(names)}{_suffix(_spaces_problem(row, delimiter))}"
                )
            site = None if site_column is None else row.cells[site_column]
            well, site = _split_position(row.cells[column["well"]], site)
            if not well:
                raise ValueError(f"{path}: line {row.line} has an empty Well")
            group = row.cells[column["group"]]
            sirna = row.cells[column["sirna id"]] if "sirna id" in column else ""
            condition = row.cells[column["gene symbol"]] or sirna or group
            is_control = group.lower().startswith(token)
            add(row.line, well, site or None, PositionInfo(condition, is_control, group))
    else:
        for row in rows[1:] if kind == "pair" else rows:
            if len(row.cells) < 2 or not row.cells[0] or not row.cells[1]:
                problem = _spaces_problem(row, delimiter)
                raise ValueError(
                    f"{path}: line {row.line}: {problem}"
                    if problem
                    else f"{path}: line {row.line} needs two columns, position and condition"
                    f" (got {row.cells!r})"
                )
            well, site = _split_position(row.cells[0], None)
            is_control = row.cells[1].lower().startswith(token)
            group = token if is_control else ""
            add(row.line, well, site, PositionInfo(row.cells[1], is_control, group))
    if not entries:
        raise ValueError(f"{path}: the mapping file has a header but no rows")
    _check_well_rows(path, entries, seen)
    return PositionMapping(path, entries)


def _check_well_rows(
    path: Path,
    entries: list[tuple[str, str | None, PositionInfo]],
    lines: dict[tuple[str, str | None], int],
) -> None:
    """Refuse a site row that contradicts its well's row (``C03 neg`` and ``C03_01 PLK1``).

    The site row won without a word, so a control well could lose its controls; which of
    the two the user meant is unknowable.
    """
    wells = {
        _canonical_well(well): (info.condition, info.is_control)
        for well, site, info in entries
        if site is None
    }
    for well, site, info in entries:
        whole = wells.get(_canonical_well(well)) if site is not None else None
        mine = (info.condition, info.is_control)
        if whole is None or whole == mine:
            continue
        ident = _canonical(well, site)
        said = [f"{condition!r}" + " (control)" * control for condition, control in (mine, whole)]
        raise ValueError(
            f"{path}: line {lines[ident]} maps position {well}_{site} to {said[0]}, but line"
            f" {lines[(ident[0], None)]} maps its whole well to {said[1]}; keep one of them"
        )
