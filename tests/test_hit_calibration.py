"""Calibration of the hit list's p-values (napari_cellae.core.hit_statistics): wells drawn
like the control wells must not come out as hits more often than p says, also where the
wells differ among themselves more than chance (overdispersion) and where few control
wells or cells set the rate. benchmarks/bench_hit_calibration.py measures it widely."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from napari_cellae.core.hit_statistics import enrichment_p_values, q_values


def _screen(rng: np.random.Generator, n_controls: int, n_null: int, cells: int, tau: float):
    """Cells of a screen whose treated wells are drawn like its control wells: each well's
    scores are normal around a well mean that varies by ``tau``; novel above the control
    cells' 80th percentile, as ``cellae encode`` decides."""
    n_wells = n_controls + n_null
    mean = rng.normal(0.0, tau, n_wells)
    scores = rng.normal(mean[:, None], 1.0, (n_wells, cells))
    novel = scores > np.percentile(scores[:n_controls], 80)
    wells = np.repeat(np.arange(n_wells), cells)
    return novel.ravel(), wells, wells < n_controls


def _counts(counts: list[tuple[int, int]], n_controls: int):
    novel, wells = [], []
    for w, (k, n) in enumerate(counts):
        novel += [True] * k + [False] * (n - k)
        wells += [w] * n
    wells = np.array(wells)
    return np.array(novel), wells, wells < n_controls


def test_null_wells_of_overdispersed_screens_are_hits_no_more_often_than_p_says() -> None:
    # 4 control wells of 200 cells whose novel shares differ by some 5 points among
    # themselves (as a plate's edge, seeding or staining make them): the spread, measured
    # on 4 wells and taken as known, and the controls' rate, taken as exact, made 12 % of
    # wells like the controls p < 0.05, and a false q < 0.05 in a third of the screens.
    rng = np.random.default_rng(1)
    below, screens_with_false_hits, n_screens = [], 0, 40
    for _ in range(n_screens):
        novel, wells, controls = _screen(rng, 4, 30, 200, tau=0.25)
        p = enrichment_p_values(novel, wells, controls, wells)[4:]
        below.append(p < 0.05)
        screens_with_false_hits += bool((q_values(p) < 0.05).any())
    assert np.mean(below) < 0.065
    assert screens_with_false_hits / n_screens <= 0.1


def test_a_rate_set_by_few_control_cells_is_as_uncertain_as_they_are() -> None:
    # 4 novel of 20 control cells say 20 % give or take 9 points; 30 % of 1,000 cells was
    # p 1e-15 against a rate taken as exact
    novel, wells, controls = _counts([(2, 10), (2, 10), (300, 1000)], 2)
    p = enrichment_p_values(novel, wells, controls, wells)[2]
    assert p > 0.05
    # the binomial against a known 20 %, for a sense of scale
    assert stats.binom.sf(299, 1000, 0.2) < 1e-12


def test_large_wells_follow_the_prediction_t_test_of_the_control_wells() -> None:
    # With 100,000 cells a well the spread between wells is all there is: a well's share
    # against W control wells' shares is then the classic prediction t-test,
    # t = (share - mean) / (s sqrt(1 + 1 / W)) on W - 1 degrees of freedom, where the
    # beta-binomial is symmetric (shares about 50 %; at 20 % its upper tail is longer).
    n = 100_000
    shares = [0.47, 0.53, 0.50, 0.49, 0.51]
    s = np.std(shares, ddof=1)
    for tested in (0.59, 0.70):
        counts = [(round(f * n), n) for f in [*shares, tested]]
        novel, wells, controls = _counts(counts, len(shares))
        p = enrichment_p_values(novel, wells, controls, wells)[-1]
        t = (tested - np.mean(shares)) / (s * np.sqrt(1 + 1 / len(shares)))
        assert p == pytest.approx(stats.t.sf(t, len(shares) - 1), rel=0.02)


