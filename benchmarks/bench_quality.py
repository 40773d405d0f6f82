"""How well do learned features separate the demo's true phenotypes?

Trains on the bundled demo screen (as ``cellae demo`` does), then compares 5-fold
k-nearest-neighbour accuracy against the true phenotype (the CellH5 class predictions)
for three kinds of features of the same cells:

* learned: the autoencoder code,
* raw-pixel PCA: principal components of the normalised crop pixels, same dimension,
  with axes fitted on all cells and (the fair twin of the autoencoder) on the training
  cells only,
* hand-crafted: bounding-box area, threshold-mask area, mean and integrated intensity
  and eccentricity (from the CellH5 orientation table).

numpy only (no scikit-learn). Usage::

    python benchmarks/bench_quality.py [--epochs N] [--size PX] [--lr RATE] ...
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from napari_cellae.cli.app import DEMO_DEFAULTS, _add_training_options, _config_from_args
from napari_cellae.core.features import knn_accuracy, pca_features
from napari_cellae.demo.screen import demo_paths
from napari_cellae.pipeline import steps as pipeline


def hand_crafted(crops, normalised: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Classic morphology features per cell (first channel)."""
    box = crops.bbox.astype(np.float64)
    bbox_area = (box[:, 1] - box[:, 0] + 1) * (box[:, 3] - box[:, 2] + 1)
    img = normalised[:, 0].reshape(len(normalised), -1).astype(np.float64)
    # Per-crop threshold halfway between background (low percentile) and the brightest
    # pixels: a crude segmentation that needs no library.
    lo = np.percentile(img, 10, axis=1, keepdims=True)
    hi = np.percentile(img, 99, axis=1, keepdims=True)
    mask = img > (lo + hi) / 2
    mask_area = mask.sum(1).astype(np.float64)
    inside = np.where(mask, img, 0.0).sum(1)
    mean_intensity = inside / np.maximum(mask_area, 1)
    ecc = np.nan_to_num(crops.eccentricity, nan=0.0)
    names = ["bbox_area", "mask_area", "mean_intensity", "integrated_intensity", "eccentricity"]
    return np.c_[bbox_area, mask_area, mean_intensity, inside, ecc], names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _add_training_options(parser, DEMO_DEFAULTS)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("-k", type=int, default=5, help="neighbours (default 5)")
    args = parser.parse_args(argv)
    config = _config_from_args(args)

    ch5_path, mapping_path = demo_paths()
    t0 = time.perf_counter()
    with pipeline.open_cellh5(ch5_path) as ch5:
        mapping = pipeline.load_mapping(mapping_path, ch5)
        obj = pipeline.resolve_object(ch5, args.object_name)
        channels = pipeline.resolve_channels(ch5, obj, args.channel)
        crops = pipeline.collect(ch5, obj, config.crop_size, channels)
    trainer = pipeline.make_trainer(crops, mapping, config)
    last = None
    for last in trainer.run():
        if not args.quiet:
            print(
                f"  epoch {last.epoch:3d}  loss {last.train_loss:.5f}  "
                f"held-out {last.held_out_loss:.5f}  {last.samples_per_second:.0f} cells/s",
                file=sys.stderr,
            )
    trained = trainer.result()
    train_s = time.perf_counter() - t0
    learned = pipeline.encode_crops(trained, crops)

    labels = crops.class_idx
    if not (labels >= 0).any():
        print("the demo has no class predictions; nothing to compare", file=sys.stderr)
        return 1
    normalised = trained.normalisation.apply(crops.crops)
    n_dim = learned.shape[1]
    flat = normalised.reshape(len(normalised), -1)
    raw_pca = pca_features(flat, n_dim)
    # Fair twin of the autoencoder: principal axes of the same (training) cells only.
    raw_pca_train = pca_features(flat, n_dim, fit=trainer.source_indices)
    hand, hand_names = hand_crafted(crops, normalised)
    # Learned features that never vary (dead units) carry nothing; report them.
    dead = int((learned.std(0) < 1e-6).sum())

    counts = np.bincount(labels[labels >= 0])
    rows = [
        ("learned (autoencoder)", learned),
        (f"raw-pixel PCA, all cells ({n_dim})", raw_pca),
        (f"raw-pixel PCA, train cells ({n_dim})", raw_pca_train),
        (f"hand-crafted ({len(hand_names)})", hand),
    ]
    print(
        f"demo: {len(crops)} cells, classes {counts.tolist()} "
        f"(majority {counts.max() / counts.sum():.1%}); crop {config.crop_size} px, "
        f"{config.architecture}, {last.epoch if last else 0} epochs, lr {config.learning_rate}, "
        f"batch {config.batch_size}, corruption {config.corruption}, augment {config.augment}, "
        f"train on {config.train_on}, seed {config.seed}; training {train_s:.0f} s; "
        f"final held-out loss {last.held_out_loss if last else float('nan'):.5f}; "
        f"{dead}/{n_dim} learned features constant"
    )
    print(f"{'features':<36}{'dims':>6}{'k-NN std.':>12}{'k-NN raw':>12}")
    for name, feats in rows:
        acc_std = knn_accuracy(feats, labels, k=args.k, folds=5, seed=0)
        acc_raw = knn_accuracy(feats, labels, k=args.k, folds=5, seed=0, standardise_features=False)
        print(f"{name:<36}{feats.shape[1]:>6}{acc_std:>12.1%}{acc_raw:>12.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
