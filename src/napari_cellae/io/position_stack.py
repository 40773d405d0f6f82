"""A lazy array over one channel of many positions: pixels are read only when indexed.

A screen of hundreds of positions of large movies must open at once, so an image layer is a
:class:`LazyPositionStack` that reads from the open, read-only HDF5 datasets only the planes
napari asks for. All positions of a file share one stack along a leading "position" axis,
so that one step of napari's slider shows one position: positions of different image sizes
(or frame, plane or channel counts) lie in a common canvas of the largest of each, from the
top-left corner, their coordinates unchanged (the centres stay on their cells); the rest of
the canvas is blank (zero). No napari import: napari only needs ``shape``, ``dtype``,
``ndim`` and indexing.

Memory and open files do not grow with the positions viewed: only the datasets of the last
few positions stay open (HDF5 gives each open dataset a chunk cache of up to 8 MiB, and a
master file's position keeps its own file open), and the windows read last are shared by
the channel layers of one file through a bounded :class:`~napari_cellae.io.plane_cache.
PlaneCache`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae.io.hdf5 import CellH5Error
from napari_cellae.io.plane_cache import PlaneCache, window_key
from napari_cellae.io.planes import read_pixels

if TYPE_CHECKING:  # pragma: no cover - typing only
    import h5py

    from napari_cellae.io.cellh5 import CellH5, PositionKey

__all__ = ["LazyPositionStack"]

# Datasets kept open per stack: the position shown and the one before it.
_OPEN_DATASETS = 2


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
    cache : PlaneCache, optional
        Windows read last, shared by the stacks of one file's channels (a chunk holding
        several channels is then read once for all); a stack of its own by default.

    Raises
    ------
    CellH5Error
        From indexing, when stored pixels cannot be decoded (the message names the file,
        position, channel and frame).
    """

    def __init__(
        self,
        cellh5: CellH5,
        positions: list[PositionKey],
        channel: int,
        cache: PlaneCache | None = None,
    ) -> None:
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
        self.cache = cache if cache is not None else PlaneCache()
        self._datasets: OrderedDict[int, h5py.Dataset] = OrderedDict()
        self._lock = threading.Lock()  # napari may slice on a thread of its own
        self._channel_name: str | None = None

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
        """Return the (c, t, z, y, x) dataset of position number ``index`` (those of the
        last few positions stay open, no more: see the module's notes)."""
        with self._lock:
            dataset = self._datasets.get(index)
            if dataset is None:
                dataset = self._datasets[index] = self.cellh5.image(self.positions[index])
                while len(self._datasets) > _OPEN_DATASETS:
                    self._datasets.popitem(last=False)
            self._datasets.move_to_end(index)
            return dataset

    def _where(self, index: int, t: int, z: int) -> str:
        if self._channel_name is None:  # read once: it is named in every read's errors
            # named as the reader names the layer, of the stack's channel count: of fewer,
            # the table's rows outnumber them and the region table would be read
            n_channels = max(self.channel + 1, *(s[0] for s in self.shapes))
            self._channel_name = self.cellh5.channels_of(n_channels)[self.channel].name
        return (
            f"channel {self.channel} ({self._channel_name}), frame {t}"
            + (f", plane {z}" if self._has_z else "")
            + f" of position {self.positions[index].label}"
        )

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

        Raises
        ------
        CellH5Error
            If the pixels cannot be decoded, or the window is larger than memory.
        """
        c, frames, planes, height, width = self.shapes[index]
        shape, read, into = _canvas_window(yx, self.shape[-2:], (height, width))
        try:
            out = np.zeros(shape, self.dtype)
        except (MemoryError, ValueError):  # a damaged file can declare planes of 10**6 x
            # 10**6 px; past 2**63 bytes numpy raises ValueError ('array is too big')
            raise CellH5Error(
                f"{self.cellh5.path}: cannot show {self._where(index, t, z)}: its"
                f" {' x '.join(map(str, shape))} px need {_size(shape, self.dtype)}, more"
                " than this computer's memory holds"
            ) from None
        if read is None or self.channel >= c or not (0 <= t < frames and 0 <= z < planes):
            return out
        out[into] = self._window(index, t, z, read)
        return out

    def _window(self, index: int, t: int, z: int, read: tuple[Any, ...]) -> np.ndarray:
        """``image[channel, t, z, *read]`` of position ``index``: from the cache, else read
        with every channel that its chunks hold (kept for the other channels' layers)."""
        key = (self.positions[index], t, z, window_key(read))
        kept = self.cache.get(key, self.channel)
        if kept is not None:
            return kept
        dataset = self.dataset(index)
        first, stop = self._chunk_channels(dataset, index, read)
        block = read_pixels(
            dataset, (slice(first, stop), t, z, *read), self.cellh5.path, self._where(index, t, z)
        )
        self.cache.put(key, {first + i: block[i] for i in range(stop - first)})
        return block[self.channel - first]

    def _chunk_channels(
        self, dataset: h5py.Dataset, index: int, read: tuple[Any, ...]
    ) -> tuple[int, int]:
        """The channels to read with this one: those its chunks hold, where they fit the
        cache; else this one alone."""
        c = self.shapes[index][0]
        per_chunk = int((getattr(dataset, "chunks", None) or (1,))[0])
        if per_chunk <= 1:
            return self.channel, self.channel + 1
        first = self.channel - self.channel % per_chunk
        stop = min(first + per_chunk, c)
        window = [k.stop - k.start if isinstance(k, slice) else 1 for k in read]
        nbytes = (stop - first) * int(np.prod(window)) * dataset.dtype.itemsize
        return (first, stop) if self.cache.fits(nbytes) else (self.channel, self.channel + 1)

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
                axes.append(([_in_bounds(k, n)], False))
            else:  # integer or boolean array / list
                axes.append((_index_list(k, n), True))
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


def _index_list(k: Any, n: int) -> list[int]:
    """An index list (or array) of an axis of ``n`` as numpy reads it: a boolean one picks
    where it is True (it was read as the numbers 1 and 0), one beyond the axis is refused
    (it wrapped round to another position or read a blank frame), and so is one of floats."""
    k = np.asarray(k)
    if k.dtype == bool:
        if k.shape != (n,):
            raise IndexError(f"boolean index of {k.size} does not match the axis of size {n}")
        return np.flatnonzero(k).tolist()
    if k.size and k.dtype.kind not in "iu":
        raise IndexError(
            f"arrays used as indices must be of integer or boolean type, not {k.dtype}"
        )
    return [_in_bounds(i, n) for i in k.ravel()]


def _in_bounds(k: Any, n: int) -> int:
    """Index ``k`` (negative from the end) of an axis of ``n``, refused as numpy refuses it."""
    idx = int(k) + (n if k < 0 else 0)
    if not 0 <= idx < n:
        raise IndexError(f"index {k} is out of bounds for axis with size {n}")
    return idx


def _size(shape: tuple[int, ...], dtype: np.dtype) -> str:
    nbytes = int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
    return f"{nbytes / 2**30:.0f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MiB"


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
