"""Vectorised square crops around objects, and intensity normalisation.

Crops are read frame by frame (one HDF5 read of the band of rows a frame's objects need)
and gathered with numpy fancy indexing, so the cost does not grow with one HDF5 call per
object. Windows that would leave the image are shifted inside it, never zero-padded, and
``crop[y, x] == image[y0 + y, x0 + x]`` always holds (no transposition). Crops keep their
stored dtype; :class:`Normalisation` is the one place that converts them to float.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from napari_cellae.core.cores import usable_cores

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from napari_cellae.io.cellh5 import CellH5, PositionKey

__all__ = [
    "CropSet",
    "Normalisation",
    "collect_crops",
    "crop_origins",
    "extract_crops",
]


def _describe(image: Any) -> str:
    """Name an image for error messages: file and dataset path for HDF5, else 'array'."""
    name = getattr(image, "name", None)
    file = getattr(image, "file", None)
    filename = getattr(file, "filename", None)
    if filename is not None:
        return f"{name} in {filename}"
    return "image array"


def crop_origins(
    center_y: np.ndarray,
    center_x: np.ndarray,
    size: int,
    height: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners of square windows centred on objects, shifted inside the image.

    Parameters
    ----------
    center_y, center_x : ndarray of int, shape (n,)
        Object centres in pixels (row, column).
    size : int
        Edge length of the square window.
    height, width : int
        Image size in pixels.

    Returns
    -------
    y0, x0 : ndarray of int64, shape (n,)
        Window origins with ``0 <= y0 <= height - size`` and ``0 <= x0 <= width - size``.
        An even ``size`` puts the centre at ``(size // 2, size // 2)`` inside the window.

    Raises
    ------
    ValueError
        If ``size`` is not positive or larger than the image.
    """
    size = int(size)
    if size < 1:
        raise ValueError(f"crop size must be positive, got {size}")
    if size > height or size > width:
        raise ValueError(
            f"crop size {size} px is larger than the image ({height} x {width} px, height x width)"
        )
    half = size // 2
    y0 = np.clip(np.asarray(center_y, dtype=np.int64) - half, 0, height - size)
    x0 = np.clip(np.asarray(center_x, dtype=np.int64) - half, 0, width - size)
    return y0, x0


def _check_no_nan(crops: np.ndarray, where: str) -> None:
    if crops.dtype.kind in "fc" and crops.size and np.isnan(crops).any():
        raise ValueError(
            f"the image {where} contains NaN pixels inside object crops; "
            "replace them (e.g. by 0) before extracting crops"
        )


