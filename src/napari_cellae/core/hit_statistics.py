"""Hit lists: wells (or conditions) ranked by their novel cells, and how sure each is.

:func:`hit_table` ranks groups (positions or conditions) by their share of novel cells,
which puts 3 novel cells of 4 (75 %) above 300 of 450 (67 %), although the first could
be chance. Its p-value says how likely a group's
count of novel cells would be if its cells were drawn like the control wells' cells, so
that it weighs how many cells the group holds:

- Under that null hypothesis each well's count of novel cells is beta-binomial: its cells
  are novel with the controls' rate ``p``, and that rate itself varies from well to well as
  much as it does between the control wells (the overdispersion ``rho``; 0, a plain
  binomial, where fewer than two control wells hold cells or their fractions are alike).
  Where no control cell is novel (or every one), the rate is taken half a cell from that
  edge, ``(k + 0.5) / (n + 1)``: a rate of 0 made one novel cell a certain hit.
- Neither is known, only estimated from the control wells, and p counts both: the rate's
  own variance (its cells, spread as the wells are) is added to the group's, and the
  spread is averaged over what ``W`` control wells allow (the variance of their fractions
  on ``W - 1`` degrees of freedom, :func:`_spread_nodes`). For large wells that is the
  t-test of a new well against the control wells. Taken as known, they gave a false
  q < 0.05 in up to half of the screens whose wells differ by 3 to 7 points; now at most
  10 % (``benchmarks/bench_hit_calibration.py``). The price: with few control wells no hit
  is very sure (4 wells: p about 1e-4 at best).
- A group spread over several wells (a condition) sums independent such counts; its null
  distribution is taken as the beta-binomial of the same mean and variance.
- A control group is tested against the *other* control wells' rate, so that its own
  cells do not set the rate it is compared with (the spread stays that of all control
  wells: without the tested one it is smallest just when that one stands out).
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

__all__ = ["enrichment_p_values", "frame_weights", "hit_table", "q_values"]

_MAX_RHO = 0.5  # beyond this, wells would hold anything from none to all novel cells
_NODES = 192  # bin edges of the spreads p is averaged over (_spread_nodes)
_GRID = np.geomspace(1e-7, _MAX_RHO, 128)  # spreads whose tails are computed


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


def enrichment_p_values(
    novel: np.ndarray,
    groups: np.ndarray,
    controls: np.ndarray,
    wells: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """One-sided p-value of each group's count of novel cells against the control wells.

    Parameters
    ----------
    novel : ndarray (N,) bool
        Whether each cell is novel.
    groups : ndarray (N,) of int
        Group of every cell (a position or a condition).
    controls : ndarray (N,) bool
        Negative-control cells; a control well is a well whose cells all are controls.
    wells : ndarray (N,) of int
        Well of every cell (the unit whose rate of novel cells varies).
    weights : ndarray (N,) of float, optional
        How much of a cell each row is (:func:`frame_weights`: a time-lapse lists a cell
        once per frame); the counts are rounded to whole cells. Default: 1 each.

    Returns
    -------
    ndarray (G,) of float
        For every group, in the order of ``numpy.unique(groups)``: the probability of at
        least its count of novel cells under the control wells' model. NaN where no other
        control well holds cells to compare with.
    """
    novel, controls = np.asarray(novel, bool), np.asarray(controls, bool)
    group_ids = np.unique(groups, return_inverse=True)[1]
    well_ids = np.unique(wells, return_inverse=True)[1]
    n_groups, n_wells = int(group_ids.max(initial=-1)) + 1, int(well_ids.max(initial=-1)) + 1
    weights = np.ones(len(novel)) if weights is None else np.asarray(weights, np.float64)
    well_rows = np.bincount(well_ids, minlength=n_wells)
    well_cells = np.bincount(well_ids, weights=weights, minlength=n_wells)
    well_novel = np.bincount(well_ids, weights=weights * novel, minlength=n_wells)
    control_well = (np.bincount(well_ids, weights=controls, minlength=n_wells) == well_rows) & (
        well_rows > 0
    )
    # a group's parts: its cells in each well it has cells in
    pairs, pair_ids = np.unique(group_ids * n_wells + well_ids, return_inverse=True)
    part_cells = np.bincount(pair_ids, weights=weights).astype(np.float64)
    part_group, part_well = pairs // n_wells, pairs % n_wells

    reference = _control_rate(well_novel[control_well], well_cells[control_well])
    if reference is None:
        return np.full(n_groups, np.nan)
    rho, node_weight = _spread_nodes(well_novel[control_well], well_cells[control_well])
    # a perturbed group: against every control well (its rate, and the cells that set it)
    rate, ref_cells, ref_pairs = (np.full(n_groups, value) for value in reference)
    for g in np.unique(part_group[control_well[part_well]]):
        # a control group: against the other control wells' rate. The spread stays that of
        # all of them: estimated without the one tested, it is smallest just when that one
        # stands out.
        others = control_well.copy()
        others[part_well[part_group == g]] = False
        found = _control_rate(well_novel[others], well_cells[others])
        rate[g], ref_cells[g], ref_pairs[g] = (np.nan,) * 3 if found is None else found

    # whole cells: the binomial counts them (a weighted time-lapse's are fractions)
    total = np.bincount(part_group, weights=part_cells, minlength=n_groups).round()
    count = np.bincount(group_ids, weights=weights * novel, minlength=n_groups).round()
    pairs_in = np.bincount(part_group, weights=part_cells * (part_cells - 1), minlength=n_groups)
    # Tails at a few spreads (or the one), the bins' in between interpolated (log-log).
    grid = rho if len(rho) == 1 else _GRID
    with np.errstate(invalid="ignore", divide="ignore"):
        # Variance over p(1 - p), for each spread rho (G x grid): the group's parts'
        # beta-binomials, sum m_j (1 + (m_j - 1) rho), plus total^2 Var(rate) / p(1 - p), as
        # the rate is itself estimated from the control cells: sum n (1 + (n - 1) rho) / N^2.
        # Taken as one beta-binomial of that mean and variance.
        excess = (
            pairs_in[:, None] * grid
            + total[:, None] ** 2
            * (ref_cells[:, None] + ref_pairs[:, None] * grid)
            / ref_cells[:, None] ** 2
        )
        rho_total = excess / total[:, None] / (total[:, None] - 1)
        rho_total = np.where(np.isfinite(rho_total), np.clip(rho_total, 0.0, _MAX_RHO), 0.0)
        spread = np.where(rho_total > 1e-9, 1 / rho_total - 1, np.inf)
    tails = _upper_tails(count, total, rate, spread)
    if len(rho) > 1:
        tails = np.exp(np.log(np.maximum(tails, 1e-300)) @ _interpolation(grid, rho))
    out = tails @ node_weight
    out[np.isnan(rate)] = np.nan
    return np.clip(out, 0.0, 1.0)


def _upper_tails(
    count: np.ndarray, total: np.ndarray, rate: np.ndarray, spread: np.ndarray
) -> np.ndarray:
    """P(X >= count) for each group (rows) and spread (columns), X beta-binomial.

    Summed from the probabilities on the shorter side: the upper tail itself above the
    mean (scipy's tail, one minus its distribution function, was off by some 1e-13 and 0
    below 1e-16, which reordered the strongest hits), one minus the lower one below it.
    Each sum runs by the ratio of successive probabilities from the first one, 500
    thousand terms at a time; binomial ones (spread inf) are scipy's, which is exact.
    """
    from scipy import stats

    shape = spread.shape
    k, n = np.broadcast_to(count[:, None], shape), np.broadcast_to(total[:, None], shape)
    p = np.broadcast_to(rate[:, None], shape)
    with np.errstate(invalid="ignore"):
        tails = stats.binom.sf(k - 1, n, p)
    pick = np.isfinite(spread) & np.isfinite(p) & (n > 0)
    k, n, p, s = k[pick], n[pick], p[pick], spread[pick]
    a, b = p * s, (1 - p) * s
    upper = k > n * p
    start = np.where(upper, k, 0.0)
    length = np.where(upper, n - k + 1, k).astype(np.int64)
    first_term = stats.betabinom.logpmf(start, n, a, b)
    summed = np.zeros(len(k))
    ends = np.cumsum(length)
    lo = 0
    while lo < len(k):  # chunks of about half a million terms (fast in cache)
        hi = max(int(np.searchsorted(ends, ends[lo] - length[lo] + 500_000)), lo + 1)
        size = length[lo:hi]
        of = np.repeat(np.arange(hi - lo), size)
        offset = np.cumsum(size) - size
        step = np.arange(len(of)) - offset[of]
        j = start[lo:hi][of] + step
        nn, aa, bb = n[lo:hi][of], a[lo:hi][of], b[lo:hi][of]
        # log pmf(j + 1) / pmf(j), cumulated within each pair: log pmf(j) - log pmf(start)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.log((nn - j) * (j + aa)) - np.log((j + 1) * (nn - j - 1 + bb))
        ratio[(offset + size - 1)[size > 0]] = 0.0  # a pair's last ratio leads to none of its terms
        run = np.concatenate([[0.0], np.cumsum(ratio)])
        before = run[np.arange(len(of))] - run[offset[of]]  # steps taken within the pair
        terms = np.exp(first_term[lo:hi][of] + before)
        summed[lo:hi] = np.bincount(of, weights=terms, minlength=hi - lo)
        lo = hi
    tails[pick] = np.where(upper, summed, 1 - summed)
    return np.clip(tails, 0.0, 1.0)


def _interpolation(grid: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Matrix (len(grid) x len(at)) that interpolates linearly in log rho from ``grid``
    (increasing) to ``at`` (within it). A cubic spline rang where the spread is capped;
    128 points keep the p-values within some 2 % of the integral's (64 were 7 % off at
    p 1e-4 and 20 % below, where a tail changes fastest with the spread)."""
    x, xi = np.log(grid), np.log(np.clip(at, grid[0], grid[-1]))
    j = np.clip(np.searchsorted(x, xi, side="right") - 1, 0, len(grid) - 2)
    t = (xi - x[j]) / (x[j + 1] - x[j])
    matrix = np.zeros((len(grid), len(at)))
    matrix[j, np.arange(len(at))] = 1 - t
    matrix[j + 1, np.arange(len(at))] += t
    return matrix


