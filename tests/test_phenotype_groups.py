"""pipeline.phenotype_groups: how many phenotype groups the novel cells make, and the groups."""

from __future__ import annotations

import numpy as np

from napari_cellae.pipeline.phenotype_groups import auto_groups


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
