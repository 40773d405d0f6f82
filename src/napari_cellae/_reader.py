"""napari reader for CellH5 files: lazy image layers per channel plus object centres.

Opening must stay instant on a real screen (hundreds of positions of large movies), so
pixels are never read up front: every image layer is a :class:`LazyPositionStack` that
reads from the open, read-only HDF5 datasets only the planes napari asks for. Positions of
equal image shape share one layer along a leading "position" slider axis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from napari_cellae.io.cellh5 import CellH5, CellH5Error, ChannelInfo, PositionKey, is_cellh5

LayerData = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[str | Sequence[str]], list[LayerData]]

#: key under ``layer.metadata`` that links a layer back to its CellH5 file
METADATA_KEY = "napari_cellae"

_CELLH5_SUFFIXES = (".ch5",)
_HDF5_SUFFIXES = (".h5", ".hdf5")


def napari_get_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """Return a reader for CellH5 files, or None so that other readers can try.

    Parameters
    ----------
    path : str or sequence of str
        Path(s) napari wants to open.

    Returns
    -------
    callable or None
        :func:`read_cellh5` when every path is a ``.ch5`` file or an ``.h5``/``.hdf5``
        file with a ``/sample`` group; None otherwise.
    """
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths or not all(_looks_like_cellh5(Path(p)) for p in paths):
        return None
    return read_cellh5


def _looks_like_cellh5(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in _CELLH5_SUFFIXES:
        # Claim .ch5 even when damaged, so the user sees CellH5Error instead of
        # "no reader found".
        return True
    # /data + /layout (the unreleased CellCognition layout) is claimed too, so that CellH5
    # can explain that it is not CellH5 1.x.
    return suffix in _HDF5_SUFFIXES and is_cellh5(path)


def read_cellh5(path: str | Sequence[str], mapping: str | Path | None = None) -> list[LayerData]:
    """Read CellH5 file(s) as napari layer data without reading pixels.

    Parameters
    ----------
    path : str or sequence of str
        CellH5 file(s).
    mapping : str or Path, optional
        Position-mapping file remembered in the layer metadata (used by the sample data
        so that the Deep Learning widget can preset it).

    Returns
    -------
    list of (data, kwargs, layer_type)
        Per group of positions of equal image shape: one image layer per channel and one
        points layer of the default object's centres.

    Raises
    ------
    CellH5Error
        If a file is not a readable CellH5 file (the message names the file).
    """
    paths = [path] if isinstance(path, str | Path) else list(path)
    layers: list[LayerData] = []
    for p in paths:
        layers.extend(_read_one(Path(p), mapping))
    return layers


def _read_one(path: Path, mapping: str | Path | None) -> list[LayerData]:
    cellh5 = CellH5(path)  # stays open: the lazy stacks read from it later
    if not cellh5.positions:
        cellh5.close()
        raise CellH5Error(f"{path}: the file contains no positions (no /sample/0/plate/...).")
    groups = group_positions(cellh5)
    many_groups = len(groups) > 1
    layers: list[LayerData] = []
    sizes = [key[0][-2:] for key in groups]
    for (shape, dtype), positions in groups.items():
        suffix = ""
        if many_groups:
            # name groups by image size, and also by pixel type where sizes repeat
            suffix = f" [{shape[-2]}×{shape[-1]}"
            suffix += f" {dtype}]" if sizes.count(shape[-2:]) > 1 else "]"
        layers.extend(_image_layers(cellh5, positions, shape, suffix, mapping))
        obj = cellh5.default_object if cellh5.object_names else None
        if obj is not None:
            layers.append(_points_layer(cellh5, positions, shape, obj, suffix, mapping))
    return layers


def position_labels(positions: Sequence[PositionKey]) -> list[str]:
    """Short labels such as ``C03_01``, prefixed ``plate/`` when there are several plates.

    Parameters
    ----------
    positions : sequence of PositionKey
        Positions to label.

    Returns
    -------
    list of str
    """
    several = len({p.plate for p in positions}) > 1
    return [f"{p.plate}/{p.label}" if several else p.label for p in positions]


def group_positions(
    cellh5: CellH5,
) -> dict[tuple[tuple[int, ...], str], list[PositionKey]]:
    """Group positions by image shape (c, t, z, y, x) and pixel type, in file order.

    Parameters
    ----------
    cellh5 : CellH5
        Open file.

    Returns
    -------
    dict
        ``(shape, dtype name)`` -> positions with that image shape and type (same order
        as ``cellh5.positions``); each group can be stacked into one layer.
    """
    groups: dict[tuple[tuple[int, ...], str], list[PositionKey]] = {}
    for pos in cellh5.positions:
        shape = tuple(int(s) for s in cellh5.image_shape(pos))
        groups.setdefault((shape, np.dtype(cellh5.dtype(pos)).name), []).append(pos)
    return groups


class LazyPositionStack:
    """Array-like (position?, t, z?, y, x) view of one channel over several positions.

    Only the requested planes are read from the HDF5 datasets (``__getitem__``), so a
    layer over hundreds of positions opens without touching pixels. The position axis is
    present only for more than one position, the z axis only for z > 1.

    Parameters
    ----------
    cellh5 : CellH5
        Open file; kept referenced so the datasets stay readable.
    positions : list of PositionKey
        Positions stacked along the first axis, all with the same image shape and dtype.
    channel : int
        Raw channel index (first axis of ``image/channel``).
    """

    def __init__(self, cellh5: CellH5, positions: list[PositionKey], channel: int) -> None:
        self.cellh5 = cellh5
        self.positions = list(positions)
        self.channel = int(channel)
        _, t, z, y, x = (int(s) for s in cellh5.image_shape(positions[0]))
        self.dtype = np.dtype(cellh5.dtype(positions[0]))
        self._stacked = len(positions) > 1
        self._has_z = z > 1
        shape: list[int] = []
        if self._stacked:
            shape.append(len(positions))
        shape.append(t)
        if self._has_z:
            shape.append(z)
        shape += [y, x]
        self.shape = tuple(shape)
        self._datasets: dict[int, h5py.Dataset] = {}

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def axis_labels(self) -> tuple[str, ...]:
        """Names of the axes, e.g. ``("position", "t", "y", "x")``."""
        labels = ["position"] if self._stacked else []
        labels.append("t")
        if self._has_z:
            labels.append("z")
        return (*labels, "y", "x")

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LazyPositionStack(shape={self.shape}, dtype={self.dtype}, channel={self.channel})"

    def dataset(self, index: int) -> h5py.Dataset:
        """Return the (c, t, z, y, x) dataset of position number ``index``."""
        if index not in self._datasets:
            self._datasets[index] = self.cellh5.image(self.positions[index])
        return self._datasets[index]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        # Reads everything: only reached when someone explicitly asks for all pixels.
        out = self[...]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = _expand_key(key, self.ndim)
        lead = self.ndim - 2
        lead_key, yx_key = key[:lead], key[lead:]
        # each leading axis -> list of indices (+ whether the axis is kept)
        axes: list[tuple[list[int], bool]] = []
        for k, n in zip(lead_key, self.shape[:lead], strict=True):
            if isinstance(k, slice):
                axes.append((list(range(n))[k], True))
            elif isinstance(k, int | np.integer):
                idx = int(k) + (n if k < 0 else 0)
                if not 0 <= idx < n:
                    raise IndexError(f"index {k} is out of bounds for axis with size {n}")
                axes.append(([idx], False))
            else:  # integer array / list
                axes.append(([int(i) + (n if i < 0 else 0) for i in np.asarray(k).ravel()], True))
        h5_yx, post_yx = _h5_spatial_key(yx_key)
        planes: list[np.ndarray] = []
        for combo in _product([a[0] for a in axes]):
            planes.append(self._read_plane(combo, h5_yx)[post_yx])
        if not planes:
            sample = np.zeros(self.shape[-2:], self.dtype)[h5_yx][post_yx]
            kept = [len(a[0]) for a in axes if a[1]]
            return np.zeros((*kept, *sample.shape), self.dtype)
        kept_shape = [len(a[0]) for a in axes if a[1]]
        out = np.stack(planes) if len(planes) > 1 else planes[0][np.newaxis]
        return out.reshape(*kept_shape, *out.shape[1:])

    def _read_plane(self, lead: tuple[int, ...], yx: tuple[Any, Any]) -> np.ndarray:
        lead = list(lead)
        pos = lead.pop(0) if self._stacked else 0
        t = lead.pop(0)
        z = lead.pop(0) if self._has_z else 0
        return self.dataset(pos)[(self.channel, t, z, *yx)]


def _expand_key(key: Any, ndim: int) -> tuple[Any, ...]:
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = (slice(None),) * (ndim - len(key) + 1)
        key = (*key[:i], *fill, *key[i + 1 :])
    if len(key) > ndim:
        raise IndexError(f"too many indices: {len(key)} for {ndim} dimensions")
    return key + (slice(None),) * (ndim - len(key))


def _h5_spatial_key(yx: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Split (y, x) indices into what h5py reads and what numpy applies afterwards."""
    h5: list[Any] = []
    post: list[Any] = []
    for k in yx:
        if isinstance(k, int | np.integer):
            h5.append(int(k))
        elif isinstance(k, slice) and k.step in (None, 1):
            h5.append(k)
            post.append(slice(None))
        else:  # steps, negative steps, fancy indices: read the full axis, index in numpy
            h5.append(slice(None))
            post.append(k)
    return tuple(h5), tuple(post)


