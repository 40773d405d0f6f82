"""napari reader for CellH5 files: lazy image layers per channel plus object centres.

The npe2 entry point, kept thin: :func:`napari_get_reader` claims CellH5 files (and folders
holding one master file, though the manifest leaves folders to other readers: napari picks
readers by name before asking them, so claiming every folder made it ask the user which
reader to use for each ``.zarr``), :func:`read_cellh5` turns them into layer data. Pixels stay on
disk: every image layer is a :class:`~napari_cellae.io.position_stack.LazyPositionStack`,
and the centres come from :func:`~napari_cellae.io.centres.centres_table`. See
``docs/formats.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_cellae.core.normalisation import resolvable_step
from napari_cellae.io.cellh5 import CellH5, ChannelInfo, PositionKey, is_cellh5
from napari_cellae.io.centres import centres_table, position_labels
from napari_cellae.io.locate import ch5_files
from napari_cellae.io.plane_cache import PlaneCache
from napari_cellae.io.position_stack import LazyPositionStack

__all__ = [
    "METADATA_KEY",
    "LayerData",
    "LazyPositionStack",
    "centres_table",
    "napari_get_reader",
    "position_labels",
    "read_cellh5",
    "read_centres",
]

LayerData = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[str | Sequence[str]], list[LayerData]]

#: key under ``layer.metadata`` that links a layer back to its CellH5 file
METADATA_KEY = "napari_cellae"

_CELLH5_SUFFIXES = (".ch5",)
_HDF5_SUFFIXES = (".h5", ".hdf5")
# Contrast limits come from a window of this many pixels square at the centre of one plane.
_CONTRAST_WINDOW = 2048


def napari_get_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """Return a reader for CellH5 files, or None so that other readers can try.

    Parameters
    ----------
    path : str or sequence of str
        Path(s) napari wants to open.

    Returns
    -------
    callable or None
        :func:`read_cellh5` when every path is a ``.ch5`` file, an ``.h5``/``.hdf5`` file
        with a ``/sample`` group, or a folder with ``.ch5`` files (CellCognition's
        ``hdf5/`` output folder); None otherwise.
    """
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths or not all(_looks_like_cellh5(Path(p)) for p in paths):
        return None
    return read_cellh5


def _looks_like_cellh5(path: Path) -> bool:
    if path.is_dir():
        # Claimed even when it holds several candidates, so the user learns which to pick.
        return bool(ch5_files(path))
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
        CellH5 file(s), or folders holding one master file each.
    mapping : str or Path, optional
        Position-mapping file remembered in the layer metadata (used by the sample data
        so that the Deep Learning widget can preset it).

    Returns
    -------
    list of (data, kwargs, layer_type)
        Per file: one image layer per channel and one points layer of the default
        object's centres, each over all positions along a "position" axis (positions of
        different image sizes padded into one canvas; see
        :class:`~napari_cellae.io.position_stack.LazyPositionStack`). The layers of every
        file but the first are hidden: all files' images lie at the same coordinates.

    Raises
    ------
    CellH5Error
        If a file is not a readable CellH5 file, or its first shown pixels or its object
        tables are damaged (the message names the file and what is wrong).
    """
    paths = [path] if isinstance(path, str | Path) else list(path)
    layers: list[LayerData] = []
    for i, p in enumerate(paths):
        for data, kwargs, kind in _read_one(Path(p), mapping):
            # another file's position i drawn on this one's would pass for one position
            layers.append((data, {**kwargs, "visible": i == 0}, kind))
    shown = [data for data, kwargs, kind in layers if kind == "image" and kwargs["visible"]]
    if shown:
        _open_on_a_written_frame(shown[-1])
    return layers


