"""Hit lists (napari_cellae.core.hit_statistics): ranks, and p- and q-values in which the
count of cells weighs and controls are not hits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from napari_cellae.core.hit_statistics import enrichment_p_values, hit_table, q_values
from napari_cellae.core.novelty import novelty_scores


def _cells(counts: list[tuple[int, int]], control: list[bool]):
    """Cells of wells given as (novel, total) each; one group per well."""
    novel, wells, controls = [], [], []
    for w, ((k, n), is_control) in enumerate(zip(counts, control, strict=True)):
        novel += [True] * k + [False] * (n - k)
        wells += [w] * n
        controls += [is_control] * n
    return np.array(novel), np.array(wells), np.array(controls)


def test_few_cells_are_less_sure_than_many_at_a_lower_share() -> None:
    counts = [(20, 100), (21, 100), (19, 100), (20, 100), (3, 4), (300, 450)]
    novel, wells, controls = _cells(counts, [True] * 4 + [False] * 2)
    p = enrichment_p_values(novel, wells, controls, wells)
    # 75 % of 4 cells against 67 % of 450 (4 control wells cannot rule out that wells
    # differ widely: p is that of a t-test on 3 degrees of freedom, not 1e-44)
    assert p[4] > 0.01 and p[5] < 1e-4 and p[5] < p[4] / 100
    # control wells alike: no overdispersion, a binomial whose rate is known from 400
    # cells, as a beta-binomial of variance 4 p (1 - p) (1 + 4 / 400)
    counts[:4] = [(20, 100)] * 4
    novel, wells, controls = _cells(counts, [True] * 4 + [False] * 2)
    p = enrichment_p_values(novel, wells, controls, wells)
    spread = 1 / (4 / 400 / 3) - 1
    assert p[4] == pytest.approx(stats.betabinom.sf(2, 4, 0.2 * spread, 0.8 * spread))
    assert p[4] > stats.binom.sf(2, 4, 0.2) and p[5] < 1e-40


def test_control_wells_are_tested_against_the_other_control_wells() -> None:
    counts = [(20, 100)] * 7 + [(40, 100), (60, 100)]
    novel, wells, controls = _cells(counts, [True] * 8 + [False])
    p = enrichment_p_values(novel, wells, controls, wells)
    # the 40 % control well is compared with the 20 % of the other seven, not with a rate
    # it raises itself; the spread is that of all eight (it is one of them), so it is less
    # sure than a binomial test against the seven
    assert 1e-4 < p[7] < 0.05 and p[7] > stats.binom.sf(39, 100, 0.2)
    assert (p[:7] > 0.5).all() and p[8] < p[7]
    # where the control wells spread widely, one of them standing out is no hit, and
    # 60 % against 4 wells of 12-40 % is p 0.05, as a t-test on 3 degrees of freedom says
    counts = [(12, 100), (28, 100), (20, 100), (40, 100), (60, 100)]
    novel, wells, controls = _cells(counts, [True] * 4 + [False])
    p = enrichment_p_values(novel, wells, controls, wells)
    assert (p[:4] > 0.1).all() and 0.01 < p[4] < 0.1


def test_wells_that_vary_between_themselves_make_a_hit_less_sure() -> None:
    hit = [(35, 100)]
    p = {}
    for name, control_counts in {
        "even": [(20, 100)] * 4,
        "uneven": [(10, 100), (30, 100), (12, 100), (28, 100)],
    }.items():
        novel, wells, controls = _cells(control_counts + hit, [True] * 4 + [False])
        p[name] = enrichment_p_values(novel, wells, controls, wells)[4]
    assert p["even"] < 0.005 and p["uneven"] > 10 * p["even"]


def test_a_condition_sums_its_wells() -> None:
    counts = [(20, 100)] * 4 + [(8, 20), (9, 20), (7, 20)]
    novel, wells, controls = _cells(counts, [True] * 4 + [False] * 3)
    condition = np.where(wells < 4, 0, 1)
    p_condition = enrichment_p_values(novel, condition, controls, wells)
    p_wells = enrichment_p_values(novel, wells, controls, wells)
    assert p_condition.shape == (2,)
    # 24 of 60 together is surer than any of the three wells alone
    assert p_condition[1] < p_wells[4:].min()
    # control wells alike: a binomial of 60 cells against a rate known from 400 cells
    spread = 1 / (60 / 400 / 59) - 1
    assert p_condition[1] == pytest.approx(stats.betabinom.sf(23, 60, 0.2 * spread, 0.8 * spread))


def test_without_other_control_wells_there_is_no_p_value() -> None:
    novel, wells, controls = _cells([(20, 100), (50, 100)], [True, False])
    p = enrichment_p_values(novel, wells, controls, wells)
    assert np.isnan(p[0]) and 0 <= p[1] < 1e-5  # one control well: a binomial against it
    none = enrichment_p_values(novel, wells, np.zeros_like(controls), wells)
    assert np.isnan(none).all()


def test_no_novel_control_cell_weighs_counts_against_half_a_cell() -> None:
    # With no control cell novel (always so at percentile 100) the rate was 0, and a
    # single novel cell made its well a certain hit (p = 0, q = 0).
    novel, wells, controls = _cells(
        [(0, 50), (0, 50), (1, 50), (0, 50), (20, 50)], [True, True, False, False, False]
    )
    p = enrichment_p_values(novel, wells, controls, wells)
    rate, spread = 0.5 / 101, 1 / (50 / 100 / 49) - 1  # the rate known from 100 cells
    assert p[2] == pytest.approx(stats.betabinom.sf(0, 50, rate * spread, (1 - rate) * spread))
    assert 0.1 < p[2] < 0.3
    assert p[3] == 1.0 and p[4] < 1e-10
    every = enrichment_p_values(np.ones_like(novel), wells, controls, wells)  # percentile 0
    assert (every[2:] > 0.5).all()


def test_q_values_adjust_for_the_number_of_groups_and_keep_nan() -> None:
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.5])
    q = q_values(p)
    assert np.isnan(q[2])
    # four tested: 0.01 x 4/1, then 0.03 x 4/2 = 0.06 lowered to 0.04 x 4/3 (step-up)
    assert q[[0, 1, 3, 4]] == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert (q[~np.isnan(q)] >= p[~np.isnan(p)]).all()


def test_hit_table_ranks_hits_above_controls() -> None:
    rng = np.random.default_rng(0)  # 4 control wells and 2 hit wells of 50 cells
    wells = np.repeat(np.arange(6), 50)
    x = rng.normal(size=(300, 5))
    controls = wells < 4
    x[(wells == 4) | ((wells == 5) & (np.arange(300) % 2 == 0))] += 4.0
    result = novelty_scores(x, controls, wells)
    names = [f"W{i}" for i in range(6)]
    table = hit_table(result.novel, wells, controls, names)
    assert list(table.columns) == [
        "group",
        "n_cells",
        "n_novel",
        "novel_fraction",
        "enrichment",
        "robust_z",
        "p_value",
        "q_value",
        "is_control",
        "rank",
    ]
    assert table["group"].tolist()[:2] == ["W4", "W5"]
    assert table["rank"].tolist()[:2] == [1, 2]
    assert table.loc[0, "novel_fraction"] > 0.9 and table.loc[0, "robust_z"] > 5
    assert table["is_control"].tolist()[2:] == [True] * 4
    assert table["n_cells"].sum() == 300
    assert table.loc[0, "enrichment"] == pytest.approx(
        table.loc[0, "novel_fraction"] / result.novel[controls].mean()
    )


def test_a_tiny_p_value_is_not_rounded_to_zero() -> None:
    # scipy's beta-binomial tail is 1 - cdf, 0.0 below about 1e-16: the demo's PLK1 well
    # was written with p 0 and q 0. With 32 control wells a strong hit's tail is 1e-23.
    counts = [(18, 100), (22, 100), (19, 100), (21, 100)] * 8 + [(75, 100)]
    novel, wells, controls = _cells(counts, [True] * 32 + [False])
    p = enrichment_p_values(novel, wells, controls, wells)
    assert 0 < p[-1] < 1e-20
    assert p[-1] > stats.binom.sf(74, 100, 0.2)  # less sure than a binomial


def _time_lapse(counts: list[tuple[int, int]], control: list[bool], frames: int):
    """:func:`_cells`, every cell seen in each of ``frames`` frames (a tracked time-lapse,
    as CellCognition's object tables list it: one row per object and frame)."""
    return tuple(np.tile(column, frames) for column in _cells(counts, control))


def test_a_time_lapse_counts_each_cell_once_for_its_p_value() -> None:
    # 50 cells a well, each seen in 40 frames: 2,000 rows of 50 cells. Counted as 2,000
    # cells, 30 % novel against the controls' 20 % had p 1e-25 where 50 cells give 0.06,
    # and null wells were called hits twice to four times as often as p said.
    counts = [(10, 50), (10, 50), (10, 50), (10, 50), (15, 50)]
    control = [True] * 4 + [False]
    one_frame = _cells(counts, control)
    once = enrichment_p_values(*one_frame, one_frame[1])
    novel, wells, controls = _time_lapse(counts, control, 40)
    weights = np.full(len(novel), 1 / 40)  # each row a 40th of a cell
    p = enrichment_p_values(novel, wells, controls, wells, weights)
    np.testing.assert_allclose(p, once)
    assert 0.01 < p[4] < 0.2
    # the control wells agree exactly: the robust z's floor is one cell of a control well,
    # not one of its 2,000 rows
    table = hit_table(novel, wells, controls, weights=weights)
    single = hit_table(*one_frame)
    for column in ("robust_z", "p_value", "q_value", "novel_fraction"):
        np.testing.assert_allclose(table[column], single[column])
    assert table["n_cells"].tolist() == [2000] * 5  # the rows, as the table lists them


def test_enrichment_stays_finite_where_no_control_cell_is_novel() -> None:
    # 2 control wells of 10 cells, none novel; a treated well with 4 of 10 novel, one without
    wells = np.repeat(np.arange(4), 10)
    controls = wells < 2
    novel = np.zeros(40, bool)
    novel[20:24] = True
    table = hit_table(novel, wells, controls).set_index("group")
    enrichment = table["enrichment"]
    assert np.all(np.isfinite(enrichment))
    # against half a novel cell of the 20 control cells: 0.4 / (0.5 / 20)
    assert enrichment["2"] == pytest.approx(16.0)
    assert enrichment["3"] == 0.0
    assert table.loc["2", "rank"] == 1


def test_weighted_counts_do_not_depend_on_the_order_of_the_rows() -> None:
    # A condition of two positions, one imaged in 2 frames (rows of half a cell), one in 3
    # (thirds): 1 + 3 novel rows are 1.5 cells, which summed in one order of the rows came to
    # 1.4999999999999998 and was rounded to 1 cell, in another to 1.5 and 2 cells.
    novel, wells, controls = _cells([(1, 10), (2, 10), (3, 10), (2, 10)], [True] * 4)
    weights = np.ones(40)
    groups = wells.copy()
    treated_novel = [True, False, False, False, True, True, True, False, False, False]
    treated_weight = [1 / 2] * 4 + [1 / 3] * 6
    novel = np.concatenate([novel, treated_novel])
    groups = np.concatenate([groups, [4] * 10])
    wells = np.concatenate([wells, [4] * 4 + [5] * 6])
    controls = np.concatenate([controls, np.zeros(10, bool)])
    weights = np.concatenate([weights, treated_weight])
    p = enrichment_p_values(novel, groups, controls, wells, weights)
    order = np.r_[np.arange(40), 44, 45, 46, 40, 41, 42, 43, 47, 48, 49]  # thirds first
    again = enrichment_p_values(
        novel[order], groups[order], controls[order], wells[order], weights[order]
    )
    assert p[4] == pytest.approx(again[4], rel=1e-9)


def _benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """The textbook step-up: sorted p times m / rank, made monotone from the top, at most 1."""
    out = np.full(len(p), np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    q = p[order] * len(order) / np.arange(1, len(order) + 1)
    out[order] = np.minimum(np.minimum.accumulate(q[::-1])[::-1], 1.0)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_hit_table_against_plain_references(seed: int) -> None:
    # Control wells of binomial 20 % novel cells and treated wells of any share, all of one
    # size: counts, shares, enrichment and ranks as counted by hand, q the textbook
    # Benjamini-Hochberg of p, and p never larger for a larger share of novel cells.
    rng = np.random.default_rng(seed)
    n_controls, size = int(rng.integers(2, 9)), int(rng.integers(5, 200))
    counts = [(int(rng.binomial(size, 0.2)), size) for _ in range(n_controls)]
    counts += [(int(rng.integers(0, size + 1)), size) for _ in range(12)]
    novel, wells, controls = _cells(counts, [True] * n_controls + [False] * 12)
    table = hit_table(novel, wells, controls).set_index("group")
    shares = np.array([k / n for k, n in counts])
    expected_rank = [1 + int((shares > share).sum()) for share in shares]
    rows = table.loc[[str(w) for w in range(len(counts))]]
    assert rows["n_novel"].tolist() == [k for k, _ in counts]
    np.testing.assert_allclose(rows["novel_fraction"], shares)
    np.testing.assert_allclose(rows["enrichment"], shares / novel[controls].mean())
    assert rows["rank"].tolist() == expected_rank
    np.testing.assert_allclose(table["q_value"], _benjamini_hochberg(table["p_value"].to_numpy()))
    np.testing.assert_allclose(
        q_values(np.array([0.01, np.nan, 0.04, 0.03, 0.5])),
        _benjamini_hochberg(np.array([0.01, np.nan, 0.04, 0.03, 0.5])),
    )
    treated = rows[~rows["is_control"]].sort_values("novel_fraction")
    assert np.all(np.diff(treated["p_value"].to_numpy()) <= 1e-12)
