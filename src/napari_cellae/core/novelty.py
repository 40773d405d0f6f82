"""Novelty of every cell against the negative controls, and the wells that are hits.

A cell is *novel* when its features are unlike those of the negative-control cells: its
novelty score is above a percentile (default 95) of the controls' own scores. A control cell
is scored only against the control cells of *other* wells, so it never finds itself or its
well-mates and the controls' scores are as honest as everybody else's. A well (position) is
a hit when it holds more novel cells than the control wells do.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["NOVELTY_METHODS", "Novelty", "hit_table", "novelty_scores"]

NOVELTY_METHODS = ("knn", "svm")


@dataclass
class Novelty:
    """Novelty scores of all cells and the threshold that makes a cell novel.

    Attributes
    ----------
    scores : ndarray (N,) float32
        Higher = less like the negative controls.
    threshold : float
        The chosen percentile of the control cells' scores.
    novel : ndarray (N,) bool
        ``scores > threshold``.
    """

    scores: np.ndarray
    threshold: float
    novel: np.ndarray


def _groups_of_controls(controls: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Group (well) id of every control cell; each control cell its own group when the
    controls come from a single well (nothing else to compare against)."""
    ids = np.zeros(int(controls.sum()), np.int64) if groups is None else groups[controls]
    if len(np.unique(ids)) < 2:
        warnings.warn(
            "all negative-control cells come from one well: control cells are scored "
            "against the other control cells of that well",
            stacklevel=3,
        )
        return np.arange(len(ids))
    return np.asarray(ids)


def _knn_distance(reference: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(reference))
    nn = NearestNeighbors(n_neighbors=k).fit(reference)
    distances, _ = nn.kneighbors(query)
    return distances.mean(axis=1)


