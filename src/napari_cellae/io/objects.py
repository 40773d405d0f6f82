"""Per-object tables of one position of a CellH5 file, read and checked.

Row *i* of ``object/<obj>`` (frame and label) is row *i* of every table under
``feature/<obj>/`` (centre, bounding box, orientation, class prediction); see
``docs/formats.md``. Everything that would make a crop wrong is refused here with a message
naming the file, position, table and rows: tables of different lengths, missing (NaN)
centres, centres outside the image, frames that do not exist, numbers beyond the 32-bit
range (refused, never wrapped round). Objects of one frame that share a label id are
counted (``ObjectTable.shared_labels``); cropping warns about them once per run, where
masking by label matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from napari_cellae.io.hdf5 import get_object, read_table
from napari_cellae.io.object_checks import ObjectChecker, shown_number

__all__ = ["ObjectTable", "is_relation", "not_an_object_table", "read_object_table"]


# Tables under object/ that relate objects (tracks, events) rather than list them.
_RELATION_OBJECTS = {"tracking", "event"}
# Columns of the "image-wide objects" that the CellH5 writer library (cellh5write, used by
# CellProfiler's ExportToCellH5) adds for every image plane it stores, as object/channel
# and object/region: (object_idx, time_idx, channel_idx, zsclice_idx [sic]), type image_xy.
# They have a time_idx but are no cells; taken for objects, 'channel' sorted before a
# lower-case object name became the default object and every command failed on it.
_IMAGE_PLANE_COLUMNS = {"channel_idx", "zsclice_idx", "zslice_idx"}


def is_relation(name: str) -> bool:
    """Whether ``object/<name>`` relates objects (tracking, events, ``<a>___to___<b>``)."""
    return name in _RELATION_OBJECTS or "___to___" in name


def not_an_object_table(node: h5py.Group | h5py.Dataset | None) -> str | None:
    """What an entry under ``object/`` is when it is not a table of objects.

    Parameters
    ----------
    node : h5py.Group or h5py.Dataset or None
        The entry.

    Returns
    -------
    str or None
        None for a compound table with a ``time_idx`` column (and, without
        ``obj_label_id``, none of an image plane's columns), else a phrase for a message
        (``"holds int32 values of shape (6, 2), not ..."``).
    """
    if isinstance(node, h5py.Dataset) and node.dtype.names is not None:
        names = set(node.dtype.names)
        if "obj_label_id" not in names and names & _IMAGE_PLANE_COLUMNS:
            return "lists image planes (cellh5write's image-wide objects), not objects"
        if "time_idx" in names:
            return None
        return f"is a table without a time_idx column (columns: {', '.join(node.dtype.names)})"
    if isinstance(node, h5py.Dataset):
        return (
            f"holds {node.dtype} values of shape {node.shape}, not a table of objects "
            "(compound columns time_idx, obj_label_id)"
        )
    return "is not a table of objects (compound columns time_idx, obj_label_id)"


def _other_objects(holder: h5py.Group | None) -> list[str]:
    """Names of the tables of objects under ``holder`` (``object/``) that hold rows."""
    if holder is None:
        return []
    names = []
    for name in holder:
        if is_relation(name):
            continue
        node = holder.get(name)
        if not_an_object_table(node) is None and node.shape and node.shape[0]:
            names.append(name)
    return names


@dataclass
class ObjectTable:
    """Per-object tables of one object type in one position, in CellH5 row order.

    ``bbox`` columns are ``left, right, top, bottom`` (x0, x1, y0, y1), cut to the image
    when read from a file. ``angle``,
    ``eccentricity`` and ``class_idx`` are None when the file does not store them.
    ``shared_labels`` counts the objects whose label id another object of the same frame
    has too (label 0 aside): masking by label takes them for one cell. Without ``obj_label_id``
    (``labels_stored`` False) ``label_id`` numbers the objects 1..n in row order, no labels.
    """

    time_idx: np.ndarray
    label_id: np.ndarray
    center_x: np.ndarray
    center_y: np.ndarray
    bbox: np.ndarray
    angle: np.ndarray | None = None
    eccentricity: np.ndarray | None = None
    class_idx: np.ndarray | None = None
    shared_labels: int = 0
    labels_stored: bool = True

    def __len__(self) -> int:
        return len(self.time_idx)


def _on_pixel(whole: np.ndarray, stored: np.ndarray, size: int) -> np.ndarray:
    """Rounded centres, float ones on the image's edge kept on its edge pixel: the last pixel
    of an 80 px row reaches to 80 where pixels are counted from their corner (79.5 and 79.7
    round to 80), the first to -0.5 where from their centre."""
    if stored.dtype.kind != "f":
        return whole
    edge = (stored >= -0.5) & (stored < size)
    return np.where(edge, np.clip(whole, 0, size - 1), whole)


def _shared_labels(time_idx: np.ndarray, label_id: np.ndarray) -> int:
    """Objects that share their frame and label id with another (label 0, the background,
    is left to the masking's own count)."""
    order = np.lexsort((label_id, time_idx))
    frames, labels = time_idx[order], label_id[order]
    repeat = (frames[1:] == frames[:-1]) & (labels[1:] == labels[:-1]) & (labels[1:] != 0)
    # Every object of a repeated (frame, label) pair counts, the first one included.
    involved = np.zeros(len(order), bool)
    involved[1:] |= repeat
    involved[:-1] |= repeat
    return int(involved.sum())


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
        If the centre table is missing, a table is not one row per object (a scalar, 2-D or
        a group), tables disagree in length, a column is not numeric, a centre is NaN or
        lies outside the image (also one stored beyond the 32-bit range), an object's frame
        is fractional or does not exist, or a label or class id is fractional or does not
        fit a 32-bit integer.

    Warns
    -----
    UserWarning
        If objects of one frame share a label id (masking by label takes them for one cell).
    """
    check = ObjectChecker(group, object_name, source, where)
    table_path = f"object/{object_name}"
    rows = read_table(group, table_path, source, where)
    if rows is None:
        # Something else in the table's place is no empty well: its cells would be lost.
        holder = get_object(group, "object", source, where, required=False)
        if holder is not None and not isinstance(holder, h5py.Group):
            raise check.error("object is a dataset, not the group of object tables")
        if holder is not None and object_name in holder:
            raise check.error(f"{table_path} is an HDF5 group, not a table of objects")
        if others := _other_objects(holder):
            # An empty well has no object tables at all; a position holding other objects
            # lost this one's table (or names it otherwise), and its cells would be lost.
            raise check.error(
                f"there is no {table_path} table, but the position holds objects"
                f" {', '.join(others)}; a position where nothing was segmented holds none,"
                " so its cells would be left out without a word; export the file again with"
                " the objects named alike in every position"
            )
        centres = read_table(group, f"feature/{object_name}/center", source, where)
        if centres is not None and centres.size:  # the cells are there: no empty well
            raise check.error(
                f"there is no {table_path} table, but feature/{object_name}/center holds"
                f" {centres.size} centre(s), whose cells would be left out without a word"
            )
        # An empty well: CellCognition writes no table when nothing was segmented.
        empty = np.zeros(0, np.int32)
        return ObjectTable(empty, empty, empty, empty, np.zeros((0, 4), np.int32))
    if rows.dtype.names is None or "time_idx" not in rows.dtype.names:
        raise check.error(f"{table_path} has no time_idx column")
    n = len(check.rows(rows, table_path))
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
    # Range checks on the stored values, before the int32 cast: a wrapped value would
    # pass them and crop the cell at the wrong place or frame.
    time_idx = check.frames(rows["time_idx"], table_path)  # a column: one per object
    _, n_frames, _, height, width = image_shape
    center_x = _on_pixel(check.whole(center["x"], center_table, "x"), center["x"], width)
    center_y = _on_pixel(check.whole(center["y"], center_table, "y"), center["y"], height)
    outside = (center_x < 0) | (center_x >= width) | (center_y < 0) | (center_y >= height)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise check.error(  # the centre as stored (80.7, not 81)
            f"{int(outside.sum())} centre(s) lie outside the {width}x{height} image, e.g."
            f" object {i} at x={shown_number(center['x'][i])}, y={shown_number(center['y'][i])}"
        )
    bad_frames = (time_idx < 0) | (time_idx >= n_frames)
    if bad_frames.any():
        i = int(np.flatnonzero(bad_frames)[0])
        raise check.error(
            f"time_idx {shown_number(time_idx[i])} of object {i} does not exist (the image has"
            f" {n_frames} frame(s)); {bad_frames.sum()} object(s) of {table_path} have such a frame"
        )
    time_idx, center_x, center_y = (v.astype(np.int32) for v in (time_idx, center_x, center_y))
    if bbox_rows is None:
        # Without stored boxes, a single-pixel box at the centre keeps contours defined.
        bbox = np.stack([center_x, center_x, center_y, center_y], axis=1)
    else:
        box_table = f"feature/{object_name}/bounding_box"
        bbox = np.stack(
            [
                check.integers(bbox_rows[f], box_table, f, clip=True)  # outlines only
                for f in ("left", "right", "top", "bottom")
            ],
            axis=1,
        )
        # Cut to the image too: a box reaching far past it (-1e9..1e9) set the cell size
        # suggested for the crops (a 2000000008 px box) and the Explorer file's boxes.
        bbox = np.clip(bbox, 0, np.array([width, width, height, height], np.int32) - 1)
        # Edges stored the wrong way round (left > right) made a 1 px cell of any size, and
        # the cell size suggested from the boxes a 16 px crop: taken as the same box.
        bbox[:, :2].sort(axis=1)
        bbox[:, 2:].sort(axis=1)
    label_id = np.arange(1, n + 1, dtype=np.int32)
    if "obj_label_id" in rows.dtype.names:
        check.exact(rows["obj_label_id"], table_path, "obj_label_id", "a whole label id")
        label_id = check.integers(rows["obj_label_id"], table_path, "obj_label_id")
    class_idx = None
    if prediction is not None:
        classes = f"feature/{object_name}/object_classification"
        check.exact(prediction["label_idx"], classes, "label_idx", "a whole class index")
        class_idx = check.integers(prediction["label_idx"], classes, "label_idx")
    return ObjectTable(
        time_idx=time_idx,
        label_id=label_id,
        center_x=center_x,
        center_y=center_y,
        bbox=bbox,
        angle=None if orientation is None else check.real(orientation, "angle"),
        eccentricity=None if orientation is None else check.real(orientation, "eccentricity"),
        class_idx=class_idx,
        shared_labels=_shared_labels(time_idx, label_id),
        labels_stored="obj_label_id" in rows.dtype.names,
    )
