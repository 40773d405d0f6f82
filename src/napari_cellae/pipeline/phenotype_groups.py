"""Phenotype groups of the novel cells (:func:`phenotype_groups`), and how many to make
(:func:`auto_groups`)."""

from __future__ import annotations

import numpy as np

__all__ = ["auto_groups", "phenotype_groups"]

_FIT_CELLS = 20_000  # k-means centres from at most this many novel cells (about 5 s)

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


def phenotype_groups(
    features: np.ndarray,
    novel: np.ndarray,
    controls: np.ndarray,
    n_groups: int | None = None,
    per_group: int = 8,
    seed: int = 0,
    plates: np.ndarray | None = None,
    wells: np.ndarray | None = None,
    cell_keys: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Cluster the novel cells into phenotype groups (k-means on standardised features).

    Parameters
    ----------
    features : ndarray (N, F)
    novel : ndarray (N,) bool
    controls : ndarray (N,) bool
        The features are standardised on the control cells, as for novelty.
    n_groups : int, optional
        Number of groups; None: :func:`auto_groups`
        of the novel cells.
    per_group : int
        Typical cells returned per group.
    seed : int
    plates : ndarray (N,), optional
        Plate of every cell: each plate's cells are standardised on its own control cells
        where they come from two wells or more, else on every plate's, as novelty scores
        them (:func:`~napari_cellae.core.novelty.plate_references`), so that a plate imaged
        otherwise does not form a group of its own.
    wells : ndarray (N,) of int, optional
        Well of every cell (the ids novelty held control cells out by); default: each
        control cell counts as a well of its own.
    cell_keys : ndarray (N,), optional
        A number naming every cell (:func:`~napari_cellae.pipeline.cell_ids.cell_keys`):
        the novel cells are clustered in the order of their keys, so that the same cells
        given in another order form the same groups. Default: in their order.

    Returns
    -------
    clusters : ndarray (N,) int16
        1..k for novel cells (1 = largest group), 0 otherwise.
    typical : dict of int to ndarray of int
        Per group, up to ``per_group`` cell indices nearest the group centre.

    Raises
    ------
    ValueError
        If ``n_groups`` is larger than the number of novel cells, or than the number of
        them whose features differ; or if ``plates``, ``wells`` or ``cell_keys`` do not
        have one value per cell.
    """
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    from napari_cellae.core.novelty import plate_references

    novel = np.asarray(novel, bool)
    for name, given in (("plates", plates), ("wells", wells), ("cell keys", cell_keys)):
        if given is not None and np.shape(given) != novel.shape:
            raise ValueError(f"{name} {np.shape(given)} do not match the {len(novel)} cells")
    clusters = np.zeros(len(novel), np.int16)
    rows = np.flatnonzero(novel)
    if cell_keys is not None:  # k-means' seeded start and samples follow the cells
        rows = rows[np.argsort(np.asarray(cell_keys)[rows], kind="stable")]
    if n_groups is not None and n_groups > len(rows):
        raise ValueError(
            f"cannot form {n_groups} phenotype groups from {len(rows)} novel cell(s); "
            "ask for fewer groups or a lower novelty percentile"
        )
    if len(rows) < 2:
        return clusters, {}
    # The controls alone in float64 (not the whole screen first: 2 KB per cell).
    features, controls = np.asarray(features), np.asarray(controls, bool)
    z = np.empty((len(rows), features.shape[1]), np.float64)
    at = np.full(len(novel), -1, np.intp)
    at[rows] = np.arange(len(rows))
    for _, plate_rows, reference, _ in plate_references(controls, plates, wells):
        mine = plate_rows[novel[plate_rows]]
        if not len(mine):
            continue
        ref = features[reference].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            z[at[mine]] = np.nan_to_num(StandardScaler().fit(ref).transform(features[mine]))
    k = n_groups if n_groups is not None else auto_groups(z, seed)
    # k-means learns its centres from at most _FIT_CELLS seeded novel cells (whole screens
    # have hundreds of thousands), then every novel cell joins its nearest centre.
    fit = z
    if len(z) > _FIT_CELLS:
        fit = z[np.random.default_rng(seed).choice(len(z), _FIT_CELLS, replace=False)]
    # Cells with equal features (e.g. crops that are copies) are one point to k-means: more
    # groups than points leaves some empty (scikit-learn warns about "distinct clusters").
    distinct = len(np.unique(fit, axis=0))
    if k > distinct:
        if n_groups is not None:
            raise ValueError(
                f"cannot form {n_groups} phenotype groups from {len(rows)} novel cells: only "
                f"{distinct} of them differ in their features; ask for at most {distinct}"
            )
        k = distinct
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(fit)
    assigned = kmeans.predict(z)
    # Number groups by size so that group 1 is the most common new phenotype.
    sizes = np.bincount(assigned, minlength=k)
    rank = np.empty(k, np.int16)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(1, k + 1)
    clusters[rows] = rank[assigned]
    distance = kmeans.transform(z)[np.arange(len(rows)), assigned]
    typical = {}
    for label in range(k):
        members = np.flatnonzero(assigned == label)
        nearest = members[np.argsort(distance[members], kind="stable")[:per_group]]
        typical[int(rank[label])] = rows[nearest]
    return clusters, dict(sorted(typical.items()))
