"""Raw-pixel baseline on the demo screen: PCA + k-nearest neighbours on object crops.

How well do the true phenotypes of the demo screen separate without any learning? Crops
of 40 px around every nucleus (window shifted inside the image at borders) are flattened,
projected on their first 64 principal components and classified with 5-nearest-neighbours
in 5-fold cross-validation. Folds are split by *cell track* (position + label id), so the
same nucleus seen in another frame never helps to classify itself.

Run ``python benchmarks/bench_baseline.py [demo_screen.ch5]`` (default: the bundled demo).
The demo is tuned so this baseline is clearly better than chance but far from perfect.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from napari_cellae.core.crops import collect_crops
from napari_cellae.demo.screen import demo_paths
from napari_cellae.io.cellh5 import CellH5

CROP_SIZE = 40
N_COMPONENTS = 64
K = 5
N_FOLDS = 5


def load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Crops (n, size*size) float, class index (n,), track group id (n,) and class names."""
    with CellH5(path) as ch5:
        obj = ch5.default_object
        crops = collect_crops(ch5, obj, CROP_SIZE, channels=[ch5.object_channel(obj)])
        names = [c.name for c in ch5.class_labels(obj) or []]
        label_ids = [ch5.objects(key, obj).label_id for key in crops.positions]
    label_id = np.array(
        [label_ids[p][o] for p, o in zip(crops.position_index, crops.object_index, strict=True)]
    )
    groups = crops.position_index.astype(np.int64) * 100_000 + label_id
    pixels = crops.crops.reshape(len(crops), -1).astype(np.float64) / 255.0
    return pixels, crops.class_idx.astype(np.int64), groups, names


def pca(pixels: np.ndarray, n_components: int) -> np.ndarray:
    """Project centred pixels on their leading principal components (numpy SVD)."""
    centred = pixels - pixels.mean(axis=0)
    # eigen-decomposition of the (pixels x pixels) covariance: much faster than a full SVD
    # of the (objects x pixels) matrix and gives the same components
    _, vectors = np.linalg.eigh(centred.T @ centred)
    return centred @ vectors[:, ::-1][:, :n_components]


def quantile_features(pixels: np.ndarray, size: int, inner: int = 24) -> np.ndarray:
    """Rotation-invariant control: standardised intensity quantiles of the crop centre.

    Not a learned feature, just evidence that the phenotypes are visible in the pixels:
    brightness, texture contrast and size all shape the centre's intensity distribution.
    """
    lo = (size - inner) // 2
    centre = pixels.reshape(-1, size, size)[:, lo : lo + inner, lo : lo + inner]
    q = np.quantile(centre.reshape(len(pixels), -1), np.linspace(0.05, 1.0, 20), axis=1).T
    return (q - q.mean(axis=0)) / q.std(axis=0)


def knn_cv(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int, n_folds: int, seed: int
) -> np.ndarray:
    """Cross-validated k-NN predictions, folds split by group."""
    rng = np.random.default_rng(seed)
    unique = rng.permutation(np.unique(groups))
    fold_of_group = dict(
        zip(unique.tolist(), (np.arange(len(unique)) % n_folds).tolist(), strict=True)
    )
    fold = np.array([fold_of_group[g] for g in groups.tolist()])
    n_classes = int(labels.max()) + 1
    predicted = np.empty_like(labels)
    sq = (features**2).sum(axis=1)
    for f in range(n_folds):
        test, train = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        d2 = sq[test, None] + sq[None, train] - 2 * features[test] @ features[train].T
        nearest = np.argsort(d2, axis=1)[:, :k]
        votes = np.zeros((len(test), n_classes))
        # weight 1 per neighbour plus a tiny rank bonus so ties go to the closer class
        for rank in range(k):
            np.add.at(
                votes, (np.arange(len(test)), labels[train][nearest[:, rank]]), 1.0 - rank * 1e-3
            )
        predicted[test] = votes.argmax(axis=1)
    return predicted


def report(labels: np.ndarray, predicted: np.ndarray, names: list[str]) -> dict[str, float]:
    """Print class balance, chance levels, accuracy, per-class recall and confusion matrix."""
    n_classes = len(names)
    counts = np.bincount(labels, minlength=n_classes)
    confusion = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    recall = np.diag(confusion) / np.maximum(counts, 1)
    accuracy = float((labels == predicted).mean())
    balanced = float(recall[counts > 0].mean())
    chance = float(counts.max() / counts.sum())
    print(f"objects: {len(labels)}")
    print("class balance:")
    for name, c in zip(names, counts, strict=True):
        print(f"  {name:<12s} {c:6d}  {c / counts.sum():6.1%}")
    print(f"chance level: {chance:.1%} (majority class), balanced {1 / (counts > 0).sum():.1%}")
    print(f"accuracy:          {accuracy:.1%}")
    print(f"balanced accuracy: {balanced:.1%}")
    print(
        "recall per class:  "
        + ", ".join(f"{n} {r:.0%}" for n, r in zip(names, recall, strict=True))
    )
    print("confusion (rows true, columns predicted):")
    for name, row in zip(names, confusion, strict=True):
        print(f"  {name:<12s} " + " ".join(f"{v:6d}" for v in row))
    return {"accuracy": accuracy, "balanced_accuracy": balanced, "chance": chance}


def main(argv: list[str]) -> int:
    """Run the baseline on ``argv[0]`` (a CellH5 file) or on the bundled demo."""
    path = Path(argv[0]) if argv else demo_paths()[0]
    start = time.perf_counter()
    pixels, labels, groups, names = load(path)
    features = pca(pixels, N_COMPONENTS)
    predicted = knn_cv(features, labels, groups, K, N_FOLDS, seed=0)
    print(f"file: {path}")
    print(
        f"baseline: {CROP_SIZE} px crops, raw-pixel PCA ({N_COMPONENTS} components), "
        f"{K}-NN, {N_FOLDS}-fold CV grouped by cell track"
    )
    report(labels, predicted, names)
    print()
    print("control: intensity quantiles of the crop centre (rotation invariant), same k-NN")
    quantiles = quantile_features(pixels, CROP_SIZE)
    report(labels, knn_cv(quantiles, labels, groups, K, N_FOLDS, seed=0), names)
    print(f"time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
