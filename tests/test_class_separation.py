"""Tests for napari_cellae.core.class_separation: how well features tell labelled cells apart."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellae.core.class_separation import knn_accuracy


def test_knn_accuracy_separable_vs_random():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 40)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    x = centres[labels] + rng.normal(size=(120, 2))
    assert knn_accuracy(x, labels) > 0.95
    noise = rng.normal(size=(120, 2))
    assert knn_accuracy(noise, labels) < 0.6
    # Unlabelled objects (-1) are ignored; result is deterministic.
    lab = labels.copy()
    lab[:10] = -1
    assert knn_accuracy(x, lab, seed=3) == knn_accuracy(x, lab, seed=3)
    assert np.isnan(knn_accuracy(x[:1], labels[:1]))


def test_knn_accuracy_needs_a_matrix_of_features():
    with pytest.raises(ValueError, match=r"shape \(N, F\)"):
        knn_accuracy(np.zeros(10), np.zeros(10, int))


def test_knn_accuracy_of_few_labelled_cells():
    # Fewer cells in every class than folds: scikit-learn's StratifiedKFold refused ("n_splits
    # =5 cannot be greater than the number of members in each class"), and the folds' few
    # training cells could not supply k neighbours.
    rng = np.random.default_rng(0)
    assert np.isnan(knn_accuracy(rng.normal(size=(10, 3)), np.arange(10)))  # one cell each
    assert np.isnan(knn_accuracy(rng.normal(size=(2, 3)), np.array([0, 1])))
    x = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0], [9.0, 9.0]])
    assert knn_accuracy(x, np.array([0, 0, 1, 1, 2]), k=1) == pytest.approx(0.8)
    assert 0 <= knn_accuracy(rng.normal(size=(3, 3)), np.array([0, 1, 1])) <= 1


def test_knn_standardising_removes_scale_dominance():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    informative = labels + 0.2 * rng.normal(size=100)
    loud_noise = 1000 * rng.normal(size=100)
    x = np.c_[informative, loud_noise]
    assert knn_accuracy(x, labels, standardise_features=False) < 0.75
    # With standardisation both features count equally: better than raw distance.
    assert knn_accuracy(x, labels) > knn_accuracy(x, labels, standardise_features=False)
