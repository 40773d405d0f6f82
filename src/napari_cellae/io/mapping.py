"""Position-mapping files: which perturbation condition each position shows.

Two forms are read (tab, comma or semicolon separated, UTF-8 or UTF-16 with a byte-order
mark; blank lines and lines starting with ``#`` (indented too) are skipped, but line numbers
in messages count them, as an editor does; Excel's ``sep=;`` first line sets the separator):

* CellCognition's table with a header: ``Position, Well, Site, Row, Column, Gene Symbol,
  siRNA ID, Group`` (``OligoID`` may be added; names match without case or surrounding
  spaces). ``Gene Symbol`` is the condition shown to the user, ``Group`` marks controls
  (``neg`` by default). An optional ``Plate`` column describes screens whose plates differ:
  a row with a plate applies to that plate only (its name as in the CellH5 file, matched
  without case or surrounding spaces), a row with an empty Plate to every plate. The most
  specific row wins: plate, well and site; plate and well; well and site; well.
* A plain two-column file ``position<TAB>condition``, where the position is a well (``C03``)
  or a well and site (``C03_01``), with an optional header naming the position column
  (``Position`` or ``Well``) and then the condition column (``Well<TAB>Condition``). A
  condition that starts with the control token (``neg. control``) marks a control. Its rows
  apply to every plate.

Reading the file's text, splitting it into rows and recognising its header is
:mod:`napari_cellae.io.mapping_text`'s; whether a mapping fits the CellH5 files of a run,
:mod:`napari_cellae.io.mapping_fit`'s (:func:`~napari_cellae.io.mapping_fit.check_fit`).
See ``docs/formats.md`` (position-mapping files).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from napari_cellae.io.cellh5 import PositionKey
from napari_cellae.io.mapping_text import (
    Row,
    column_name,
    extra_cells_problem,
    header_kind,
    name_past_token,
    read_text,
    short_row_problem,
    split_rows,
    table_columns,
)
from napari_cellae.io.position_names import (
    canonical,
    canonical_plate,
    position_problem,
    split_position,
)


@dataclass(frozen=True)
class PositionInfo:
    """Condition of one position and whether it is a (negative) control."""

    condition: str
    is_control: bool
    group: str


class _Entry(NamedTuple):
    """One row of a mapping: a position as written, its condition, plate and line."""

    well: str
    site: str | None  # None: every site of the well
    info: PositionInfo
    plate: str | None = None  # None: every plate
    line: int = 0

    @property
    def ident(self) -> tuple[str | None, str, str | None]:
        """(plate, well, site), as :meth:`PositionMapping.lookup` compares them."""
        return (canonical_plate(self.plate), *canonical(self.well, self.site))

    @property
    def named(self) -> str:
        """The position for messages: ``C03_01``, ``C03``, ``C03_01 of plate 'P1'``."""
        position = self.well if self.site is None else f"{self.well}_{self.site}"
        position = position if position.isprintable() else repr(position)  # '\u200bA01'
        return position if self.plate is None else f"{position} of plate {self.plate!r}"


class PositionMapping:
    """Conditions of the positions of a screen, read from a mapping file.

    Use :func:`read_mapping` to build one.
    """

    def __init__(
        self, path: Path, entries: list[_Entry] | list[tuple], control_token: str = "neg"
    ) -> None:
        self.path = path
        self.control_token = control_token
        self._order = [_Entry(*entry) for entry in entries]  # (well, site, info[, plate, line])
        # (plate, well, site) -> info; None means "every plate" or "every site of the well".
        self._entries = {entry.ident: entry.info for entry in self._order}
        # The plates the rows name (canonical -> as first written), and whether rows
        # without a plate cover the plates they do not name.
        self._plates: dict[str, str] = {}
        for entry in self._order:
            if (plate := canonical_plate(entry.plate)) is not None:
                self._plates.setdefault(plate, entry.plate.strip())
        self._for_every_plate = any(entry.plate is None for entry in self._order)
        # The files of a run checked so far (mapping_fit.open_run), or None: no run open.
        self.run_files: list[tuple[str, list[PositionKey]]] | None = None

    def __len__(self) -> int:
        return len(self._order)

    @property
    def entries(self) -> list[_Entry]:
        """The rows, in file order."""
        return list(self._order)

    @property
    def plates(self) -> dict[str, str]:
        """The plates the Plate column names: canonical name -> as first written."""
        return dict(self._plates)

    @property
    def for_every_plate(self) -> bool:
        """Whether rows without a plate cover the plates that no row names."""
        return self._for_every_plate

    @property
    def conditions(self) -> list[str]:
        """Conditions in file order, each once."""
        return list(dict.fromkeys(entry.info.condition for entry in self._order))

    @property
    def control_conditions(self) -> list[str]:
        """Conditions marked as controls, in file order."""
        return list(dict.fromkeys(e.info.condition for e in self._order if e.info.is_control))

    def controls_hint(self) -> str:
        """How to mark the controls where no row does: the token and what the rows hold
        (controls named ``DMSO``, or a Group ``control``, need another token)."""
        if self.control_conditions:
            return "mark control positions in the mapping"
        groups = list(dict.fromkeys(e.info.group for e in self._order if e.info.group))
        what, names = ("Group", groups) if groups else ("condition", self.conditions)
        shown = ", ".join(repr(name) for name in names[:6]) + " ..." * (len(names) > 6)
        return (
            f"no {what} in the mapping starts with the control token {self.control_token!r}"
            f" (its {what}s: {shown}); give the controls' {what} as the control token"
            " (--control-token; the widget's 'Controls')"
        )

    def lookup(self, key: PositionKey) -> PositionInfo | None:
        """Condition of a position, or None where no row maps it.

        The most specific row wins: the plate's row for the well and site, the plate's row
        for the whole well, then the rows without a plate (well and site, whole well).
        Sites match as text or number, wells and plates without case.

        Parameters
        ----------
        key : PositionKey
            The position; its plate as the CellH5 file names it (or as
            :func:`~napari_cellae.pipeline.plates.distinct_keys` renames it).

        Returns
        -------
        PositionInfo or None
        """
        well, site = canonical(key.well, key.site)
        plate = self._plate_of(key.plate)
        for ident in ((plate, well, site), (plate, well, None), (None, well, site)):
            if (info := self._entries.get(ident)) is not None:
                return info
        return self._entries.get((None, well, None))

    def _plate_of(self, name: str) -> str | None:
        """The canonical plate of a key; a plate renamed after its file is still that plate."""
        plate = canonical_plate(name)
        if plate in self._plates or not name.strip().endswith(")"):
            return plate
        # distinct_keys names a plate that several files share "plate1 (run2/plate.ch5)";
        # its cells are plate1's, so plate1's rows hold for them. Longest name first.
        text = name.strip()
        for match in reversed(list(re.finditer(r" \(", text))):
            if (base := canonical_plate(text[: match.start()])) in self._plates:
                return base
        return plate

    def unused_plates(self, positions: Iterable[PositionKey]) -> list[str]:
        """The plates the Plate column names (as written) that no position is on."""
        held = {self._plate_of(key.plate) for key in positions}
        return [name for plate, name in self._plates.items() if plate not in held]

    def unmapped(self, positions: Iterable[PositionKey]) -> list[PositionKey]:
        """The positions no row maps (:meth:`lookup` gives None), in the order given.

        Parameters
        ----------
        positions : iterable of PositionKey

        Returns
        -------
        list of PositionKey
            Their cells are named by their position and are never controls.
        """
        return [key for key in positions if self.lookup(key) is None]


def _suffix(problem: str | None) -> str:
    return "" if problem is None else f"; {problem}"


def _table_entry(path: Path, row: Row, column: dict[str, int], token: str) -> _Entry:
    """The position, condition, control mark and plate of a row of a CellCognition table."""
    # Position is the site where the table has no Site column.
    site_name = next((name for name in ("site", "position") if name in column), None)
    given = row.cells[column[site_name]] if site_name else None
    cell = row.cells[column["well"]]
    well, site = split_position(cell, given)
    if not well:
        raise ValueError(f"{path}: line {row.line} has an empty Well")
    if site_name == "site":  # and a Position column: which one was meant is unknowable
        position = row.cells[column["position"]] if "position" in column else ""
        if problem := position_problem(cell, well, site, given, position):
            raise ValueError(f"{path}: line {row.line}: {problem}")
    group = row.cells[column["group"]]
    sirna = row.cells[column["sirna id"]] if "sirna id" in column else ""
    condition = row.cells[column["gene symbol"]] or sirna or group
    if not condition:  # its cells would be written and ranked under an empty name
        raise ValueError(
            f"{path}: line {row.line} gives {cell} no condition (Gene Symbol, siRNA ID and"
            " Group are empty); fill one in, or remove the row"
        )
    plate = row.cells[column["plate"]] if "plate" in column else ""
    info = PositionInfo(condition, group.lower().startswith(token), group)
    return _Entry(well, site or None, info, plate or None, row.line)


def read_mapping(path: str | os.PathLike, control_token: str = "neg") -> PositionMapping:
    """Read a position-mapping file.

    Parameters
    ----------
    path : path-like
        CellCognition mapping table (with an optional ``Plate`` column) or a two-column
        ``position, condition`` file. Header names are matched without case or surrounding
        spaces.
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
        cell too long to read, duplicate rows (of one plate), or a site's row contradicting
        its well's row (of the same plate); the message names the file and the line (as an
        editor counts lines).

    Warns
    -----
    UserWarning
        Naming the lines of a two-column file whose condition counts as a control but reads
        as a name of its own (``NEGR1`` with the token ``neg``, ``SCRIB`` with ``scr``).
    """
    path = Path(path)
    token = control_token.strip().lower()
    if not token:
        # Every group starts with the empty string: each position would become a control.
        raise ValueError(
            f"{path}: the control token is empty, so every position would count as a negative"
            " control; give the text that starts the Group of the controls (for example neg)"
        )
    rows, delimiter = split_rows(path, read_text(path))
    if not rows:
        raise ValueError(f"{path}: the mapping file is empty")
    header = rows[0]
    names = [column_name(cell) for cell in header.cells]
    while names and not names[-1]:  # trailing separators leave empty header cells
        names.pop()
    kind = header_kind(names, other_words=True)
    entries: list[_Entry] = []
    seen: dict[tuple[str | None, str, str | None], int] = {}

    def add(entry: _Entry) -> None:
        # Per plate: the same well on two plates is two positions.
        if entry.ident in seen:
            raise ValueError(
                f"{path}: line {entry.line} maps position {entry.named} again (first on line"
                f" {seen[entry.ident]}); remove the duplicate row"
            )
        seen[entry.ident] = entry.line
        entries.append(entry)

    if kind == "table":
        column = table_columns(path, header, names)
        for row in rows[1:]:
            if len(row.cells) < len(names):
                raise ValueError(
                    f"{path}: line {row.line} has {len(row.cells)} columns, the header (line"
                    f" {header.line}) has {len(names)}{_suffix(short_row_problem(row, delimiter))}"
                )
            if problem := extra_cells_problem(row, len(names), delimiter):
                raise ValueError(f"{path}: line {row.line} has {problem}")
            add(_table_entry(path, row, column, token))
    else:
        named: dict[str, int] = {}  # controls by their first letters only: NEGR1 -> line
        for row in rows[1:] if kind == "pair" else rows:
            if len(row.cells) < 2 or not row.cells[0] or not row.cells[1]:
                problem = short_row_problem(row, delimiter)
                raise ValueError(
                    f"{path}: line {row.line}: {problem}"
                    if problem
                    else f"{path}: line {row.line} needs two columns, position and condition"
                    f" (got {row.cells!r})"
                )
            if problem := extra_cells_problem(row, 2, delimiter):
                # A third column (the controls' group) was ignored: no control at all.
                raise ValueError(
                    f"{path}: line {row.line} has {problem}. A file without CellCognition's"
                    " header has two, position and condition; for a Group column, start the"
                    " file with the header Well, Gene Symbol, Group"
                )
            well, site = split_position(row.cells[0], None)
            is_control = row.cells[1].lower().startswith(token)
            if is_control and name_past_token(row.cells[1], token):
                named.setdefault(row.cells[1], row.line)
            group = token if is_control else ""
            add(_Entry(well, site, PositionInfo(row.cells[1], is_control, group), None, row.line))
        if named:
            listed = [f"{condition!r} (line {line})" for condition, line in named.items()]
            warnings.warn(
                f"{path}: {', '.join(listed[:4])}{' ...' * (len(listed) > 4)} start(s) with the"
                f" control token {token!r}, so they count as negative controls; if one is a gene"
                " or compound, not a control, give the whole control condition as the control"
                " token (--control-token; the widget's 'Controls'), or mark the controls in a"
                " Group column (header Well, Gene Symbol, Group)",
                stacklevel=2,
            )
    if not entries:
        raise ValueError(f"{path}: the mapping file has a header but no rows")
    _check_well_rows(path, entries)
    return PositionMapping(path, entries, token)


def _check_well_rows(path: Path, entries: list[_Entry]) -> None:
    """Refuse a site row that contradicts its well's row (``C03 neg`` and ``C03_01 PLK1``)
    on the same plate (or both without a plate).

    The site row won without a word, so a control well could lose its controls; which of
    the two the user meant is unknowable. A plate's row overriding a row without a plate
    is what the Plate column is for, so rows of different plates never contradict.
    """
    wells = {entry.ident[:2]: entry for entry in entries if entry.site is None}
    for entry in entries:
        whole = wells.get(entry.ident[:2]) if entry.site is not None else None
        if whole is None:
            continue
        mine, theirs = ((e.info.condition, e.info.is_control) for e in (entry, whole))
        if mine == theirs:
            continue
        said = [f"{condition!r}" + " (control)" * control for condition, control in (mine, theirs)]
        raise ValueError(
            f"{path}: line {entry.line} maps position {entry.named} to {said[0]}, but line"
            f" {whole.line} maps its whole well to {said[1]}; keep one of them"
        )
