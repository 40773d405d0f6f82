"""The hit list's p-values: how likely a group's count of novel cells would be if its
cells were drawn like the control wells' cells (:func:`enrichment_p_values`, the
``p_value`` column of :func:`napari_cellae.core.hit_statistics.hit_table`), so that it
weighs how many cells the group holds:

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

The test is one-sided (more novel cells than the controls): a well with fewer novel cells
than the controls is not a hit. A time-lapse's rows weigh ``1 / frames`` of a cell
(``weights``, :func:`napari_cellae.core.hit_statistics.frame_weights`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["enrichment_p_values", "whole_cells"]

_MAX_RHO = 0.5  # beyond this, wells would hold anything from none to all novel cells
_NODES = 192  # bin edges of the spreads p is averaged over (_spread_nodes)
_GRID = np.geomspace(1e-7, _MAX_RHO, 128)  # spreads whose tails are computed


def whole_cells(cells: np.ndarray) -> np.ndarray:
    """Weighted counts of rows (a time-lapse's, :func:`frame_weights`) as whole cells.

    Rounded to 1e-6 first: summed in another order of the rows, halves and thirds of a
    cell made 1.5 or 1.4999999999999998, so that the same cells counted 2 or 1 and a
    p-value depended on the order of the rows.

    Parameters
    ----------
    cells : ndarray of float

    Returns
    -------
    ndarray of float
        Whole numbers (a half rounded to even, as :func:`numpy.round` does).
    """
    return np.round(np.round(cells, 6))


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
    total = whole_cells(np.bincount(part_group, weights=part_cells, minlength=n_groups))
    count = whole_cells(np.bincount(group_ids, weights=weights * novel, minlength=n_groups))
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
