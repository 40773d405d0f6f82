"""pipeline.group_count: how many phenotype groups the novel cells make."""

from __future__ import annotations

import numpy as np

from napari_cellae.pipeline.group_count import auto_groups


def test_many_novel_cells_get_more_groups_than_the_silhouette_picks() -> None:
    rng = np.random.default_rng(0)
    # One continuous cloud: the silhouette's best is 2, but 1,200 cells make 10 groups.
    assert auto_groups(rng.normal(size=(1200, 6))) == 10
    assert auto_groups(rng.normal(size=(6000, 6))) == 12  # at most 12
    assert auto_groups(rng.normal(size=(60, 6))) >= 2
    assert auto_groups(rng.normal(size=(9, 6))) == 1  # too few to split
    assert auto_groups(np.zeros((50, 6))) == 1  # all alike
