"""Find the CellH5 file a user means: the file itself, or the master file in a folder.

CellCognition writes its CellH5 output to a folder ``hdf5/`` of per-position files beside one
master file ``_all_positions.ch5``; CellProfiler writes ``<name>.ch5`` beside
``<name>_<position>.ch5``. Users often give the folder. See ``docs/formats.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from napari_cellae.io.atomic import resolved
from napari_cellae.io.hdf5 import CellH5Error
from napari_cellae.io.unmerged import position_file_names

__all__ = ["MASTER_NAME", "ch5_files", "input_files", "is_cellh5", "locate_cellh5"]

#: CellCognition's master file of external links to every position
MASTER_NAME = "_all_positions.ch5"
_SHOWN = 6
# input_files results, by the path given: the files found and the state (mtime, size) of
# every file read to find them. A run asks several times (outputs checked against inputs,
# written next to them); a plate split into thousands of files is then walked once.
_FOUND: dict[str, tuple[list[Path], dict[Path, tuple[int, int] | None]]] = {}
_FOUND_MAX = 32


def ch5_files(folder: Path) -> list[Path]:
    """The ``.ch5`` files in ``folder`` and in its ``hdf5/`` subfolder (CellCognition's
    analysis output folder), sorted; unreadable folders count as empty."""
    found: list[Path] = []
    for where in (folder, folder / "hdf5"):
        try:
            found += [p for p in where.iterdir() if p.suffix.lower() == ".ch5" and p.is_file()]
        except OSError:
            continue
    return sorted(found)


def _master(files: list[Path]) -> list[Path]:
    """Master files among ``files``: CellCognition's by name; else a CellProfiler master,
    the file whose stem prefixes every other name as ``<stem>_``; else a lone file."""
    named = [p for p in files if p.name.lower() == MASTER_NAME]
    if named:
        return named
    if len(files) == 1:
        return files
    return [
        p
        for p in files
        if all(q == p or (q.parent == p.parent and q.name.startswith(f"{p.stem}_")) for q in files)
    ]


def locate_cellh5(path: str | os.PathLike) -> Path:
    """The CellH5 file to open for ``path``.

    Parameters
    ----------
    path : path-like
        A file, or a folder holding exactly one master file (directly or in ``hdf5/``).

    Returns
    -------
    Path
        ``path`` itself when it is a file, else the master file in the folder.

    Raises
    ------
    CellH5Error
        If nothing exists at ``path``, or the folder holds no or several master files
        (the message lists what it found).
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        if path.is_symlink():  # a file-system link whose target is missing or loops
            raise CellH5Error(
                f"{path}: a symbolic link to '{os.readlink(path)}', which leads nowhere"
                " (a missing target or a loop of symbolic links)"
            )
        raise CellH5Error(f"{path}: no such file or folder")
    if not path.is_dir():
        raise CellH5Error(f"{path}: not a regular file or folder")
    files = ch5_files(path)
    masters = _master(files)
    if len(masters) == 1:
        return masters[0]
    expected = (
        f"expected a CellH5 file (.ch5), or a folder holding one master file ({MASTER_NAME}"
        " from CellCognition, or <name>.ch5 beside <name>_<position>.ch5 from CellProfiler)"
    )
    if not files:
        raise CellH5Error(f"{path}: is a folder without .ch5 files; {expected}")
    shown = [str(p.relative_to(path)) for p in (masters or files)[:_SHOWN]]
    more = " ..." if len(masters or files) > _SHOWN else ""
    what = f"{len(masters)} master files" if masters else f"{len(files)} .ch5 files but no master"
    raise CellH5Error(
        f"{path}: is a folder with {what} ({', '.join(shown)}{more}); {expected}; or open one"
        " of the files"
    )


def input_files(path: str | os.PathLike) -> list[Path]:
    """Every file a CellH5 input consists of, so that no output can overwrite one of them.

    Parameters
    ----------
    path : path-like
        A file or folder as the user gave it.

    Returns
    -------
    list of Path
        ``path``, the master file it stands for (a folder), and every file its external
        links name, followed into those files too. Unreadable files end the search quietly:
        opening the input later reports them.
    """
    path = Path(path)
    key = f"{path}\0{resolved(path)}"
    cached = _FOUND.get(key)
    if cached is not None and all(_state(f) == state for f, state in cached[1].items()):
        return list(cached[0])
    try:
        first = locate_cellh5(path)
    except CellH5Error:
        return [path]
    files = list(dict.fromkeys([path, first]))
    pending = [first]
    read: dict[Path, tuple[int, int] | None] = {path: _state(path)}  # a folder: its listing
    seen = set()
    while pending:
        file = pending.pop()
        if resolved(file) in seen:
            continue
        seen.add(resolved(file))
        read[file] = _state(file)
        try:
            with h5py.File(file, "r") as h5:
                targets = _external_files(h5) + position_file_names(h5, file)
        except (OSError, KeyError, ValueError, RuntimeError):
            continue
        for name in targets:
            target = file.parent / name  # a bare name lies beside the linking file
            files.append(target)
            pending.append(target)
    found = list(dict.fromkeys(files))
    if len(_FOUND) >= _FOUND_MAX:
        _FOUND.pop(next(iter(_FOUND), ""), None)  # the oldest (threads may race here)
    _FOUND[key] = (found, read)
    return list(found)


def _state(path: Path) -> tuple[int, int] | None:
    """Modification time and size of ``path`` (None if it cannot be read): a file whose
    state changed may link elsewhere now."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _external_files(h5: h5py.File) -> list[str]:
    """File names of the external links in ``h5``, in one pass of HDF5's link visitor.

    H5Lvisit enters every group once, so a group hard-linked into itself cannot make the
    search endless, and it lists a plate of thousands of positions about ten times faster
    than walking the groups in Python.
    """
    names: list[str] = []

    def visit(path: bytes, info: h5py.h5l.LinkInfo) -> None:
        if info.type == h5py.h5l.TYPE_EXTERNAL:
            filename, _ = h5.id.links.get_val(path)
            names.append(os.fsdecode(filename))

    h5.id.links.visit(visit, info=True)
    return list(dict.fromkeys(names))


def is_cellh5(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file with a CellH5 ``/sample`` (or the unreleased layout).

    Cheap: opens the file and looks at the root group only. Damaged files count as CellH5
    when their name ends in ``.ch5`` so that the reader reports what is wrong with them.
    """
    path = Path(path)
    if not path.is_file():
        return False
    try:
        if not h5py.is_hdf5(path):
            return path.suffix.lower() == ".ch5"
        with h5py.File(path, "r") as root:
            return "sample" in root or ("data" in root and "layout" in root)
    except OSError:
        return path.suffix.lower() == ".ch5"
