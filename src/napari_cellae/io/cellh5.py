"""Read-only access to CellH5 files written by CellCognition or CellProfiler.

A CellH5 file holds positions (plate / well / site) with raw images of axes (c, t, z, y, x)
and per-object tables whose rows share one order; a master file may only hold external links
to one file per position. See ``docs/formats.md``. Pixels are never read here:
:meth:`CellH5.image` returns the lazy h5py dataset. Every h5py access goes through
:mod:`napari_cellae.io.hdf5`, so a broken file raises :class:`CellH5Error` naming the file
and what is wrong, never a bare HDF5 error.
"""

from __future__ import annotations

import os
import warnings
from functools import cached_property

import h5py
import numpy as np

from napari_cellae.io.definition import (
    ChannelInfo,
    ClassLabel,
    channel_names,
    class_rows,
    region_channels_recorded,
    region_rows,
)
from napari_cellae.io.hdf5 import (
    CellH5Error,
    get_object,
    open_read_only,
    read_table,
)
from napari_cellae.io.locate import is_cellh5, locate_cellh5
from napari_cellae.io.objects import (
    ObjectTable,
    is_relation,
    not_an_object_table,
    read_object_table,
)
from napari_cellae.io.positions import PositionKey, find_positions, position_path
from napari_cellae.io.storage import values_elsewhere_trouble
from napari_cellae.io.unmerged import (
    empty_position,
    open_definition,
    open_position,
    per_position_files,
)

__all__ = [
    "CellH5",
    "CellH5Error",
    "ChannelInfo",
    "ClassLabel",
    "ObjectTable",
    "PositionKey",
    "is_cellh5",
]


