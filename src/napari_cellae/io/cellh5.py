"""Read-only access to CellH5 files written by CellCognition or CellProfiler.

A CellH5 file holds positions (plate / well / site) with raw images of axes (c, t, z, y, x)
and per-object tables (centre, bounding box, orientation, class prediction) whose rows share
one order. See ``FORMATS.md`` section 1. Pixels are never read here: :meth:`CellH5.image`
returns the lazy h5py dataset.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

_POSITION_ROOT = "sample/0/plate"
_RELATION_OBJECTS = {"tracking", "event"}


class CellH5Error(ValueError):
    """A file is not a usable CellH5 file; the message names the file and the problem."""


@dataclass(frozen=True, order=True)
class PositionKey:
    """One imaged field: plate, well and site, as named in the file."""

    plate: str
    well: str
    site: str

    @property
    def label(self) -> str:
        """Short position ID such as ``C03_01``."""
        return f"{self.well}_{self.site}"


@dataclass(frozen=True)
class ChannelInfo:
    """A raw image channel."""

    index: int
    name: str
    color: str


@dataclass(frozen=True)
class ClassLabel:
    """One class of an object classifier stored in the file."""

    label: int
    name: str
    color: str


@dataclass
class ObjectTable:
    """Per-object tables of one object type in one position, in CellH5 row order.

    ``bbox`` columns are ``left, right, top, bottom`` (x0, x1, y0, y1). ``angle``,
    ``eccentricity`` and ``class_idx`` are None when the file does not store them.
    """

    time_idx: np.ndarray
    label_id: np.ndarray
    center_x: np.ndarray
    center_y: np.ndarray
    bbox: np.ndarray
    angle: np.ndarray | None = None
    eccentricity: np.ndarray | None = None
    class_idx: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.time_idx)


def _natural_key(text: str) -> tuple:
    """Sort ``A2`` before ``A10`` and ``0002`` with ``2``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _position_path(key: PositionKey) -> str:
    return f"{_POSITION_ROOT}/{key.plate}/experiment/{key.well}/position/{key.site}"


