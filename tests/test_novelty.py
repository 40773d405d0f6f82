"""Tests for napari_cellae.core.novelty: scores against controls and thresholds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_cellae.core.novelty import _standardised, novelty_scores


def _screen(seed: int = 0):
    """4 control wells and 2 hit wells (one with half its cells shifted) of 50 cells."""
    rng = np.random.default_rng(seed)
    wells = np.repeat(np.arange(6), 50)
    x = rng.normal(size=(300, 5))
    controls = wells < 4
    hit = (wells == 4) | ((wells == 5) & (np.arange(300) % 2 == 0))
    x[hit] += 4.0
    return x, controls, wells, hit


@pytest.mark.parametrize("method", ["knn", "svm"])
def test_shifted_cells_are_novel_and_controls_are_not(method: str) -> None:
    x, controls, wells, hit = _screen()
    result = novelty_scores(x, controls, wells, method=method)
    assert result.scores.shape == (300,) and result.scores.dtype == np.float32
    assert result.novel[hit].mean() > 0.9
    assert 0.15 <= result.novel[controls].mean() <= 0.25  # the default 80th percentile
    assert result.threshold == pytest.approx(np.percentile(result.scores[controls], 80))
    again = novelty_scores(x, controls, wells, method=method)
    np.testing.assert_array_equal(again.scores, result.scores)


def test_control_cells_are_scored_against_other_wells_only() -> None:
    x, controls, wells, _ = _screen()
    # Well 0's cells are exact copies of well 1's: scored against all controls they would
    # find their twins at distance 0; against other wells only they do not.
    x[wells == 0] = x[wells == 1]
    with_wells = novelty_scores(x, controls, wells).scores
    assert np.all(with_wells[wells == 0] > 0.1)
    assert np.all(with_wells[wells == 1] > 0.1)


def test_single_control_well_falls_back_to_leave_one_out() -> None:
    x, _, wells, _ = _screen()
    controls = wells == 0
    with pytest.warns(UserWarning, match="one well"):
        result = novelty_scores(x, controls, wells)
    assert np.all(result.scores[controls] > 0)  # never its own zero distance


def test_no_controls_is_a_clear_error() -> None:
    x, _, wells, _ = _screen()
    with pytest.raises(ValueError, match="novelty needs negative-control cells"):
        novelty_scores(x, np.zeros(300, bool), wells)
    with pytest.raises(ValueError, match="unknown novelty method"):
        novelty_scores(x, wells < 4, wells, method="lof")
    # nu = 1 leaves scikit-learn's one-class SVM no finite solution ("The dual coefficients
    # or intercepts are not finite"): refused in our words before fitting.
    with pytest.raises(ValueError, match="0 < nu < 1, got k=10, nu=1"):
        novelty_scores(x, wells < 4, wells, method="svm", nu=1.0)


def test_scores_in_blocks_equal_one_pass_and_leave_the_features_alone(monkeypatch):
    from napari_cellae.core import novelty as novelty_module

    rng = np.random.default_rng(3)
    features = rng.normal(size=(60, 5))
    features[:6] += 4.0
    controls = np.zeros(60, bool)
    controls[20:40] = True
    groups = np.arange(60) // 10
    before = features.copy()
    whole = novelty_scores(features, controls, groups)
    monkeypatch.setattr(novelty_module, "_BLOCK", 7)  # 40 perturbed cells in 6 blocks
    blocks = novelty_scores(features, controls, groups)
    np.testing.assert_array_equal(blocks.scores, whole.scores)
    np.testing.assert_array_equal(features, before)  # standardised in a copy
    assert whole.scores[:6].min() > np.median(whole.scores[6:])


def test_views_are_scored_apart_and_added() -> None:
    # 40 columns of noise and 2 of an outline: 30 cells of a perturbed well differ only in
    # the outline, by 2.5 control spreads; one distance over all 42 columns finds half.
    rng = np.random.default_rng(1)
    wells = np.repeat(np.arange(6), 60)
    x = rng.normal(size=(360, 42))
    controls = wells < 4
    odd = (wells == 5) & (np.arange(360) % 2 == 0)
    x[odd, 40:] += 2.5
    views = [np.arange(40), np.array([40, 41])]
    plain = novelty_scores(x, controls, wells)
    apart = novelty_scores(x, controls, wells, views=views)
    assert apart.novel[odd].mean() > 0.85 and plain.novel[odd].mean() < 0.8
    assert 0.15 <= apart.novel[controls].mean() <= 0.25
    # each view on one scale: the control cells' median 0 and interquartile range 1
    alone = novelty_scores(x, controls, wells, views=views[1:])
    low, mid, high = np.percentile(alone.scores[controls], [25, 50, 75])
    assert (mid, high - low) == (pytest.approx(0, abs=1e-6), pytest.approx(1, abs=1e-6))
    # one view of every column ranks the cells as the plain score does
    whole = novelty_scores(x, controls, wells, views=[np.arange(42)])
    np.testing.assert_array_equal(whole.novel, plain.novel)
    with pytest.raises(ValueError, match="some of the 42 features"):
        novelty_scores(x, controls, wells, views=[np.array([3, 42])])


@pytest.mark.parametrize("method", ["knn", "svm"])
def test_cells_of_null_wells_are_as_novel_as_the_controls(method: str) -> None:
    # A control cell is compared with the other control wells only; the other cells were
    # compared with all of them, found nearer neighbours and passed the controls' 80th
    # percentile less often: 10 % of a null well's cells with two control wells, not 20 %.
    rng = np.random.default_rng(4)
    wells = np.repeat(np.arange(10), 150)
    x = rng.normal(size=(len(wells), 20))
    controls = wells < 2
    found = novelty_scores(x, controls, wells, method=method).novel[~controls].mean()
    assert 0.16 < found < 0.24


def test_features_beyond_float32_are_refused() -> None:
    # Their variance overflowed: most scores became 0 and control wells outranked hits.
    x, controls, wells, _ = _screen()
    x[5, 2] = 1e300
    with pytest.raises(ValueError, match="beyond float32's range"):
        novelty_scores(x, controls, wells)


def _two_plates(seed: int = 2):
    """Two plates of 4 control and 2 hit wells each; plate B's features are shifted and
    stretched (another focus, stain or segmentation), its hit wells by 3 of its spreads."""
    rng = np.random.default_rng(seed)
    wells = np.repeat(np.arange(12), 40)
    plates = np.where(wells < 6, "A", "B")
    x = rng.normal(size=(480, 6))
    controls = wells % 6 < 4
    hit = wells % 6 >= 4
    x[hit, :2] += 3.0
    b = plates == "B"
    x[b] = x[b] * 1.5 + 2.0
    return x, controls, wells, plates, hit


def test_each_plate_is_standardised_on_its_own_controls() -> None:
    x, controls, wells, plates, hit = _two_plates()
    pooled = novelty_scores(x, controls, wells)
    own = novelty_scores(x, controls, wells, plates=plates)
    # On one scale for both plates, plate B's ordinary control cells look novel and
    # plate A's hits are lost below them; each plate on its own controls, neither.
    b_controls = controls & (plates == "B")
    assert pooled.novel[b_controls].mean() > 0.3 and own.novel[b_controls].mean() < 0.3
    assert own.novel[hit].mean() > 0.9 > pooled.novel[hit & (plates == "A")].mean()
    # the same as standardising each plate by hand, then scoring on one scale
    by_hand = x.copy()
    for plate in ("A", "B"):
        rows = plates == plate
        ref = x[rows & controls]
        by_hand[rows] = (x[rows] - ref.mean(0)) / ref.std(0)
    np.testing.assert_allclose(own.scores, novelty_scores(by_hand, controls, wells).scores, 1e-5)
    # one plate named: the plain score
    np.testing.assert_array_equal(
        novelty_scores(x, controls, wells, plates=np.full(480, "A")).scores, pooled.scores
    )


def test_a_plate_without_two_control_wells_is_scaled_on_all_controls() -> None:
    x, controls, wells, plates, _ = _two_plates()
    controls = controls & ~((plates == "B") & (wells != 6))  # plate B: one control well
    with pytest.warns(UserWarning, match="plate B holds control cells of fewer than two wells"):
        scaled = _standardised(x.copy(), controls, wells, plates)
    # plate A on its own controls; B, whose one well would make its own scale, on all
    by_hand = x.copy()
    a = plates == "A"
    for rows, ref in ((a, x[a & controls]), (~a, x[controls])):
        by_hand[rows] = (x[rows] - ref.mean(0)) / ref.std(0)
    np.testing.assert_allclose(scaled, by_hand, atol=1e-9)
    with pytest.warns(UserWarning, match="plate B"):
        assert np.all(np.isfinite(novelty_scores(x, controls, wells, plates=plates).scores))
    with pytest.raises(ValueError, match="plates"):
        novelty_scores(x, controls, wells, plates=plates[:10])


def test_a_plate_named_with_control_characters_is_warned_about_escaped() -> None:
    # The plate column of a cells file: an escape sequence in it reached the terminal.
    x, controls, wells, plates, _ = _two_plates()
    controls = controls & ~((plates == "B") & (wells != 6))  # plate B: one control well
    plates = np.where(plates == "B", "B\x1b[2J", plates)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _standardised(x.copy(), controls, wells, plates)
    (text,) = [str(w.message) for w in caught]
    assert text.startswith("plate B\\x1b[2J holds control cells") and "\x1b" not in text


def test_a_screen_with_more_controls_than_the_reference_is_scored_against_a_sample(
    monkeypatch,
) -> None:
    # Every cell was compared with every control cell: a whole screen's scoring grew with
    # the square of its cells. Above the cap the controls are sampled, with the seed.
    from napari_cellae.core import novelty as novelty_module

    x, controls, wells, hit = _screen()
    full = novelty_scores(x, controls, wells)
    sizes = []
    knn = novelty_module._knn_distance

    def counted(reference, query, k):
        sizes.append(len(reference))
        return knn(reference, query, k)

    monkeypatch.setattr(novelty_module, "_knn_distance", counted)
    monkeypatch.setattr(novelty_module, "_MAX_REFERENCE", 80)  # of 200 control cells
    sampled = novelty_scores(x, controls, wells)
    # one call per control well, each against the sample less that well's cells
    assert len(sizes) == 4 and max(sizes) < 80 and sum(sizes) == 3 * 80
    assert sampled.novel[hit].mean() > 0.9 and sampled.novel[controls].mean() <= 0.21
    np.testing.assert_array_equal(sampled.scores, novelty_scores(x, controls, wells).scores)
    other = novelty_scores(x, controls, wells, seed=1).scores
    assert not np.array_equal(other, sampled.scores)  # another draw
    assert np.corrcoef(full.scores, sampled.scores)[0, 1] > 0.9
    # Controls of one well, each its own group: a sampled control is not its own neighbour.
    one = wells == 0
    with pytest.warns(UserWarning, match="one well"):
        alone = novelty_scores(x, one, wells).scores
    monkeypatch.setattr(novelty_module, "_MAX_REFERENCE", 20)  # of 50
    with pytest.warns(UserWarning, match="one well"):
        capped = novelty_scores(x, one, wells).scores
    assert (capped[one] > 0).all() and np.corrcoef(alone, capped)[0, 1] > 0.8


def test_svm_on_cells_alike_warns_of_nothing() -> None:
    # Constant outline measurements (all cells one shape) gave scikit-learn's PCA 0 / 0 for
    # its explained-variance ratio: a RuntimeWarning reached the user, about nothing.
    x, controls, wells, _ = _screen()
    x = np.c_[x, np.ones((300, 2))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alike = novelty_scores(np.ones((300, 3)), controls, wells, method="svm")
        views = [np.arange(5), np.array([5, 6])]
        result = novelty_scores(x, controls, wells, method="svm", views=views)
    assert np.all(alike.scores == alike.scores[0]) and not alike.novel.any()
    assert np.all(np.isfinite(result.scores)) and result.novel[wells == 4].mean() > 0.9


def test_features_without_columns_are_a_clear_error() -> None:
    _, controls, wells, _ = _screen()
    with pytest.raises(ValueError, match="at least one feature"):
        novelty_scores(np.zeros((300, 0)), controls, wells)


def test_novel_cells_are_those_above_the_bar_of_the_scores_as_stored() -> None:
    from napari_cellae.pipeline.hits import novel_cells

    # Scores are stored as float32 (the .h5ad, the widget's table), but cells were flagged
    # on the float64 scores: a cell within float32 rounding above the bar was novel in the
    # file and not novel once 'cellae hits --novelty-percentile' drew the same bar again
    # through the stored scores. Controls: two wells; the last cell lies 1e-7 beyond the
    # farthest control's distance (1e-9 of it).
    x = np.array([[0.0], [100.0], [1.0], [200.0], [300.0 + 1e-7], [150.0]])
    controls = np.array([True, True, True, True, False, False])
    wells = np.array([0, 0, 1, 1, 2, 2])
    with pytest.warns(UserWarning, match="only 4 negative-control cells"):
        found = novelty_scores(x, controls, wells, k=1, percentile=100)
    stored = found.scores.astype(np.float64)
    again = stored > np.percentile(stored[controls], 100)
    np.testing.assert_array_equal(found.novel, again)
    import pandas as pd

    obs = pd.DataFrame({"position": ["A"] * 4 + ["B"] * 2, "well": wells.astype(str)})
    obs = obs.assign(condition=obs["position"], control=controls, novelty=found.scores)
    redrawn, _, _ = novel_cells(obs, percentile=100)
    np.testing.assert_array_equal(found.novel, redrawn)
    assert found.threshold == np.percentile(stored[controls], 100)


def test_few_control_cells_and_too_few_neighbours_are_warned() -> None:
    import warnings

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    wells = np.repeat([0, 1, 2, 3], 10)
    # 2 + 2 control cells: too few to trust, and a control well meets only 2 neighbours
    controls = np.isin(np.arange(40), [0, 1, 10, 11])
    with pytest.warns(UserWarning) as caught:
        novelty_scores(x, controls, wells, k=10)
    texts = [str(w.message) for w in caught]
    assert any("only 4 negative-control cells" in t for t in texts)
    assert any("only 2 control cells of the other wells: its scores use 2" in t for t in texts)
    # 20 control cells in two wells of 10, k = 10: nothing to say
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        novelty_scores(x, wells < 2, wells, k=10)


def _naive_novelty(x, controls, groups, k, percentile, views=None, plates=None):
    """novelty_scores as the README says it, by brute force: z-scores on the control cells
    (each plate on its own where they come from two wells or more; a feature without
    spread only centred), a control cell's mean distance to its k nearest control cells of
    other wells, every other cell's to those of all wells but one (the i-th other cell
    leaves out the (i mod W)-th control well); with a single control well each control
    cell is left out of its own score and the other cells meet all. Views: each score
    centred on the controls' median, over their IQR, and added."""

    def scaled(rows):
        mean, sd = x[rows].mean(0), x[rows].std(0)
        return (x - mean) / np.where(sd > 1e-10 * np.maximum(1, abs(mean)), sd, 1.0)

    z = scaled(controls)
    if plates is not None:
        for plate in np.unique(plates):
            own = controls & (plates == plate)
            if len(np.unique(groups[own])) >= 2:
                z[plates == plate] = scaled(own)[plates == plate]
    rows = np.flatnonzero(controls)
    wells = groups[rows] if len(np.unique(groups[rows])) > 1 else np.arange(len(rows))
    unique = np.unique(wells)

    def knn(columns, cell, references):
        distances = np.sort(np.linalg.norm(z[references][:, columns] - z[cell, columns], axis=1))
        return distances[:k].mean()

    def one_view(columns):
        out = np.empty(len(x))
        for row, well in zip(rows, wells, strict=True):
            out[row] = knn(columns, row, rows[wells != well])
        for i, cell in enumerate(np.flatnonzero(~controls)):
            single = len(unique) == len(rows)
            out[cell] = knn(
                columns, cell, rows if single else rows[wells != unique[i % len(unique)]]
            )
        return out

    if views is None:
        scores = one_view(slice(None))
    else:
        scores = np.zeros(len(x))
        for columns in views:
            view = one_view(columns)
            low, centre, high = np.percentile(view[controls], [25, 50, 75])
            scores += (view - centre) / ((high - low) or view[controls].std() or 1.0)
    stored = scores.astype(np.float32)
    bar = np.percentile(stored[controls].astype(np.float64), percentile)
    return stored, bar


