"""Per-object tables of one position of a CellH5 file, read and checked.

Row *i* of ``object/<obj>`` (frame and label) is row *i* of every table under
``feature/<obj>/`` (centre, bounding box, orientation, class prediction); see
``docs/formats.md``. Everything that would make a crop wrong is refused here with a message
naming the file, position, table and rows: tables of different lengths, missing (NaN)
centres, centres outside the image, frames that do not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from napari_cellae.io.hdf5 import CellH5Error, get_object, read_table

__all__ = ["ObjectTable", "read_object_table"]

_SHOWN_ROWS = 8
_INT32 = np.iinfo(np.int32)


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


def _rows(indices: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:_SHOWN_ROWS])
    return shown + (" ..." if len(indices) > _SHOWN_ROWS else "")


class _Checker:
    """Reads the feature tables of one object type and names them in errors."""

    def __init__(self, group: h5py.Group, object_name: str, source: Path, where: str) -> None:
        self.group, self.object_name, self.source, self.where = group, object_name, source, where

    def error(self, message: str) -> CellH5Error:
        return CellH5Error(f"{self.source}: {self.where}: {message}")

    def integers(self, values: np.ndarray, table: str, column: str) -> np.ndarray:
        """``values`` as int32; float columns are rounded, and NaN or infinite ones refused."""
        if values.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(values))
            if len(bad):
                raise self.error(
                    f"{column} is missing (NaN) for {len(bad)} object(s) in {table}, object"
                    f" row(s) {_rows(bad)}; export the file again or remove those objects"
                )
            values = np.clip(np.rint(values), _INT32.min, _INT32.max)
        elif values.dtype.kind not in "iub":
            raise self.error(f"{table} column {column} holds {values.dtype}, not numbers")
        return values.astype(np.int32)

    def table(self, name: str, fields: tuple[str, ...], n: int) -> np.ndarray | None:
        path = f"feature/{self.object_name}/{name}"
        data = read_table(self.group, path, self.source, self.where)
        if data is None:
            return None
        if data.dtype.names is None or not set(fields) <= set(data.dtype.names):
            raise self.error(f"{path} lacks {fields}")
        if len(data) != n:
            raise self.error(f"{path} has {len(data)} rows, object/{self.object_name} has {n}")
        return data


def read_object_table(
    group: h5py.Group,
    object_name: str,
    image_shape: tuple[int, ...],
    source: Path,
    where: str,
) -> ObjectTable:
    """Read and check the tables of ``object_name`` in one position group.

    Parameters
    ----------
    group : h5py.Group
        The position group (``/sample/0/plate/<p>/experiment/<w>/position/<s>``).
    object_name : str
        Object type, e.g. ``primary__primary``.
    image_shape : tuple of int
        Shape (c, t, z, y, x) of the position's raw image.
    source : Path
        The file the user opened (named in messages).
    where : str
        The object and position, for messages.

    Returns
    -------
    ObjectTable
        Empty when the position has no table for this object (nothing was segmented).

    Raises
    ------
    CellH5Error
        If the centre table is missing, tables disagree in length, a centre is NaN or
        lies outside the image, or an object's frame does not exist.
    """
    check = _Checker(group, object_name, source, where)
    table_path = f"object/{object_name}"
    rows = read_table(group, table_path, source, where)
    if rows is None:
        # An empty well: CellCognition writes no table when nothing was segmented.
        empty = np.zeros(0, np.int32)
        return ObjectTable(empty, empty, empty, empty, np.zeros((0, 4), np.int32))
    if rows.dtype.names is None or "time_idx" not in rows.dtype.names:
        raise check.error(f"{table_path} has no time_idx column")
    n = len(rows)
    feature = get_object(group, f"feature/{object_name}", source, where, required=False)
    # One listing instead of a lookup per optional table: h5py lookups dominate the cost of
    # opening a plate of thousands of positions.
    present = set(feature) if isinstance(feature, h5py.Group) else set()
    if "center" not in present:
        raise check.error(f"no centre table (feature/{object_name}/center)")

    def optional(name: str, fields: tuple[str, ...]) -> np.ndarray | None:
        return check.table(name, fields, n) if name.split("/", 1)[0] in present else None

    center = check.table("center", ("x", "y"), n)
    if center is None:  # listed but unreadable as a dataset (e.g. a group)
        raise check.error(f"no centre table (feature/{object_name}/center)")
    bbox_rows = optional("bounding_box", ("left", "right", "top", "bottom"))
    orientation = optional("orientation", ("angle", "eccentricity"))
    prediction = optional("object_classification/prediction", ("label_idx",))

    center_table = f"feature/{object_name}/center"
    time_idx = check.integers(rows["time_idx"], table_path, "time_idx")
    center_x = check.integers(center["x"], center_table, "x")
    center_y = check.integers(center["y"], center_table, "y")
    _, n_frames, _, height, width = image_shape
    outside = (center_x < 0) | (center_x >= width) | (center_y < 0) | (center_y >= height)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise check.error(
            f"{int(outside.sum())} centre(s) lie outside the {width}x{height}"
            f" image, e.g. object {i} at x={center_x[i]}, y={center_y[i]}"
        )
    bad_frames = (time_idx < 0) | (time_idx >= n_frames)
    if bad_frames.any():
        raise check.error(
            f"time_idx {int(time_idx[bad_frames][0])} does not exist"
            f" (the image has {n_frames} frame(s))"
        )
    if bbox_rows is None:
        # Without stored boxes, a single-pixel box at the centre keeps contours defined.
        bbox = np.stack([center_x, center_x, center_y, center_y], axis=1)
    else:
        box_table = f"feature/{object_name}/bounding_box"
        bbox = np.stack(
            [
                check.integers(bbox_rows[f], box_table, f)
                for f in ("left", "right", "top", "bottom")
            ],
            axis=1,
        )
    label_id = (
        check.integers(rows["obj_label_id"], table_path, "obj_label_id")
        if "obj_label_id" in rows.dtype.names
        else np.arange(1, n + 1, dtype=np.int32)
    )
    class_idx = None
    if prediction is not None:
        class_idx = check.integers(
            prediction["label_idx"], f"feature/{object_name}/object_classification", "label_idx"
        )
    return ObjectTable(
        time_idx=time_idx,
        label_id=label_id,
        center_x=center_x,
        center_y=center_y,
        bbox=bbox,
        angle=None if orientation is None else orientation["angle"].astype(np.float64),
        eccentricity=None
        if orientation is None
        else orientation["eccentricity"].astype(np.float64),
        class_idx=class_idx,
    )
