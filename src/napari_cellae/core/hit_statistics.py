"""Hit lists: wells (or conditions) ranked by their novel cells, and how sure each is.

:func:`hit_table` ranks groups (positions or conditions) by their share of novel cells,
which puts 3 novel cells of 4 (75 %) above 300 of 450 (67 %), although the first could
be chance. Its p-value says how likely a group's count of novel cells would be if its
cells were drawn like the control wells' cells, so that it weighs how many cells the group
holds:

- How the p-value is computed (a beta-binomial over the control wells' spread, as sure as
  the control wells allow): :mod:`napari_cellae.core.hit_p_values`.
- ``q_value``: Benjamini-Hochberg adjusted p-values over all groups tested, the share of
  false discoveries expected among groups at or below that value.
- A time-lapse lists every cell once per frame. Its rows are not so many cells: a cell
  novel in one frame is novel in the next, so counting each row as a cell made p-values
  as sure as 40 frames times the cells (null wells of 50 cells in 40 frames had p below
  0.05 twice as often as p says with 8 control wells, four times with 2). Each row weighs
  ``1 / frames`` of its position (:func:`frame_weights`), so that a well counts the cells
  of a frame: cells that change from frame to frame are then counted too few times, which
  leaves p on the cautious side.

The test is one-sided (more novel cells than the controls): a well with fewer novel cells
than the controls is not a hit.
"""

from __future__ import annotations

import numpy as np

from napari_cellae.core.hit_p_values import enrichment_p_values, whole_cells

__all__ = ["enrichment_p_values", "frame_weights", "hit_table", "q_values"]