def read_centres(path: str | Path, obj: str) -> LayerData:
    """The points layer of one object type's centres in a CellH5 file, as
    :func:`read_cellh5` makes it for the default object (for the widget, when it learns
    from other objects: its selections find their cells through such a layer).

    Parameters
    ----------
    path : str or Path
        The CellH5 file (or the folder of its master file).
    obj : str
        The object type whose centres are shown (e.g. ``Cells``).

    Returns
    -------
    (data, kwargs, "points")
        Over the same positions and axes as the file's image layers; its metadata name
        the file and the object, as the reader's centres layer does.

    Raises
    ------
    CellH5Error
        If the file or its object tables cannot be read.
    """
    with CellH5(path) as cellh5:
        positions = list(cellh5.positions)
        # for its shape and axes only: it reads no pixels
        return _points_layer(cellh5, LazyPositionStack(cellh5, positions, 0), obj, None)


def _read_one(path: Path, mapping: str | Path | None) -> list[LayerData]:
    cellh5 = CellH5(path)  # stays open: the lazy stacks read from it later
    try:
        return _layers(cellh5, mapping)
    except BaseException:
        cellh5.close()
        raise


def _layers(cellh5: CellH5, mapping: str | Path | None) -> list[LayerData]:
    positions = list(cellh5.positions)
    layers = _image_layers(cellh5, positions, mapping)
    if cellh5.object_names:
        layers.append(_points_layer(cellh5, layers[0][0], cellh5.default_object, mapping))
    return layers


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