class _PlaneReader:
    """Windows ``image[c, t, 0, r0:r1, q0:q1]`` of one position, as h5py would return them.

    h5py serialises every call (one global lock), so frames read through it cannot overlap.
    Chunked datasets with one frame per chunk and only deflate (gzip) and shuffle filters,
    as CellCognition writes them, are therefore decoded here: h5py only fetches the raw
    chunks and ``zlib`` inflates them with the GIL released, so frames decompress on all
    cores (``parallel``). Everything else (contiguous or otherwise filtered datasets, chunks
    spanning frames, unwritten chunks, numpy arrays) goes through plain h5py slicing, where
    extra threads measured slower. (A memory map of contiguous datasets gained nothing over
    h5py's read either.)
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
                and tuple(image.chunks[:3]) == (1, 1, 1)
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
        """Pixels ``image[c, t, 0, r0:r1, q0:q1]`` as a 2-D array."""
        if self.filters is not None:
            return self._inflate_window(c, t, r0, r1, q0, q1)
        return self._h5py_window(c, t, r0, r1, q0, q1)

    def _h5py_window(self, c: int, t: int, r0: int, r1: int, q0: int, q1: int) -> np.ndarray:
        try:
            return np.asarray(self.image[c, t, 0, r0:r1, q0:q1])
        except OSError as exc:  # damaged storage: say which file and frame
            raise ValueError(
                f"cannot read channel {c}, frame {t} of the image {_describe(self.image)}: {exc}"
            ) from exc

    def _inflate_window(self, c: int, t: int, r0: int, r1: int, q0: int, q1: int) -> np.ndarray:
        image = self.image
        ch, cw = image.chunks[3], image.chunks[4]
        out = np.empty((r1 - r0, q1 - q0), dtype=image.dtype)
        for cy in range(r0 - r0 % ch, r1, ch):
            for cx in range(q0 - q0 % cw, q1, cw):
                chunk = self._chunk(c, t, cy, cx)
                if chunk is None:  # unallocated or unexpected: let HDF5 do this window
                    return self._h5py_window(c, t, r0, r1, q0, q1)
                ya, yb, xa, xb = max(r0, cy), min(r1, cy + ch), max(q0, cx), min(q1, cx + cw)
                out[ya - r0 : yb - r0, xa - q0 : xb - q0] = chunk[
                    ya - cy : yb - cy, xa - cx : xb - cx
                ]
        return out

    def _chunk(self, c: int, t: int, cy: int, cx: int) -> np.ndarray | None:
        image = self.image
        ch, cw = image.chunks[3], image.chunks[4]
        try:
            skipped, data = image.id.read_direct_chunk((c, t, 0, cy, cx))
        except (OSError, RuntimeError, ValueError, KeyError):  # e.g. chunk never written
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
        if len(data) != ch * cw * image.dtype.itemsize:
            return None
        return np.frombuffer(data, dtype=image.dtype).reshape(ch, cw)


def _workers(tasks: int) -> int:
    """Threads for ``tasks`` independent frames: one per usable core, at most one per task."""
    return max(1, min(usable_cores(), tasks))


def _extract_into(
    out: np.ndarray,
    image: h5py.Dataset | np.ndarray,
    time_idx: np.ndarray,
    center_y: np.ndarray,
    center_x: np.ndarray,
    size: int,
    channels: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Fill ``out`` (n, len(channels), size, size) with crops; return the origins."""
    shape = tuple(image.shape)
    if len(shape) != 5:
        raise ValueError(
            f"image {_describe(image)} must have 5 axes (c, t, z, y, x), got shape {shape}"
        )
    n_c, n_t, _, height, width = shape
    time_idx = np.asarray(time_idx, dtype=np.int64)
    n = len(time_idx)
    if not (len(center_y) == len(center_x) == n):
        raise ValueError("time_idx, center_y and center_x must have the same length")
    for c in channels:
        if not 0 <= int(c) < n_c:
            raise ValueError(f"channel {c} out of range for {_describe(image)} with {n_c} channels")
    try:
        y0, x0 = crop_origins(center_y, center_x, size, height, width)
    except ValueError as exc:
        raise ValueError(f"{exc}: {_describe(image)}") from None
    if n == 0:
        return y0, x0
    if time_idx.min() < 0 or time_idx.max() >= n_t:
        raise ValueError(f"time_idx out of range 0..{n_t - 1} for {_describe(image)}")

    # Group objects by frame; each frame's window of rows and columns is read once per
    # channel. CellH5 stores objects frame by frame, so the groups are usually plain slices.
    in_order = bool(np.all(time_idx[1:] >= time_idx[:-1]))
    order = np.arange(n) if in_order else np.argsort(time_idx, kind="stable")
    sorted_t = time_idx[order]
    starts = np.flatnonzero(np.r_[True, sorted_t[1:] != sorted_t[:-1]]).tolist()
    groups = [
        (int(sorted_t[a]), slice(a, b) if in_order else order[a:b])
        for a, b in zip(starts, [*starts[1:], n], strict=True)
    ]
    reader = _PlaneReader(image)

    def crop_frame(group: tuple[int, slice | np.ndarray]) -> None:
        t, idx = group
        ys, xs = y0[idx], x0[idx]
        # Only the rows/columns spanned by this frame's windows are read.
        r0, r1 = int(ys.min()), int(ys.max()) + size
        q0, q1 = int(xs.min()), int(xs.max()) + size
        ys, xs = ys - r0, xs - q0
        for j, c in enumerate(channels):
            plane = reader.window(int(c), t, r0, r1, q0, q1)
            out[idx, j] = sliding_window_view(plane, (size, size))[ys, xs]

    # Frames fill disjoint rows of `out`; inflating (zlib) and the gather (numpy) release
    # the GIL, so frames decoded here run on all cores.
    workers = _workers(len(groups)) if reader.parallel else 1
    if workers == 1:
        for group in groups:
            crop_frame(group)
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="cellae-crops") as pool:
            list(pool.map(crop_frame, groups))
    return y0, x0


