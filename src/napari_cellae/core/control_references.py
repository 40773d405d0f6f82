"""Which control cells each control cell is scored against, and warnings where they are few.

Novelty compares every cell with negative-control cells: a control cell with those of the
*other* control wells (its own well would make it look ordinary), every other cell with the
same folds of wells. Where the controls are few, the score's scale and the novelty bar (a
percentile of the control cells' scores) rest on a handful of numbers: with 2-4 control
cells the scores reached -123 and +2315, and a well's share of novel cells meant little.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = [
    "FEW_CONTROL_CELLS",
    "control_groups",
    "dealt_folds",
    "few_controls_note",
    "key_order",
    "warn_few_references",
]

# Below this many control cells, their 80th percentile moves by whole cells.
FEW_CONTROL_CELLS = 20


def control_groups(
    controls: np.ndarray, groups: np.ndarray | None, keys: np.ndarray | None = None
) -> np.ndarray:
    """Group (well) id of every control cell; each control cell its own group when the
    controls come from a single well (nothing else to compare against), numbered in the
    order of their ``keys`` where given (the control cells' keys: the SVM deals the groups
    to folds by their ids, which then follow the cells, not their rows)."""
    ids = np.zeros(int(controls.sum()), np.int64) if groups is None else groups[controls]
    if len(np.unique(ids)) < 2:
        warnings.warn(
            "all negative-control cells come from one well: control cells are scored "
            "against the other control cells of that well",
            stacklevel=3,
        )
        if keys is None:
            return np.arange(len(ids))
        own = np.empty(len(ids), np.int64)
        own[np.argsort(np.asarray(keys, np.uint64), kind="stable")] = np.arange(len(ids))
        return own
    return np.asarray(ids)


def dealt_folds(n_cells: int, n_folds: int, keys: np.ndarray | None) -> np.ndarray:
    """The fold of control wells each non-control cell is scored without.

    By the cells' ``keys`` where given (a number that names each cell), so that the same
    cells in another order (plates given the other way round, positions listed anew) meet
    the same references; else in turn, by their order.
    """
    if keys is None:
        return np.arange(n_cells) % n_folds
    return (np.asarray(keys, np.uint64) % np.uint64(n_folds)).astype(np.intp)


def key_order(keys: np.ndarray, seed: int) -> np.ndarray:
    """The cells in an order set by their ``keys`` and ``seed`` alone (a seeded shuffle
    that does not depend on the order they came in)."""
    # Multiplying by an odd number permutes the 64-bit integers; wrap-around is wanted.
    odd = np.uint64(np.random.default_rng(seed).integers(0, 2**62)) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore"):
        mixed = np.asarray(keys, np.uint64) * odd
    return np.argsort(mixed, kind="stable")


def few_controls_note(n_controls: int, percentile: float) -> str | None:
    """What :func:`warn_few_references` says of ``n_controls`` control cells (too few to
    trust the scores and their bar at ``percentile``), or None where they are enough."""
    if n_controls >= FEW_CONTROL_CELLS:
        return None
    return (
        f"only {n_controls} negative-control cells: the novelty scores' scale and their "
        f"bar (the controls' {percentile:g}th percentile) rest on too few cells to "
        "trust; mark more control positions in the mapping, or image more control cells"
    )


def warn_few_references(
    groups: np.ndarray, sampled: np.ndarray, method: str, k: int, percentile: float
) -> None:
    """Warn where the control cells are too few to trust the score, or fewer than ``k``
    are left to compare a control well with (the score then uses fewer neighbours).

    Parameters
    ----------
    groups : ndarray (n_controls,)
        :func:`control_groups`.
    sampled : ndarray (n_controls,) of bool
        The control cells used as references.
    method : {"knn", "svm"}
    k : int
        Neighbours asked for.
    percentile : float
        The novelty bar's percentile of the control cells' scores.
    """
    if (note := few_controls_note(len(groups), percentile)) is not None:
        warnings.warn(note, stacklevel=3)
    if method != "knn":
        return
    # A control group is compared with the references of all other groups.
    present, index = np.unique(groups, return_inverse=True)
    per_group = np.bincount(index, weights=sampled, minlength=len(present))
    fewest = int(sampled.sum() - per_group.max()) if len(present) else 0
    if 0 < fewest < k:
        warnings.warn(
            f"novelty asks for {k} control neighbours, but a control well is compared with "
            f"only {fewest} control cells of the other wells: its scores use {fewest}",
            stacklevel=3,
        )
