"""pipeline.phenotype_groups: how many phenotype groups the novel cells make, and the groups."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellae.pipeline.phenotype_groups import auto_groups, phenotype_groups


def test_many_novel_cells_get_more_groups_than_the_silhouette_picks() -> None:
    rng = np.random.default_rng(0)
    # One continuous cloud: the silhouette's best is 2, but 1,200 cells make 10 groups.
    assert auto_groups(rng.normal(size=(1200, 6))) == 10
    assert auto_groups(rng.normal(size=(6000, 6))) == 12  # at most 12
    assert auto_groups(rng.normal(size=(60, 6))) >= 2
    assert auto_groups(rng.normal(size=(9, 6))) == 1  # too few to split
    assert auto_groups(np.zeros((50, 6))) == 1  # all alike


def test_groups_are_learnt_from_a_sample_of_many_novel_cells(monkeypatch) -> None:
    from napari_cellae.pipeline import phenotype_groups as groups

    monkeypatch.setattr(groups, "_FIT_CELLS", 60)  # as for a whole screen's novel cells
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 4))
    x[:150, 0] += 8  # two phenotypes among 300 novel cells, 100 controls
    x[150:300, 1] += 8
    controls = np.r_[np.zeros(300, bool), np.ones(100, bool)]
    clusters, typical = groups.phenotype_groups(x, ~controls, controls, n_groups=2)
    assert set(clusters[:150]) | set(clusters[150:300]) == {1, 2}  # every novel cell placed
    assert len(set(clusters[:150])) == 1 and set(clusters[:150]) != set(clusters[150:300])
    assert np.all(clusters[controls] == 0) and all(len(v) == 8 for v in typical.values())


def test_no_more_groups_than_novel_cells_that_differ() -> None:
    import warnings

    import pytest

    from napari_cellae.pipeline.phenotype_groups import phenotype_groups

    # 13 novel cells, two of them copies of one another (found by the option sweep: --groups
    # 13 printed '13 phenotype group(s)', scikit-learn's "Number of distinct clusters (12)
    # found smaller than n_clusters (13)" warning, and group 13 held no cell).
    rng = np.random.default_rng(2)
    x = rng.normal(size=(33, 5))
    x[1] = x[0]
    x[:13] += 6
    novel = np.r_[np.ones(13, bool), np.zeros(20, bool)]
    with pytest.raises(ValueError, match=r"13 novel cells: only 12 of them differ.* at most 12"):
        phenotype_groups(x, novel, ~novel, n_groups=13)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clusters, typical = phenotype_groups(x, novel, ~novel, n_groups=12)
    assert set(clusters[novel]) == set(range(1, 13)) == set(typical)
    assert clusters[0] == clusters[1]
    # Chosen from the data: never more groups than distinct cells.
    x[3:13] = x[2]  # 3 distinct novel cells, of 13
    clusters, typical = phenotype_groups(x, novel, ~novel)
    assert set(clusters[novel]) == set(typical) and len(typical) <= 3


def test_a_plate_of_one_control_well_is_grouped_on_the_scale_novelty_used() -> None:
    from napari_cellae.pipeline.phenotype_groups import phenotype_groups

    # Two phenotypes (feature 0 or 2 raised) on two plates. Plate B's one control well
    # happens to vary little in feature 1: scaled on that well, as the groups once were
    # (novelty scales such a plate on every plate's controls), B's novel cells were
    # spread out along feature 1 and split by plate instead of by phenotype.
    rng = np.random.default_rng(3)
    n = 120
    plate_a = rng.normal(size=(4 * n, 4))  # wells: control, control, P, Q
    plate_b = rng.normal(size=(3 * n, 4))  # wells: control, P, Q
    plate_b[:n, 1] *= 0.05
    for plate, first in ((plate_a, 2), (plate_b, 1)):
        plate[first * n : (first + 1) * n, 0] += 8.0
        plate[(first + 1) * n :, 2] += 8.0
    x = np.r_[plate_a, plate_b]
    plates = np.repeat(["A", "B"], [4 * n, 3 * n])
    wells = np.repeat(np.arange(7), n)
    controls = np.isin(wells, [0, 1, 4])
    phenotype = np.select([np.isin(wells, [2, 5]), np.isin(wells, [3, 6])], [1, 2], 0)
    novel = phenotype > 0
    clusters, _ = phenotype_groups(x, novel, controls, 2, plates=plates, wells=wells)
    for p in (1, 2):  # each phenotype one group, whichever plate its cells are on
        assert len(set(clusters[phenotype == p])) == 1
    assert set(clusters[phenotype == 1]) != set(clusters[phenotype == 2])


def test_per_cell_arrays_of_another_length_are_refused() -> None:
    x = np.random.default_rng(0).normal(size=(40, 3))
    novel, controls = np.arange(40) >= 20, np.arange(40) < 20
    for name in ("plates", "wells", "cell_keys"):
        with pytest.raises(ValueError, match=f"{name.replace('_', ' ')} .* do not match the 40"):
            phenotype_groups(x, novel, controls, 2, **{name: np.zeros(41, np.int64)})
