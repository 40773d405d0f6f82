"""The positions of a CellH5 file: its plate / well / site groups, found, sorted and checked.

Each imaged field is a group ``/sample/0/plate/<plate>/experiment/<well>/position/<site>``
(see ``docs/formats.md``). A master file reaches them through links, and a link written
wrongly can make two positions one group, or two names one label; both would merge cells
that the file says are apart, so they are refused here, naming the positions.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import h5py

from napari_cellae.io.definition import shown_name
from napari_cellae.io.file_kinds import not_cellh5
from napari_cellae.io.hdf5 import CellH5Error, get_object

__all__ = ["POSITION_ROOT", "PositionKey", "find_positions", "natural_key", "position_path"]

POSITION_ROOT = "sample/0/plate"


@dataclass(frozen=True, order=True)
class PositionKey:
    """One imaged field: plate, well and site, as named in the file.

    ``label`` and ``shown_plate`` are what messages show, escaped where a name holds
    characters that are no text (:func:`~napari_cellae.io.definition.shown_name`);
    tables and output files take ``raw_label`` and ``plate``, the true names.
    """

    plate: str
    well: str
    site: str

    @property
    def label(self) -> str:
        """Short position ID such as ``C03_01``, as messages show it."""
        return shown_name(self.raw_label)

    @property
    def raw_label(self) -> str:
        """``well_site`` as the file names them: for tables and output files."""
        return f"{self.well}_{self.site}"

    @property
    def shown_plate(self) -> str:
        """The plate as messages show it."""
        return shown_name(self.plate)


def natural_key(text: str) -> tuple:
    """Sort ``A2`` before ``A10`` and ``0002`` with ``2``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def position_path(key: PositionKey) -> str:
    """The HDF5 path of a position's group."""
    return f"{POSITION_ROOT}/{key.plate}/experiment/{key.well}/position/{key.site}"


def _group(parent: h5py.Group, name: str, source: Path, what: str) -> h5py.Group:
    group = get_object(parent, name, source, what)
    if not isinstance(group, h5py.Group):
        raise CellH5Error(
            f"{source}: {what} ({shown_name(group.name)}) is a dataset, expected a group"
        )
    return group


class _Identities:
    """Which HDF5 object each position group is: (file, address) of the group itself.

    Two position paths reach one group when a master file links two positions to one
    target (a hard or soft link, or external links to one file and path): the same cells
    would then be read twice, under two positions and conditions.
    """

    def __init__(self) -> None:
        self._files: dict[str, str] = {}  # file name as HDF5 reports it -> real path
        self.seen: dict[tuple[str, int], PositionKey] = {}

    def of(self, group: h5py.Group) -> tuple[str, int]:
        name = os.fsdecode(h5py.h5f.get_name(group.id))
        if name not in self._files:  # one realpath per file, not per position
            self._files[name] = os.path.realpath(name)
        return self._files[name], h5py.h5o.get_info(group.id).addr


def find_positions(root: h5py.File, source: Path) -> list[PositionKey]:
    """Every position of an open CellH5 file, sorted naturally (plate, well, site).

    Parameters
    ----------
    root : h5py.File
        The open file.
    source : Path
        The file the user opened (named in messages).

    Returns
    -------
    list of PositionKey

    Warns
    -----
    UserWarning
        If ``/sample`` holds more than sample ``0``: only its positions are read.

    Raises
    ------
    CellH5Error
        If the file has no ``/sample`` (or the unreleased ``/data`` + ``/layout`` layout),
        a well without a ``position`` group, a position that is no group, no position at
        all, two positions that are one HDF5 group, or two positions of one plate with one
        label (well ``A01_x`` site ``1`` and well ``A01`` site ``x_1``).
    """
    if "sample" not in root:
        if "data" in root and "layout" in root:
            raise CellH5Error(
                f"{source}: uses the unreleased /data + /layout layout, not CellH5 1.x; export"
                " it again with CellCognition 1.6 or CellProfiler's ExportToCellH5"
            )
        # A cells file or Explorer .hdf given as the input: say what it is instead.
        if (instead := not_cellh5(Path(source))) is not None:
            raise CellH5Error(instead)
        raise CellH5Error(f"{source}: not a CellH5 file: it has no /sample group")
    plates = _group(root, POSITION_ROOT, source, "the plate list /sample/0/plate")
    samples = root["sample"]
    if isinstance(samples, h5py.Group) and (others := [name for name in samples if name != "0"]):
        # CellH5 keeps every plate under sample 0; positions elsewhere are not read.
        warnings.warn(
            f"{source}: only /sample/0 is read (CellH5 keeps every plate there); the file"
            f" also holds /sample/{', /sample/'.join(others)}, whose positions are left out",
            stacklevel=3,
        )
    keys = []
    identities = _Identities()
    labels: dict[tuple[str, str], PositionKey] = {}
    for plate in plates:
        plate_name = shown_name(plate)  # as messages show it
        of_plate = f"of plate {plate_name}"
        experiment = _group(plates, f"{plate}/experiment", source, f"plate {plate_name}")
        for well in experiment:
            where = f"well {shown_name(well)} {of_plate}"
            well_group = _group(experiment, well, source, where)
            if "position" not in well_group:
                raise CellH5Error(f"{source}: {where} has no 'position' group")
            sites = _group(well_group, "position", source, where)
            for site in sites:
                key = PositionKey(plate, well, site)
                group = _group(sites, site, source, f"position {key.label} {of_plate}")
                identity = identities.of(group)
                if (twin := identities.seen.setdefault(identity, key)) != key:
                    raise CellH5Error(
                        f"{source}: positions {twin.label} and {key.label} {of_plate} are"
                        f" one and the same HDF5 group (of {Path(identity[0]).name}), so its"
                        " cells would be read twice, under two positions and conditions;"
                        " correct the links of the master file"
                    )
                if (twin := labels.setdefault((plate, key.raw_label), key)) != key:
                    raise CellH5Error(
                        f"{source}: well {twin.well!r} site {twin.site!r} and well {well!r} site"
                        f" {site!r} {of_plate} are both called {key.label}, so their"
                        " cells would be merged into one position; rename one of them"
                    )
                keys.append(key)
    if not keys:
        raise CellH5Error(f"{source}: holds no positions under /sample/0/plate")
    return sorted(keys, key=lambda k: tuple(map(natural_key, (k.plate, k.well, k.site))))