def _svm_score(reference: np.ndarray, query: np.ndarray, nu: float, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.svm import OneClassSVM

    # The one-class SVM works on a few principal components of the controls (as the
    # original CellH5 outlier tool did): RBF kernels lose their contrast in 100+ dimensions.
    k = min(20, reference.shape[1], len(reference) - 1)
    pca = PCA(n_components=max(k, 1), random_state=seed).fit(reference)
    svm = OneClassSVM(kernel="rbf", nu=nu, gamma="scale").fit(pca.transform(reference))
    return -svm.decision_function(pca.transform(query))


def novelty_scores(
    features: np.ndarray,
    controls: np.ndarray,
    groups: np.ndarray | None = None,
    method: str = "knn",
    k: int = 5,
    nu: float = 0.05,
    percentile: float = 95.0,
    seed: int = 0,
) -> Novelty:
    """Score every cell by how unlike the negative-control cells it is.

    Parameters
    ----------
    features : ndarray (N, F)
    controls : ndarray (N,) bool
        True for negative-control cells.
    groups : ndarray (N,) of int, optional
        Well (or position) of every cell; a control cell is scored against the control
        cells of other groups only. Without groups, against all other control cells.
    method : {"knn", "svm"}
        ``"knn"``: mean distance to the ``k`` nearest control cells in feature space
        standardised on the controls. ``"svm"``: a one-class SVM (RBF kernel, ``nu``) on
        the controls' leading principal components.
    k : int
        Neighbours averaged by ``"knn"``.
    nu : float
        Share of control cells the one-class SVM may leave outside (0 < nu <= 1).
    percentile : float
        A cell is novel above this percentile of the control cells' scores (0-100).
    seed : int
        Seed of the PCA for ``"svm"``.

    Returns
    -------
    Novelty

    Raises
    ------
    ValueError
        If there are no control cells, or an option is out of range.
    """
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float64)
    controls = np.asarray(controls, dtype=bool)
    if x.ndim != 2 or controls.shape != (len(x),):
        raise ValueError(f"features {x.shape} and controls {controls.shape} do not match")
    if method not in NOVELTY_METHODS:
        raise ValueError(f"unknown novelty method {method!r}; choose knn or svm")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in 0..100, got {percentile}")
    if not 0 < nu <= 1 or k < 1:
        raise ValueError(f"need k >= 1 and 0 < nu <= 1, got k={k}, nu={nu}")
    if controls.sum() < 2:
        raise ValueError(
            "novelty needs negative-control cells to compare with, but "
            f"{int(controls.sum())} cell(s) are in control positions; give a position "
            "mapping whose Group column marks the negative controls"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or infinite values")
    scaler = StandardScaler().fit(x[controls])
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.nan_to_num(scaler.transform(x))

    def score(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
        if method == "knn":
            return _knn_distance(reference, query, k)
        return _svm_score(reference, query, nu, seed)

    scores = np.empty(len(x), np.float64)
    ref = z[controls]
    others = ~controls
    if others.any():
        scores[others] = score(ref, z[others])
    control_rows = np.flatnonzero(controls)
    control_groups = _groups_of_controls(controls, groups)
    unique = np.unique(control_groups)
    if method == "knn" and len(unique) == len(control_rows):
        # Leave-one-out: the nearest neighbour of each control is itself; skip it.
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=min(k + 1, len(ref))).fit(ref)
        distances, _ = nn.kneighbors(ref)
        scores[control_rows] = distances[:, 1:].mean(axis=1)
    else:
        # Each control group against all the others (the SVM, costlier to fit, in at most
        # 10 folds of groups).
        n_folds = len(unique) if method == "knn" else min(len(unique), 10)
        folds = np.searchsorted(unique, control_groups) % n_folds
        for fold in np.unique(folds):
            held = folds == fold
            scores[control_rows[held]] = score(ref[~held], ref[held])
    threshold = float(np.percentile(scores[controls], percentile))
    return Novelty(scores.astype(np.float32), threshold, scores > threshold)


def hit_table(
    novel: np.ndarray,
    groups: np.ndarray,
    controls: np.ndarray,
    labels: list[str] | None = None,
):
    """Rank groups (positions or conditions) by their share of novel cells.

    Parameters
    ----------
    novel : ndarray (N,) bool
    groups : ndarray (N,) of int
        Group index of every cell (e.g. position index).
    controls : ndarray (N,) bool
        Negative-control cells; a group is a control group when its cells are controls.
    labels : list of str, optional
        Name of every group index (default: the index).

    Returns
    -------
    pandas.DataFrame
        One row per group holding cells: ``group``, ``n_cells``, ``n_novel``,
        ``novel_fraction``, ``enrichment`` (novel fraction over that of all control cells),
        ``robust_z`` (against the control groups' novel fractions: median and MAD),
        ``is_control`` and ``rank`` (1 = strongest hit), sorted by rank.
    """
    import pandas as pd

    novel = np.asarray(novel, bool)
    groups = np.asarray(groups, np.int64)
    controls = np.asarray(controls, bool)
    present = np.unique(groups)
    n_cells = np.array([np.sum(groups == g) for g in present])
    n_novel = np.array([np.sum(novel[groups == g]) for g in present])
    is_control = np.array([bool(controls[groups == g].all()) for g in present])
    fraction = n_novel / n_cells
    control_fraction = novel[controls].mean() if controls.any() else np.nan
    ref = fraction[is_control]
    median = np.median(ref) if len(ref) else np.nan
    # 1.4826 MAD estimates the standard deviation of normal data; the floor keeps a
    # perfectly flat set of control wells from making every z infinite.
    mad = 1.4826 * np.median(np.abs(ref - median)) if len(ref) else np.nan
    spread = max(mad, 1.0 / max(int(np.median(n_cells)), 1)) if len(ref) else np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        enrichment = fraction / control_fraction
    table = pd.DataFrame(
        {
            "group": [labels[g] if labels is not None else str(g) for g in present],
            "n_cells": n_cells,
            "n_novel": n_novel,
            "novel_fraction": fraction,
            "enrichment": enrichment,
            "robust_z": (fraction - median) / spread,
            "is_control": is_control,
        }
    )
    table["rank"] = table["novel_fraction"].rank(ascending=False, method="min").astype(int)
    return table.sort_values(["rank", "group"], kind="stable").reset_index(drop=True)
