"""The plates a user's inputs stand for: CellH5 files, plate folders, folders of plates.

``cellae encode`` takes any number of inputs; each is a CellH5 file, a folder of one plate
(:func:`napari_cellae.io.locate.locate_cellh5`), or a folder of plates.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from napari_cellae.core.listing import NAMED, first_few
from napari_cellae.io.atomic import file_identity, resolved
from napari_cellae.io.hdf5 import CellH5Error
from napari_cellae.io.locate import ch5_files, input_files, locate_cellh5
from napari_cellae.io.mapping_fit import finish_run, position_file_plates

if TYPE_CHECKING:
    from napari_cellae.io.cellh5 import PositionKey
    from napari_cellae.io.mapping import PositionMapping

__all__ = [
    "distinct_keys",
    "plate_files",
    "warn_empty",
    "warn_unmapped",
    "warn_unused_plates",
]


def plate_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The CellH5 files ("plates") that the given inputs stand for, in order.

    Parameters
    ----------
    paths : sequence of path-like
        Each a CellH5 file, a folder of one plate (CellCognition's ``hdf5/`` folder, or a
        CellProfiler master beside its parts), or a folder of plates: its sub-folders that
        hold one plate each, and its ``.ch5`` files that no other file there links to (a
        folder with sub-folders of .ch5 files is one, even with a single .ch5 file).

    Returns
    -------
    list of Path
        Absolute paths, each file once whatever its name (``..``, a linked folder, a hard
        link, another case on a case-insensitive disk); a
        position file given beside the master file that links it is left out (its master
        holds its cells).

    Raises
    ------
    CellH5Error
        Naming an input that is missing or holds no plate, or a sub-folder of a folder of
        plates that holds .ch5 files but no single master file.
    """
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        reason = "it holds sub-folders of .ch5 files"
        # A lone .ch5 file beside plate sub-folders would pass for the folder's master
        # file, and the sub-folders' plates would be left out without a word.
        if not _has_plate_folders(path):
            try:
                found.append(locate_cellh5(path))
                continue
            except CellH5Error as exc:
                if not path.is_dir():
                    raise
                reason = str(exc)
        plates = _folder_of_plates(path)
        if not plates:
            raise CellH5Error(
                f"{path}: holds no plate: no sub-folder with one CellH5 master file and no "
                f"stand-alone .ch5 file ({reason})"
            )
        found += plates
    # Resolved, so that '..' and linked folders name one plate (its cells came out twice, as
    # two plates); then by identity, for names no spelling joins (a case-insensitive disk).
    unique: dict[Path, Path] = {}
    given_as: dict[Path, Path] = {}
    repeated: list[str] = []
    by_identity: dict[tuple[int, int, int, int] | None, list[Path]] = {}
    for plate in found:
        key = resolved(plate)
        if key not in unique:
            same = by_identity.setdefault(file_identity(key), [])
            key = next((k for k in same if _same_plate(k, key)), key)
            same.append(key)
        if key not in unique:
            unique[key], given_as[key] = plate.absolute(), plate
        elif plate == given_as[key]:  # a typo for another plate, more often than not
            repeated.append(f"{plate} is given twice")
        else:
            repeated.append(f"{plate} is {given_as[key]}")
    if repeated:
        warnings.warn(
            f"{'; '.join(dict.fromkeys(repeated))}: each plate's cells are read once", stacklevel=2
        )
    # 'cellae train hdf5/*.ch5' names the master and its position files: each position's
    # cells would come out twice, once as a plate of their own.
    return _unlinked(list(unique.values()))


def _same_plate(a: Path, b: Path) -> bool:
    """Whether one file (same :func:`~napari_cellae.io.atomic.file_identity`) under two
    names is one plate: its external links must reach the same files, as a hard-linked
    master in another folder does not (it links that folder's position files)."""
    if file_identity(a) is None:
        return False
    links = [{file_identity(f) for f in input_files(p)[1:]} for p in (a, b)]
    return None not in links[0] and links[0] == links[1]


# Sub-folders that are part of one plate: CellCognition's hdf5/ of position files, and
# cellh5/, where CellCognition 1.6 keeps a plate file's positions until its run ends.
_PLATE_PARTS = ("hdf5", "cellh5")


def _has_plate_folders(path: Path) -> bool:
    """Whether ``path`` is a folder with sub-folders (a plate's parts aside) holding .ch5
    files."""
    try:
        children = [c for c in path.iterdir() if c.is_dir() and c.name not in _PLATE_PARTS]
    except OSError:  # a file, or a folder that cannot be listed: locate_cellh5 says so
        return False
    return any(ch5_files(child) for child in children)


def _folder_of_plates(folder: Path) -> list[Path]:
    """Plates in a folder: sub-folders of one plate each, and .ch5 files nothing links to."""
    plates = []
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name not in _PLATE_PARTS:
            try:
                plates.append(locate_cellh5(child))
            except CellH5Error as exc:
                if ch5_files(child):  # a plate that cannot be read: its cells would be lost
                    # Said of the sub-folder alone ('same: is a folder ...'), the message
                    # left open why a folder the user never named was read.
                    raise CellH5Error(
                        f"{exc} [{child} is a sub-folder of {folder}, read as a folder of "
                        "plates: one plate per sub-folder or .ch5 file]"
                    ) from None
                continue
    return plates + _unlinked(ch5_files(folder))


def _unlinked(files: list[Path]) -> list[Path]:
    """``files`` less those that another of them links to (a master's position files)."""
    linked = {resolved(q) for f in files for q in input_files(f)[1:] if resolved(q) != resolved(f)}
    return [f for f in files if resolved(f) not in linked]