def extract_crops(
    image: h5py.Dataset | np.ndarray,
    time_idx: np.ndarray,
    center_y: np.ndarray,
    center_x: np.ndarray,
    size: int,
    channels: Sequence[int],
) -> np.ndarray:
    """Cut square crops around object centres, reading each frame once.

    Parameters
    ----------
    image : h5py.Dataset or ndarray, shape (c, t, z, y, x)
        Raw pixels of one position (only plane ``z = 0`` is used).
    time_idx : ndarray of int, shape (n,)
        Frame of each object.
    center_y, center_x : ndarray of int, shape (n,)
        Object centres in pixels.
    size : int
        Crop edge length in pixels.
    channels : sequence of int
        Raw channel indices to crop, in output order.

    Returns
    -------
    ndarray, shape (n, len(channels), size, size)
        Crops in the image's stored dtype, in input order; ``crops[i, j, y, x] ==
        image[channels[j], time_idx[i], 0, y0[i] + y, x0[i] + x]`` with origins from
        :func:`crop_origins`.

    Raises
    ------
    ValueError
        If the crop size exceeds the image, indices are out of range or a float image has
        NaN pixels inside a crop. Messages name the dataset and file.
    """
    channels = [int(c) for c in channels]
    if not channels:
        raise ValueError("at least one channel is needed")
    n = len(np.asarray(time_idx))
    out = np.empty((n, len(channels), int(size), int(size)), dtype=image.dtype)
    _extract_into(out, image, time_idx, center_y, center_x, size, channels)
    _check_no_nan(out, _describe(image))
    return out