def _control_rate(novel: np.ndarray, cells: np.ndarray) -> tuple[float, float, float] | None:
    """The control wells' pooled novel rate, their cells ``N`` and ``sum n (n - 1)`` over
    their wells (how far the rate itself is known), or None without any control cell."""
    held = cells > 0
    novel, cells = novel[held], cells[held]
    if not len(cells):
        return None
    k, n = float(novel.sum()), float(cells.sum())
    pairs = float((cells * (cells - 1)).sum())  # how far the pooled rate itself is known
    if k == 0 or k == n:
        # No control cell novel (or all, as at percentile 100 or 0): a rate of 0 made a
        # single novel cell a certain hit (p = 0). Half a cell more or less (Jeffreys)
        # weighs such counts against what so many controls can rule out.
        return (k + 0.5) / (n + 1), n, pairs
    return k / n, n, pairs


def _spread_nodes(novel: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Overdispersions ``rho`` the control wells allow, and their weights (summing to 1).

    Var(k/n) = p(1-p)/n (1 + (n-1) rho), n the wells' mean size, is estimated by ``s^2``
    on ``W - 1`` degrees of freedom: ``sigma^2 = (W - 1) s^2 / X``, X chi-square (a normal
    over that law is Student's t). Bins of rho, geometric from 1e-7 to :data:`_MAX_RHO`
    (which takes all above), weigh their exact chi-square mass: a hit's tiny p comes from
    the rare large spreads. A single rho of 0 where fewer than two control wells hold
    cells, none (or each) of their cells is novel, or their fractions are alike.
    """
    from scipy import stats

    held = cells > 0
    novel, cells = novel[held], cells[held]
    k, n = float(novel.sum()), float(cells.sum())
    variance = float((novel / cells).var(ddof=1)) if len(cells) > 1 else 0.0
    mean_cells = float(cells.mean()) if len(cells) else 0.0
    p, df = k / max(n, 1e-300), len(cells) - 1
    # alike fractions (a time-lapse's weighted counts differ by rounding alone)
    if k == 0 or k == n or variance <= 1e-12 * p * (1 - p) or mean_cells <= 1:
        return np.zeros(1), np.ones(1)
    edges = np.geomspace(1e-7, _MAX_RHO, _NODES)
    # X at each edge: sigma^2(rho) = p(1-p) (rho (1 - 1/n) + 1/n), X = df s^2 / sigma^2
    x = df * variance / (p * (1 - p) * (edges * (1 - 1 / mean_cells) + 1 / mean_cells))
    below = stats.chi2.cdf(x, df)  # P(rho > edge), exact also where it is 1e-100
    weight = np.concatenate([[1 - below[0]], below[:-1] - below[1:], [below[-1]]])
    # each bin's rho at its geometric middle; the first bin (rho < 1e-7) at its top
    rho = np.concatenate([[edges[0]], np.sqrt(edges[:-1] * edges[1:]), [_MAX_RHO]])
    return rho, np.clip(weight, 0.0, None)


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
        cells; :mod:`napari_cellae.core.hit_statistics`), ``median_novelty`` (with
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
        n = np.rint(np.bincount(index, weights=np.asarray(weights, np.float64)))
    median = float(np.median(ref))
    # 1.4826 MAD estimates the standard deviation of normal data; the floor (one cell of a
    # median control well) keeps a perfectly flat set of control wells from making every
    # z infinite.
    mad = 1.4826 * float(np.median(np.abs(ref - median)))
    return median, max(mad, 1.0 / max(int(np.median(n[all_control])), 1))