def warn_unused_plates(mapping: PositionMapping | None, positions: Iterable[PositionKey]) -> None:
    """Warn about plates of the mapping's Plate column that none of a run's ``positions``
    is on: their rows go unused, and a misspelt plate name would silently take the rows
    without a plate instead (each file's own check cannot see the other files)."""
    unused = mapping.unused_plates(positions) if mapping is not None else []
    if unused:
        shown = ", ".join(repr(name) for name in unused)
        warnings.warn(
            f"{mapping.path}: the Plate column names plate(s) {shown} that no input of this"
            " run holds; their rows are not used (is a plate name misspelt?)",
            stacklevel=2,
        )


def warn_unmapped(
    mapping: PositionMapping | None,
    positions: Sequence[PositionKey],
    source: str | os.PathLike | None = None,
) -> None:
    """Warn about positions that no row of the mapping maps, once for a whole run.

    Their cells are kept under their position's name as conditions of their own, never as
    controls: a misspelt well, or a control well missing from the mapping, would change the
    novelty scores and hit lists without a word. The rows that no file of the run holds,
    where its files were checked together (``load_mapping(..., warn=False)``), are judged
    first, once (:func:`~napari_cellae.io.mapping_fit.finish_run`).

    Parameters
    ----------
    mapping : PositionMapping or None
        None (no mapping): nothing to warn about.
    positions : sequence of PositionKey
        Every position of the run's files, with objects or not (a position of two files
        counts twice).
    source : path-like, optional
        The run's one file, for the message; default: "the inputs".

    Raises
    ------
    ValueError
        Where the run's files were checked together and the mapping names positions that
        no file holds while the files hold positions that no row maps (another plate's?).
    """
    finish_run(mapping)
    unmapped = mapping.unmapped(positions) if mapping is not None else []
    if not unmapped:
        return
    several = len({key.plate for key in positions}) > 1  # the plate tells them apart
    names = list(
        dict.fromkeys(f"{k.label} of plate {k.plate!r}" if several else k.label for k in unmapped)
    )
    shown = first_few(names, 8)
    where = source if source is not None else "the inputs"
    warnings.warn(
        f"{mapping.path}: no row maps {len(unmapped)} of the {len(positions)} positions of"
        f" {where}: {shown}; they are kept as conditions of their own, not as negative"
        " controls (is a well misspelt, or a row missing?)",
        stacklevel=2,
    )


def warn_empty(
    mapping: PositionMapping | None,
    positions: Sequence[PositionKey],
    with_cells: Iterable[PositionKey],
) -> str:
    """Name the positions that hold no cell: they get no row in the features, the cells
    file or a hit list, although a well whose cells all died may be a strong hit.

    Parameters
    ----------
    mapping : PositionMapping or None
        Gives each position's condition in the message.
    positions : sequence of PositionKey
        Every position of the run's files.
    with_cells : iterable of PositionKey
        The positions that hold cells.

    Returns
    -------
    str
        The empty positions as the warning names them (``A04_1 (TOXIC), ...``), or "".
    """
    holding = set(with_cells)
    empty = [key for key in positions if key not in holding]
    if not empty:
        return ""
    # Of several plates, A01_1 alone did not say which plate's well had died.
    several = len({key.plate for key in positions}) > 1

    def name(key: PositionKey) -> str:
        return f"{key.label} of plate {key.plate!r}" if several else key.label

    named = []
    for key in empty[:NAMED]:
        info = mapping.lookup(key) if mapping is not None else None
        named.append(name(key) + (f" ({info.condition})" if info is not None else ""))
    named_more = first_few([*named, *(name(key) for key in empty[NAMED:])])
    warnings.warn(
        f"{len(empty)} position(s) hold no cells, so they have no row in the output nor in "
        f"a hit list: {named_more}; a well whose cells all died may be a strong hit",
        stacklevel=2,
    )
    return named_more


def distinct_keys(
    plates: list[Path], sources: list[Path], keys: list[PositionKey]
) -> list[PositionKey]:
    """Positions of several plates, each plate renamed where files share a plate name.

    Plates are often named alike (``plate1``) in different files; their cells would share
    the cell table's names and ``cellae hits`` would merge their wells. Such a plate is
    named by its file as well: ``plate1 (run2/plate.ch5)``, the path below the ``plates``'
    common folder; but files of one position each, each another, are the position files
    of one plate and keep its name
    (:func:`~napari_cellae.io.mapping_fit.position_file_plates`).
    The mapping's rows for ``plate1`` (its Plate column) still hold for such
    a plate: :meth:`~napari_cellae.io.mapping.PositionMapping.lookup` reads the name
    before the file.

    Parameters
    ----------
    plates : list of Path
        Every plate file of the run.
    sources, keys : list of Path, list of PositionKey
        Each position's plate file and its key as the file names it.
    """
    files_of: dict[str, set[Path]] = {}
    for source, key in zip(sources, keys, strict=True):
        files_of.setdefault(key.plate, set()).add(source)
    # One plate's position files (CellCognition's A01_1.ch5, A02_1.ch5, ... given as
    # inputs) keep its name: renamed, each file was a plate, its controls a plate's.
    split = position_file_plates(zip(map(str, sources), keys, strict=True))
    shared = {name for name, files in files_of.items() if len(files) > 1} - split
    if not shared:
        return list(keys)
    root = Path(os.path.commonpath([str(p) for p in plates]))  # two files or more
    return [
        replace(key, plate=f"{key.plate} ({source.relative_to(root).as_posix()})")
        if key.plate in shared
        else key
        for source, key in zip(sources, keys, strict=True)
    ]
