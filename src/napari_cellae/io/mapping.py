"""Position-mapping files: which perturbation condition each position shows.

Two forms are read (tab, comma or semicolon separated, UTF-8):

* CellCognition's table with a header: ``Position, Well, Site, Row, Column, Gene Symbol,
  siRNA ID, Group`` (``OligoID`` may be added). ``Gene Symbol`` is the condition shown to the
  user, ``Group`` marks controls (``neg`` by default).
* A plain two-column file ``position<TAB>condition`` (no header needed), where the position is
  a well (``C03``) or a well and site (``C03_01``). A condition that starts with the control
  token (``neg. control``) marks a control.

See ``docs/formats.md`` (position-mapping files).
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from napari_cellae.io.cellh5 import PositionKey

_CELLCOGNITION_COLUMNS = ("Gene Symbol", "Group")
_SITE_COLUMN_NAMES = ("Site", "Position")


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
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"{path}: cannot read the mapping file ({err.strerror})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: the mapping file is not UTF-8 text (byte {err.start}); save it as UTF-8"
        ) from None


def _split_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    sample = lines[0] if lines else ""
    delimiter = max(("\t", ";", ","), key=sample.count)
    if sample.count(delimiter) == 0:
        delimiter = "\t"
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)
    return [[cell.strip() for cell in row] for row in reader]


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
        CellCognition mapping table or a two-column ``position, condition`` file.
    control_token : str
        Positions whose ``Group`` (or, in two-column files, condition) starts with this
        token, case-insensitively, are negative controls.

    Returns
    -------
    PositionMapping

    Raises
    ------
    ValueError
        If the file is empty, not UTF-8, lacks the needed columns or has duplicate or
        conflicting rows; the message names the file and the line.
    """
    path = Path(path)
    rows = _split_rows(_read_text(path))
    if not rows:
        raise ValueError(f"{path}: the mapping file is empty")
    token = control_token.strip().lower()
    header = rows[0]
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

    if "Well" in header or any(column in header for column in _CELLCOGNITION_COLUMNS):
        missing = [c for c in ("Well", *_CELLCOGNITION_COLUMNS) if c not in header]
        if missing:
            raise ValueError(
                f"{path}: the mapping table lacks column(s) {', '.join(missing)}"
                f" (found: {', '.join(header)})"
            )
        site_column = next((c for c in _SITE_COLUMN_NAMES if c in header), None)
        for line, row in enumerate(rows[1:], start=2):
            if len(row) < len(header):
                raise ValueError(
                    f"{path}: line {line} has {len(row)} columns, the header has {len(header)}"
                )
            values = dict(zip(header, row[: len(header)], strict=True))
            well, site = _split_position(values["Well"], values.get(site_column or ""))
            if not well:
                raise ValueError(f"{path}: line {line} has an empty Well")
            group = values["Group"]
            condition = values["Gene Symbol"] or values.get("siRNA ID", "") or group
            is_control = group.lower().startswith(token)
            add(line, well, site or None, PositionInfo(condition, is_control, group))
    else:
        first_is_header = header[0].lower() in {"position", "well", "pos", "position id"}
        for line, row in enumerate(
            rows[1:] if first_is_header else rows, start=1 + first_is_header
        ):
            if len(row) < 2 or not row[0] or not row[1]:
                raise ValueError(
                    f"{path}: line {line} needs two columns, position and condition (got {row!r})"
                )
            well, site = _split_position(row[0], None)
            is_control = row[1].lower().startswith(token)
            group = token if is_control else ""
            add(line, well, site, PositionInfo(row[1], is_control, group))
    if not entries:
        raise ValueError(f"{path}: the mapping file has a header but no rows")
    return PositionMapping(path, entries)