@pytest.mark.parametrize("seed", range(12))
def test_knn_novelty_equals_a_brute_force_reading_of_the_docs(seed: int) -> None:
    # Wells of 1 to 24 cells (k larger than some), 1 to 4 control wells, ties (integer
    # features), duplicated cells, a feature without spread, views and two plates, in a
    # shuffled row order.
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 25, rng.integers(3, 8))
    wells = np.repeat(np.arange(len(sizes)), sizes)
    controls = np.isin(wells, rng.choice(len(sizes), rng.integers(1, 5), replace=False))
    controls[: 2 - min(controls.sum(), 2)] = True  # at least two control cells
    n_features = int(rng.integers(2, 6))
    if seed % 3 == 0:
        x = rng.integers(0, 3, (len(wells), n_features)).astype(float)
    else:
        x = rng.normal(size=(len(wells), n_features))
    x[: len(x) // 3] = x[len(x) // 3 : 2 * (len(x) // 3)]
    x[:, 0] = 1.5 if seed % 2 else x[:, 0]
    order = rng.permutation(len(wells))
    x, controls, wells = x[order], controls[order], wells[order]
    views = [np.arange(n_features - 1), np.array([n_features - 1])] if seed % 4 == 1 else None
    plates = np.where(wells % 2 == 0, "p1", "p2") if seed % 4 == 2 else None
    k, percentile = int(rng.integers(1, 14)), float(rng.choice([0, 50, 80, 100]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few controls, one control well, a plate without
        found = novelty_scores(
            x, controls, wells, k=k, percentile=percentile, views=views, plates=plates
        )
    scores, bar = _naive_novelty(x, controls, wells, k, percentile, views, plates)
    np.testing.assert_allclose(found.scores, scores, rtol=1e-5, atol=1e-5)
    assert found.threshold == pytest.approx(bar, abs=1e-5)
    np.testing.assert_array_equal(found.novel, scores > bar)


@pytest.mark.parametrize("method", ["knn", "svm"])
def test_cell_keys_make_the_scores_follow_the_cells_not_their_order(monkeypatch, method) -> None:
    # Which control well a non-control cell is scored without, and the capped sample of
    # control cells, follow the cells' keys: the same cells in another order score the same.
    from napari_cellae.core import novelty as novelty_module

    x, controls, wells, _ = _screen()
    keys = np.random.default_rng(1).integers(0, 2**63, 300).astype(np.uint64)
    order = np.random.default_rng(2).permutation(300)
    monkeypatch.setattr(novelty_module, "_MAX_REFERENCE", 120)  # of 200 control cells
    first = novelty_scores(x, controls, wells, method=method, cell_keys=keys)
    again = novelty_scores(
        x[order], controls[order], wells[order], method=method, cell_keys=keys[order]
    )
    # (the SVM's solver visits its training cells in order: within 0.001 there)
    tolerance = 1e-5 if method == "knn" else 2e-3
    np.testing.assert_allclose(again.scores, first.scores[order], rtol=tolerance, atol=tolerance)
    if method == "knn":
        np.testing.assert_array_equal(again.novel, first.novel[order])
    unkeyed = novelty_scores(x[order], controls[order], wells[order], method=method)
    moved = np.abs(unkeyed.scores - first.scores[order])
    assert moved.max() > 10 * tolerance  # dealt by order
    with pytest.raises(ValueError, match="cell keys"):
        novelty_scores(x, controls, wells, cell_keys=keys[:10])


def test_cell_keys_deal_the_controls_of_a_single_well_too() -> None:
    # All control cells in one well (and site): each is a group of its own, dealt by the
    # SVM over 10 folds. By their row then, so the same cells shuffled scored otherwise
    # (up to 0.1, 12 of 200 cells novel or not) although they had keys.
    x, _, wells, _ = _screen()
    controls = wells == 0
    keys = np.random.default_rng(1).integers(0, 2**63, 300).astype(np.uint64)
    order = np.random.default_rng(2).permutation(300)
    with pytest.warns(UserWarning, match="one well"):
        first = novelty_scores(x, controls, wells, method="svm", cell_keys=keys)
    with pytest.warns(UserWarning, match="one well"):
        again = novelty_scores(
            x[order], controls[order], wells[order], method="svm", cell_keys=keys[order]
        )
    # (the SVM's solver visits its training cells in order: within 0.001 there)
    np.testing.assert_allclose(again.scores, first.scores[order], rtol=2e-3, atol=2e-3)