class CellH5:
    """A CellH5 file opened read-only.

    Parameters
    ----------
    path : path-like
        A ``.ch5`` file, or a master file (``_all_positions.ch5``) of external links.

    Raises
    ------
    CellH5Error
        If the file does not exist, is not HDF5, is damaged, is not CellH5 1.x, has a
        dangling external link or holds no positions.

    Examples
    --------
    >>> with CellH5("_all_positions.ch5") as ch5:            # doctest: +SKIP
    ...     pos = ch5.positions[0]
    ...     table = ch5.objects(pos, ch5.default_object)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CellH5Error(f"{self.path}: no such file")
        if not h5py.is_hdf5(self.path):
            raise CellH5Error(f"{self.path}: not an HDF5 file, so not a CellH5 file")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise CellH5Error(
                f"{self.path}: the HDF5 file is damaged or truncated and cannot be read ({err})"
            ) from None
        try:
            self.positions = self._find_positions()
        except BaseException:
            self._file.close()
            raise
        self._known_positions = frozenset(self.positions)
        # Shape and dtype of validated images. Datasets are not kept: with one file per
        # position, holding them all would hold thousands of files open.
        self._image_info: dict[PositionKey, tuple[tuple[int, ...], np.dtype]] = {}

    # -- context manager ---------------------------------------------------------------
    def __enter__(self) -> CellH5:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (and the files its external links opened)."""
        if self._file.id.valid:
            self._file.close()

    def __repr__(self) -> str:
        return f"CellH5({str(self.path)!r}, positions={len(self.positions)})"

    # -- structure -----------------------------------------------------------------------
    def _error(self, message: str) -> CellH5Error:
        return CellH5Error(f"{self.path}: {message}")

    def _get(self, parent: h5py.Group, name: str, what: str) -> h5py.Group | h5py.Dataset:
        """Open ``parent[name]``; a dangling external link names the missing file."""
        link = parent.get(name, getlink=True)
        if link is None:
            raise self._error(f"{what} is missing ({parent.name}/{name})")
        try:
            return parent[name]
        except (KeyError, OSError) as err:
            if isinstance(link, h5py.ExternalLink):
                target = Path(link.filename)
                if not target.is_absolute():
                    target = self.path.parent / target
                raise self._error(
                    f"{what} is an external link to '{link.filename}' which cannot be opened"
                    f" (missing or unreadable file {target}); keep the per-position .ch5 files"
                    " beside the master file"
                ) from None
            raise self._error(f"{what} cannot be read ({err})") from None

    def _find_positions(self) -> list[PositionKey]:
        root = self._file
        if "sample" not in root:
            if "data" in root and "layout" in root:
                raise self._error(
                    "uses the unreleased /data + /layout layout, not CellH5 1.x; export it"
                    " again with CellCognition 1.6 or CellProfiler's ExportToCellH5"
                )
            raise self._error("not a CellH5 file: it has no /sample group")
        plates = self._get(root, _POSITION_ROOT, "the plate list /sample/0/plate")
        keys = []
        for plate in plates:
            experiment = self._get(plates[plate], "experiment", f"plate {plate}")
            for well in experiment:
                well_group = self._get(experiment, well, f"well {well}")
                if "position" not in well_group:
                    raise self._error(f"well {well} of plate {plate} has no 'position' group")
                sites = well_group["position"]
                for site in sites:
                    self._get(sites, site, f"position {well}_{site} of plate {plate}")
                    keys.append(PositionKey(plate, well, site))
        if not keys:
            raise self._error("holds no positions under /sample/0/plate")
        return sorted(keys, key=lambda k: tuple(map(_natural_key, (k.plate, k.well, k.site))))

    def _position(self, key: PositionKey) -> h5py.Group:
        if key not in self._known_positions:
            raise self._error(f"has no position {key.label} on plate {key.plate}")
        try:
            return self._file[_position_path(key)]
        except (KeyError, OSError):  # explain what is wrong
            return self._get(self._file, _position_path(key), f"position {key.label}")

    @cached_property
    def _definition(self) -> h5py.Group | None:
        if self._file.get("definition", getlink=True) is None:
            return None
        return self._get(self._file, "definition", "/definition")

    @cached_property
    def channels(self) -> list[ChannelInfo]:
        """The raw channels, from ``/definition/image/channel`` (named by index if absent)."""
        n_channels = self.image_shape(self.positions[0])[0]
        names = [f"channel {i}" for i in range(n_channels)]
        colors = ["#FFFFFF"] * n_channels
        table = self._definition.get("image/channel") if self._definition else None
        if table is not None and table.dtype.names and "channel_name" in table.dtype.names:
            rows = table[()]
            for i, row in enumerate(rows[:n_channels]):
                names[i] = _decode(row["channel_name"]) or names[i]
                if "color" in rows.dtype.names and _decode(row["color"]).startswith("#"):
                    colors[i] = _decode(row["color"])
        return [
            ChannelInfo(i, name, color)
            for i, (name, color) in enumerate(zip(names, colors, strict=True))
        ]

    @cached_property
    def object_names(self) -> list[str]:
        """Segmented object types (not tracking or relation tables), in file order."""
        names: list[str] = []
        for key in self.positions:
            objects = self._position(key).get("object")
            if objects is None:
                continue
            for name, table in objects.items():
                if (
                    name not in names
                    and name not in _RELATION_OBJECTS
                    and "___to___" not in name
                    and isinstance(table, h5py.Dataset)
                    and table.dtype.names is not None
                    and "time_idx" in table.dtype.names
                ):
                    names.append(name)
            if names:
                break
        return names

    @property
    def default_object(self) -> str:
        """``primary__primary`` (CellCognition), ``Nuclei`` (CellProfiler) or the first."""
        for preferred in ("primary__primary", "Nuclei", "nuclei"):
            if preferred in self.object_names:
                return preferred
        if not self.object_names:
            raise self._error("contains no segmented objects (no tables under object/)")
        return self.object_names[0]

    def _check_object(self, object_name: str) -> None:
        if object_name not in self.object_names:
            known = ", ".join(self.object_names) or "none"
            raise self._error(f"has no object '{object_name}' (objects in this file: {known})")

    def object_channel(self, object_name: str) -> int:
        """Index of the raw channel the object was segmented in (0 if not recorded)."""
        self._check_object(object_name)
        regions = self._definition.get("image/region") if self._definition else None
        if regions is not None and regions.dtype.names:
            for row in regions[()]:
                region = _decode(row["region_name"])
                if region in (object_name, f"region___{object_name}"):
                    channel = int(row["channel_idx"])
                    if 0 <= channel < len(self.channels):
                        return channel
        return 0

    def class_labels(self, object_name: str) -> list[ClassLabel] | None:
        """Classes of the object classifier stored in the file, or None."""
        self._check_object(object_name)
        if self._definition is None:
            return None
        table = self._definition.get(f"feature/{object_name}/object_classification/class_labels")
        if table is None:
            return None
        return [
            ClassLabel(int(row["label"]), _decode(row["name"]), _decode(row["color"]))
            for row in table[()]
        ]

    # -- images ----------------------------------------------------------------------------
    def image(self, key: PositionKey) -> h5py.Dataset:
        """The raw pixels of a position, lazily: axes (c, t, z, y, x)."""
        dataset = self._position(key).get("image/channel")
        if key in self._image_info:
            return dataset
        if not isinstance(dataset, h5py.Dataset):
            raise self._error(f"position {key.label} has no raw image (image/channel)")
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

    # -- objects -----------------------------------------------------------------------------
    def objects(self, key: PositionKey, object_name: str) -> ObjectTable:
        """Per-object tables of ``object_name`` in position ``key`` (all frames).

        Raises
        ------
        CellH5Error
            If the centre table is missing, tables disagree in length, a centre lies outside
            the image or an object's frame does not exist.
        """
        self._check_object(object_name)
        group = self._position(key)
        where = f"object '{object_name}' of position {key.label}"
        rows = _read_table(group, f"object/{object_name}")
        if rows is None:
            # An empty well: CellCognition writes no table when nothing was segmented.
            empty = np.zeros(0, np.int32)
            return ObjectTable(empty, empty, empty, empty, np.zeros((0, 4), np.int32))
        if rows.dtype.names is None or "time_idx" not in rows.dtype.names:
            raise self._error(f"{where}: object/{object_name} has no time_idx column")
        n = len(rows)
        feature = _child(group, f"feature/{object_name}")
        # One listing instead of a lookup per optional table: h5py lookups dominate the
        # cost of opening a plate of thousands of positions.
        present = set(feature) if feature is not None else set()
        if "center" not in present:
            raise self._error(f"{where} has no centre table (feature/{object_name}/center)")

        def read(name: str, fields: tuple[str, ...]) -> np.ndarray | None:
            top = name.split("/", 1)[0]
            data = _read_table(feature, name) if top in present else None
            if data is None:
                return None
            if data.dtype.names is None or not set(fields) <= set(data.dtype.names):
                raise self._error(f"{where}: feature/{object_name}/{name} lacks {fields}")
            if len(data) != n:
                raise self._error(
                    f"{where}: feature/{object_name}/{name} has {len(data)} rows,"
                    f" object/{object_name} has {n}"
                )
            return data

        center = read("center", ("x", "y"))
        bbox_rows = read("bounding_box", ("left", "right", "top", "bottom"))
        orientation = read("orientation", ("angle", "eccentricity"))
        prediction = read("object_classification/prediction", ("label_idx",))

        time_idx = rows["time_idx"].astype(np.int32)
        center_x = center["x"].astype(np.int32)
        center_y = center["y"].astype(np.int32)
        _, n_frames, _, height, width = self.image_shape(key)
        outside = (center_x < 0) | (center_x >= width) | (center_y < 0) | (center_y >= height)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise self._error(
                f"{where}: {int(outside.sum())} centre(s) lie outside the {width}x{height}"
                f" image, e.g. object {i} at x={center_x[i]}, y={center_y[i]}"
            )
        bad_frames = (time_idx < 0) | (time_idx >= n_frames)
        if bad_frames.any():
            raise self._error(
                f"{where}: time_idx {int(time_idx[bad_frames][0])} does not exist"
                f" (the image has {n_frames} frame(s))"
            )
        if bbox_rows is None:
            # Without stored boxes, a single-pixel box at the centre keeps contours defined.
            bbox = np.stack([center_x, center_x, center_y, center_y], axis=1)
        else:
            bbox = np.stack(
                [bbox_rows[f] for f in ("left", "right", "top", "bottom")], axis=1
            ).astype(np.int32)
        return ObjectTable(
            time_idx=time_idx,
            label_id=rows["obj_label_id"].astype(np.int32)
            if "obj_label_id" in rows.dtype.names
            else np.arange(1, n + 1, dtype=np.int32),
            center_x=center_x,
            center_y=center_y,
            bbox=bbox,
            angle=None if orientation is None else orientation["angle"].astype(np.float64),
            eccentricity=None
            if orientation is None
            else orientation["eccentricity"].astype(np.float64),
            class_idx=None if prediction is None else prediction["label_idx"].astype(np.int32),
        )

    def object_count(self, key: PositionKey, object_name: str) -> int:
        """Number of objects (all frames) without reading the feature tables."""
        self._check_object(object_name)
        table = self._position(key).get(f"object/{object_name}")
        return 0 if table is None else len(table)