def _product(lists: list[list[int]]) -> list[tuple[int, ...]]:
    combos: list[tuple[int, ...]] = [()]
    for values in lists:
        combos = [(*c, v) for c in combos for v in values]
    return combos


def _channel_colormap(channel: ChannelInfo) -> Any:
    """A black-to-colour colormap for the channel colour; gray if white or unknown."""
    from napari.utils.colormaps import Colormap
    from napari.utils.colormaps.standardize_color import transform_color

    color = (channel.color or "").strip()
    if not color or color.upper() in ("#FFFFFF", "#FFF", "WHITE"):
        return "gray"
    try:
        rgba = transform_color(color)[0]
    except (ValueError, KeyError, AttributeError):
        return "gray"
    return Colormap(
        colors=[[0.0, 0.0, 0.0, 1.0], [*rgba[:3], 1.0]], name=f"cellae {color}", display_name=color
    )


_CONTRAST_WINDOW = 2048


def _central_window(length: int, window: int) -> slice:
    start = max(0, (length - window) // 2)
    return slice(start, min(length, start + window))


def _image_layers(
    cellh5: CellH5,
    positions: list[PositionKey],
    shape: tuple[int, ...],
    suffix: str,
    mapping: str | Path | None,
) -> list[LayerData]:
    layers: list[LayerData] = []
    for channel in cellh5.channels:
        if channel.index >= shape[0]:
            continue
        data = LazyPositionStack(cellh5, positions, channel.index)
        # Contrast from the centre of one plane, the middle one that napari shows first:
        # napari would otherwise read planes all over the stack, and a whole slide-scan
        # plane can be gigabytes.
        _, t, z, height, width = shape[:5]
        rows = _central_window(height, _CONTRAST_WINDOW)
        cols = _central_window(width, _CONTRAST_WINDOW)
        dataset = data.dataset(len(positions) // 2)
        plane = np.asarray(dataset[channel.index, t // 2, z // 2, rows, cols])
        lo, hi = float(plane.min()), float(plane.max())
        if hi <= lo:
            hi = lo + 1.0
        meta = _metadata(cellh5, positions, "image", mapping, channel=channel.index)
        kwargs = {
            "name": f"{channel.name}{suffix}",
            "colormap": _channel_colormap(channel),
            "blending": "additive",
            "contrast_limits": (lo, hi),
            "rgb": False,
            "multiscale": False,
            "axis_labels": data.axis_labels,
            "metadata": meta,
        }
        layers.append((data, kwargs, "image"))
    return layers


def _metadata(
    cellh5: CellH5,
    positions: list[PositionKey],
    kind: str,
    mapping: str | Path | None,
    **extra: Any,
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "path": str(cellh5.path),
        "kind": kind,
        "positions": list(positions),
        "stacked": len(positions) > 1,
        **extra,
    }
    if mapping is not None:
        info["mapping"] = str(mapping)
    return {METADATA_KEY: info}


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
        ``site``, ``position`` and ``class_name`` when predictions exist.
    colors : ndarray (n, 4) or None
        Class colours when predictions exist.
    """
    import pandas as pd

    labels = cellh5.class_labels(obj)
    by_idx = {i: lab for i, lab in enumerate(labels)} if labels else {}
    columns: dict[str, list[np.ndarray]] = {
        k: [] for k in ("position_index", "object_index", "label_id", "time", "y", "x", "class_idx")
    }
    pos_of_row: list[np.ndarray] = []
    for i, pos in enumerate(positions):
        table = cellh5.objects(pos, obj)
        n = len(table)
        columns["position_index"].append(np.full(n, i, np.int32))
        columns["object_index"].append(np.arange(n, dtype=np.int32))
        columns["label_id"].append(np.asarray(table.label_id, np.int32))
        columns["time"].append(np.asarray(table.time_idx, np.int32))
        columns["y"].append(np.asarray(table.center_y, np.int32))
        columns["x"].append(np.asarray(table.center_x, np.int32))
        cls = table.class_idx if table.class_idx is not None else np.full(n, -1)
        columns["class_idx"].append(np.asarray(cls, np.int32))
        pos_of_row.append(np.full(n, i, np.int64))
    cat = {k: np.concatenate(v) if v else np.zeros(0, np.int32) for k, v in columns.items()}
    rows = np.concatenate(pos_of_row) if pos_of_row else np.zeros(0, np.int64)
    parts = [cat["time"], cat["y"], cat["x"]]
    if stacked:
        parts.insert(0, cat["position_index"])
    coords = np.stack(parts, axis=1).astype(np.float64) if len(rows) else np.zeros((0, len(parts)))

    def per_row(values: list[str]) -> pd.Categorical:
        return pd.Categorical(np.asarray(values, dtype=object)[rows])

    features: dict[str, Any] = {
        "position_index": cat["position_index"],
        "object_index": cat["object_index"],
        "label_id": cat["label_id"],
        "time": cat["time"],
        "plate": per_row([p.plate for p in positions]),
        "well": per_row([p.well for p in positions]),
        "site": per_row([p.site for p in positions]),
        "position": per_row(position_labels(positions)),
    }
    colors = None
    if labels:
        names = [by_idx[c].name if c in by_idx else "unclassified" for c in cat["class_idx"]]
        features["class_name"] = pd.Categorical(names)
        from napari.utils.colormaps.standardize_color import transform_color

        palette = {}
        for c in np.unique(cat["class_idx"]):
            try:
                palette[c] = transform_color(by_idx[c].color)[0] if c in by_idx else None
            except (ValueError, KeyError, AttributeError):
                palette[c] = None
        gray = np.array([0.7, 0.7, 0.7, 1.0], np.float32)
        colors = np.array(
            [palette[c] if palette.get(c) is not None else gray for c in cat["class_idx"]],
            np.float32,
        ).reshape(-1, 4)
    return coords, features, colors


def _points_layer(
    cellh5: CellH5,
    positions: list[PositionKey],
    shape: tuple[int, ...],
    obj: str,
    suffix: str,
    mapping: str | Path | None,
) -> LayerData:
    stacked = len(positions) > 1
    coords, features, colors = centres_table(cellh5, positions, obj, stacked)
    has_z = shape[2] > 1
    if has_z:  # CellH5 centres are 2-D: place them on the first z plane
        coords = np.insert(coords, coords.shape[1] - 2, 0.0, axis=1)
    labels = (["position"] if stacked else []) + ["t"] + (["z"] if has_z else []) + ["y", "x"]
    # a small dot (1 % of the short image side, 3-8 px): visible, not covering the cell
    size = float(np.clip(min(shape[-2:]) / 100.0, 3.0, 8.0))
    kwargs: dict[str, Any] = {
        "name": f"{obj} centres{suffix}",
        "features": features,
        "size": size,
        "face_color": colors if colors is not None else "yellow",
        "border_width": 0.0,
        "opacity": 0.7,
        "symbol": "disc",
        "axis_labels": tuple(labels),
        "metadata": _metadata(cellh5, positions, "centres", mapping, object=obj),
    }
    if coords.shape[0] == 0:
        kwargs.pop("features")
        kwargs["face_color"] = "yellow"
    return coords, kwargs, "points"
