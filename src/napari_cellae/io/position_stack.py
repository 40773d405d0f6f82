"""A lazy array over one channel of many positions: pixels are read only when indexed.

A screen of hundreds of positions of large movies must open at once, so an image layer is a
:class:`LazyPositionStack` that reads from the open, read-only HDF5 datasets only the planes
napari asks for. All positions of a file share one stack along a leading "position" axis,
so that one step of napari's slider shows one position: positions of different image sizes
(or frame, plane or channel counts) lie in a common canvas of the largest of each, from the
top-left corner, their coordinates unchanged (the centres stay on their cells); the rest of
the canvas is blank (zero). No napari import: napari only needs ``shape``, ``dtype``,
``ndim`` and indexing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae.io.planes import read_pixels

if TYPE_CHECKING:  # pragma: no cover - typing only
    import h5py

    from napari_cellae.io.cellh5 import CellH5, PositionKey

__all__ = ["LazyPositionStack"]


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
        Positions stacked along the first axis. Their image shapes and pixel types may
        differ: the stack is as large as the largest frame, plane, row and column counts,
        of the type that holds all (:func:`numpy.result_type`), and blank (zero) where a
        position has no pixels (beyond its size, frames or planes, or a channel it lacks).
    channel : int
        Raw channel index (first axis of ``image/channel``).

    Raises
    ------
    CellH5Error
        From indexing, when stored pixels cannot be decoded (the message names the file,
        position, channel and frame).
    """

    def __init__(self, cellh5: CellH5, positions: list[PositionKey], channel: int) -> None:
        self.cellh5 = cellh5
        self.positions = list(positions)
        self.channel = int(channel)
        #: (c, t, z, y, x) of each position's own image
        self.shapes = [tuple(int(n) for n in cellh5.image_shape(p)) for p in self.positions]
        _, t, z, y, x = (max(s[i] for s in self.shapes) for i in range(5))
        self.dtype = np.result_type(*(np.dtype(cellh5.dtype(p)) for p in self.positions))
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

    def plane(self, index: int, t: int, z: int, yx: tuple[Any, Any]) -> np.ndarray:
        """Pixels ``[y, x]`` of frame ``t``, plane ``z`` of position number ``index``.

        Parameters
        ----------
        index, t, z : int
            Position number in this stack, frame and z plane.
        yx : tuple
            h5py-compatible indices of the y and x axes (integers or unit-step slices).

        Returns
        -------
        ndarray
            In the stack's dtype; blank (zero) where the position has no pixels (the
            indices are of the common canvas, :attr:`shape`).
        """
        c, frames, planes, height, width = self.shapes[index]
        shape, read, into = _canvas_window(yx, self.shape[-2:], (height, width))
        out = np.zeros(shape, self.dtype)
        if read is None or self.channel >= c or not (0 <= t < frames and 0 <= z < planes):
            return out
        channel = self.cellh5.channels_of(self.channel + 1)[self.channel].name
        where = (
            f"channel {self.channel} ({channel}), frame {t}"
            + (f", plane {z}" if self._has_z else "")
            + f" of position {self.positions[index].label}"
        )
        key = (self.channel, t, z, *read)
        out[into] = read_pixels(self.dataset(index), key, self.cellh5.path, where)
        return out

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
        return out.reshape((*kept_shape, *out.shape[1:]))

    def _read_plane(self, lead: tuple[int, ...], yx: tuple[Any, Any]) -> np.ndarray:
        lead = list(lead)
        pos = lead.pop(0) if self._stacked else 0
        t = lead.pop(0)
        z = lead.pop(0) if self._has_z else 0
        return self.plane(pos, t, z, yx)


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


def _canvas_window(
    yx: tuple[Any, Any], canvas: tuple[int, ...], own: tuple[int, int]
) -> tuple[tuple[int, ...], tuple[Any, ...] | None, tuple[slice, ...]]:
    """Where canvas indices ``yx`` (integers or unit-step slices) meet an image of shape
    ``own`` at the canvas's top-left corner: the shape of the window that ``yx`` cuts from
    the canvas, the indices to read from the image (None if the window misses it) and where
    in the window what they read goes."""
    shape: list[int] = []
    read: list[Any] = []
    into: list[slice] = []
    for k, length, size in zip(yx, canvas, own, strict=True):
        if isinstance(k, slice):
            start, stop, _ = k.indices(length)
            stop = max(start, stop)
            end = min(stop, size)
            shape.append(stop - start)
            read.append(slice(start, end) if start < end else None)
            into.append(slice(0, max(0, end - start)))
        else:  # an integer: the axis goes
            i = int(k) + (length if k < 0 else 0)
            if not 0 <= i < length:
                raise IndexError(f"index {k} is out of bounds for axis with size {length}")
            read.append(i if i < size else None)
    missed = any(r is None for r in read)
    return tuple(shape), None if missed else tuple(read), tuple(into)


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
