"""Measures of feature quality the way screens use features (scikit-learn).

* :func:`logistic_f1`: weighted F1 of a standardised L2 logistic regression against the
  true phenotype (15 % stratified test split, mean over split seeds), the protocol of the
  published MitoCheck comparison;
* :func:`knn_accuracy`: 5-nearest-neighbour accuracy, stratified 5-fold;
* :func:`novelty_auroc`: per phenotype, the AUROC of its cells' novelty scores (the
  product's, :func:`napari_cellae.core.novelty.novelty_scores`: a control cell is scored
  against the *other* control wells only) against control interphase cells;
* :func:`hit_wells`: wells ranked by the fraction of their cells above a percentile of the
  controls' scores; AUROC of perturbation wells against control wells.

Every function takes plain arrays (features ``(n, f)``, one label / well / flag per cell).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "HitWells",
    "hit_wells",
    "knn_accuracy",
    "logistic_f1",
    "novelty_auroc",
]


def _common_classes(labels: np.ndarray, minimum: int) -> np.ndarray:
    """Mask of the cells whose class has at least ``minimum`` members (splits need them)."""
    counts = np.bincount(labels)
    return counts[labels] >= minimum


def logistic_f1(
    features: np.ndarray, labels: np.ndarray, seeds: int = 5, test_size: float = 0.15
) -> float:
    """Weighted F1 of a standardised L2 logistic regression on held-out cells.

    Parameters
    ----------
    features : ndarray (n, f)
    labels : ndarray of int (n,)
        True class per cell (>= 0).
    seeds : int
        Stratified splits (seeds ``0 .. seeds-1``) to average over.
    test_size : float
        Share of the cells held out for testing.

    Returns
    -------
    float
        Mean weighted F1 over the splits; classes with fewer than 2 cells are left out.
    """
    keep = _common_classes(labels, 2)
    x, y = features[keep], labels[keep]
    scores = []
    for seed in range(seeds):
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=test_size, stratify=y, random_state=seed
        )
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on near-separable sets
            model.fit(x_train, y_train)
        predicted = model.predict(x_test)
        scores.append(f1_score(y_test, predicted, average="weighted", zero_division=0))
    return float(np.mean(scores))


def knn_accuracy(
    features: np.ndarray, labels: np.ndarray, k: int = 5, folds: int = 5, seed: int = 0
) -> float:
    """Accuracy of k-nearest-neighbours on standardised features, stratified k-fold.

    Parameters
    ----------
    features : ndarray (n, f)
    labels : ndarray of int (n,)
    k : int
        Neighbours that vote.
    folds : int
        Cross-validation folds (shuffled with ``seed``).
    seed : int

    Returns
    -------
    float
        Mean accuracy over the folds.
    """
    keep = _common_classes(labels, 2)
    model = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes with fewer members than folds
        scores = cross_val_score(model, features[keep], labels[keep], cv=split)
    return float(np.mean(scores))


def novelty_auroc(
    scores: np.ndarray,
    labels: np.ndarray,
    is_control: np.ndarray,
    reference: int = 0,
) -> dict[int, float]:
    """Per phenotype, AUROC of its cells' novelty scores against control reference cells.

    Parameters
    ----------
    scores : ndarray (n,)
        Novelty scores (:func:`napari_cellae.core.novelty.novelty_scores`).
    labels : ndarray of int (n,)
    is_control : ndarray of bool (n,)
    reference : int
        The class of ordinary cells (interphase); the negatives are control cells of it.

    Returns
    -------
    dict
        Class -> AUROC (1: every cell of the class scores above every control reference
        cell; 0.5: indistinguishable), for every class but ``reference`` that has cells.
    """
    negatives = scores[np.asarray(is_control, bool) & (labels == reference)]
    out = {}
    for cls in np.unique(labels):
        if cls == reference:
            continue
        positives = scores[labels == cls]
        y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
        out[int(cls)] = float(roc_auc_score(y, np.r_[positives, negatives]))
    return out


@dataclass
class HitWells:
    """Wells ranked by their share of novel cells.

    Attributes
    ----------
    wells : ndarray
        Every well, in the order of :func:`numpy.unique`.
    fraction : ndarray of float
        Share of each well's cells above the controls' threshold.
    is_control : ndarray of bool
    auroc : float
        Perturbation wells vs control wells (1: every hit ranks above every control).
    hits_not_above_controls : int
        Perturbation wells whose fraction does not exceed the highest control well's.
    """

    wells: np.ndarray
    fraction: np.ndarray
    is_control: np.ndarray
    auroc: float
    hits_not_above_controls: int


def hit_wells(
    scores: np.ndarray, well: np.ndarray, is_control: np.ndarray, percentile: float = 95.0
) -> HitWells:
    """Rank wells by the fraction of their cells scoring above the controls' percentile.

    Parameters
    ----------
    scores : ndarray (n,)
        Novelty scores (control cells scored against other control wells).
    well : ndarray (n,)
    is_control : ndarray of bool (n,)
    percentile : float
        Threshold: this percentile of the control cells' scores.

    Returns
    -------
    HitWells
    """
    control = np.asarray(is_control, bool)
    threshold = np.percentile(scores[control], percentile)
    wells = np.unique(well)
    fraction = np.array([(scores[well == w] > threshold).mean() for w in wells])
    ctrl = np.array([control[well == w].all() for w in wells])
    if ctrl.all() or not ctrl.any():
        raise ValueError("hit-well ranking needs both control and perturbation wells")
    auroc = float(roc_auc_score(~ctrl, fraction))
    below = int((fraction[~ctrl] <= fraction[ctrl].max()).sum())
    return HitWells(wells, fraction, ctrl, auroc, below)