class CellH5:
    """A CellH5 file opened read-only.

    Parameters
    ----------
    path : path-like
        A ``.ch5`` file, a master file (``_all_positions.ch5``) of external links, or a
        folder holding one master file (CellCognition's ``hdf5/`` output folder).

    Raises
    ------
    CellH5Error
        If the file does not exist, is not HDF5, is damaged, is not CellH5 1.x, has a
        dangling external link or a link loop, or holds no positions.

    Examples
    --------
    >>> with CellH5("_all_positions.ch5") as ch5:            # doctest: +SKIP
    ...     pos = ch5.positions[0]
    ...     table = ch5.objects(pos, ch5.default_object)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = locate_cellh5(path)
        self._file = open_read_only(self.path)
        try:
            self.positions = find_positions(self._file, self.path)
            # A CellCognition plate file whose positions are still in cellh5/<well>_<site>.ch5
            self._elsewhere = per_position_files(self._file, self.path, self.positions)
        except BaseException:
            self._file.close()
            raise
        self._known_positions = frozenset(self.positions)
        # Shape and dtype of validated images. Datasets are not kept: with one file per
        # position, holding them all would hold thousands of files open.
        self._image_info: dict[PositionKey, tuple[tuple[int, ...], np.dtype]] = {}
        # Entries under object/ that are no table of objects, and what they are instead.
        self._not_objects: dict[str, str] = {}

    # -- context manager ---------------------------------------------------------------
    def __enter__(self) -> CellH5:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (and the files its external links opened)."""
        self.__dict__.pop("_definition", None)  # may hold a per-position file open
        if self._file.id.valid:
            self._file.close()

    def __repr__(self) -> str:
        return f"CellH5({str(self.path)!r}, positions={len(self.positions)})"

    # -- structure -----------------------------------------------------------------------
    def _error(self, message: str) -> CellH5Error:
        return CellH5Error(f"{self.path}: {message}")

    def _get(
        self, parent: h5py.Group, name: str, what: str, required: bool = True
    ) -> h5py.Group | h5py.Dataset | None:
        """``parent[name]``; broken links and damage become a CellH5Error naming ``what``."""
        return get_object(parent, name, self.path, what, required)

    def _group(self, parent: h5py.Group, name: str, what: str) -> h5py.Group:
        group = self._get(parent, name, what)
        if not isinstance(group, h5py.Group):
            raise self._error(f"{what} ({group.name}) is a dataset, expected a group")
        return group

    def _position(self, key: PositionKey) -> h5py.Group:
        if key not in self._known_positions:
            raise self._error(f"has no position {key.label} on plate {key.shown_plate}")
        if key in self._elsewhere:
            return open_position(self._elsewhere[key], key, self.path)
        return self._get(self._file, position_path(key), f"position {key.label}")

    @cached_property
    def _definition(self) -> h5py.Group | None:
        if self._file.get("definition", getlink=True) is None:
            return open_definition(self._elsewhere)
        return self._group(self._file, "definition", "/definition")

    def _definition_table(self, path: str) -> np.ndarray | None:
        if self._definition is None:
            return None
        return read_table(self._definition, path, self.path, "/definition")

    @cached_property
    def channels(self) -> list[ChannelInfo]:
        """The raw channels of the first position (see :meth:`channels_of`)."""
        return self.channels_of(self.image_shape(self.positions[0])[0])

    def channels_of(self, n_channels: int) -> list[ChannelInfo]:
        """The first ``n_channels`` raw channels (other positions may hold more than the
        first), from ``/definition/image/channel``, named by index where it has no row."""
        rows = self._definition_table("image/channel")
        # The region table only where rows outnumber the channels (channel kinds sharing a
        # camera channel): the raw images stay readable when it is malformed.
        many = rows is not None and rows.ndim == 1 and len(rows) > n_channels
        names = channel_names(rows, n_channels, self.path, self._regions if many else [])
        return [ChannelInfo(i, name, color) for i, (name, color) in enumerate(names)]

    @cached_property
    def _regions(self) -> list[tuple[str, int]]:
        """Name and raw channel of each label image, from ``/definition/image/region``;
        read once, as every position's label images need it."""
        return region_rows(self._definition_table("image/region"), self.path)

    @cached_property
    def object_names(self) -> list[str]:
        """Segmented object types (not tracking or relation tables), in file order."""
        names: list[str] = []
        for key in self.positions:
            objects = self._objects_group(key)
            if objects is None:
                continue
            for name in objects:
                if name in names or is_relation(name):
                    continue
                table = self._get(objects, name, f"object table '{name}' of position {key.label}")
                problem = not_an_object_table(table)
                if problem is None:
                    names.append(name)
                else:  # said when it is asked for, or when no object is left
                    self._not_objects[name] = f"object/{name} of position {key.label} {problem}"
            if names:
                break
        return names

    @property
    def default_object(self) -> str:
        """``primary__primary`` (CellCognition), ``Nuclei`` (CellProfiler) or the first."""
        for preferred in ("primary__primary", "Nuclei", "nuclei"):
            if preferred in self.object_names:
                return preferred
        if not self.object_names:  # a CellCognition plate file whose positions are elsewhere?
            why = "; ".join(self._not_objects.values()) or "no tables under object/"
            empty = self.positions and empty_position(self._file, self.path, self.positions[0])
            raise self._error(empty or f"contains no segmented objects ({why})")
        return self.object_names[0]

    def check_object(self, object_name: str) -> None:
        """Raise unless the file has objects ``object_name``.

        Raises
        ------
        CellH5Error
            Saying what ``object/<object_name>`` holds when it is no table of objects, else
            listing the file's object types.
        """
        if object_name in self.object_names:
            return
        if problem := self.object_problem(object_name):
            raise self._error(problem)
        known = ", ".join(self.object_names) or "none"
        # The object types are read from the first position that has any: one that only
        # later positions hold is in the file, but missing where it was first looked for.
        holders = [key.label for key in self.positions if self._holds(key, object_name)]
        if holders and self.object_names:
            first = next(k.label for k in self.positions if self._holds(k, self.object_names[0]))
            raise self._error(
                f"has objects '{object_name}' in {len(holders)} of {len(self.positions)} "
                f"positions ({', '.join(holders[:5])}{', ...' if len(holders) > 5 else ''}) "
                f"but not in {first}, which holds {known}: every position must have them"
            )
        raise self._error(f"has no object '{object_name}' (objects in this file: {known})")

    def _objects_group(self, key: PositionKey) -> h5py.Group | None:
        """A position's ``object/`` group, or None where it has none."""
        where = f"the object list of position {key.label}"
        objects = self._get(self._position(key), "object", where, required=False)
        return objects if isinstance(objects, h5py.Group) else None

    def _holds(self, key: PositionKey, object_name: str) -> bool:
        objects = self._objects_group(key)
        return objects is not None and object_name in objects

    def object_problem(self, object_name: str) -> str | None:
        """What ``object/<object_name>`` holds when it is there but no table of objects."""
        if object_name in self.object_names:  # the scan notes the others
            return None
        return self._not_objects.get(object_name)

    @cached_property
    def records_object_channels(self) -> bool:
        """Whether the file says which raw channel each object was segmented in: not in
        CellProfiler's files, whose region table numbers the objects instead (see
        :func:`~napari_cellae.io.definition.region_channels_recorded`)."""
        return region_channels_recorded(self._regions, self._definition_table("image/channel"))

    def object_channel(self, object_name: str) -> int:
        """Index of the raw channel the object was segmented in (0 if not recorded)."""
        if not self.records_object_channels:
            self.check_object(object_name)
            return 0
        for row in self._region_rows(object_name):
            channel = self._regions[row][1]
            if 0 <= channel < len(self.channels):
                return channel
            warnings.warn(  # the segmentation's channel is unknown: say which is used
                f"{self.path}: /definition/image/region gives '{object_name}' channel "
                f"{channel}, which the images do not have; using channel 0",
                stacklevel=2,
            )
        return 0

    def class_labels(self, object_name: str) -> list[ClassLabel] | None:
        """Classes of the object classifier stored in the file, or None."""
        self.check_object(object_name)
        table = f"feature/{object_name}/object_classification/class_labels"
        rows = self._definition_table(table)
        if rows is None:
            return None
        return [ClassLabel(*row) for row in class_rows(rows, self.path, table)]

    # -- images ----------------------------------------------------------------------------
    def image(self, key: PositionKey) -> h5py.Dataset:
        """The raw pixels of a position, lazily: axes (c, t, z, y, x)."""
        where = f"the raw image of position {key.label}"
        dataset = self._get(self._position(key), "image/channel", where, required=False)
        if key in self._image_info:
            return dataset
        if not isinstance(dataset, h5py.Dataset):
            empty = empty_position(self._file, self.path, key)
            raise self._error(empty or f"position {key.label} has no raw image (image/channel)")
        if dataset.ndim != 5:
            raise self._error(
                f"image/channel of position {key.label} has {dataset.ndim} dimensions"
                f" {dataset.shape}; CellH5 stores 5 (c, t, z, y, x)"
            )
        if min(dataset.shape) == 0:
            raise self._error(f"image/channel of position {key.label} is empty {dataset.shape}")
        if dataset.dtype.kind not in "uif":
            raise self._error(
                f"image/channel of position {key.label} has unsupported type {dataset.dtype}"
            )
        if trouble := values_elsewhere_trouble(dataset, f"image/channel of position {key.label}"):
            raise self._error(trouble)
        self._image_info[key] = (tuple(dataset.shape), dataset.dtype)
        return dataset

    def image_shape(self, key: PositionKey) -> tuple[int, int, int, int, int]:
        """Shape (c, t, z, y, x) of a position's raw image."""
        if key not in self._image_info:
            self.image(key)
        return self._image_info[key][0]

    def dtype(self, key: PositionKey) -> np.dtype:
        """Pixel type of a position's raw image (uint8, uint16, ...)."""
        if key not in self._image_info:
            self.image(key)
        return self._image_info[key][1]

    def region_index(self, object_name: str) -> int:
        """Row of ``image/region`` with ``object_name``'s label images (0 if the file does
        not say), by the order of ``/definition/image/region``."""
        return next(iter(self._region_rows(object_name)), 0)

    def _region_rows(self, object_name: str) -> list[int]:
        """Rows of ``/definition/image/region`` naming the object (CellCognition writes
        ``region___<name>``), in file order."""
        self.check_object(object_name)
        names = (object_name, f"region___{object_name}")
        return [i for i, (region, _) in enumerate(self._regions) if region in names]

    def labels(self, key: PositionKey, object_name: str) -> tuple[h5py.Dataset, int] | None:
        """The label images of a position (lazily) and the row holding ``object_name``'s.

        Returns
        -------
        (h5py.Dataset, int) or None
            ``image/region`` with axes (region, t, z, y, x), and the region row; None when
            the position stores no label images of the object (its pixels cannot be told
            from its neighbours').

        Raises
        ------
        CellH5Error
            If the label images are not 5-D or do not match the raw image's frames and size,
            or their virtual source or external raw file is missing.
        """
        where = f"the label images of position {key.label}"
        dataset = self._get(self._position(key), "image/region", where, required=False)
        row = self.region_index(object_name)
        if not isinstance(dataset, h5py.Dataset):
            return None
        _, n_t, _, height, width = self.image_shape(key)
        shape = dataset.shape or ()  # None for an empty dataset; no z-planes fail too
        if len(shape) != 5 or shape[1] != n_t or not shape[2] or shape[3:] != (height, width):
            raise self._error(
                f"image/region of position {key.label} has shape {dataset.shape}, not (regions, "
                f"{n_t}, z, {height}, {width}) for the raw image's {n_t} frame(s) of {height} x "
                f"{width} px; use --mask none (Hide: nothing) to crop without the label images"
            )
        if row >= dataset.shape[0]:
            return None
        if dataset.dtype.kind not in "ui":
            raise self._error(
                f"image/region of position {key.label} holds {dataset.dtype} values; label "
                "images are integers (use --mask none to crop without them)"
            )
        if trouble := values_elsewhere_trouble(dataset, f"image/region of position {key.label}"):
            raise self._error(trouble)  # a virtual one read as zeros: "label id not found"
        return dataset, row

    # -- objects -----------------------------------------------------------------------------
    def objects(self, key: PositionKey, object_name: str) -> ObjectTable:
        """Per-object tables of ``object_name`` in position ``key`` (all frames).

        Raises
        ------
        CellH5Error
            If the centre table is missing, tables disagree in length, a centre is missing
            (NaN) or lies outside the image, or an object's frame does not exist.
        """
        self.check_object(object_name)
        return read_object_table(
            self._position(key),
            object_name,
            self.image_shape(key),
            self.path,
            f"object '{object_name}' of position {key.label}",
        )

    def object_count(self, key: PositionKey, object_name: str) -> int:
        """Number of objects (all frames); reads the feature tables only of an empty table."""
        self.check_object(object_name)
        where = f"object table '{object_name}' of position {key.label}"
        table = self._get(self._position(key), f"object/{object_name}", where, required=False)
        if isinstance(table, h5py.Dataset) and table.shape is not None and table.ndim == 1:
            if table.shape[0]:
                return table.shape[0]
        # No table (an empty well, unless it holds other objects), 0 rows (not empty beside
        # longer feature tables), a scalar, empty-space or 2-D table, or a group: read it.
        return len(self.objects(key, object_name))
