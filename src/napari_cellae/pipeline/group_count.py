"""How many phenotype groups to make of the novel cells (:func:`auto_groups`)."""

from __future__ import annotations

import numpy as np

__all__ = ["auto_groups"]

# Groups chosen from the data (auto_groups): at most this many, and at least
# sqrt(novel cells / _CELLS_PER_GROUP_SQ).
_MAX_AUTO_GROUPS = 12
_CELLS_PER_GROUP_SQ = 12
_SILHOUETTE_CELLS = 2000  # silhouette is quadratic in the cells it looks at
_SILHOUETTE_MAX = 8


def auto_groups(z: np.ndarray, seed: int = 0) -> int:
    """How many phenotype groups to make of the novel cells ``z`` (standardised features).

    The k in 2..8 with the best silhouette (on at most 2,000 seeded cells), but at least
    ``sqrt(cells / 12)`` and at most 12; 1 below 10 distinct cells. Cell phenotypes shade
    into each other, so the silhouette alone chose 2 or 3 groups for 14 phenotypes on the
    benchmark screens (purity 0.25-0.30), where 10-12 groups gave 0.47-0.61: two groups of
    one phenotype are easy to see as such in the gallery, one group of five is not. With
    few novel cells the silhouette's choice stands (e.g. two hit phenotypes plus stray
    control cells: 3 groups).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    if len(z) < 10 or len(np.unique(z, axis=0)) < 3:
        return 1
    rng = np.random.default_rng(seed)
    sample = z if len(z) <= _SILHOUETTE_CELLS else z[rng.choice(len(z), _SILHOUETTE_CELLS, False)]
    best, best_score = 1, -1.0
    for k in range(2, min(_SILHOUETTE_MAX, len(sample) // 5) + 1):
        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(sample)
        if len(np.unique(labels)) < 2:
            continue
        score = silhouette_score(sample, labels, random_state=seed)
        if score > best_score:
            best, best_score = k, score
    floor = round(np.sqrt(len(z) / _CELLS_PER_GROUP_SQ))
    return int(min(max(best, floor, 2), _MAX_AUTO_GROUPS, len(z) // 5))
