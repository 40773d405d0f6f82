"""Hide what is not the cell: neighbours (or everything but the cell) painted as background.

A crop box around a cell in a dense well also shows parts of its neighbours, so features of
the raw crop describe crowding as much as the cell: a control cell in a dense well looks
"novel". The segmentation's label images (CellH5 ``image/region``) say which pixels belong
to which object, so the other objects' pixels can be replaced by the crop's own background
level:

- ``"none"``: the crop as it is;
- ``"neighbours"``: pixels of other objects become background; the cell and the empty
  background around it stay;
- ``"cell"``: everything farther than a few pixels from the cell's own mask becomes
  background, so only the cell (and its rim) is seen.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae.core.listing import first_few, position_name
from napari_cellae.core.morphology import mask_morphology
from napari_cellae.core.segmentation import neighbour_centres, threshold_labels
from napari_cellae.core.windows import extract_into

if TYPE_CHECKING:  # pragma: no cover - typing only
    from napari_cellae.io.cellh5 import CellH5, PositionKey

__all__ = ["MASKS", "mask_crops", "mask_position", "warn_unlabelled", "warn_unmatched"]

MASKS = ("none", "neighbours", "cell")

# Pixels kept around the cell's own mask in "cell" mode: segmentations are often a pixel or
# two tight, and the edge itself (how sharply the cell ends) is part of its look.
_RIM = 2
# Crops segmented at once where a position has no label images (a few float copies each).
_SEGMENT_CHUNK = 1024


def _grow(mask: np.ndarray, steps: int) -> np.ndarray:
    """Dilate a stack of 2-D masks (n, s, s) by ``steps`` pixels (3 x 3 neighbourhood)."""
    from scipy import ndimage

    structure = np.zeros((3, 3, 3), bool)
    structure[1] = True  # never across crops
    return ndimage.binary_dilation(mask, structure=structure, iterations=steps)


def mask_crops(
    crops: np.ndarray, labels: np.ndarray, own_labels: np.ndarray, mode: str
) -> np.ndarray:
    """Paint the pixels that do not belong to each crop's cell with its background level.

    Parameters
    ----------
    crops : ndarray (n, C, s, s)
        Crops of any numeric dtype; changed in place.
    labels : ndarray (n, s, s) of int
        The label image in the same windows (0 = background).
    own_labels : ndarray (n,) of int
        Label id of each crop's own object.
    mode : {"none", "neighbours", "cell"}
        See the module description.

    Returns
    -------
    ndarray (n,) of bool
        Whether each crop was masked; False where its own label is 0 (background) or not in
        the window (the segmentation and the object table disagree), which leaves the crop
        unchanged (:func:`warn_unmatched` says so).
    """
    if mode not in MASKS:
        raise ValueError(f"unknown mask {mode!r}; choose one of {', '.join(MASKS)}")
    n = len(crops)
    if labels.shape != (n, *crops.shape[2:]) or np.shape(own_labels) != (n,):
        raise ValueError(
            f"labels {labels.shape} and own labels {np.shape(own_labels)} do not match crops "
            f"{crops.shape}"
        )
    own_labels = np.asarray(own_labels).reshape(n, 1, 1)
    own = labels == own_labels
    # Label 0 is the background: "its" pixels are everything but the cells.
    found = own.any(axis=(1, 2)) & (own_labels[:, 0, 0] != 0)
    if mode == "none" or n == 0:
        return np.zeros(n, bool) if mode == "none" else found
    if mode == "neighbours":
        hide = (labels != 0) & ~own
    else:
        hide = ~_grow(own, _RIM)
    hide &= found[:, None, None]
    unlabelled = labels == 0
    visible = unlabelled & ~hide
    # A crop inside a cluster has no background on its rim: its box's other background
    # pixels say the level instead (not its darkest pixel, a noise extreme that moved with
    # every neighbour beyond the rim); a box without any keeps the darkest pixel.
    rimless = ~visible.any(axis=(1, 2))
    background = np.where(rimless[:, None, None], unlabelled, visible)
    for c in range(crops.shape[1]):
        plane = crops[:, c]
        # The crop's own background level: the lower median of its background pixels. A
        # pixel value, not the mean of the two middle ones rounded: that rounded x.5 to
        # even, so an image's gain, an offset or its 8-bit copy in 12 bits moved the level
        # by half a count for a quarter of a 12-bit screen's cells.
        values = np.where(background, plane, np.nan).reshape(n, -1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: handled below
            level = np.nanquantile(values, 0.5, axis=1, method="lower")
        level = np.where(np.isnan(level), plane.reshape(n, -1).min(axis=1), level)
        np.copyto(plane, level.astype(plane.dtype).reshape(n, 1, 1), where=hide)
    return found


def mask_position(
    cellh5: CellH5,
    pos: PositionKey,
    object_name: str,
    table: Any,
    crops: np.ndarray,
    mode: str,
    origins: tuple[np.ndarray, np.ndarray],
    whole: tuple[Any, np.ndarray],
    channels: list[int],
) -> tuple[int | None, np.ndarray]:
    """Mask one position's crops (in place) and measure every cell's outline.

    Parameters
    ----------
    cellh5 : CellH5
    pos : PositionKey
    object_name : str
    table : ObjectTable
        The rows of the position's objects that ``crops`` hold; where the file stores no
        label ids (``labels_stored`` False) each object's label is the label image's at
        its centre.
    crops : ndarray (n, C, s, s)
        Cut at the in-image window ``origins`` (top, left), not yet centred.
    mode : {"neighbours", "cell"}
    origins : (ndarray, ndarray)
    whole : (ObjectTable, ndarray)
        The position's full table and the rows of it that ``table`` holds: without label
        images, each crop is split from *all* the position's object centres.
    channels : list of int
        The raw channels of the crops (to segment the one the objects were segmented in).

    Returns
    -------
    (int or None, ndarray (n, 5) of float32)
        How many crops' labels were not found in the label images (those are left
        unmasked), or None where the position has no label images (its crops are masked
        with a threshold segmentation around the object centres, in the channel the
        objects were segmented in where the crops hold it (else their first channel),
        :mod:`napari_cellae.core.segmentation`); and each cell's outline measurements
        (:func:`~napari_cellae.core.morphology.mask_morphology`) of its mask, from the
        segmentation where the label image has none.
    """
    found = cellh5.labels(pos, object_name)
    if found is None:
        pixels = _to_segment(cellh5, object_name, channels, crops)
        windows = _segmented(pixels, table, origins, whole, np.arange(len(crops)))
        for start in range(0, len(crops), _SEGMENT_CHUNK):  # bounded memory
            part = slice(start, start + _SEGMENT_CHUNK)
            mask_crops(crops[part], windows[part], np.ones(len(windows[part]), np.uint8), mode)
        return None, mask_morphology(windows == 1)
    dataset, row = found
    labels = np.empty((len(table), 1, *crops.shape[2:]), dtype=dataset.dtype)
    extract_into(
        labels, dataset, table.time_idx, table.center_y, table.center_x, crops.shape[-1], [row]
    )
    labels = labels[:, 0]
    ids = np.asarray(table.label_id)
    if not table.labels_stored:
        # No obj_label_id: its row numbers are no labels (nor the same after a reordering,
        # or in a later frame); the object is the region under its centre.
        y0, x0 = origins
        rows = np.arange(len(labels))
        ids = labels[rows, table.center_y - y0, table.center_x - x0].astype(np.int64)
    own = labels == ids.reshape(-1, 1, 1)
    missed = np.flatnonzero(~mask_crops(crops, labels, ids, mode))
    outline = mask_morphology(own)
    if len(missed):  # no label of its own to measure: its segmentation (it stays unmasked)
        pixels = _to_segment(cellh5, object_name, channels, crops)
        outline[missed] = mask_morphology(_segmented(pixels, table, origins, whole, missed) == 1)
    return len(missed), outline


def _to_segment(
    cellh5: CellH5, object_name: str, channels: list[int], crops: np.ndarray
) -> np.ndarray:
    """The crops' channel the objects were segmented in (the file's region table), where
    they hold it, else their first."""
    own = cellh5.object_channel(object_name) if cellh5.records_object_channels else None
    return crops[:, channels.index(own) if own in channels else 0]


def _segmented(
    pixels: np.ndarray,
    table: Any,
    origins: tuple[np.ndarray, np.ndarray],
    whole: tuple[Any, np.ndarray],
    rows: np.ndarray,
) -> np.ndarray:
    """Threshold segmentation windows (the cell 1) of the crops at ``rows`` (``pixels``:
    their channel to segment, n x s x s)."""
    y0, x0 = origins
    full, take = whole
    # A window's pixels lie within sqrt(2) S of its object's centre (a border window is
    # shifted, not cut), so an object up to twice that away may be nearer to one of them.
    reach = 2 * np.sqrt(2) * max(pixels.shape[-2:])
    others = neighbour_centres(full.time_idx, full.center_y, full.center_x, reach)
    others = others[take][rows] - np.stack([y0, x0], axis=-1)[rows, None, :].astype(np.float32)
    cy, cx = table.center_y[rows] - y0[rows], table.center_x[rows] - x0[rows]
    windows = np.empty((len(rows), *pixels.shape[1:]), np.uint8)
    for start in range(0, len(rows), _SEGMENT_CHUNK):  # bounded memory
        part = slice(start, start + _SEGMENT_CHUNK)
        windows[part] = threshold_labels(pixels[rows[part]], cy[part], cx[part], others[part])
    return windows


def _where_and_names(source: object, names: list[str]) -> tuple[str, str]:
    """The message's file prefix (empty without one) and the first five names."""
    return (f"{source}: " if source is not None else ""), first_few(names, 5)


