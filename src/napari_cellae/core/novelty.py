"""Novelty of every cell against the negative controls.

A cell is *novel* when its features are unlike those of the negative-control cells: its
novelty score is above a percentile (default 80) of the controls' own scores. A control cell
is scored only against the control cells of *other* wells, so it never finds itself or its
well-mates, and every other cell against the same references as the controls of one well,
so that both meet as many controls and their scores compare. A well (position) is
a hit when it holds more novel cells than the control wells do
(:mod:`napari_cellae.core.hit_statistics`).

Why 80 and not 95: control wells hold their own dividing and dying cells (13-24 % on the
benchmark screens; every real control well has some), and a 95th-percentile bar sits among
those. A well arrested in mitosis then shows
cells that are no more unusual than the controls' own mitotic ones, and is missed; and at a
hundred-odd cells per well, 5 % is a handful of cells, so the control wells' novel fractions
are mostly counting noise. A bar at the 80th percentile lies among the ordinary cells.

Groups of feature columns can be scored apart and added (``views``): the five outline
measurements of :mod:`napari_cellae.core.morphology` weigh as 5 of some 260 numbers in one
distance, but as much as the learned features when scored on their own.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from napari_cellae.core import control_references as references
from napari_cellae.core.novel_bar import novel_bar
from napari_cellae.io.definition import shown_name

__all__ = [
    "NOVELTY_METHODS",
    "NOVELTY_NEIGHBOURS",
    "NOVEL_PERCENTILE",
    "Novelty",
    "PlateReference",
    "novelty_scores",
    "plate_references",
]

NOVELTY_METHODS = ("knn", "svm")
# A cell is novel above this percentile of the control cells' scores (see above).
NOVEL_PERCENTILE = 80.0
# Control cells whose distances make a cell's "knn" score. Control wells hold a few cells of
# most phenotypes (1-2 % each), so with 5 a phenotype's cells found 5 such look-alikes; 10
# raised novelty and hit-well AUROC with the learned features on three benchmark screens.
NOVELTY_NEIGHBOURS = 10
_BLOCK = 50_000  # cells scored at once
# Control cells a cell is compared with at most: compared with each of a whole screen's
# controls (a quarter of a million cells and more), the scoring grew with the square of the
# screen. The benchmark screens (about 1,100 control cells) keep their scores; halving
# their controls moved novelty AUROC by at most 0.4 points.
_MAX_REFERENCE = 50_000


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
        Above the threshold (:func:`~napari_cellae.core.novel_bar.above_bar`).
    """

    scores: np.ndarray
    threshold: float
    novel: np.ndarray


def _knn_distance(reference: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(reference))
    nn = NearestNeighbors(n_neighbors=k).fit(reference)
    distances, _ = nn.kneighbors(query)
    return distances.mean(axis=1)


def _svm_score(
    reference: np.ndarray, query: np.ndarray, nu: float, gamma: float | str, seed: int
) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.svm import OneClassSVM

    # The one-class SVM works on a few principal components of the controls (as the
    # original CellH5 outlier tool did): RBF kernels lose their contrast in 100+ dimensions.
    k = min(20, reference.shape[1], len(reference) - 1)
    # Controls without variance (constant features, a single reference cell): PCA's share
    # of explained variance is 0 / 0, a RuntimeWarning for the user about nothing; the
    # projection itself stays finite.
    with np.errstate(invalid="ignore", divide="ignore"):
        pca = PCA(n_components=max(k, 1), random_state=seed).fit(reference)
    svm = OneClassSVM(kernel="rbf", nu=nu, gamma=gamma).fit(pca.transform(reference))
    return -svm.decision_function(pca.transform(query))


