"""Positions of a CellCognition plate file whose data are still in per-position files.

CellCognition 1.6 writes a plate file ``<plate>.ch5`` (with the plate layout under
``/layout``) and each position's data into ``cellh5/<well>_<site>.ch5`` beside it
(``A01_01.ch5``). When a position is done it adds an empty group for it to the plate file;
only when the whole run has ended does it copy every position's data into those groups and
remove the ``cellh5/`` folder. A run that stopped early, and in a run of several plates every
plate but the last (only the last one is merged), leaves a plate file of empty positions.
Their data are read from the per-position files, as an external link would reach them; see
``docs/formats.md``.
"""

from __future__ import annotations

from pathlib import Path

import h5py

from napari_cellae.io.hdf5 import CellH5Error, get_object, open_read_only
from napari_cellae.io.positions import PositionKey, position_path

__all__ = [
    "empty_position",
    "open_definition",
    "open_position",
    "per_position_files",
    "position_file_names",
]

_FOLDER = "cellh5"


def _candidates(folder: Path, key: PositionKey) -> list[Path]:
    """CellCognition names a position's file ``<well>_<site as 2 digits>.ch5``."""
    names = [f"{key.well}_{int(key.site):02d}.ch5"] if key.site.isdigit() else []
    names.append(f"{key.well}_{key.site}.ch5")
    return [folder / name for name in dict.fromkeys(names)]


def _is_plate_file(root: h5py.File) -> bool:
    return isinstance(root.get("layout", getlink=True), h5py.HardLink)


def per_position_files(
    root: h5py.File, source: Path, positions: list[PositionKey]
) -> dict[PositionKey, Path]:
    """The per-position file of each empty position of a CellCognition plate file.

    Parameters
    ----------
    root : h5py.File
        The open file.
    source : Path
        Its path.
    positions : list of PositionKey
        Its positions.

    Returns
    -------
    dict
        Empty position -> file beside it in ``cellh5/`` that holds its data; empty for
        any other file (only plate files, which hold ``/layout``, are looked at).
    """
    if not _is_plate_file(root):
        return {}
    folder = source.parent / _FOLDER
    found: dict[PositionKey, Path] = {}
    for key in positions:
        group = get_object(root, position_path(key), source, f"position {key.label}")
        if isinstance(group, h5py.Group) and len(group) == 0:
            file = next((f for f in _candidates(folder, key) if f.is_file()), None)
            if file is not None:
                found[key] = file
    return found


def position_file_names(root: h5py.File, source: Path) -> list[str]:
    """The ``.ch5`` files in ``cellh5/`` beside a plate file, relative to its folder (inputs
    that an output must not replace); none for other files."""
    if not _is_plate_file(root):
        return []
    try:
        found = (source.parent / _FOLDER).iterdir()
        return sorted(f"{_FOLDER}/{p.name}" for p in found if p.suffix.lower() == ".ch5")
    except OSError:
        return []


def open_position(file: Path, key: PositionKey, source: Path) -> h5py.Group:
    """The group of ``key`` in its per-position file (open while the group is used).

    Raises
    ------
    CellH5Error
        If the file cannot be opened or lacks the position.
    """
    opened = open_read_only(file)
    path = position_path(key)
    if not isinstance(opened.get(path), h5py.Group):
        opened.close()
        raise CellH5Error(
            f"{source}: position {key.label} of plate {key.shown_plate} is empty, and {file}, which"
            f" should hold its data, has no group {path}"
        )
    return opened[path]


def open_definition(files: dict[PositionKey, Path]) -> h5py.Group | None:
    """``/definition`` of the first per-position file that has one."""
    for file in files.values():
        opened = open_read_only(file)
        if isinstance(opened.get("definition"), h5py.Group):
            return opened["definition"]
        opened.close()
    return None


def empty_position(root: h5py.File, source: Path, key: PositionKey) -> str | None:
    """Why a position without a raw image is empty, where it is an empty group."""
    group = root.get(position_path(key))
    if not isinstance(group, h5py.Group) or len(group):
        return None
    text = f"position {key.label} is an empty group (no image, objects or features)"
    if not _is_plate_file(root):
        return text
    looked = ", ".join(f.name for f in _candidates(source.parent / _FOLDER, key))
    return (
        f"{text}: CellCognition adds a position's data to the plate file only when the whole"
        f" run has ended (and, in a run of several plates, only to the last plate's); they"
        f" were not added, and the per-position file is not in {source.parent / _FOLDER}"
        f" ({looked}). Put the folder cellh5 with the per-position files beside the plate file"
    )