def _name(key: Any, source: object, with_plates: bool | None) -> str:
    """A position's name: with its plate for several plates (``source`` None by default)."""
    return position_name(key, source is None if with_plates is None else with_plates)


def warn_unlabelled(
    positions: list, object_name: str, source: object = None, with_plates: bool | None = None
) -> None:
    """Say that these positions store no label images, so their cells were told from their
    neighbours by a threshold segmentation of each crop instead.

    Parameters
    ----------
    positions : list of PositionKey
        ``CropSet.unlabelled_positions`` (nothing is said when empty).
    object_name : str
    source : path-like, optional
        The file, named at the start of the message.
    with_plates : bool, optional
        Name each position with its plate (``plate1/C03_1``); default: without ``source``.
    """
    if not positions:
        return
    where, names = _where_and_names(source, [_name(p, source, with_plates) for p in positions])
    warnings.warn(
        f"{where}{len(positions)} position(s) have no label images (image/region) of "
        f"'{object_name}': {names}; each cell was told from its neighbours by thresholding "
        "its crop around the object centres instead, which is less exact at touching cells",
        stacklevel=3,
    )


def warn_unmatched(
    unmatched: list[tuple[Any, int]],
    object_name: str,
    source: object = None,
    with_plates: bool | None = None,
) -> None:
    """Say that some objects' label ids were not found in the label images, so their crops
    were left unmasked (their features also describe their neighbours).

    Parameters
    ----------
    unmatched : list of (PositionKey, int)
        Positions and how many of their crops :func:`mask_crops` could not mask (nothing is
        said when empty).
    object_name : str
    source : path-like, optional
        The file, named at the start of the message.
    with_plates : bool, optional
        Name each position with its plate (``plate1/C03_1``); default: without ``source``.
    """
    _warn_counts(
        unmatched,
        object_name,
        source,
        with_plates,
        "have a label id (obj_label_id) that is 0 or not found in the label image "
        "(image/region) around their centre",
        "their crops were left unmasked, so neighbours stay visible in them. Check that the "
        "label images belong to these objects, or use --mask none",
    )


