"""The last few windows read from a file's positions, shared by its channel layers.

napari shows one layer per channel, and each asks its :class:`~napari_cellae.io.
position_stack.LazyPositionStack` for the same position, frame and window. CellCognition
stores every channel of a frame in one chunk, so reading each channel on its own inflated
every chunk once per channel; and napari asks for the plane that the reader has just read
for the contrast limits again when it adds the layer. A :class:`PlaneCache` keeps the
windows of the last few reads (every channel a chunk holds, read at once), bounded in
entries and bytes: memory does not grow with the positions viewed. It is safe to use from
several threads (napari's asynchronous slicing reads layers on a thread of its own).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

__all__ = ["PlaneCache", "window_key"]

# Two entries cover napari's first look at a layer (position 0, then the middle position).
_ENTRIES = 4
_MAX_BYTES = 128 * 2**20


def window_key(read: tuple[Any, ...]) -> tuple[Any, ...]:
    """Hashable form of h5py indices (integers and unit-step slices)."""
    return tuple((k.start, k.stop) if isinstance(k, slice) else int(k) for k in read)


class PlaneCache:
    """Windows by (position, frame, plane, window), each a dict of channel -> pixels.

    Parameters
    ----------
    entries : int
        Windows kept (the least recently used goes first).
    max_bytes : int
        Pixel bytes kept at most; a read larger than that is not kept (see :meth:`fits`).
    """

    def __init__(self, entries: int = _ENTRIES, max_bytes: int = _MAX_BYTES) -> None:
        self.entries = int(entries)
        self.max_bytes = int(max_bytes)
        self._windows: OrderedDict[tuple[Any, ...], dict[int, np.ndarray]] = OrderedDict()
        # napari may slice layers on its own thread while another reads them
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Pixel bytes held."""
        with self._lock:
            return self._nbytes()

    def _nbytes(self) -> int:
        return sum(a.nbytes for planes in self._windows.values() for a in planes.values())

    def fits(self, nbytes: int) -> bool:
        """Whether a read of ``nbytes`` would be kept."""
        return nbytes <= self.max_bytes

    def get(self, key: tuple[Any, ...], channel: int) -> np.ndarray | None:
        """The pixels of ``channel`` in window ``key``, or None where not kept."""
        with self._lock:
            planes = self._windows.get(key)
            if planes is None or channel not in planes:
                return None
            self._windows.move_to_end(key)
            return planes[channel]

    def put(self, key: tuple[Any, ...], planes: dict[int, np.ndarray]) -> None:
        """Keep ``planes`` (channel -> pixels) of window ``key``, dropping the oldest
        windows beyond the entry and byte bounds."""
        if not self.fits(sum(a.nbytes for a in planes.values())):
            return
        with self._lock:
            self._windows.setdefault(key, {}).update(planes)
            self._windows.move_to_end(key)
            while len(self._windows) > self.entries or self._nbytes() > self.max_bytes:
                self._windows.popitem(last=False)

    def clear(self) -> None:
        """Drop every window."""
        with self._lock:
            self._windows.clear()
