"""Reading windows of image planes from CellH5 pixel datasets, fast and with clear errors.

h5py serialises every call (one global lock), so frames read through it cannot overlap.
:class:`PlaneReader` therefore decodes chunked datasets with one frame per chunk (of one
channel or several) and only deflate (gzip) and shuffle filters, as CellCognition writes
them, itself: h5py only fetches
the raw chunks and ``zlib`` inflates them with the GIL released, so frames decompress on all
cores. Everything else goes through plain h5py slicing. Damaged storage raises an error that
names the file, the channel and the frame. See ``docs/performance.md`` for the measurements.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from typing import Any

import h5py
import h5py._objects as _h5py_objects
import numpy as np

from napari_cellae.io.hdf5 import CellH5Error
from napari_cellae.io.storage import missing_filter

# h5py's global lock (reentrant), which its own calls take
_PHIL = _h5py_objects.phil

__all__ = ["PlaneReader", "describe_image", "read_pixels"]


def describe_image(image: Any) -> str:
    """Name an image for error messages: dataset path and file for HDF5, else 'image array'."""
    name = getattr(image, "name", None)
    file = getattr(image, "file", None)
    filename = getattr(file, "filename", None)
    if filename is not None:
        return f"{name} in {filename}"
    return "image array"


def _reason(err: BaseException, image: Any = None) -> str:
    text = str(err)
    if (missing := missing_filter(image)) is not None:  # HDF5 names only where it looked
        return f"{missing} ({text})"
    if "filter" in text and ("not registered" in text or "not available" in text):
        return f"it is compressed with an HDF5 filter that is not installed here ({text})"
    if "external raw data file" in text:  # HDF5 looks for it from the working folder
        return f"it is kept in an external raw file that cannot be opened ({text})"
    return f"the stored pixels are damaged ({text})"


def read_pixels(
    image: h5py.Dataset | np.ndarray, index: tuple[Any, ...], source: str | os.PathLike, where: str
) -> np.ndarray:
    """``image[index]`` as an array; a read failure names the file and what was read.

    Parameters
    ----------
    image : h5py.Dataset or ndarray
        Pixels of one position, axes (c, t, z, y, x).
    index : tuple
        Index into ``image``.
    source : path-like
        The file the user opened (a master file may link to the file holding ``image``).
    where : str
        What is read, e.g. ``"channel 0 (rfp), frame 2 of position A01_01"``.

    Raises
    ------
    CellH5Error
        If HDF5 cannot decode the pixels (damaged chunk, missing filter).
    """
    try:
        return np.asarray(image[index])
    except (OSError, RuntimeError) as err:
        stored = getattr(getattr(image, "file", None), "filename", None)
        inside = f" (stored in {stored})" if stored and str(stored) != str(source) else ""
        raise CellH5Error(f"{source}: cannot read {where}{inside}: {_reason(err, image)}") from None


class PlaneReader:
    """Windows ``image[c, t, 0, r0:r1, q0:q1]`` of one position, as h5py would return them.

    Chunks are inflated here (``parallel`` is True) for chunked datasets with one frame and
    plane per chunk (any number of channels) and only deflate and shuffle filters.
    Contiguous or otherwise filtered datasets, chunks spanning frames, unwritten chunks and
    numpy arrays go through plain h5py slicing, where extra threads measured slower. (A
    memory map of contiguous datasets gained nothing over h5py's read either.)

    Parameters
    ----------
    image : h5py.Dataset or ndarray
        Pixels of one position, axes (c, t, z, y, x).
    """

    def __init__(self, image: h5py.Dataset | np.ndarray) -> None:
        self.image = image
        self.filters: list[int] | None = None
        if isinstance(image, np.ndarray) or not hasattr(image, "id"):
            return
        try:
            plist = image.id.get_create_plist()
            filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
            if (
                plist.get_layout() == h5py.h5d.CHUNKED
                and tuple(image.chunks[1:3]) == (1, 1)
                and set(filters) <= {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE}
                and image.dtype.kind in "uif"
            ):
                self.filters = filters
        except (AttributeError, OSError, ValueError):  # unusual dataset: plain h5py reads
            self.filters = None

    @property
    def parallel(self) -> bool:
        """Whether frames gain from being read in several threads."""
        return self.filters is not None

    def window(self, c: int, t: int, r0: int, r1: int, q0: int, q1: int) -> np.ndarray:
        """Pixels ``image[c, t, 0, r0:r1, q0:q1]`` as a 2-D array.

        Raises
        ------
        ValueError
            (a :class:`CellH5Error`) naming the dataset, file, channel and frame if the
            stored pixels cannot be decoded.
        """
        return self.windows([c], t, r0, r1, q0, q1)[0]

    def windows(
        self, channels: Sequence[int], t: int, r0: int, r1: int, q0: int, q1: int
    ) -> list[np.ndarray]:
        """:meth:`window` of each of ``channels``; a chunk holding several of them (as
        CellCognition stores all channels of a frame together) is inflated once."""
        if self.filters is not None:
            return self._inflate_windows([int(c) for c in channels], t, r0, r1, q0, q1)
        return [self._h5py_window(int(c), t, r0, r1, q0, q1) for c in channels]

    def _h5py_window(self, c: int, t: int, r0: int, r1: int, q0: int, q1: int) -> np.ndarray:
        try:
            return np.asarray(self.image[c, t, 0, r0:r1, q0:q1])
        except (OSError, RuntimeError) as exc:  # damaged storage: say which file and frame
            raise CellH5Error(
                f"cannot read channel {c}, frame {t} of the image {describe_image(self.image)}:"
                f" {_reason(exc, self.image)}"
            ) from exc

    def _inflate_windows(
        self, channels: list[int], t: int, r0: int, r1: int, q0: int, q1: int
    ) -> list[np.ndarray]:
        image = self.image
        cc, ch, cw = image.chunks[0], image.chunks[3], image.chunks[4]
        out = [np.empty((r1 - r0, q1 - q0), dtype=image.dtype) for _ in channels]
        firsts = sorted({c - c % cc for c in channels})  # the chunks' first channels
        for c0 in firsts:
            mine = [(j, c - c0) for j, c in enumerate(channels) if c0 <= c < c0 + cc]
            for cy in range(r0 - r0 % ch, r1, ch):
                for cx in range(q0 - q0 % cw, q1, cw):
                    chunk = self._chunk(c0, t, cy, cx)
                    if chunk is None:  # unallocated or unexpected: let HDF5 do this window
                        return [self._h5py_window(c, t, r0, r1, q0, q1) for c in channels]
                    ya, yb = max(r0, cy), min(r1, cy + ch)
                    xa, xb = max(q0, cx), min(q1, cx + cw)
                    for j, k in mine:
                        out[j][ya - r0 : yb - r0, xa - q0 : xb - q0] = chunk[
                            k, ya - cy : yb - cy, xa - cx : xb - cx
                        ]
        return out

    def _chunk(self, c0: int, t: int, cy: int, cx: int) -> np.ndarray | None:
        """The chunk at channel ``c0`` (a multiple of the chunk's channels), frame ``t``,
        row ``cy``, column ``cx``, as (channels, rows, columns); None where HDF5 must read
        it (never written, or damaged: h5py says so in its words)."""
        image = self.image
        cc, ch, cw = image.chunks[0], image.chunks[3], image.chunks[4]
        try:
            # h5py < 3.16 does not take its lock here: threads reading at once crashed it
            with _PHIL:
                skipped, data = image.id.read_direct_chunk((c0, t, 0, cy, cx))
        except (OSError, RuntimeError, ValueError, KeyError, MemoryError):
            # a chunk never written: h5py says MemoryError while the dataset has none at all
            return None
        for i in reversed(range(len(self.filters))):  # undo the pipeline, last filter first
            if skipped & (1 << i):
                continue
            if self.filters[i] == h5py.h5z.FILTER_DEFLATE:
                try:
                    data = zlib.decompress(data)  # releases the GIL: frames inflate in parallel
                except zlib.error:  # damaged chunk: h5py reports it in its own words
                    return None
            else:  # shuffle: byte k of every value was stored together
                size = image.dtype.itemsize
                if len(data) % size:
                    return None
                data = np.frombuffer(data, np.uint8).reshape(size, -1).T.tobytes()
        if len(data) != cc * ch * cw * image.dtype.itemsize:
            return None
        return np.frombuffer(data, dtype=image.dtype).reshape(cc, ch, cw)
