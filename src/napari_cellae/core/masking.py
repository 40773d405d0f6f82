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
from typing import Any

import numpy as np

__all__ = ["MASKS", "mask_crops", "warn_unlabelled", "warn_unmatched"]

MASKS = ("none", "neighbours", "cell")

# Pixels kept around the cell's own mask in "cell" mode: segmentations are often a pixel or
# two tight, and the edge itself (how sharply the cell ends) is part of its look.
_RIM = 2


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
    background = (labels == 0) & ~hide
    for c in range(crops.shape[1]):
        plane = crops[:, c]
        # The crop's own background level: the median of its visible unlabelled pixels
        # (a crop with none, e.g. inside a cluster, takes its darkest pixel).
        values = np.where(background, plane, np.nan).reshape(n, -1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: handled below
            level = np.nanmedian(values, axis=1)
        level = np.where(np.isnan(level), plane.reshape(n, -1).min(axis=1), level)
        if plane.dtype.kind != "f":
            level = np.rint(level)
        np.copyto(plane, level.astype(plane.dtype).reshape(n, 1, 1), where=hide)
    return found


def _where_and_names(source: object, names: list[str]) -> tuple[str, str]:
    """The message's file prefix (empty without one) and the first five names."""
    shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
    return (f"{source}: " if source is not None else ""), shown


def warn_unlabelled(positions: list, object_name: str, source: object = None) -> None:
    """Say that these positions store no label images, so their cells were told from their
    neighbours by a threshold segmentation of each crop instead.

    Parameters
    ----------
    positions : list of PositionKey
        ``CropSet.unlabelled_positions`` (nothing is said when empty).
    object_name : str
    source : path-like, optional
        The file, named at the start of the message.
    """
    if not positions:
        return
    where, names = _where_and_names(source, [p.label for p in positions])
    warnings.warn(
        f"{where}{len(positions)} position(s) have no label images (image/region) of "
        f"'{object_name}': {names}; each cell was told from its neighbours by thresholding "
        "its crop around the object centres instead, which is less exact at touching cells",
        stacklevel=3,
    )


def warn_unmatched(
    unmatched: list[tuple[Any, int]], object_name: str, source: object = None
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
    """
    _warn_counts(
        unmatched,
        object_name,
        source,
        "have a label id (obj_label_id) that is 0 or not found in the label image "
        "(image/region) around their centre",
        "their crops were left unmasked, so neighbours stay visible in them. Check that the "
        "label images belong to these objects, or use --mask none",
    )


def warn_shared_labels(
    shared: list[tuple[Any, int]], object_name: str, source: object = None
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
    """
    _warn_counts(
        shared,
        object_name,
        source,
        "share their label id (obj_label_id) with another object of the same frame",
        "masking other cells out by label (--mask, Hide in the form) takes such objects for "
        "one cell. Check the file's segmentation, or use --mask none",
    )


def _warn_counts(
    counts: list[tuple[Any, int]], object_name: str, source: object, says: str, advice: str
) -> None:
    """One warning for objects counted per position: ``FILE: N 'obj' object(s) in M
    position(s) <says>: A01_1 (2), ...; <advice>`` (nothing when there are none)."""
    if not counts:
        return
    total = sum(n for _, n in counts)
    where, names = _where_and_names(source, [f"{p.label} ({n})" for p, n in counts])
    warnings.warn(
        f"{where}{total} '{object_name}' object(s) in {len(counts)} position(s) {says}: "
        f"{names}; {advice}",
        stacklevel=4,
    )
