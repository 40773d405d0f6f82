"""Names of positions in a mapping file: a Well's site split off, and wells, sites and
plates compared as CellCognition and users write them (``C3``, ``c03``, ``C03_0001``)."""

from __future__ import annotations

import re

from napari_cellae.io.mapping_text import plain

__all__ = [
    "canonical",
    "canonical_plate",
    "canonical_site",
    "canonical_well",
    "position_problem",
    "split_position",
]


def split_position(text: str, site: str | None) -> tuple[str, str | None]:
    """``C03_01`` -> (C03, 01); ``0_0013`` (CellCognition without wells) -> (0, 0013);
    ``C03`` -> (C03, site)."""
    match = re.fullmatch(r"([A-Za-z]*\d+)[_\-](\w+)", text)
    if match:
        return match.group(1), match.group(2)
    return text, site


def position_problem(
    cell: str, well: str, site: str | None, given: str, position: str
) -> str | None:
    """What is wrong with a row whose Well (``cell``), Site (``given``) and Position columns
    name different positions (None where they agree); ``well`` and ``site`` are
    ``split_position(cell, given)``. The Well's site won over the Site column without a
    word, and rows are mapped by Well and Site, so a Position column sorted apart from them
    (or theirs from it) gave the positions other conditions without a word."""
    if given and canonical_site(site) != canonical_site(given):
        return (
            f"Well {cell!r} names site {site!r}, but the Site column says {given!r}; keep the"
            " site in one of them"
        )
    match = re.fullmatch(r"([A-Za-z]+\d+)[_\-](\d+)", plain(position).strip())
    if not match or not site or canonical(*match.groups()) == canonical(well, site):
        return None  # a Position of another form ('0037'), or a row for the whole well
    return (
        f"its Position {position!r} names another position than its Well {well!r} and Site "
        f"{site!r}; correct the one that is wrong"
    )


def canonical_site(site: str) -> str:
    """``0038`` and ``38`` are one site: CellCognition zero-pads, users often don't."""
    site = plain(site).strip()
    return str(int(site)) if site.isdecimal() else site  # isdigit: '²', which int refuses


def canonical_well(well: str) -> str:
    """``C3``, ``c03`` and full-width ``Ｃ03`` are one well."""
    well = plain(well).strip().upper()
    match = re.fullmatch(r"([A-Z]+)0*(\d+)", well)
    return f"{match.group(1)}{int(match.group(2))}" if match else well


def canonical(well: str, site: str | None) -> tuple[str, str | None]:
    """A position's well and site as :func:`canonical_well` and :func:`canonical_site`
    make them (a site of None, a whole well, stays None)."""
    return canonical_well(well), None if site is None else canonical_site(site)


def canonical_plate(plate: str | None) -> str | None:
    """``Plate_1 `` and ``plate_1`` are one plate; an empty name means every plate (None)."""
    plate = plain(plate or "").strip().casefold()
    return plate or None