def warn_shared_labels(
    shared: list[tuple[Any, int]],
    object_name: str,
    source: object = None,
    with_plates: bool | None = None,
) -> None:
    """Say that some objects share their label id with another object of the same frame, so
    masking by label took them for one cell (each keeps the other in its crop).

    Parameters
    ----------
    shared : list of (PositionKey, int)
        ``CropSet.shared_label_positions`` (nothing is said when empty).
    object_name : str
    source : path-like, optional
        The file, named at the start of the message.
    with_plates : bool, optional
        Name each position with its plate (``plate1/C03_1``); default: without ``source``.
    """
    _warn_counts(
        shared,
        object_name,
        source,
        with_plates,
        "share their label id (obj_label_id) with another object of the same frame",
        "masking other cells out by label (--mask, Hide in the form) takes such objects for "
        "one cell. Check the file's segmentation, or use --mask none",
    )


def _warn_counts(
    counts: list[tuple[Any, int]],
    object_name: str,
    source: object,
    with_plates: bool | None,
    says: str,
    advice: str,
) -> None:
    """One warning for objects counted per position: ``FILE: N 'obj' object(s) in M
    position(s) <says>: A01_1 (2), ...; <advice>`` (nothing when there are none)."""
    if not counts:
        return
    total = sum(n for _, n in counts)
    named = [f"{_name(p, source, with_plates)} ({n})" for p, n in counts]
    where, names = _where_and_names(source, named)
    warnings.warn(
        f"{where}{total} '{object_name}' object(s) in {len(counts)} position(s) {says}: "
        f"{names}; {advice}",
        stacklevel=4,
    )
