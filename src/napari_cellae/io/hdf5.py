"""Read-only HDF5 access whose failures name the file and what could not be read.

h5py reports broken files in HDF5's words (``RuntimeError: ... too many links``,
``OSError: ... filter returned failure``, ``KeyError``) and names no file. The helpers here
open objects the fast way and only when that fails walk the path link by link to say what is
wrong: a missing object, a dangling external link, a loop of soft or external links, or
damaged storage. See ``docs/formats.md`` (links in CellH5 master files).
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from napari_cellae.io.file_kinds import not_cellh5
from napari_cellae.io.storage import external_target, read_into
from napari_cellae.io.write_failure import errno_of, lock_refused

__all__ = [
    "CellH5Error",
    "get_object",
    "link_trouble",
    "open_read_only",
    "read_table",
]

# HDF5's default limit on the links followed in one lookup (H5Pset_nlinks).
_MAX_LINKS = 16
# What h5py raises for a path it cannot follow: missing (KeyError), link loops
# (RuntimeError, or KeyError through external links), damaged storage (OSError).
_LOOKUP_ERRORS = (KeyError, RuntimeError, OSError, ValueError, TypeError)


class CellH5Error(ValueError):
    """A file is not a usable CellH5 file; the message names the file and the problem."""


def open_read_only(path: Path) -> h5py.File:
    """Open an HDF5 file read-only.

    Parameters
    ----------
    path : Path
        An existing file.

    Returns
    -------
    h5py.File
        Opened in mode ``"r"``; external links it holds open their files read-only too.

    Raises
    ------
    CellH5Error
        If the file cannot be read, is not HDF5, is damaged or is locked by a writer.
    """
    try:
        hdf5 = h5py.is_hdf5(path)
    except OSError as err:  # HDF5 words it as "Unable to determine ... errno = 13, ..."
        code = errno_of(err)
        reason = os.strerror(code).lower() if code else err.strerror or err
        raise CellH5Error(f"{path}: cannot be read ({reason})") from None
    if not hdf5:
        # A model, mapping or CSV given as the input: say what it is and what to give.
        if (instead := not_cellh5(Path(path))) is not None:
            raise CellH5Error(instead)
        raise CellH5Error(f"{path}: not an HDF5 file, so not a CellH5 file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        if "unable to lock file" in str(err).lower():
            raise CellH5Error(f"{path}: {_lock_trouble(err)}") from None
        raise CellH5Error(
            f"{path}: the HDF5 file is damaged or truncated and cannot be read ({err})"
        ) from None


def _lock_trouble(err: OSError) -> str:
    """HDF5's "unable to lock file" in words: a file system without locks (with HDF5 set to
    insist on them), else a program writing the file holds the lock."""
    if lock_refused(err):
        return (
            f"its file system refused HDF5's file lock ({err}); set the environment variable"
            " HDF5_USE_FILE_LOCKING=FALSE and open it again"
        )
    return (
        f"the file is locked by a program that is writing it ({err}); open it when that"
        " program has finished"
    )


class _Step(NamedTuple):
    """One link on the way: the file holding it, its path there, and its kind."""

    file: Path
    path: str
    kind: str  # "soft" or "external"


def _describe_loop(chain: list[_Step]) -> str:
    one_file = len({step.file for step in chain}) == 1
    kinds = {step.kind for step in chain[:-1]}
    kind = kinds.pop() if len(kinds) == 1 else "soft and external"
    inside = f" in {chain[0].file.name}" if one_file else ""

    def name(step: _Step) -> str:
        return step.path if one_file else f"{step.file.name}:{step.path}"

    if len(chain) == 2:
        return f"the {kind} link {name(chain[0])}{inside} points to itself (a link loop)"
    steps = " -> ".join(name(step) for step in chain)
    return f"the {kind} links{inside} form a loop: {steps}"


def _walk(file_path: Path, file: h5py.File, path: str, chain: list[_Step]) -> str | None:
    """Follow ``path`` in ``file`` one link at a time; describe the first problem."""
    node: h5py.Group | h5py.Dataset = file["/"]
    here = "/"
    parts = [part for part in path.split("/") if part and part != "."]
    for i, part in enumerate(parts):
        if not isinstance(node, h5py.Group):
            return None
        try:
            link = node.get(part, getlink=True)
        except _LOOKUP_ERRORS:
            return None
        if link is None:
            return None
        parent, here = here, posixpath.join(here, part)
        rest = "/".join(parts[i + 1 :])
        if isinstance(link, h5py.SoftLink | h5py.ExternalLink):
            kind = "soft" if isinstance(link, h5py.SoftLink) else "external"
            step = _Step(file_path.resolve(), here, kind)
            earlier = [i for i, s in enumerate(chain) if s[:2] == step[:2]]
            if earlier:
                return _describe_loop([*chain[earlier[0] :], step])
            chain = [*chain, step]
            if len(chain) > _MAX_LINKS:
                return f"more than {_MAX_LINKS} links in a row starting at {chain[0].path}"
            if isinstance(link, h5py.SoftLink):
                target = posixpath.normpath(posixpath.join(parent, link.path))
                trouble = _walk(file_path, file, posixpath.join(target, rest), chain)
                if trouble is None and file.get(target, getlink=True) is None:
                    # Dangling: damage, as a dangling external link is, not an absent table
                    where = f"the soft link {here} in {file_path.name}"
                    return f"{where} points to {link.path}, which is not there"
                return trouble
            target_file = external_target(link.filename, file_path)
            where = f"the external link {here} in {file_path.name} points to '{link.filename}'"
            if not target_file.is_file():
                what = "a folder, not a file" if target_file.is_dir() else "a missing file"
                return f"{where}, {what} ({target_file})"
            try:
                other = h5py.File(target_file, "r")
            except OSError as err:
                if "unable to lock file" in str(err).lower():
                    return f"{where} ({target_file}): {_lock_trouble(err)}"
                return f"{where}, which cannot be read as HDF5 ({target_file}: {err})"
            try:
                try:
                    other[link.path]
                except _LOOKUP_ERRORS:
                    # A file that is there but lacks the linked path is another file (a part
                    # copied over another's name, another screen's): say so, not that the
                    # master file lacks the position.
                    trouble = _walk(target_file, other, link.path, chain)
                    return trouble or f"{where}, which has no {link.path}"
                return _walk(target_file, other, posixpath.join(link.path, rest), chain)
            finally:
                other.close()
        try:
            node = node[part]
        except _LOOKUP_ERRORS as err:
            return f"{here} in {file_path.name} cannot be opened ({err})"
    return None


def link_trouble(group: h5py.Group, name: str) -> str | None:
    """Say why ``group[name]`` cannot be opened, following its links one by one.

    Parameters
    ----------
    group : h5py.Group
        An open group.
    name : str
        Path relative to ``group``.

    Returns
    -------
    str or None
        A description of a link loop, a dangling or unreadable external link, or too long a
        chain of links; None where the path simply does not exist.
    """
    try:
        file = group.file
        start = posixpath.join(group.name or "/", name)
        return _walk(Path(file.filename), file, start, [])
    except _LOOKUP_ERRORS:
        return None


def get_object(
    group: h5py.Group, name: str, source: Path, what: str, required: bool = True
) -> h5py.Group | h5py.Dataset | None:
    """``group[name]``, with a :class:`CellH5Error` that names ``source`` and ``what``.

    Parameters
    ----------
    group : h5py.Group
        Where to look.
    name : str
        Path relative to ``group``.
    source : Path
        The file the user opened (named in messages).
    what : str
        What the object is, for messages ("position A01_1", "/definition").
    required : bool
        Whether a missing object is an error (else None is returned).

    Returns
    -------
    h5py.Group or h5py.Dataset or None
        None only when the object does not exist and ``required`` is False.

    Raises
    ------
    CellH5Error
        If the object is missing (and required), behind a link loop or a dangling
        external link, or damaged.
    """
    try:
        return group[name]
    except _LOOKUP_ERRORS as err:
        failure = err
    trouble = link_trouble(group, name)
    if trouble is not None:
        hint = ""
        if "missing file" in trouble:
            hint = "; keep the per-position .ch5 files beside the master file"
        raise CellH5Error(f"{source}: {what} cannot be opened: {trouble}{hint}") from None
    if isinstance(failure, KeyError):
        if not required:
            return None
        raise CellH5Error(f"{source}: {what} is missing ({posixpath.join(group.name, name)})")
    raise CellH5Error(f"{source}: {what} cannot be read ({failure})") from None


def _not_a_table(group: h5py.Group, path: str) -> str | None:
    """What stands where ``group/path`` should be a table (a group, or a dataset on the
    way), so that a table is not taken for an absent one; None where the path is absent."""
    parts = [part for part in path.split("/") if part]
    node: h5py.Group | h5py.Dataset = group
    for i, part in enumerate(parts):
        if isinstance(node, h5py.Dataset):
            return f"{'/'.join(parts[:i])} is a dataset, not the group of {path}"
        try:
            node = node[part]
        except _LOOKUP_ERRORS:
            return None
    return f"{path} is an HDF5 group, not a table" if isinstance(node, h5py.Group) else None


def read_table(group: h5py.Group, path: str, source: Path, what: str) -> np.ndarray | None:
    """The whole dataset ``group/path`` as an array, or None where it does not exist.

    Low-level h5py: about a third of the cost of ``group[path][()]``, which matters because
    several small tables are read per position and plates have thousands of positions.

    Raises
    ------
    CellH5Error
        Naming ``source``, ``what`` and ``path`` if the dataset is behind a broken link, a
        group stands in its place, its storage is damaged or was never written, a filter it
        needs is not installed, or it is too large for memory.
    """
    try:
        dataset = h5py.h5d.open(group.id, path.encode())
    except _LOOKUP_ERRORS as err:
        trouble = link_trouble(group, path)
        if trouble is not None:
            raise CellH5Error(f"{source}: {what} ({path}) cannot be opened: {trouble}") from None
        if isinstance(err, KeyError):
            if (in_the_way := _not_a_table(group, path)) is not None:  # not absent
                raise CellH5Error(f"{source}: {what}: {in_the_way}") from None
            return None
        raise CellH5Error(f"{source}: {what} ({path}) cannot be read ({err})") from None
    shape = dataset.shape
    if shape is None:  # HDF5 null dataspace: no rows
        return np.zeros(0, dtype=dataset.dtype)
    try:
        out = np.empty(shape, dtype=dataset.dtype)
    except (MemoryError, ValueError):  # a tiny file can declare 10**12 unwritten rows
        raise CellH5Error(
            f"{source}: {what} ({path}) declares {' x '.join(map(str, shape))} rows of"
            f" {dataset.dtype.itemsize} bytes, more than this computer's memory holds; the"
            " file is damaged or was written wrongly"
        ) from None
    if out.size and (trouble := read_into(dataset, out)) is not None:
        raise CellH5Error(f"{source}: {what} ({path}) {trouble}") from None
    return out
