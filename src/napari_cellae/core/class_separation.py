"""How well features separate known classes: cross-validated nearest-neighbour accuracy.

Moved out of :mod:`napari_cellae.core.features`, which takes its input check from here.
"""

from __future__ import annotations

import numpy as np

__all__ = ["feature_matrix", "knn_accuracy"]


def feature_matrix(features: np.ndarray) -> np.ndarray:
    """``features`` as a float64 array of shape (N, F).

    Raises
    ------
    ValueError
        If it is not two-dimensional.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must have shape (N, F), got {x.shape}")
    return x


def knn_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    k: int = 5,
    folds: int = 5,
    seed: int = 0,
    standardise_features: bool = True,
) -> float:
    """Cross-validated k-nearest-neighbour accuracy: how well features separate known classes.

    Objects with a negative label (unknown class) are ignored.

    Parameters
    ----------
    features : ndarray, shape (N, F)
    labels : ndarray, shape (N,)
        Integer class of each object (e.g. CellH5 class predictions).
    k : int
        Neighbours that vote.
    folds, seed : int
        Stratified cross-validation folds, shuffled with ``seed``.
    standardise_features : bool
        Scale every feature to unit variance first (fitted on the training folds) so no
        single large-valued feature dominates the distance.

    Returns
    -------
    float
        Fraction of objects whose class is predicted correctly; NaN where no class holds
        two labelled objects.
    """
    import warnings

    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = feature_matrix(features)
    y = np.asarray(labels).astype(np.int64)
    if len(x) != len(y):
        raise ValueError(f"features {x.shape} and labels {y.shape} do not match")
    keep = y >= 0
    x, y = x[keep], y[keep]
    largest = int(np.unique(y, return_counts=True)[1].max(initial=0))
    if largest < 2:  # no class in two folds: scikit-learn refuses to split
        return float("nan")
    folds = max(2, min(folds, largest))
    # the largest test fold holds ceil(n / folds) objects; the others must outnumber k
    neighbours = KNeighborsClassifier(n_neighbors=min(k, len(y) - (len(y) + folds - 1) // folds))
    model = make_pipeline(StandardScaler(), neighbours) if standardise_features else neighbours
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes with fewer cells than folds
        pred = cross_val_predict(
            model, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed)
        )
    return float(np.mean(pred == y))
