"""Crops of every object of one type in a CellH5 file, with per-crop metadata.

:func:`collect_crops` reads the object tables of the chosen positions, allocates one crop
array and fills it position by position with :mod:`napari_cellae.core.windows` (frame-wise
reads, a vectorised gather, no per-object HDF5 read) and centres every object in its crop,
also at the image border (:func:`~napari_cellae.core.windows.centre_crops`). Crops keep
their stored dtype; :class:`~napari_cellae.core.normalisation.Normalisation` is the one
place that converts them to float. Both, with :func:`crop_origins` and
:func:`extract_crops`, are importable from here.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae.core.blank import blank_crops
from napari_cellae.core.masking import MASKS, mask_position
from napari_cellae.core.morphology import MORPHOLOGY_NAMES
from napari_cellae.core.normalisation import Normalisation
from napari_cellae.core.saturation import clipped_at
from napari_cellae.core.windows import (
    centre_crops,
    check_pixels,
    crop_origins,
    extract_crops,
    extract_into,
)
from napari_cellae.io.tiles import warn_unwritten_tiles

if TYPE_CHECKING:  # pragma: no cover - typing only
    from napari_cellae.io.cellh5 import CellH5, PositionKey

__all__ = [
    "CropSet",
    "Normalisation",
    "check_box",
    "collect_crops",
    "crop_origins",
    "extract_crops",
]


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
        Top-left corner of the crop window centred on the object (``center - S // 2``),
        in image pixels; negative or reaching past the image at its border, where the
        parts outside the image hold the crop's background level.
    object_name : str
    channels : list of int
        Raw channel indices of the crop channels.
    channel_names : list of str
    source : Path
        The CellH5 file the crops came from.
    box : int
        Edge of each crop's window in image pixels; the crops are ``S`` px, which differs
        once they are resampled to a network's input size (:mod:`~napari_cellae.core.resample`).
    mask : str
        How other objects were hidden (:data:`napari_cellae.core.masking.MASKS`).
    unlabelled_positions : list of PositionKey
        Positions that store no label images: their crops were masked with a segmentation
        of the crops themselves (:mod:`napari_cellae.core.segmentation`).
    unmatched_positions : list of (PositionKey, int)
        Positions with objects whose label id is 0 or not in the label image around their
        centre, and how many: those crops were left unmasked.
    shared_label_positions : list of (PositionKey, int)
        Positions whose objects share a label id within a frame, and how many (recorded when
        masking, which takes such objects for one cell).
    morphology : ndarray (N, 5) of float32
        Each cell's outline measurements (:mod:`~napari_cellae.core.morphology`) from the
        mask that masking used; NaN where the crops were not masked (``mask="none"``).
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
    box: int
    mask: str = "none"
    unlabelled_positions: list[PositionKey] = field(default_factory=list)
    unmatched_positions: list[tuple[PositionKey, int]] = field(default_factory=list)
    shared_label_positions: list[tuple[PositionKey, int]] = field(default_factory=list)
    morphology: np.ndarray | None = None  # None: not measured (NaN)
    clipped_at: np.ndarray | None = None  # None: not counted (0, see core.saturation)
    blank: np.ndarray | None = None  # None: not checked (False, see core.blank)

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
        "morphology",
        "clipped_at",
        "blank",
    )

    def __post_init__(self) -> None:
        if self.morphology is None:
            self.morphology = np.full((len(self), len(MORPHOLOGY_NAMES)), np.nan, np.float32)
        if self.clipped_at is None:
            self.clipped_at = np.zeros(len(self), np.int64)
        if self.blank is None:
            self.blank = np.zeros(len(self), bool)

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
            box=self.box,
            mask=self.mask,
            unlabelled_positions=list(self.unlabelled_positions),
            unmatched_positions=list(self.unmatched_positions),
            shared_label_positions=list(self.shared_label_positions),
            **kwargs,
        )


def collect_crops(
    cellh5: CellH5,
    object_name: str,
    size: int,
    channels: list[int] | None = None,
    positions: list[PositionKey] | None = None,
    mask: str = "none",
    rows: list[np.ndarray] | None = None,
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
    mask : {"none", "neighbours", "cell"}
        Paint other objects' pixels (``"neighbours"``) or all but the cell and its rim
        (``"cell"``) with the crop's background level, using the file's label images
        (:mod:`napari_cellae.core.masking`). Positions without label images are masked
        with a threshold segmentation of their crops instead
        (:mod:`napari_cellae.core.segmentation`) and listed in
        ``CropSet.unlabelled_positions``. Crops whose object's label id is 0 or not in the
        label image are left unmasked and counted in ``CropSet.unmatched_positions``. Images
        with several z-planes are cropped in the first plane, with a UserWarning.
    rows : list of ndarray of int, optional
        Per position of ``positions``, the object table rows to crop (sorted); default all.

    Returns
    -------
    CropSet
        All crops in one contiguous array of the stored dtype, positions in the given order
        and objects in CellH5 order within each position; every object centre at
        ``(size // 2, size // 2)`` of its crop, also at the image border.

    Raises
    ------
    ValueError
        If the crop size is larger than a position's image (naming the file, position
        and sizes), a channel does not exist, or a crop holds pixels that cannot be
        computed with (NaN, beyond float32, 64-bit integers beyond 2**53).
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
    named = [f"'{by_index[c]}'" for c in channels]  # as pixel checks name them
    if positions is None:
        positions = list(cellh5.positions)
    size = int(size)

    # First pass: object tables only (cheap), so the crop array is allocated once.
    used: list[PositionKey] = []
    tables = []
    images = []
    stacked: list[int] = []
    takes: list[np.ndarray] = []  # the rows cut of each used position's table
    shared: list[tuple[PositionKey, int]] = []
    for i, pos in enumerate(positions):
        table = cellh5.objects(pos, object_name)
        take = np.arange(len(table)) if rows is None else np.asarray(rows[i], np.intp)
        if len(take) and (take.min() < 0 or take.max() >= len(table)):
            where = f"{cellh5.path}, position {pos.label}"
            raise ValueError(f"{where}: holds {len(table)} objects, fewer than asked; changed?")
        image = cellh5.image(pos)  # a lazy handle: shape and dtype without reading pixels
        if int(image.shape[2]) > 1:
            stacked.append(int(image.shape[2]))
        check_box(cellh5, pos, size)
        if len(take) == 0:
            continue
        used.append(pos)
        if mask != "none" and table.shared_labels:
            shared.append((pos, table.shared_labels))
        tables.append(table)
        takes.append(take)
        images.append(image)
    if stacked:  # objects carry no z coordinate: CellCognition segments one plane
        # One text per file, not per position: a streamed run crops position by position.
        warnings.warn(
            f"{cellh5.path}: the images have several z-planes (up to {max(stacked)}); crops "
            "are cut from the first plane only",
            stacklevel=2,
        )
    dtype = np.result_type(*[im.dtype for im in images]) if images else np.dtype(np.uint8)
    whole, tables = tables, [_take(t, k) for t, k in zip(tables, takes, strict=True)]
    total = sum(len(t) for t in tables)
    crops = np.empty((total, len(channels), size, size), dtype=dtype)
    origin_y = np.empty(total, dtype=np.int32)
    origin_x = np.empty(total, dtype=np.int32)

    if mask not in MASKS:
        raise ValueError(f"unknown mask {mask!r}; choose one of {', '.join(MASKS)}")
    unlabelled: list[PositionKey] = []
    unmatched: list[tuple[PositionKey, int]] = []
    outline = np.full((total, len(MORPHOLOGY_NAMES)), np.nan, np.float32)  # unmasked: unknown
    clipped, blank = np.zeros(total, np.int64), np.zeros(total, bool)
    start = 0
    for pos, table, image, full, take in zip(used, tables, images, whole, takes, strict=True):
        stop = start + len(table)
        direct = np.dtype(image.dtype) == dtype
        # Mixed dtypes across positions: cut, mask and centre in the position's own dtype (as
        # a position cropped alone, streamed or sampled for training is), then widen.
        target = (
            crops[start:stop]
            if direct
            else np.empty((len(table), len(channels), size, size), dtype=image.dtype)
        )
        y0, x0 = extract_into(
            target, image, table.time_idx, table.center_y, table.center_x, size, channels
        )
        where = f"{cellh5.path}, position {pos.label}"
        check_pixels(target, where, named)
        if mask != "none":
            missed, outline[start:stop] = mask_position(
                cellh5, pos, object_name, table, target, mask, (y0, x0), (full, take), channels
            )
            if missed is None:
                unlabelled.append(pos)
            elif missed:
                unmatched.append((pos, missed))
        clipped[start:stop] = clipped_at(target)  # after masking
        blank[start:stop] = blank_crops(target)
        tile_args = (image, channels, table.time_idx, (y0, x0), size)  # partly fill values?
        warn_unwritten_tiles(*tile_args, where, blank[start:stop])
        # Centred only now: masking reads the label windows at the in-image origins.
        origin_y[start:stop], origin_x[start:stop] = centre_crops(
            target, table.center_y, table.center_x, y0, x0
        )
        if not direct:
            crops[start:stop] = target
        start = stop

    def cat(values: list[np.ndarray], dt: Any, width: int | None = None) -> np.ndarray:
        if not values:
            return np.empty((0,) if width is None else (0, width), dtype=dt)
        return np.concatenate([np.asarray(v, dtype=dt) for v in values])

    def optional(attr: str, dt: Any, fill: float) -> np.ndarray:
        parts = [getattr(t, attr) for t in tables]
        full = [
            np.full(len(t), fill) if p is None else p for p, t in zip(parts, tables, strict=True)
        ]
        return cat(full, dt)

    return CropSet(
        crops=crops,
        positions=used,
        position_index=cat(
            [np.full(len(t), i, dtype=np.int32) for i, t in enumerate(tables)], np.int32
        ),
        object_index=cat(takes, np.int32),
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
        box=size,
        mask=mask,
        unlabelled_positions=unlabelled,
        unmatched_positions=unmatched,
        shared_label_positions=shared,
        morphology=outline,
        clipped_at=clipped,
        blank=blank,
    )


def check_box(cellh5: CellH5, key: PositionKey, size: int) -> None:
    """Raise, naming the file and position, if a position's images are smaller than the
    crop box ``size``."""
    height, width = cellh5.image_shape(key)[-2:]
    if size > height or size > width:
        raise ValueError(
            f"{cellh5.path}, position {key.label}: crop size {size} px is larger than the "
            f"image ({height} x {width} px, height x width); choose a cell size of at most"
            f" {min(height, width)} px (--crop-size, 'Cell size' in the widget)"
        )


def _take(table: Any, rows: np.ndarray) -> Any:
    """An object table's ``rows`` (the table itself when that is all of them, in order)."""
    if len(rows) == len(table) and np.array_equal(rows, np.arange(len(table))):
        return table
    values = {f.name: getattr(table, f.name) for f in fields(table)}  # per-object arrays
    return replace(table, **{k: v[rows] for k, v in values.items() if isinstance(v, np.ndarray)})