def frame_weights(positions: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """How much of a cell each row is: 1 / the number of frames its position has rows in.

    Parameters
    ----------
    positions, frames : ndarray (N,)
        Position and frame of every row (any values that compare).

    Returns
    -------
    ndarray (N,) of float64
        1 where every position has one frame.
    """
    position_ids = np.unique(positions, return_inverse=True)[1].ravel().astype(np.int64)
    frame_ids = np.unique(frames, return_inverse=True)[1].ravel().astype(np.int64)
    if not len(position_ids):
        return np.ones(0)
    stride = int(frame_ids.max()) + 1
    pairs = np.unique(position_ids * stride + frame_ids)
    n_frames = np.bincount(pairs // stride, minlength=int(position_ids.max()) + 1)
    return 1.0 / n_frames[position_ids]


def q_values(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN stays NaN and is not counted).

    Parameters
    ----------
    p_values : ndarray of float

    Returns
    -------
    ndarray of float
    """
    from scipy.stats import false_discovery_control

    p_values = np.asarray(p_values, np.float64)
    out = np.full(p_values.shape, np.nan)
    tested = ~np.isnan(p_values)
    if tested.any():
        out[tested] = false_discovery_control(p_values[tested])
    return out


def hit_table(
    novel: np.ndarray,
    groups: np.ndarray,
    controls: np.ndarray,
    labels: list[str] | None = None,
    wells: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    weights: np.ndarray | None = None,
):
    """Rank groups (positions or conditions) by their share of novel cells.

    Parameters
    ----------
    novel : ndarray (N,) bool
    groups : ndarray (N,) of int
        Group index of every cell (e.g. position index).
    controls : ndarray (N,) bool
        Negative-control cells; a group is a control group when all its cells are controls.
    labels : list of str, optional
        Name of every group index (default: the index).
    wells : ndarray (N,) of int, optional
        Well (or position) of every cell: the robust z-score compares each group's novel
        fraction with those of the control wells. Default: ``groups`` (right when the
        groups are wells or positions; give the wells when the groups are conditions).
    scores : ndarray (N,) float, optional
        Novelty scores; adds a ``median_novelty`` column.
    weights : ndarray (N,) float, optional
        How much of a cell each row is (:func:`frame_weights`, for a time-lapse): the
        p-values and the robust z's floor count cells so; ``n_cells`` counts the rows.

    Returns
    -------
    pandas.DataFrame
        One row per group holding cells: ``group``, ``n_cells``, ``n_novel``,
        ``novel_fraction``, ``enrichment`` (novel fraction over that of all control cells;
        where no control cell is novel, over half a novel control cell's share),
        ``robust_z`` (against the control wells'
        novel fractions: median and 1.4826 MAD, the MAD floored at one cell of a median
        control well), ``p_value`` and ``q_value`` (one-sided, against the control wells'
        cells; :mod:`napari_cellae.core.hit_p_values`), ``median_novelty`` (with
        ``scores``), ``is_control`` and ``rank`` (1 = strongest hit: largest novel
        fraction), sorted by rank.
    """
    import pandas as pd

    novel = np.asarray(novel, bool)
    groups = np.asarray(groups, np.int64)
    controls = np.asarray(controls, bool)
    if not novel.shape == groups.shape == controls.shape:
        raise ValueError(
            f"novel {novel.shape}, groups {groups.shape} and controls {controls.shape} "
            "must have one entry per cell"
        )
    present, index = np.unique(groups, return_inverse=True)
    n_cells = np.bincount(index, minlength=len(present))
    n_novel = np.bincount(index, weights=novel, minlength=len(present)).astype(np.int64)
    is_control = np.bincount(index, weights=controls, minlength=len(present)) == n_cells
    fraction = n_novel / np.maximum(n_cells, 1)
    # Where no control cell is novel (a high percentile, few controls), half a novel
    # control cell, as the p-values count: a finite ratio that still ranks, not "inf".
    n_controls = int(controls.sum())
    control_fraction = max(float(novel[controls].sum()), 0.5) / n_controls if n_controls else np.nan
    wells = groups if wells is None else wells
    median, spread = _control_well_spread(novel, controls, wells, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        enrichment = fraction / control_fraction
    columns = {
        "group": [labels[g] if labels is not None else str(g) for g in present],
        "n_cells": n_cells,
        "n_novel": n_novel,
        "novel_fraction": fraction,
        "enrichment": enrichment,
        "robust_z": (fraction - median) / spread,
    }
    p_values = enrichment_p_values(novel, groups, controls, wells, weights)
    columns |= {"p_value": p_values, "q_value": q_values(p_values)}
    if scores is not None:
        scores = np.asarray(scores, np.float64)
        order = np.argsort(index, kind="stable")
        parts = np.split(scores[order], np.cumsum(n_cells)[:-1]) if len(present) else []
        columns["median_novelty"] = [float(np.median(p)) for p in parts]
    columns["is_control"] = is_control
    table = pd.DataFrame(columns)
    table["rank"] = table["novel_fraction"].rank(ascending=False, method="min").astype(int)
    return table.sort_values(["rank", "group"], kind="stable").reset_index(drop=True)


def _control_well_spread(
    novel: np.ndarray, controls: np.ndarray, wells: np.ndarray, weights: np.ndarray | None
) -> tuple[float, float]:
    """Median and robust spread of the control wells' novel fractions (NaN without any)."""
    wells = np.asarray(wells)
    if wells.shape != novel.shape:
        raise ValueError(f"wells {wells.shape} must have one entry per cell ({novel.shape})")
    _, index = np.unique(wells, return_inverse=True)
    n = np.bincount(index)
    all_control = np.bincount(index, weights=controls) == n
    if not all_control.any():
        return np.nan, np.nan
    ref = (np.bincount(index, weights=novel) / np.maximum(n, 1))[all_control]
    if weights is not None:  # the floor below counts cells, not a time-lapse's rows
        n = whole_cells(np.bincount(index, weights=np.asarray(weights, np.float64)))
    median = float(np.median(ref))
    # 1.4826 MAD estimates the standard deviation of normal data; the floor (one cell of a
    # median control well) keeps a perfectly flat set of control wells from making every
    # z infinite.
    mad = 1.4826 * float(np.median(np.abs(ref - median)))
    return median, max(mad, 1.0 / max(int(np.median(n[all_control])), 1))