def _child(group: h5py.Group, path: str) -> h5py.Group | h5py.Dataset | None:
    """``group[path]``, or None where it does not exist. One HDF5 lookup where
    ``group.get`` makes two (an existence check, then the open): tables of thousands of
    positions are read one small dataset at a time, so lookups dominate."""
    try:
        return group[path]
    except KeyError:
        return None


def _read_table(group: h5py.Group, path: str) -> np.ndarray | None:
    """The whole dataset ``group/path`` as an array, or None where it does not exist.

    Low-level h5py: about a third of the cost of ``group[path][()]``, which matters because
    several small tables are read per position and plates have thousands of positions.
    """
    try:
        dataset = h5py.h5d.open(group.id, path.encode())
    except KeyError:
        return None
    shape = dataset.shape
    if shape is None:  # HDF5 null dataspace: no rows
        return np.zeros(0, dtype=dataset.dtype)
    out = np.empty(shape, dtype=dataset.dtype)
    if out.size:
        dataset.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    return out


def is_cellh5(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file with a CellH5 ``/sample`` (or the unreleased layout).

    Cheap: opens the file and looks at the root group only. Damaged files count as CellH5
    when their name ends in ``.ch5`` so that the reader reports what is wrong with them.
    """
    path = Path(path)
    if not path.is_file():
        return False
    if not h5py.is_hdf5(path):
        return path.suffix.lower() == ".ch5"
    try:
        with h5py.File(path, "r") as root:
            return "sample" in root or ("data" in root and "layout" in root)
    except OSError:
        return path.suffix.lower() == ".ch5"