def _reference_p(counts: list[tuple[int, int]], n_controls: int, tested: list[int]) -> float:
    """The documented p-value, computed apart: wells as (novel, cells), the first
    ``n_controls`` controls; the group of wells ``tested``. The spread's chi-square law is
    integrated by quad, where the library sums fixed nodes."""
    from scipy.integrate import quad

    k_all = np.array([k for k, _ in counts], float)
    n_all = np.array([n for _, n in counts], float)
    spread_wells = np.arange(n_controls)
    rate_wells = np.array([w for w in spread_wells if w not in tested])
    if not len(rate_wells):
        return float("nan")
    big_k, big_n = k_all[rate_wells].sum(), n_all[rate_wells].sum()
    p = big_k / big_n if 0 < big_k < big_n else (big_k + 0.5) / (big_n + 1)
    m = n_all[tested]
    total, count = m.sum(), k_all[tested].sum()
    ref_n = n_all[rate_wells]

    def tail(rho: float) -> float:
        v = (m * (1 + (m - 1) * rho)).sum() + total**2 * (
            ref_n * (1 + (ref_n - 1) * rho)
        ).sum() / big_n**2
        rho_t = min(max((v / total - 1) / (total - 1), 0.0), 0.5) if total > 1 else 0.0
        if rho_t <= 1e-9:
            return float(stats.binom.sf(count - 1, total, p))
        s = 1 / rho_t - 1
        if count > total * p:  # summed: scipy's sf is 1 - cdf, 0 below about 1e-16
            upper = np.arange(count, total + 1)
            return float(stats.betabinom.pmf(upper, total, p * s, (1 - p) * s).sum())
        return float(stats.betabinom.sf(count - 1, total, p * s, (1 - p) * s))

    k_c, n_c = k_all[spread_wells], n_all[spread_wells]
    if n_controls < 2 or k_c.sum() in (0, n_c.sum()):
        return tail(0.0)
    pooled, mean_n = k_c.sum() / n_c.sum(), n_c.mean()
    s2 = np.var(k_c / n_c, ddof=1)

    def rho_at(u: float) -> float:
        sigma2 = (n_controls - 1) * s2 / stats.chi2.ppf(u, n_controls - 1)
        rho = (sigma2 / (pooled * (1 - pooled)) - 1 / mean_n) / (1 - 1 / mean_n)
        return min(max(rho, 0.0), 0.5)

    return quad(lambda u: tail(rho_at(u)), 0, 1, limit=400, epsabs=1e-13, epsrel=1e-7)[0]