@dataclass
class CropSet:
    """Crops of one object type from many positions, with per-crop metadata.

    Attributes
    ----------
    crops : ndarray (N, C, S, S)
        Pixels in the stored dtype, C-contiguous.
    positions : list of PositionKey
        Positions that contributed at least one object; ``position_index`` indexes it.
    position_index, object_index : ndarray of int32 (N,)
        Position of each crop and its row in that position's ObjectTable (CellH5 order).
    label_id : ndarray of int32 (N,)
        The object's label in the segmentation (``obj_label_id``).
    time_idx, center_x, center_y : ndarray of int32 (N,)
    bbox : ndarray of int32 (N, 4)
        left, right, top, bottom.
    angle, eccentricity : ndarray of float64 (N,)
        NaN where the file has no orientation.
    class_idx : ndarray of int32 (N,)
        -1 where the file has no classification.
    origin_y, origin_x : ndarray of int32 (N,)
        Top-left corner of each crop in its image.
    object_name : str
    channels : list of int
        Raw channel indices of the crop channels.
    channel_names : list of str
    source : Path
        The CellH5 file the crops came from.
    """

    crops: np.ndarray
    positions: list[PositionKey]
    position_index: np.ndarray
    object_index: np.ndarray
    label_id: np.ndarray
    time_idx: np.ndarray
    center_x: np.ndarray
    center_y: np.ndarray
    bbox: np.ndarray
    angle: np.ndarray
    eccentricity: np.ndarray
    class_idx: np.ndarray
    origin_y: np.ndarray
    origin_x: np.ndarray
    object_name: str
    channels: list[int]
    channel_names: list[str]
    source: Path

    _PER_CROP = (
        "position_index",
        "object_index",
        "label_id",
        "time_idx",
        "center_x",
        "center_y",
        "bbox",
        "angle",
        "eccentricity",
        "class_idx",
        "origin_y",
        "origin_x",
    )

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    def subset(self, indices: np.ndarray | Sequence[int]) -> CropSet:
        """Return a new CropSet with the crops at ``indices`` (in that order).

        Parameters
        ----------
        indices : array-like of int or bool mask
            Selection along the crop axis.

        Returns
        -------
        CropSet
            Copies of the selected rows; ``positions`` is kept as is.
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.intp, copy=False)
        kwargs: dict[str, Any] = {name: getattr(self, name)[idx] for name in self._PER_CROP}
        return CropSet(
            crops=np.ascontiguousarray(self.crops[idx]),
            positions=list(self.positions),
            object_name=self.object_name,
            channels=list(self.channels),
            channel_names=list(self.channel_names),
            source=self.source,
            **kwargs,
        )


def collect_crops(
    cellh5: CellH5,
    object_name: str,
    size: int,
    channels: list[int] | None = None,
    positions: list[PositionKey] | None = None,
) -> CropSet:
    """Crop every object of one type in the chosen positions of a CellH5 file.

    Parameters
    ----------
    cellh5 : CellH5
        An open file.
    object_name : str
        Object type, e.g. ``"primary__primary"`` or ``"Nuclei"``.
    size : int
        Crop edge length in pixels.
    channels : list of int, optional
        Raw channel indices to crop; default: the object's own channel.
    positions : list of PositionKey, optional
        Positions to use; default: all positions of the file. Positions without objects
        are skipped.

    Returns
    -------
    CropSet
        All crops in one contiguous array of the stored dtype, positions in the given order
        and objects in CellH5 order within each position.

    Raises
    ------
    ValueError
        If the crop size is larger than a position's image (naming the file, position
        and sizes), a channel does not exist, or a float image has NaN pixels in a crop.
    """
    if object_name not in cellh5.object_names:
        raise ValueError(
            f"{cellh5.path}: no object {object_name!r}; available: {', '.join(cellh5.object_names)}"
        )
    if channels is None:
        channels = [cellh5.object_channel(object_name)]
    channels = [int(c) for c in channels]
    if not channels:
        raise ValueError("at least one channel is needed")
    by_index = {ch.index: ch.name for ch in cellh5.channels}
    for c in channels:
        if c not in by_index:
            raise ValueError(f"{cellh5.path}: no channel {c}; channels are {sorted(by_index)}")
    if positions is None:
        positions = list(cellh5.positions)
    size = int(size)

    # First pass: object tables only (cheap), so the crop array is allocated once.
    used: list[PositionKey] = []
    tables = []
    images = []
    for pos in positions:
        table = cellh5.objects(pos, object_name)
        image = cellh5.image(pos)  # a lazy handle: shape and dtype without reading pixels
        height, width = int(image.shape[3]), int(image.shape[4])
        if size > height or size > width:
            raise ValueError(
                f"{cellh5.path}, position {pos.label}: crop size {size} px is larger than "
                f"the image ({height} x {width} px, height x width)"
            )
        if len(table) == 0:
            continue
        used.append(pos)
        tables.append(table)
        images.append(image)
    dtype = np.result_type(*[im.dtype for im in images]) if images else np.dtype(np.uint8)
    total = sum(len(t) for t in tables)
    crops = np.empty((total, len(channels), size, size), dtype=dtype)
    origin_y = np.empty(total, dtype=np.int32)
    origin_x = np.empty(total, dtype=np.int32)

    start = 0
    for pos, table, image in zip(used, tables, images, strict=True):
        stop = start + len(table)
        direct = np.dtype(image.dtype) == dtype
        # Mixed dtypes across positions: gather in the position's dtype, then widen losslessly.
        target = (
            crops[start:stop]
            if direct
            else np.empty((len(table), len(channels), size, size), dtype=image.dtype)
        )
        y0, x0 = _extract_into(
            target, image, table.time_idx, table.center_y, table.center_x, size, channels
        )
        if not direct:
            crops[start:stop] = target
        _check_no_nan(crops[start:stop], f"{cellh5.path}, position {pos.label}")
        origin_y[start:stop] = y0
        origin_x[start:stop] = x0
        start = stop

    def cat(values: list[np.ndarray], dt: Any, width: int | None = None) -> np.ndarray:
        if not values:
            return np.empty((0,) if width is None else (0, width), dtype=dt)
        return np.concatenate([np.asarray(v, dtype=dt) for v in values])

    def optional(attr: str, dt: Any, fill: float) -> np.ndarray:
        return cat(
            [
                getattr(t, attr) if getattr(t, attr) is not None else np.full(len(t), fill)
                for t in tables
            ],
            dt,
        )

    return CropSet(
        crops=crops,
        positions=used,
        position_index=cat(
            [np.full(len(t), i, dtype=np.int32) for i, t in enumerate(tables)], np.int32
        ),
        object_index=cat([np.arange(len(t), dtype=np.int32) for t in tables], np.int32),
        label_id=cat([t.label_id for t in tables], np.int32),
        time_idx=cat([t.time_idx for t in tables], np.int32),
        center_x=cat([t.center_x for t in tables], np.int32),
        center_y=cat([t.center_y for t in tables], np.int32),
        bbox=cat([t.bbox for t in tables], np.int32, width=4).reshape(-1, 4),
        angle=optional("angle", np.float64, np.nan),
        eccentricity=optional("eccentricity", np.float64, np.nan),
        class_idx=optional("class_idx", np.int32, -1),
        origin_y=origin_y,
        origin_x=origin_x,
        object_name=object_name,
        channels=channels,
        channel_names=[by_index[c] for c in channels],
        source=Path(cellh5.path),
    )


# Fraction of pixels clipped at each end when choosing the intensity range.
_LOW_PERCENTILE = 0.1
_HIGH_PERCENTILE = 99.9
# Crops sampled to choose the range: enough for stable percentiles, cheap for 1e6 crops.
_NORMALISATION_SAMPLE = 4096


@dataclass
class Normalisation:
    """Per-channel linear scaling of stored pixel values to float32 in [0, 1].

    ``value -> clip((value - low) / (high - low), 0, 1)``, with ``low`` and ``high`` chosen
    from the data by :meth:`from_crops` and stored with a model so that encoding uses the
    training scaling.
    """

    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.low = [float(v) for v in self.low]
        self.high = [float(v) for v in self.high]
        if len(self.low) != len(self.high) or not self.low:
            raise ValueError("Normalisation needs one low and one high value per channel")
        for lo, hi in zip(self.low, self.high, strict=True):
            if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
                raise ValueError(f"invalid normalisation range low={lo}, high={hi}")

    @property
    def n_channels(self) -> int:
        """Number of channels this scaling applies to."""
        return len(self.low)

    @classmethod
    def from_crops(cls, crops: np.ndarray, seed: int = 0) -> Normalisation:
        """Choose per-channel ranges from robust percentiles of (a sample of) the crops.

        Parameters
        ----------
        crops : ndarray (N, C, S, S)
            Crops in any numeric dtype (uint8, uint16, float ...).
        seed : int
            Seed of the crop subsample (used when there are many crops).

        Returns
        -------
        Normalisation
            ``low`` = 0.1th and ``high`` = 99.9th percentile per channel. A constant
            channel gets ``high = low + 1``.
        """
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[0] == 0:
            raise ValueError(f"need crops of shape (N, C, S, S) with N > 0, got {crops.shape}")
        n = crops.shape[0]
        if n > _NORMALISATION_SAMPLE:
            rng = np.random.default_rng(seed)
            pick = np.sort(rng.choice(n, _NORMALISATION_SAMPLE, replace=False))
            sample = crops[pick]
        else:
            sample = crops
        per_channel = np.moveaxis(sample, 1, 0).reshape(crops.shape[1], -1)
        if per_channel.dtype.kind == "f" and np.isnan(per_channel).any():
            raise ValueError("crops contain NaN pixels; cannot choose a normalisation")
        lows, highs = np.percentile(
            per_channel, [_LOW_PERCENTILE, _HIGH_PERCENTILE], axis=1
        ).astype(np.float64)
        high = np.where(highs > lows, highs, lows + 1.0)
        return cls(low=lows.tolist(), high=high.tolist())

    def scale_offset(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel ``scale`` and ``offset`` (float32) with ``x * scale + offset``."""
        low = np.asarray(self.low, dtype=np.float64)
        scale = 1.0 / (np.asarray(self.high, dtype=np.float64) - low)
        return scale.astype(np.float32), (-low * scale).astype(np.float32)

    def apply(self, data: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Scale crops to float32 in [0, 1].

        Parameters
        ----------
        data : ndarray or torch.Tensor, shape (..., C, S, S)
            Pixels in any dtype; the channel axis is third from last.

        Returns
        -------
        ndarray or torch.Tensor
            float32, same shape (a tensor stays on its device).
        """
        scale, offset = self.scale_offset()
        if data.ndim < 3 or data.shape[-3] != self.n_channels:
            raise ValueError(
                f"expected (..., {self.n_channels}, S, S) data, got shape {tuple(data.shape)}"
            )
        if isinstance(data, np.ndarray):
            out = data.astype(np.float32)
            out *= scale[:, None, None]
            out += offset[:, None, None]
            return np.clip(out, 0.0, 1.0, out=out)
        import torch

        s = torch.from_numpy(scale).to(data.device)[:, None, None]
        o = torch.from_numpy(offset).to(data.device)[:, None, None]
        return torch.addcmul(o, data.to(torch.float32), s).clamp_(0.0, 1.0)

    def to_dict(self) -> dict[str, list[float]]:
        """Plain-JSON form, for saving with a model."""
        return {"low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalisation:
        """Inverse of :meth:`to_dict` (validates the values)."""
        try:
            return cls(low=list(d["low"]), high=list(d["high"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"invalid normalisation record {d!r}: {exc}") from None