def _central_window(length: int, window: int) -> slice:
    start = max(0, (length - window) // 2)
    return slice(start, min(length, start + window))


def _contrast_limits(plane: np.ndarray) -> tuple[float, float]:
    """Finite, increasing contrast limits for the pixels of ``plane``."""
    # Finite pixels only: NaN or inf limits break napari's contrast slider for good.
    finite = plane[np.isfinite(plane)] if plane.dtype.kind == "f" else plane
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi <= lo:
        # A constant plane: widen it (napari refuses limits that do not increase), by a
        # step float64 resolves also at 1e20 or the int64/uint64 extremes.
        step = float(resolvable_step(lo))
        lo, hi = (lo, lo + step) if np.isfinite(lo + step) else (lo - step, lo)
    return lo, hi


def _image_layers(
    cellh5: CellH5, positions: list[PositionKey], mapping: str | Path | None
) -> list[LayerData]:
    """One layer per channel (of the position holding most) over all positions: positions
    of other image sizes are padded into one canvas, so that a step of the position slider
    shows one position, never two overlapping ones."""
    layers: list[LayerData] = []
    n_channels = max(cellh5.image_shape(p)[0] for p in positions)
    cache = PlaneCache()  # shared: CellCognition keeps all channels of a frame in one chunk
    for channel in cellh5.channels_of(n_channels):
        data = LazyPositionStack(cellh5, positions, channel.index, cache)
        lo, hi = _contrast_limits(_contrast_plane(data))
        kwargs = {
            "name": channel.name,
            "colormap": _channel_colormap(channel),
            "blending": "additive",
            "contrast_limits": (lo, hi),
            "rgb": False,
            "multiscale": False,
            "axis_labels": data.axis_labels,
            "metadata": _metadata(cellh5, positions, "image", mapping, channel=channel.index),
        }
        layers.append((data, kwargs, "image"))
    return layers


def _middle(n: int) -> int:
    """The step napari opens an axis of ``n`` steps at (``Dims._go_to_center_step``)."""
    return max(n - 1, 0) // 2


def _contrast_plane(data: LazyPositionStack) -> np.ndarray:
    """The centre of the middle plane of the middle position (or the nearest one holding
    the channel), the one napari shows first: napari would otherwise read planes all over
    the stack, and a whole slide-scan plane can be gigabytes. The position's own pixels
    only: the blank canvas around a smaller one is no image."""
    middle = _middle(len(data.positions))
    order = sorted(range(len(data.positions)), key=lambda i: abs(i - middle))
    index = next((i for i in order if data.shapes[i][0] > data.channel), middle)
    _, t, z, height, width = data.shapes[index]
    window = (_central_window(height, _CONTRAST_WINDOW), _central_window(width, _CONTRAST_WINDOW))
    shown = _middle(data.shape[data.axis_labels.index("t")])  # the frame napari opens at
    frame = _written_frame(data.cellh5.image(data.positions[index]), t, shown)
    return data.plane(index, frame, _middle(z), window)


def _written_frame(image: Any, n_frames: int, near: int) -> int:
    """Frame ``near`` (cut to the image's frames), or the nearest one CellCognition wrote:
    it stores every frame of a time-lapse but writes only those it analysed (``valid``
    attribute of the image, 1 per written frame); the others stay zeros, and limits set on
    one saturate every cell."""
    near = min(max(near, 0), max(n_frames - 1, 0))
    try:
        valid = np.asarray(image.attrs.get("valid", ()), np.float64).ravel()
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return near
    written = np.flatnonzero(valid > 0) if valid.size == n_frames else np.zeros(0, int)
    return int(written[np.argmin(np.abs(written - near))]) if written.size else near


def _open_on_a_written_frame(stack: LazyPositionStack) -> None:
    """Once napari has added the layer of ``stack``, move its time slider off a frame that
    CellCognition never wrote (zeros; napari opens the middle frame, which an analysis of
    every other frame leaves blank half the time) to the nearest written one. Nothing
    without a viewer (the reader called directly)."""
    import napari

    viewer = napari.current_viewer()
    if viewer is None:
        return
    inserted = viewer.layers.events.inserted

    def on_inserted(event: Any) -> None:
        if event.value.data is stack:
            inserted.disconnect(on_inserted)
            _to_written_frame(viewer, stack, viewer.dims.ndim - stack.ndim)

    inserted.connect(on_inserted)


def _to_written_frame(viewer: Any, stack: LazyPositionStack, offset: int) -> None:
    steps = viewer.dims.current_step
    stacked = "position" in stack.axis_labels
    index = min(max(int(steps[offset]), 0), len(stack.positions) - 1) if stacked else 0
    t_axis = offset + stack.axis_labels.index("t")
    t = int(steps[t_axis])
    try:
        image = stack.cellh5.image(stack.positions[index])
    except (ValueError, OSError):  # said when its pixels are read
        return
    frame = _written_frame(image, stack.shapes[index][1], t)
    if frame != t:
        viewer.dims.set_current_step(t_axis, frame)


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


def _points_layer(
    cellh5: CellH5, stack: LazyPositionStack, obj: str, mapping: str | Path | None
) -> LayerData:
    positions = stack.positions
    stacked = len(positions) > 1
    coords, features, colors = centres_table(cellh5, positions, obj, stacked)
    has_z = "z" in stack.axis_labels
    if has_z:  # CellH5 centres are 2-D: a copy on every plane of the cell's position (napari
        # opens the middle one), plane 0's first, so that finding a cell goes to the plane
        # its crop comes from
        own = np.array([s[2] for s in stack.shapes])[np.asarray(features["position_index"], int)]
        planes = np.repeat(np.arange(stack.shape[-3], dtype=coords.dtype), len(coords))
        kept = np.tile(own, stack.shape[-3]) > planes
        coords = np.insert(
            np.tile(coords, (stack.shape[-3], 1)), coords.shape[1] - 2, planes, axis=1
        )
        coords = coords[kept]
        features = {
            name: np.tile(np.asarray(v), stack.shape[-3])[kept] for name, v in features.items()
        }
        colors = None if colors is None else np.tile(colors, (stack.shape[-3], 1))[kept]
    labels = (["position"] if stacked else []) + ["t"] + (["z"] if has_z else []) + ["y", "x"]
    # a small dot (1 % of the short image side, 3-8 px): visible, not covering the cell
    size = float(np.clip(min(stack.shape[-2:]) / 100.0, 3.0, 8.0))
    kwargs: dict[str, Any] = {
        "name": f"{obj} centres",
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
