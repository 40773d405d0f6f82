"""Whether a position mapping fits the CellH5 files of a run: checked file by file, and the
rows that no file holds named once for the whole run.

A run may take one plate's position files as inputs of their own (CellCognition's
``A01_1.ch5``, ``A02_1.ch5``, ...). Checked alone, each file left out the rows of every other
file, so a run of 32 position files warned 32 times that 31 rows "are left out", though the
other inputs held them. :func:`check_fit` therefore holds back that warning while a run is
open (:func:`open_run`), and :func:`finish_run` names, once, the rows that no input of the run
holds (or refuses them, where the run's files hold positions no row maps as well).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from napari_cellae.io.position_names import canonical, canonical_plate

if TYPE_CHECKING:
    from napari_cellae.io.cellh5 import PositionKey
    from napari_cellae.io.mapping import PositionMapping

    _File = tuple[str, list[PositionKey]]  # a file of a run and its positions

__all__ = ["check_fit", "finish_run", "open_run", "position_file_plates", "rows_not_held"]


def _listed(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _few(names: list[str], n: int) -> str:
    return ", ".join(names[:n]) + (" ..." if len(names) > n else "")


def position_file_plates(held: Iterable[tuple[str, PositionKey]]) -> set[str]:
    """The plate names held by several files that hold one position each, each another:
    the position files of one plate (CellCognition's ``A01_1.ch5``, ``A02_1.ch5``, ...).

    Files of plates named alike (``plate1`` of two runs, or files of several positions
    each) are not: each file stays a plate of its own.

    Parameters
    ----------
    held : iterable of (str, PositionKey)
        Each position and the file holding it.
    """
    keys_of: dict[str, set[PositionKey]] = {}
    for source, key in held:
        keys_of.setdefault(source, set()).add(key)
    files_of: dict[str, list[str]] = {}  # plate -> the label of each file
    several: set[str] = set()  # plates of a file that holds more than one position
    for keys in keys_of.values():
        if len(keys) == 1:
            (key,) = keys
            files_of.setdefault(key.plate, []).append(key.raw_label)
        else:
            several |= {key.plate for key in keys}
    return {
        plate
        for plate, labels in files_of.items()
        if len(labels) > 1 and len(set(labels)) == len(labels) and plate not in several
    }


def _plate_parts(files: list[_File]) -> list[list[_File]]:
    """The files of a run grouped into plates: one plate's position files
    (:func:`position_file_plates`) are one; every other file is a plate (or plates) of its
    own."""
    split = position_file_plates((source, key) for source, keys in files for key in keys)
    group = list(range(len(files)))

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    first_of: dict[str, int] = {}
    for i, (_, keys) in enumerate(files):
        for plate in {key.plate for key in keys} & split:
            group[root(i)] = root(first_of.setdefault(plate, i))
    parts: dict[int, list[_File]] = {}
    for i, file in enumerate(files):
        parts.setdefault(root(i), []).append(file)
    return list(parts.values())


def open_run(mapping: PositionMapping) -> None:
    """Check the files of a run together: :func:`check_fit` keeps each file's positions and
    holds back its warning of rows the file lacks until :func:`finish_run`."""
    mapping.run_files = []


def rows_not_held(mapping: PositionMapping, positions: Iterable[PositionKey]) -> list[str]:
    """The rows (as :attr:`_Entry.named`) of the positions' plates, or without a plate, that
    name a position none of ``positions`` is; rows of other plates are not asked."""
    positions = list(positions)
    plates = {canonical_plate(key.plate) for key in positions}
    available: set[tuple[str | None, str, str | None]] = set()
    for key in positions:
        plate, (well, site) = canonical_plate(key.plate), canonical(key.well, key.site)
        available |= {(p, well, s) for p in (plate, None) for s in (site, None)}
    return [
        entry.named
        for entry in mapping.entries
        if (entry.plate is None or entry.ident[0] in plates) and entry.ident not in available
    ]


def check_fit(
    mapping: PositionMapping, positions: list[PositionKey], source: str | os.PathLike
) -> None:
    """Raise if ``mapping`` does not fit the positions of one CellH5 file of a run.

    Rows without a plate, or with a plate of this file, that name positions the file
    lacks are warned about where every position of the file is mapped (a plate imaged
    in part), and refused otherwise: the layouts then differ both ways, as another
    plate's mapping does, and failing early avoids training on the wrong cells. Rows
    of plates the file does not hold describe another file of the run and are skipped.
    A plate of the file that no row names needs rows without a plate. While a run is
    open (:func:`open_run`), the file's positions are kept and rows it lacks are not
    warned about here but by :func:`finish_run`, for every file of the run at once; so
    is a refusal, unless the file is the run's first and holds several positions.

    Parameters
    ----------
    mapping : PositionMapping
    positions : list of PositionKey
        Every position of the file.
    source : path-like
        The file, for messages.

    Raises
    ------
    ValueError
        Naming the mapping file and ``source``: the positions the file lacks where it
        also holds unmapped ones, or the file's plates that neither a Plate row nor a
        row without a plate maps.
    """
    held = {canonical_plate(key.plate): key.plate for key in positions}
    named = mapping.plates
    unnamed = [name for plate, name in held.items() if plate not in named]
    if named and unnamed and not mapping.for_every_plate:
        raise ValueError(
            f"{mapping.path}: the Plate column names plate(s) {_listed(named.values())},"
            f" but {source} holds plate(s) {_listed(held.values())}; no row maps"
            f" plate(s) {_listed(unnamed)} and no row without a Plate applies to every plate."
            " Correct the Plate column to the plate names of the CellH5 file, or remove the"
            " column if the mapping describes this plate alone"
        )
    run = mapping.run_files
    # In a run, a position file of a plate (one position), or any file after the first,
    # is judged with the run's other files at its end; the first file of several positions
    # is judged at once, so that a check of one file (the widget's) refuses another plate's
    # mapping before any work.
    deferred = run is not None and (bool(run) or len(positions) == 1)
    if run is not None:
        run.append((str(source), list(positions)))
    if deferred or not (missing := rows_not_held(mapping, positions)):
        return
    _judge(mapping, missing, positions, str(source), stacklevel=4, warn=run is None)


def _judge(
    mapping: PositionMapping,
    missing: list[str],
    positions: list[PositionKey],
    where: str,
    stacklevel: int,
    warn: bool = True,
    several: bool = False,
) -> None:
    """Refuse rows ``where`` lacks when it holds unmapped positions too (the layouts differ
    both ways, as another plate's mapping does); else warn that their rows are left out."""
    # One file: the positions it holds; several: their files are named in ``where``.
    labels = list(dict.fromkeys(key.label for key in positions))
    held = "" if several else f" (it holds {_few(labels, 4)})"
    text = (
        f"{mapping.path}: the mapping names {len(missing)} position(s) that are not in"
        f" {where}: {_few(missing, 8)}{held}"
    )
    if unmapped := list(dict.fromkeys(k.label for k in positions if not mapping.lookup(k))):
        raise ValueError(  # the layouts differ both ways: say why refused, and how on
            f"{text}, and no row maps {_few(unmapped, 4)}: the mapping of another plate?"
            " Give this plate's mapping, or correct the Well and Site of those rows"
        )
    if warn:
        warnings.warn(
            f"{text}; their rows are left out (a plate imaged in part?)", stacklevel=stacklevel
        )


def finish_run(mapping: PositionMapping | None) -> None:
    """Judge the files of an open run together, and close it: warn once about the rows
    that no file of the run holds, or refuse them where the run's files also hold positions
    that no row maps (as :func:`check_fit` judges one file).

    Parameters
    ----------
    mapping : PositionMapping or None
        Checked file by file since :func:`open_run`; None, or no run open: nothing to say.

    Raises
    ------
    ValueError
        Naming the mapping and the run's files: rows no file holds, and positions no row
        maps (the mapping of another plate?).
    """
    files = mapping.run_files if mapping is not None else None
    if not files:
        return
    mapping.run_files = None
    for part in _plate_parts(files):
        positions = [key for _, held in part for key in held]
        if not (missing := rows_not_held(mapping, positions)):
            continue
        if len(part) == 1:
            where = part[0][0]
        else:  # the files, not their positions: each holds a few of the plate's positions
            names = [Path(source).name for source, _ in part]
            shown = names if len(set(names)) == len(names) else [source for source, _ in part]
            plates = _listed(dict.fromkeys(key.plate for key in positions))
            where = f"any of the {len(part)} files of plate {plates} ({_few(shown, 3)})"
        _judge(mapping, missing, positions, where, stacklevel=4, several=len(part) > 1)