@pytest.mark.parametrize(
    ("counts", "n_controls"),
    [
        # ties: control wells alike, and a treated well at their very rate
        ([(20, 100), (20, 100), (20, 100), (25, 100), (20, 100), (40, 100)], 4),
        # wells of one cell, all novel and none; a well of all novel cells
        ([(3, 10), (1, 12), (2, 9), (1, 1), (0, 1), (8, 8), (0, 30)], 3),
        # two control wells of different sizes, large wells
        ([(150, 1000), (90, 400), (400, 1500), (260, 1500), (2, 5)], 2),
        # one control well: no spread to measure, the binomial with an uncertain rate
        ([(30, 120), (50, 120), (10, 20)], 1),
        # no control cell novel: half a cell (Jeffreys)
        ([(0, 50), (0, 60), (0, 55), (1, 50), (12, 40)], 3),
    ],
)
def test_p_values_match_a_computation_apart(counts: list[tuple[int, int]], n_controls: int) -> None:
    novel, wells, controls = _counts(counts, n_controls)
    p = enrichment_p_values(novel, wells, controls, wells)
    expected = [_reference_p(counts, n_controls, [w]) for w in range(len(counts))]
    np.testing.assert_allclose(p, expected, rtol=0.03, atol=1e-9)
    # a group of several treated wells (a condition) sums them
    groups = np.minimum(wells, n_controls)
    joined = enrichment_p_values(novel, groups, controls, wells)[-1]
    treated = list(range(n_controls, len(counts)))
    assert joined == pytest.approx(_reference_p(counts, n_controls, treated), rel=0.03, abs=1e-9)


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg, written out: q_(i) = min over j >= i of p_(j) m / j."""
    out = np.full(len(p), np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    running = 1.0
    for rank in range(m, 0, -1):
        running = min(running, p[order[rank - 1]] * m / rank)
        out[order[rank - 1]] = running
    return out


def test_q_values_are_benjamini_hochberg_with_ties_and_nan() -> None:
    rng = np.random.default_rng(3)
    p = np.round(rng.uniform(0, 0.2, 40), 2)  # many ties
    p[[3, 17]] = np.nan
    p[5] = 0.0
    np.testing.assert_allclose(q_values(p), _bh(p), equal_nan=True)


def test_hit_table_columns_match_their_definitions() -> None:
    from napari_cellae.core.hit_statistics import hit_table

    # 3 control wells (one of one cell), wells tied on their share, an all-novel and a
    # no-novel well; groups are the wells
    counts = [(5, 20), (1, 1), (6, 30), (10, 20), (2, 4), (0, 7), (3, 3)]
    novel, wells, controls = _counts(counts, 3)
    table = hit_table(novel, wells, controls).set_index("group")
    k = np.array([c[0] for c in counts], float)
    n = np.array([c[1] for c in counts], float)
    fraction = k / n
    control_share = k[:3].sum() / n[:3].sum()
    median = np.median(fraction[:3])
    spread = max(1.4826 * np.median(np.abs(fraction[:3] - median)), 1 / np.median(n[:3]))
    for w in range(len(counts)):
        row = table.loc[str(w)]
        assert row["n_cells"] == n[w] and row["n_novel"] == k[w]
        assert row["novel_fraction"] == pytest.approx(fraction[w])
        assert row["enrichment"] == pytest.approx(fraction[w] / control_share)
        assert row["robust_z"] == pytest.approx((fraction[w] - median) / spread)
        assert row["is_control"] == (w < 3)
        # rank: 1 + the wells with a larger share (ties share the best rank)
        assert row["rank"] == 1 + int((fraction > fraction[w]).sum())
    assert table.loc["5", "p_value"] == 1.0  # no novel cell: nothing to exceed
    np.testing.assert_allclose(table["q_value"], _bh(table["p_value"].to_numpy()))


def test_plates_keep_their_wells_apart() -> None:
    import pandas as pd

    from napari_cellae.pipeline.hits import hit_list

    # A01 and A02 are controls on both plates, B01 treated; the same names on two plates
    # are four control wells, not two of twice the cells
    counts = {("p1", "A01"): (4, 20), ("p1", "A02"): (6, 20), ("p1", "B01"): (12, 20),
              ("p2", "A01"): (5, 20), ("p2", "A02"): (3, 20), ("p2", "B01"): (4, 20)}  # fmt: skip
    rows, novel = [], []
    for (plate, well), (k, n) in counts.items():
        rows += [(plate, well + "_1", well, "neg" if well[0] == "A" else "X", well[0] == "A")] * n
        novel += [True] * k + [False] * (n - k)
    obs = pd.DataFrame(rows, columns=["plate", "position", "well", "condition", "control"])
    table = hit_list(obs, np.array(novel)).set_index(["plate", "position"])
    flat, wells, controls = _counts([counts[key] for key in counts], 0)
    controls = np.isin(wells, [0, 1, 3, 4])
    p = enrichment_p_values(flat, wells, controls, wells)
    for i, (plate, well) in enumerate(counts):
        assert table.loc[(plate, well + "_1"), "p_value"] == pytest.approx(p[i])


def test_small_p_values_match_a_computation_apart_to_two_percent() -> None:
    # Eight control wells of 20 cells leave the spread wide open, so a well's p comes
    # from the large spreads, where its tail changes fastest with the spread: tails
    # interpolated between 64 spreads were 6.6 % off at p 1e-4 and 3 % at 1e-3.
    counts = [(6, 20), (4, 20), (2, 20), (2, 20), (0, 20), (1, 20), (2, 20), (0, 20)]
    counts += [(50, 50), (44, 50), (30, 50)]
    novel, wells, controls = _counts(counts, 8)
    p = enrichment_p_values(novel, wells, controls, wells)[8:]
    expected = [_reference_p(counts, 8, [w]) for w in range(8, len(counts))]
    assert 1e-4 < p[0] < 2e-4
    np.testing.assert_allclose(p, expected, rtol=0.02, atol=0)
