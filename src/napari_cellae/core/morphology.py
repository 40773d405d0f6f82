"""Five measurements of each cell's outline, from its mask, beside the learned features.

The learned readout describes shape only as part of hundreds of filter statistics, and a
distance over all of them weighs a cell's outline little. On the benchmark screens a separate
novelty score on five outline measurements, added to the learned features' score, found the
phenotypes that change a nucleus's outline (binuclear, polylobed, grape, small irregular)
far better, and the learned features still lead the same network with random weights
(docs/quality.md). The measurements are those of scikit-image's ``regionprops``, computed for
a whole stack of masks at once:

- ``mask_area``: pixels in the mask;
- ``mask_major_axis``, ``mask_minor_axis``: lengths of the ellipse with the mask's second
  moments (4 standard deviations along its axes);
- ``mask_eccentricity``: of that ellipse, 0 for a circle, towards 1 for a line;
- ``mask_solidity``: area over the area of the mask's convex hull (1 for a convex cell,
  less for lobed, notched or split ones).

The convex hull is the polygon of the support lines of the mask's pixels in
:data:`_DIRECTIONS` directions, whose pixel centres are counted row by row; solidity equals
scikit-image's for most masks (median difference 0) and is at most 3 % below it for lobed
masks, 8 % for thin lines (the polygon's corners reach a little beyond the hull).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "MORPHOLOGY_NAMES",
    "PREFIX",
    "mask_morphology",
    "novelty_views",
]

PREFIX = "mask_"
MORPHOLOGY_NAMES = tuple(
    PREFIX + name for name in ("area", "major_axis", "minor_axis", "eccentricity", "solidity")
)
_DIRECTIONS = 128  # lobed masks: 64, solidity up to 2 % below scikit-image's; 128: 1.5 %
_BUDGET = 4_000_000  # float64 temporaries per chunk of masks (32 MB), whatever their size


def mask_morphology(masks: np.ndarray) -> np.ndarray:
    """The outline measurements (:data:`MORPHOLOGY_NAMES`) of a stack of masks.

    Parameters
    ----------
    masks : ndarray (n, h, w) of bool
        Each cell's pixels (all pixels of the mask count as the cell, also apart).

    Returns
    -------
    ndarray (n, 5) of float32
        Zeros for an empty mask.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be a stack (n, h, w), got shape {masks.shape}")
    out = np.zeros((len(masks), len(MORPHOLOGY_NAMES)), np.float32)
    _, h, w = masks.shape
    chunk = max(1, _BUDGET // max(h * w, 2 * h * _DIRECTIONS))
    for start in range(0, len(masks), chunk):
        part = masks[start : start + chunk]
        out[start : start + len(part)] = _measure(part)
    return out


def _measure(masks: np.ndarray) -> np.ndarray:
    n, h, w = masks.shape
    weights = masks.reshape(n, -1).astype(np.float64)
    yy, xx = (g.ravel().astype(np.float64) for g in np.mgrid[0:h, 0:w])
    area = weights.sum(axis=1)
    safe = np.maximum(area, 1.0)
    cy, cx = weights @ yy / safe, weights @ xx / safe
    # Central second moments from raw ones: no (n, h * w) temporaries.
    myy = weights @ (yy * yy) / safe - cy * cy
    mxx = weights @ (xx * xx) / safe - cx * cx
    mxy = weights @ (yy * xx) / safe - cy * cx
    half_trace = (myy + mxx) / 2
    spread = np.sqrt(np.maximum(half_trace**2 - (myy * mxx - mxy**2), 0.0))
    major = np.maximum(half_trace + spread, 0.0)
    minor = np.maximum(half_trace - spread, 0.0)
    eccentricity = np.sqrt(np.clip(1.0 - minor / np.where(major > 0, major, 1.0), 0.0, 1.0))
    # An empty mask has an empty hull: 0 / 1, not 0 / 0.
    solidity = np.minimum(area / np.maximum(_hull_area(masks), 1.0), 1.0)
    return np.stack(
        [area, 4 * np.sqrt(major), 4 * np.sqrt(minor), eccentricity * (major > 0), solidity],
        axis=1,
    )


def _hull_area(masks: np.ndarray) -> np.ndarray:
    """Pixels in the convex hull of each mask, as scikit-image's ``area_convex`` counts them.

    scikit-image takes the hull of every pixel's four edge midpoints (a diamond of radius
    1/2 around its centre) and counts the pixel centres inside it or on its border. Here the
    hull is the polygon of its support lines in :data:`_DIRECTIONS` directions, and the
    pixel centres are counted row by row between the polygon's left and right edges. Only
    each row's first and last pixel can lie on the hull, so the support function is taken
    over 2 points per row, not over every pixel. (An estimate of the count from the
    polygon's area and perimeter, by Pick's theorem, was 20 % off for thin diagonal masks
    and 2-pixel cells: its perimeter counted the length of a slanted edge, not the pixel
    centres on it.)
    """
    n, h, w = masks.shape
    rows = masks.any(axis=2)
    first = masks.argmax(axis=2)
    last = w - 1 - masks[:, :, ::-1].argmax(axis=2)
    ys = np.arange(h, dtype=np.float64)
    flat_ys = np.broadcast_to(ys, (n, h))
    points = np.concatenate(
        [np.stack([flat_ys, first], axis=-1), np.stack([flat_ys, last], axis=-1)], axis=1
    )  # (n, 2h, 2) as (y, x)
    valid = np.concatenate([rows, rows], axis=1)
    angles = np.arange(_DIRECTIONS) * (2 * np.pi / _DIRECTIONS)
    dy, dx = np.sin(angles), np.cos(angles)
    reach = np.where(valid[..., None], points @ np.stack([dy, dx]), -np.inf).max(axis=1)
    # The diamond around each centre reaches 1/2 along the larger of |dy| and |dx|.
    reach = np.where(np.isfinite(reach), reach + 0.5 * np.maximum(abs(dy), abs(dx)), 0.0)
    # In row y, support line k bounds x: x * dx <= reach - y * dy, from the right where
    # dx > 0, from the left where dx < 0. Directions within 1e-9 of vertical bound the
    # rows, which the mask's first and last row do exactly.
    right, left = dx > 1e-9, dx < -1e-9
    right = ((reach[:, None, right] - ys[:, None] * dy[right]) / dx[right]).min(axis=2)
    left = ((reach[:, None, left] - ys[:, None] * dy[left]) / dx[left]).max(axis=2)
    # Centres on the border count; 1e-7 px absorbs the rounding of the support lines.
    count = np.floor(right + 1e-7) - np.ceil(left - 1e-7) + 1
    top, bottom = rows.argmax(axis=1), h - 1 - rows[:, ::-1].argmax(axis=1)
    inside = (ys >= top[:, None]) & (ys <= bottom[:, None]) & rows.any(axis=1)[:, None]
    return np.where(inside, np.maximum(count, 0.0), 0.0).sum(axis=1)


def novelty_views(names: Sequence[str]) -> list[np.ndarray] | None:
    """The feature columns scored apart for novelty: the outline measurements and the rest.

    Parameters
    ----------
    names : sequence of str
        Feature names, as :func:`~napari_cellae.core.features.cell_feature_names` gives
        them.

    Returns
    -------
    list of ndarray of int, or None
        ``[learned columns, outline columns]``; None when the features hold no outline
        measurements (or nothing else), so that novelty is one score over all of them.
    """
    outline = np.array([str(name).startswith(PREFIX) for name in names], dtype=bool)
    if not outline.any() or outline.all():
        return None
    return [np.flatnonzero(~outline), np.flatnonzero(outline)]
