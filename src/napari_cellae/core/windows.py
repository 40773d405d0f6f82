"""Square windows around object centres in one position's image, read frame by frame.

Each frame's objects are cut with one read of the band of rows and columns they need and a
numpy fancy-index gather, so the cost does not grow with one HDF5 call per object.
:func:`extract_crops` reads windows shifted inside the image, so
``crop[y, x] == image[y0 + y, x0 + x]`` holds (no transposition); :func:`centre_crops` then
moves the content of the shifted ones back so every object sits at the crop centre, the part
outside the image filled with the crop's background level. Crops keep the stored dtype. See
``docs/performance.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from napari_cellae.core.cores import usable_cores
from napari_cellae.core.precision import check_resolution
from napari_cellae.io.planes import PlaneReader, describe_image

__all__ = ["centre_crops", "check_pixels", "crop_origins", "extract_crops", "extract_into"]


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
            f"crop size {size} px is larger than the image ({height} x {width} px, height x"
            f" width); choose a cell size of at most {min(height, width)} px (--crop-size,"
            " 'Cell size' in the widget)"
        )
    half = size // 2
    y0 = np.clip(np.asarray(center_y, dtype=np.int64) - half, 0, height - size)
    x0 = np.clip(np.asarray(center_x, dtype=np.int64) - half, 0, width - size)
    return y0, x0


def centre_crops(
    crops: np.ndarray,
    center_y: np.ndarray,
    center_x: np.ndarray,
    origin_y: np.ndarray,
    origin_x: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Move each object to the centre of its crop, in place, where its window was shifted.

    A window shifted inside the image (:func:`crop_origins`) shows a border cell off-centre,
    by up to half the crop, and a network learns that position as if it were the cell's
    look. The content of those crops is moved so the object centre lands at
    ``(size // 2, size // 2)``: ``new[r, q] = old[r - dy, q - dx]`` with
    ``dy = origin_y - (center_y - size // 2)`` (likewise ``dx``). Pixels without a source
    in the old window, the part of the centred window outside the image, take the crop's
    background level: per channel, the lower median of the old window's edge ring
    (outermost rows and columns), one of its pixel values. Other crops are left untouched.

    Parameters
    ----------
    crops : ndarray, shape (n, C, size, size)
        Crops read at ``(origin_y, origin_x)``; changed in place, dtype kept.
    center_y, center_x : ndarray of int, shape (n,)
        Object centres in image pixels.
    origin_y, origin_x : ndarray of int, shape (n,)
        Top-left corners of the windows the crops were read from.

    Returns
    -------
    y0, x0 : ndarray of int32, shape (n,)
        Origins of the centred windows, ``center - size // 2``; negative, or reaching past
        the image, where the window lies partly outside it.
    """
    n, n_c, size, width = crops.shape
    if size != width:
        raise ValueError(f"crops must be square, got shape {crops.shape}")
    columns = [np.asarray(v, dtype=np.int64) for v in (center_y, center_x, origin_y, origin_x)]
    if any(v.shape != (n,) for v in columns):
        raise ValueError("crops, centres and origins must have the same length")
    half = size // 2
    new_y, new_x = columns[0] - half, columns[1] - half
    dy, dx = columns[2] - new_y, columns[3] - new_x
    moved = np.flatnonzero((dy != 0) | (dx != 0))
    # Blocks of about a million pixels bound the gather's index array (8 bytes a pixel).
    block = max(1, 2**20 // max(1, n_c * size * size))
    for start in range(0, len(moved), block):
        _shift(crops, moved[start : start + block], dy, dx)
    return new_y.astype(np.int32), new_x.astype(np.int32)


def _shift(crops: np.ndarray, moved: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> None:
    """:func:`centre_crops` for the crops at ``moved`` (one gather for all of them)."""
    m, n_c, size = len(moved), crops.shape[1], crops.shape[-1]
    old = crops[moved]  # (m, C, s, s), a contiguous copy
    ring = np.concatenate(
        [old[..., 0, :], old[..., -1, :], old[..., 1:-1, 0], old[..., 1:-1, -1]], axis=-1
    )
    # The lower median, a pixel value (as masking paints): equivariant with gain and offset.
    level = np.quantile(ring, 0.5, axis=-1, method="lower")  # (m, C)
    steps = np.arange(size)
    src_r = steps - dy[moved, None]  # (m, s): source row of each new row
    src_q = steps - dx[moved, None]
    off_r, off_q = (src_r < 0) | (src_r >= size), (src_q < 0) | (src_q >= size)
    outside = off_r[:, None, :, None] | off_q[:, None, None, :]
    # A flat index into `old` gathers faster than four index arrays; rows and columns
    # without a source read a clipped index and are painted with the level below.
    start = (np.arange(m * n_c, dtype=np.intp) * size * size).reshape(m, n_c, 1, 1)
    rows = (np.clip(src_r, 0, size - 1) * size)[:, None, :, None]
    new = np.take(old.reshape(-1), start + rows + np.clip(src_q, 0, size - 1)[:, None, None, :])
    np.copyto(new, level.astype(crops.dtype)[:, :, None, None], where=outside)
    crops[moved] = new


# Float pixels beyond this magnitude overflow float32 in the differences that percentiles
# and scaling take (max - min); those below float32's smallest normal number become 0 there.
_FLOAT_LIMIT = float(np.finfo(np.float32).max) / 2
_FLOAT_TINY = float(np.finfo(np.float32).tiny)
# 64-bit integers beyond this lose their differences in float64 (percentiles, levels).
_INT_LIMIT = 2**53


def check_pixels(crops: np.ndarray, where: str, channels: Sequence[str] | None = None) -> None:
    """Refuse crops whose pixels cannot be computed with; ``where`` names the image.

    The network and the scaling compute in float32 (percentiles in float64), so float
    pixels must be finite, small enough that their differences stay finite and not all
    so close to 0 that they vanish there; 64-bit integers must be exact in float64; and
    float32 must resolve the contrast of every crop of a wider dtype
    (:func:`~napari_cellae.core.precision.check_resolution`).

    Parameters
    ----------
    crops : ndarray, shape (n, c, y, x)
    where : str
        The image, as messages name it.
    channels : sequence of str, optional
        Each crop channel as messages name it (``'dna'``); by default its number.

    Raises
    ------
    ValueError
        If float crops hold a NaN, an infinity, a value beyond ±float32 max / 2, or only
        values that are 0 in float32 (but not all 0); or if 64-bit integer crops hold a
        value beyond ±2**53; or if float32 steps by more than 5 % of a crop's range of
        32- or 64-bit integers or float64 pixels (e.g. 3e9 plus a signal of 250 counts).
    """
    if not crops.size:
        return
    if crops.dtype.kind in "iu" and crops.dtype.itemsize == 8:
        largest = max(abs(int(crops.min())), abs(int(crops.max())))
        if largest > _INT_LIMIT:
            raise ValueError(
                f"the image {where} has pixels beyond ±2**53 inside object crops (e.g. "
                f"{largest:.4g}), where neighbouring values can no longer be told apart in "
                "floating point; rescale the image (e.g. to 16 bit) before extracting crops"
            )
    if crops.dtype.kind not in "fc":
        check_resolution(crops, where)
        return
    if not np.isfinite(crops).all():
        # Only on the way out: which crops and channels, so the user knows where to look.
        bad = ~np.isfinite(crops).all(axis=(2, 3))  # (n, c)
        names = list(channels) if channels is not None else [str(j) for j in range(bad.shape[1])]
        which = ", ".join(names[j] for j in np.flatnonzero(bad.any(axis=0)))
        raise ValueError(
            f"the image {where} contains NaN or infinite pixels in {int(bad.any(axis=1).sum())}"
            f" of {len(crops)} object crop(s), in channel {which}; replace them (e.g. by 0)"
            " before extracting crops"
        )
    largest = float(np.abs(crops).max())
    if largest > _FLOAT_LIMIT:
        raise ValueError(
            f"the image {where} has pixels beyond the float32 range inside object crops"
            f" (e.g. {largest:g}, where at most ±{_FLOAT_LIMIT:.3g} keeps differences finite);"
            " rescale the image (e.g. to 0..1) before extracting crops"
        )
    if 0 < largest < _FLOAT_TINY:
        raise ValueError(
            f"the image {where} has only pixels below the float32 range inside object crops"
            f" (at most {largest:g}), which are all 0 in float32; rescale the image (e.g. to"
            " 0..1) before extracting crops"
        )
    check_resolution(crops, where)


# Pixels of the largest window read at once for one frame's crops (256 MiB of uint16).
_WINDOW_PIXELS = 2**27


def _workers(tasks: int) -> int:
    """Threads for ``tasks`` independent frames: one per usable core, at most one per task."""
    return max(1, min(usable_cores(), tasks))


def extract_into(
    out: np.ndarray,
    image: h5py.Dataset | np.ndarray,
    time_idx: np.ndarray,
    center_y: np.ndarray,
    center_x: np.ndarray,
    size: int,
    channels: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Fill ``out`` with crops, as :func:`extract_crops` returns them, without a copy.

    Parameters
    ----------
    out : ndarray, shape (n, len(channels), size, size)
        Written in place, in input order; its dtype should be the image's.
    image, time_idx, center_y, center_x, size, channels
        As for :func:`extract_crops`.

    Returns
    -------
    y0, x0 : ndarray of int64, shape (n,)
        The window origins (:func:`crop_origins`).

    Raises
    ------
    ValueError
        As :func:`extract_crops`, except for pixels that cannot be computed with (see
        :func:`check_pixels`).
    """
    shape = tuple(image.shape)
    if len(shape) != 5:
        raise ValueError(
            f"image {describe_image(image)} must have 5 axes (c, t, z, y, x), got shape {shape}"
        )
    n_c, n_t, _, height, width = shape
    time_idx = np.asarray(time_idx, dtype=np.int64)
    n = len(time_idx)
    if not (len(center_y) == len(center_x) == n):
        raise ValueError("time_idx, center_y and center_x must have the same length")
    for c in channels:
        if not 0 <= int(c) < n_c:
            raise ValueError(
                f"channel {c} out of range for {describe_image(image)} with {n_c} channels"
            )
    try:
        y0, x0 = crop_origins(center_y, center_x, size, height, width)
    except ValueError as exc:
        raise ValueError(f"{exc}: {describe_image(image)}") from None
    if n == 0:
        return y0, x0
    if time_idx.min() < 0 or time_idx.max() >= n_t:
        raise ValueError(f"time_idx out of range 0..{n_t - 1} for {describe_image(image)}")

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
    reader = PlaneReader(image)

    def crop_frame(group: tuple[int, slice | np.ndarray]) -> None:
        t, idx = group
        ys, xs = y0[idx], x0[idx]
        # Only the rows/columns spanned by this frame's windows are read.
        r0, r1 = int(ys.min()), int(ys.max()) + size
        q0, q1 = int(xs.min()), int(xs.max()) + size
        if (r1 - r0) * (q1 - q0) > _WINDOW_PIXELS and len(ys) > 1:
            # Cells far apart in a huge image: halve the group along the longer side rather
            # than read (or fail to allocate) the whole span between them.
            rows = np.arange(n)[idx]
            along = ys if r1 - r0 >= q1 - q0 else xs
            half = np.argsort(along, kind="stable")
            crop_frame((t, rows[half[: len(half) // 2]]))
            crop_frame((t, rows[half[len(half) // 2 :]]))
            return
        ys, xs = ys - r0, xs - q0
        for j, plane in enumerate(reader.windows(channels, t, r0, r1, q0, q1)):
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
        Crops in the image's stored dtype, in input order;
        ``crops[i, j, y, x] == image[channels[j], time_idx[i], 0, y0[i] + y, x0[i] + x]``
        with origins from :func:`crop_origins` (windows shifted inside the image;
        :func:`centre_crops` then centres border objects, as
        :func:`napari_cellae.core.crops.collect_crops` does).

    Raises
    ------
    ValueError
        If the crop size exceeds the image, indices are out of range or a crop holds
        pixels that cannot be computed with (:func:`check_pixels`). Messages name the
        dataset and file.
    """
    channels = [int(c) for c in channels]
    if not channels:
        raise ValueError("at least one channel is needed")
    n = len(np.asarray(time_idx))
    out = np.empty((n, len(channels), int(size), int(size)), dtype=image.dtype)
    extract_into(out, image, time_idx, center_y, center_x, size, channels)
    check_pixels(out, describe_image(image), [str(c) for c in channels])
    return out
