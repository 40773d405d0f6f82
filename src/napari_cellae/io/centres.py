"""Object centres of many positions as one table (:func:`centres_table`): the points of
the reader's position axis, with coordinates, a per-object feature table and class colours.
No napari import.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae.io.definition import shown_name

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

    from napari_cellae.io.cellh5 import CellH5, PositionKey

__all__ = [
    "UNCLASSIFIED",
    "UNCLASSIFIED_COLOUR",
    "centres_table",
    "hex_rgba",
    "long_hex",
    "position_labels",
    "unknown_class",
]

# A cell without a class prediction (class -1), named and coloured alike in the points
# layer, the widget's class colouring and the .h5ad's obs["class"] / uns["class_colors"].
UNCLASSIFIED = "unclassified"
UNCLASSIFIED_COLOUR = "#b3b3b3"
_UNCLASSIFIED = np.array([0.7, 0.7, 0.7, 1.0], np.float32)  # the same gray as RGBA


def position_labels(positions: Sequence[PositionKey], shown: bool = False) -> list[str]:
    """Short labels such as ``C03_01``, prefixed ``plate/`` when there are several plates.

    Parameters
    ----------
    positions : sequence of PositionKey
        Positions to label.
    shown : bool
        As the user is shown them (characters that are no text escaped), not as tables
        and output files keep them (the file's names).

    Returns
    -------
    list of str
    """
    several = len({p.plate for p in positions}) > 1
    if shown:
        return [f"{p.shown_plate}/{p.label}" if several else p.label for p in positions]
    return [f"{p.plate}/{p.raw_label}" if several else p.raw_label for p in positions]


def unknown_class(index: int) -> str:
    """The name of a class index beyond the file's class table: ``unknown (7)``, in the
    points layer as in the ``.h5ad``'s ``obs["class"]`` (not a bare 7 that reads as a
    class name, nor "unclassified", which a cell without a prediction is)."""
    return f"unknown ({index})"


def long_hex(color: str) -> str | None:
    """``#RGB``, ``#RRGGBB`` or ``#RRGGBBAA`` written with two digits a channel (``#F00`` as
    ``#FF0000``: the widget read ``#F0`` and nothing); None for anything else.

    Parameters
    ----------
    color : str
        A colour as a CellH5 class table holds it (space around it is dropped).

    Returns
    -------
    str or None
        ``#RRGGBB`` or ``#RRGGBBAA``.
    """
    text = color.strip().lstrip("#") if color.strip().startswith("#") else ""
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    if len(text) not in (6, 8) or not all(c in string.hexdigits for c in text):
        return None
    return "#" + text


def hex_rgba(color: str) -> np.ndarray | None:
    """``#RGB``, ``#RRGGBB`` or ``#RRGGBBAA`` (CellH5 class colours) as float32 RGBA in
    [0, 1]; None for anything else (:func:`long_hex`)."""
    text = long_hex(color)
    if text is None:
        return None
    text = text[1:].ljust(8, "f")  # opaque without an alpha
    return np.array([int(text[i : i + 2], 16) for i in range(0, 8, 2)], np.float32) / 255.0


def centres_table(
    cellh5: CellH5, positions: list[PositionKey], obj: str, stacked: bool
) -> tuple[np.ndarray, dict[str, Any], np.ndarray | None]:
    """Coordinates, features and class colours of an object's centres over positions.

    Parameters
    ----------
    cellh5 : CellH5
        Open file.
    positions : list of PositionKey
        Positions of one layer group.
    obj : str
        Object name.
    stacked : bool
        Prepend the position index to the coordinates.

    Returns
    -------
    coords : ndarray (n, 3) or (n, 4)
        ``(t, y, x)`` or ``(position, t, y, x)``.
    features : dict of column -> array
        ``position_index``, ``object_index``, ``label_id``, ``time``, ``plate``, ``well``,
        ``site``, ``position`` and ``class_name`` when predictions exist (the class
        number where the file has no class table).
    colors : ndarray (n, 4) or None
        Class colours (RGBA, gray where unclassified) when the file has class labels.

    Raises
    ------
    CellH5Error
        From reading the object tables (missing or NaN centres, broken links, ...).
    """
    labels = cellh5.class_labels(obj)
    columns: dict[str, list[np.ndarray]] = {
        k: [] for k in ("position_index", "object_index", "label_id", "time", "y", "x", "class_idx")
    }
    predicted = False
    for i, pos in enumerate(positions):
        table = cellh5.objects(pos, obj)
        n = len(table)
        columns["position_index"].append(np.full(n, i, np.int32))
        columns["object_index"].append(np.arange(n, dtype=np.int32))
        columns["label_id"].append(np.asarray(table.label_id, np.int32))
        columns["time"].append(np.asarray(table.time_idx, np.int32))
        columns["y"].append(np.asarray(table.center_y, np.int32))
        columns["x"].append(np.asarray(table.center_x, np.int32))
        predicted |= table.class_idx is not None
        cls = table.class_idx if table.class_idx is not None else np.full(n, -1)
        columns["class_idx"].append(np.asarray(cls, np.int32))
    cat = {k: np.concatenate(v) if v else np.zeros(0, np.int32) for k, v in columns.items()}
    rows = cat["position_index"].astype(np.int64)
    parts = [cat["time"], cat["y"], cat["x"]]
    if stacked:
        parts.insert(0, cat["position_index"])
    coords = np.stack(parts, axis=1).astype(np.float64) if len(rows) else np.zeros((0, len(parts)))

    def per_row(values: list[str]) -> pd.Categorical:
        return _categorical(values, rows)

    features: dict[str, Any] = {
        "position_index": cat["position_index"],
        "object_index": cat["object_index"],
        "label_id": cat["label_id"],
        "time": cat["time"],
        # napari shows these beside the cursor: escaped, as in messages
        "plate": per_row([p.shown_plate for p in positions]),
        "well": per_row([shown_name(p.well) for p in positions]),
        "site": per_row([shown_name(p.site) for p in positions]),
        "position": per_row(position_labels(positions, shown=True)),
    }
    colors = None
    if labels:
        features["class_name"], colors = _class_columns(labels, cat["class_idx"])
    elif predicted:  # no class table: the class number, as the .h5ad's obs["class"] has it
        found, idx = np.unique(cat["class_idx"], return_inverse=True)
        names = [UNCLASSIFIED if c < 0 else str(c) for c in found.tolist()]
        features["class_name"] = _categorical(names, idx.reshape(-1))
    return coords, features, colors


def _class_columns(
    labels: Sequence[Any], class_idx: np.ndarray
) -> tuple[pd.Categorical, np.ndarray]:
    """Class names (``unclassified`` without a prediction, -1; ``unknown (7)`` for ids
    beyond the class table, :func:`unknown_class`) and colours (gray where unknown) of
    objects of classes ``class_idx``: per class, not per object, as plates hold millions
    of objects."""
    cls = np.asarray(class_idx, np.int64)
    beyond = np.unique(cls[cls >= len(labels)])  # after the classes and "unclassified"
    idx = np.where(cls >= 0, cls, len(labels))
    idx = np.where(cls >= len(labels), len(labels) + 1 + np.searchsorted(beyond, cls), idx)
    extra = [UNCLASSIFIED] + [unknown_class(int(c)) for c in beyond]
    names = _categorical([label.name for label in labels] + extra, idx)
    palette = [hex_rgba(label.color) for label in labels]
    table = np.array(
        [_UNCLASSIFIED if c is None else c for c in palette] + [_UNCLASSIFIED] * len(extra)
    )
    return names, table.astype(np.float32)[idx].reshape(-1, 4)


def _categorical(values: Sequence[str], rows: np.ndarray) -> pd.Categorical:
    """``pd.Categorical(values[rows])`` without a Python object per row: the values that
    occur, sorted, as its categories."""
    import pandas as pd

    categories, codes = np.unique(np.asarray(values, dtype=object), return_inverse=True)
    codes = codes.astype(np.int64)[rows]
    return pd.Categorical.from_codes(codes, categories=categories).remove_unused_categories()