def novelty_scores(
    features: np.ndarray,
    controls: np.ndarray,
    groups: np.ndarray | None = None,
    method: str = "knn",
    k: int = NOVELTY_NEIGHBOURS,
    nu: float = 0.05,
    percentile: float = NOVEL_PERCENTILE,
    seed: int = 0,
    gamma: float | str = "scale",
    views: Sequence[np.ndarray] | None = None,
    plates: np.ndarray | None = None,
    cell_keys: np.ndarray | None = None,
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
        standardised on the controls (of at most :data:`_MAX_REFERENCE` control cells, a
        seeded sample where there are more). ``"svm"``: a one-class SVM (RBF kernel,
        ``nu``) on the controls' leading principal components.
    k : int
        Neighbours averaged by ``"knn"`` (default 10, :data:`NOVELTY_NEIGHBOURS`).
    nu : float
        Share of control cells the one-class SVM may leave outside (0 < nu < 1; at 1
        scikit-learn's SVM has no finite solution).
    percentile : float
        A cell is novel above this percentile of the control cells' scores (0-100).
    seed : int
        Seed of the sample of control cells (where there are more than
        :data:`_MAX_REFERENCE`) and of the PCA for ``"svm"``.
    gamma : float or "scale"
        RBF kernel width of the one-class SVM (scikit-learn's ``gamma``; ``"scale"``:
        one over the number of components times their variance).
    views : sequence of ndarray of int, optional
        Groups of feature columns scored apart (such as the learned features and the
        outline measurements, :func:`napari_cellae.core.morphology.novelty_views`): each
        group's score is centred on the control cells' median score and divided by their
        interquartile range, and the cell's score is the sum. Default: one score over all
        columns.
    plates : ndarray (N,), optional
        Plate of every cell. With ``groups``, each plate's cells are standardised on the
        mean and spread of that plate's own control cells, where it holds control cells of
        at least two groups (else on all control cells, with a warning): plates differ in
        focus, staining and segmentation, and a cell is then compared with the controls as
        they look on its own plate. Default: every cell on all control cells.
    cell_keys : ndarray (N,) of uint64, optional
        A number naming every cell (such as a hash of its plate, position and object): which
        control well a non-control cell is scored without, and the sample of control cells
        where there are more than :data:`_MAX_REFERENCE`, follow the cells, not their order,
        so the same cells in another order get the same scores. Default: by their order.

    Returns
    -------
    Novelty

    Raises
    ------
    ValueError
        If there are no control cells, or an option is out of range.
    """
    x = np.array(features, dtype=np.float64)  # a copy: standardised in place below
    controls = np.asarray(controls, dtype=bool)
    if x.ndim != 2 or controls.shape != (len(x),):
        raise ValueError(f"features {x.shape} and controls {controls.shape} do not match")
    if method not in NOVELTY_METHODS:
        raise ValueError(f"unknown novelty method {method!r}; choose knn or svm")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in 0..100, got {percentile}")
    if not 0 < nu < 1 or k < 1:
        raise ValueError(f"need k >= 1 and 0 < nu < 1, got k={k}, nu={nu}")
    if gamma != "scale" and not (isinstance(gamma, int | float) and gamma > 0):
        raise ValueError(f"gamma must be 'scale' or a positive number, got {gamma!r}")
    if controls.sum() < 2:
        raise ValueError(
            "novelty needs negative-control cells to compare with, but "
            f"{int(controls.sum())} cell(s) are in control positions; give a position "
            "mapping whose Group column marks the negative controls"
        )
    if x.shape[1] == 0:
        raise ValueError("novelty needs at least one feature per cell, got none")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or infinite values")
    if len(x) and np.abs(x).max() > np.finfo(np.float32).max:  # their variance overflows
        raise ValueError("features hold values beyond float32's range (about 3.4e38)")
    for columns in views or ():
        if len(columns) == 0 or min(columns) < 0 or max(columns) >= x.shape[1]:
            raise ValueError(f"a view's columns must be some of the {x.shape[1]} features")
    if plates is not None and np.shape(plates) != (len(x),):
        raise ValueError(f"plates {np.shape(plates)} do not match the {len(x)} cells")
    if cell_keys is not None and np.shape(cell_keys) != (len(x),):
        raise ValueError(f"cell keys {np.shape(cell_keys)} do not match the {len(x)} cells")
    z = _standardised(x, controls, groups, plates)

    def score(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
        if method == "knn":
            return _knn_distance(reference, query, k)
        return _svm_score(reference, query, nu, gamma, seed)

    keys = None if cell_keys is None else np.asarray(cell_keys, np.uint64)
    control_keys = None if keys is None else keys[controls]
    control_groups = references.control_groups(controls, groups, control_keys)
    sampled = _reference_sample(int(controls.sum()), seed, control_keys)
    references.warn_few_references(control_groups, sampled, method, k, percentile)
    scored = (controls, control_groups, sampled, method, k, score, keys)
    if not views:
        scores = _scores(z, slice(None), *scored)
    else:
        scores = np.zeros(len(x), np.float64)
        for columns in views:
            scores += _robust_z(_scores(z, _columns(columns), *scored), controls)
    # The bar and the flags from the scores as stored (float32): drawn through the float64
    # scores, a cell within rounding above it changed sides when the stored scores were
    # thresholded again at the same percentile ('cellae hits --novelty-percentile').
    stored = scores.astype(np.float32)
    scores = stored.astype(np.float64)
    return Novelty(stored, *novel_bar(scores, controls, percentile))


class PlateReference(NamedTuple):
    """The cells of one plate and the control cells they are standardised on.

    Attributes
    ----------
    plate : object
        The plate's name (None: all cells, where they are not split by plate).
    rows : ndarray of int
        The plate's cells.
    reference : ndarray of int
        The control cells its features are centred and scaled on.
    own : bool
        Whether those are the plate's own control cells (else every plate's).
    """

    plate: object
    rows: np.ndarray
    reference: np.ndarray
    own: bool


def plate_references(
    controls: np.ndarray, plates: np.ndarray | None, groups: np.ndarray | None = None
) -> list[PlateReference]:
    """Which control cells each plate's cells are standardised on.

    A plate's own control cells where they come from two groups (wells) or more, else
    every plate's control cells. Novelty (:func:`novelty_scores`), the phenotype groups
    and the 2-D maps all use this rule, so a cell is placed on one scale in all three: the
    maps once scaled a plate without control cells on its own cells, which centred each
    of its wells' phenotypes on itself.

    Parameters
    ----------
    controls : ndarray (N,) bool
    plates : ndarray (N,), optional
        Plate of every cell; None or one plate: one entry of all cells, on all controls.
    groups : ndarray (N,) of int, optional
        Well of every cell; default: each control cell counts as a well of its own.

    Returns
    -------
    list of PlateReference
        One per plate, in sorted order of the plate names.
    """
    controls = np.asarray(controls, bool)
    every = np.flatnonzero(controls)
    if plates is None or len(np.unique(plates)) < 2:
        return [PlateReference(None, np.arange(len(controls)), every, True)]
    plates = np.asarray(plates)
    ids = np.arange(len(controls)) if groups is None else np.asarray(groups)
    out = []
    for plate in np.unique(plates):
        rows = np.flatnonzero(plates == plate)
        own = rows[controls[rows]]
        mine = len(np.unique(ids[own])) >= 2
        out.append(PlateReference(plate, rows, own if mine else every, mine))
    return out


def _standardised(
    x: np.ndarray, controls: np.ndarray, groups: np.ndarray | None, plates: np.ndarray | None
) -> np.ndarray:
    """``x`` standardised in place on the control cells, each plate on its own controls
    where it has control cells of two groups or more (:func:`plate_references`)."""
    from sklearn.preprocessing import StandardScaler

    # In place, and the cells scored in blocks: a screen's features in float64 take 2 KB
    # per cell, and every whole copy more counts.
    pooled = StandardScaler().fit(x[controls])  # before any row changes
    with np.errstate(invalid="ignore", divide="ignore"):
        if plates is None or groups is None or len(np.unique(plates)) < 2:
            return np.nan_to_num(pooled.transform(x, copy=False), copy=False)  # no copy
        for plate, rows, reference, own in plate_references(controls, plates, groups):
            scaler = pooled
            if own:  # this plate's rows are still as given
                scaler = StandardScaler().fit(x[reference])
            else:
                warnings.warn(
                    f"plate {shown_name(str(plate))} holds control cells of fewer than two"
                    " wells: its cells are compared on the scale of all plates' control cells",
                    stacklevel=3,
                )
            x[rows] = np.nan_to_num(scaler.transform(x[rows], copy=False), copy=False)
    return x


def _reference_sample(n_controls: int, seed: int, keys: np.ndarray | None) -> np.ndarray:
    """Which control cells the others are compared with: all, or a seeded sample of
    :data:`_MAX_REFERENCE` where there are more (chosen by the cells' ``keys`` where
    given, so that it does not depend on their order)."""
    if n_controls <= _MAX_REFERENCE:
        return np.ones(n_controls, bool)
    sampled = np.zeros(n_controls, bool)
    if keys is None:
        chosen = np.random.default_rng(seed).choice(n_controls, _MAX_REFERENCE, replace=False)
    else:
        chosen = references.key_order(keys, seed)[:_MAX_REFERENCE]
    sampled[chosen] = True
    return sampled


def _scores(
    z: np.ndarray,
    columns: slice | np.ndarray,
    controls: np.ndarray,
    control_groups: np.ndarray,
    sampled: np.ndarray,
    method: str,
    k: int,
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
    keys: np.ndarray | None,
) -> np.ndarray:
    """One score per cell on some columns of the standardised features: a control cell
    against the control cells of the other control groups, every other cell against the
    same references (see below; ``keys``: :func:`novelty_scores`' ``cell_keys``)."""
    scores = np.empty(len(z), np.float64)
    control_rows = np.flatnonzero(controls)
    ref = z[control_rows[sampled]][:, columns]
    rows = np.flatnonzero(~controls)
    unique = np.unique(control_groups)
    if method == "knn" and len(unique) == len(control_rows):
        for start in range(0, len(rows), _BLOCK):
            block = rows[start : start + _BLOCK]
            scores[block] = score(ref, z[block][:, columns])
        # Leave-one-out: the nearest neighbour of a control in the reference is itself
        # (where it is one of the sample); skip it.
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=min(k + 1, len(ref))).fit(ref)
        distances, _ = nn.kneighbors(z[control_rows][:, columns])
        own, other = distances[:, 1:].mean(axis=1), distances[:, :k].mean(axis=1)
        scores[control_rows] = np.where(sampled, own, other)
        return scores
    # Each control group against all the others (the SVM, costlier to fit, in at most 10
    # folds of groups). The other cells are dealt out over the same folds and each is
    # scored against its fold's references: against all the controls, where a control
    # meets only those of the other folds, they found nearer neighbours than the controls
    # themselves, so fewer of a null well's cells passed the controls' percentile (10 %
    # instead of 20 % with two control wells, 15 % with four).
    n_folds = len(unique) if method == "knn" else min(len(unique), 10)
    folds = np.searchsorted(unique, control_groups) % n_folds
    dealt = references.dealt_folds(len(rows), n_folds, None if keys is None else keys[rows])
    for fold in range(n_folds):
        others = ref[folds[sampled] != fold]
        query = np.concatenate([control_rows[folds == fold], rows[dealt == fold]])
        for start in range(0, len(query), _BLOCK):
            block = query[start : start + _BLOCK]
            scores[block] = score(others, z[block][:, columns])
    return scores


def _columns(columns: np.ndarray) -> slice | np.ndarray:
    """A run of consecutive columns as a slice, so that selecting it copies nothing."""
    columns = np.asarray(columns, np.intp)
    if len(columns) and np.array_equal(columns, np.arange(columns[0], columns[0] + len(columns))):
        return slice(int(columns[0]), int(columns[0]) + len(columns))
    return columns


def _robust_z(scores: np.ndarray, controls: np.ndarray) -> np.ndarray:
    """Scores centred on the control cells' median and divided by their interquartile range
    (their standard deviation, or 1, where that is 0), so that views add up on one scale."""
    reference = scores[controls]
    low, centre, high = np.percentile(reference, [25, 50, 75])
    spread = high - low if high > low else float(reference.std()) or 1.0
    return (scores - centre) / spread
