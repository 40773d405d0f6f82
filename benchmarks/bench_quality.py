"""How well do learned features separate true phenotypes, against baselines on the same cells?

For each screen (the bundled demo, the harder 15-phenotype benchmark screen of
:mod:`napari_cellae.demo.benchmark`, or any CellH5 file with class predictions and a
mapping), every cell is cropped and the autoencoder trained; then one table compares

* learned: the trained network, read out by ``napari_cellae.core.features.encode``, and
  the outline measurements of each cell's mask where the preset adds them (``morphology``;
  novelty then scores the two apart and adds them, as the product does);
* random weights: the same network, readout and outline measurements before any training;
* raw-pixel PCA with as many components as the learned features;
* 12 region properties of each cell's mask (label image, else Otsu);
* region properties + learned,

by weighted F1 of a logistic regression, 5-NN accuracy, novelty AUROC per phenotype
(mean and worst; the product's novelty score, ``napari_cellae.core.novelty``) and the
hit-well AUROC (``quality_metrics.py`` defines them; wells ranked
by their share of cells above the product's novelty percentile, and for comparison with
older figures above the 95th), and how
much the novelty score follows crowding, which it should ignore. Only the
first frame of each position is evaluated, so a tracked cell's other frames cannot be its
own neighbours (training uses every frame). Usage::

    python benchmarks/bench_quality.py [--screen demo hard] [--cells 4000] [--epochs 30]
        [--preset classic] [--train-on controls|all] [--crop-size PX] [--seed 0]
        [--encode readout=code --encode orientations=1] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules

from baseline_features import label_crops, raw_pca, region_properties
from napari_cellae.core import features as feature_readout
from napari_cellae.core.features import cell_feature_names, with_outline
from napari_cellae.core.morphology import novelty_views
from napari_cellae.core.novelty import NOVEL_PERCENTILE, NOVELTY_NEIGHBOURS, novelty_scores
from napari_cellae.core.resample import to_network_size
from napari_cellae.demo.benchmark import (
    CH5_NAME,
    MAPPING_NAME,
    SEGMENTATIONS,
    make_benchmark_screen,
)
from napari_cellae.demo.screen import demo_paths
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.pipeline import steps as pipeline
from quality_metrics import (
    hit_wells,
    knn_accuracy,
    logistic_f1,
    novelty_auroc,
)

SHORT = {
    "learned": "learned",
    "random weights, same readout": "random",
    "raw-pixel PCA": "PCA",
    "region properties": "regionprops",
    "region properties + learned": "regionprops+L",
}
QUICK = {"cells": 320, "epochs": 1, "screen": ["hard"], "f1_seeds": 2}


@dataclass
class Scores:
    """One row of the table."""

    name: str
    dims: int
    f1: float
    knn: float
    novelty: dict[int, float]
    hit_auroc: float
    hits_not_above: int
    hit_auroc_95: float
    crowding_r: float


def _train_config(args: argparse.Namespace, crop_size: int | None):
    """The training configuration: a preset with the command line's changes on top."""
    try:
        from napari_cellae.core.config import TrainConfig
    except ImportError:  # before the configuration moved out of training.py
        from napari_cellae.core.training import TrainConfig
    overrides = {
        "crop_size": crop_size,
        "input_size": args.input_size,
        "epochs": args.epochs,
        "architecture": args.architecture,
        "train_on": args.train_on,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "device": args.device,
        "mask": args.mask,
        "intensity": args.intensity,
        "corruption": args.corruption,
        "augment": args.augment,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if hasattr(TrainConfig, "from_preset"):
        return TrainConfig.from_preset(args.preset, **overrides)
    return TrainConfig(**overrides)


def screen_files(name: str, args: argparse.Namespace) -> tuple[Path, Path | None, float]:
    """CellH5 file, mapping and generation time (s) of ``demo``, ``hard`` or a file path."""
    if name == "demo":
        ch5, mapping = demo_paths()
        return ch5, mapping, 0.0
    if name == "hard":
        variant = "" if args.zoom == 1 else f"-zoom{args.zoom:g}"
        variant += "" if args.light == 1 else f"-light{args.light:g}"
        variant += "" if args.segmentation == "drawn" else f"-{args.segmentation}"
        folder = Path(args.cache) / f"seed{args.screen_seed}-cells{args.cells}{variant}"
        if not (folder / CH5_NAME).is_file() or not (folder / MAPPING_NAME).is_file():
            t0 = time.perf_counter()
            make_benchmark_screen(
                folder,
                args.screen_seed,
                args.cells,
                zoom=args.zoom,
                light=args.light,
                segmentation=args.segmentation,
            )
            return folder / CH5_NAME, folder / MAPPING_NAME, time.perf_counter() - t0
        return folder / CH5_NAME, folder / MAPPING_NAME, 0.0
    return Path(name), Path(args.mapping) if args.mapping else None, 0.0


def score(
    name: str,
    feats: np.ndarray,
    truth: dict,
    args: argparse.Namespace,
    views: list[np.ndarray] | None = None,
) -> Scores:
    """Every measure for one feature set (``views``: columns novelty scores apart)."""
    feats = np.nan_to_num(np.asarray(feats, np.float64))
    labels, well, control = truth["labels"], truth["well"], truth["control"]
    well_ids = np.unique(well, return_inverse=True)[1]
    found = novelty_scores(feats, control, well_ids, k=NOVELTY_NEIGHBOURS, views=views)
    novelty = found.scores.astype(np.float64)
    hits = hit_wells(novelty, well, control, NOVEL_PERCENTILE)
    crowd = np.nan
    if truth["crowding"] is not None:  # does the score follow crowding in ordinary cells?
        ordinary = control & (labels == truth["reference"])
        crowd = spearmanr(novelty[ordinary], truth["crowding"][ordinary]).statistic
    return Scores(
        name,
        feats.shape[1],
        logistic_f1(feats, labels, seeds=args.f1_seeds),
        knn_accuracy(feats, labels, k=5, folds=5),
        novelty_auroc(novelty, labels, control, reference=truth["reference"]),
        hits.auroc,
        hits.hits_not_above_controls,
        hit_wells(novelty, well, control, 95.0).auroc,
        float(crowd),
    )


def print_tables(rows: list[Scores], class_names: list[str], n_hit_wells: int) -> None:
    """The side-by-side table, then novelty AUROC per phenotype."""
    print(
        f"{'features':<30}{'dims':>6}{'LR F1':>8}{'5-NN':>8}{'novelty':>9}"
        f"{'worst novelty':>26}{'hit AUROC':>11}{'hits<=ctrl':>11}{'hit@p95':>9}{'r crowd':>9}"
    )
    for r in rows:
        values = list(r.novelty.values())
        worst = min(r.novelty, key=r.novelty.get)
        worst_text = f"{r.novelty[worst]:.2f} {class_names[worst]}"
        print(
            f"{r.name:<30}{r.dims:>6}{r.f1:>8.3f}{r.knn:>8.3f}{np.mean(values):>9.3f}"
            f"{worst_text:>26}{r.hit_auroc:>11.3f}{r.hits_not_above:>7}/{n_hit_wells:<3}"
            f"{r.hit_auroc_95:>9.3f}"
            f"{r.crowding_r:>+9.2f}"
        )
    print(
        "   novelty: mean AUROC over phenotypes; hit AUROC: wells ranked by their share of "
        f"cells above the controls' {NOVEL_PERCENTILE:g}th percentile (hit@p95: the 95th);\n"
        "   hits<=ctrl: perturbed wells not ranked above the top control well;\n"
        "   r crowd: Spearman r of the novelty score with the share of "
        "the crop covered by neighbours (control interphase cells; 0 is ideal)"
    )
    print("novelty AUROC per phenotype (its cells vs control interphase cells):")
    short = [SHORT.get(r.name.split(" (")[0], r.name[:13]) for r in rows]
    print(f"  {'phenotype':<22}" + "".join(f"{s:>15}" for s in short))
    for cls in rows[0].novelty:
        print(f"  {class_names[cls]:<22}" + "".join(f"{r.novelty[cls]:>15.3f}" for r in rows))


def run_screen(name: str, args: argparse.Namespace) -> int:
    """Crop, train, encode and score one screen; print its tables."""
    ch5_path, mapping_path, generate_s = screen_files(name, args)
    config = _train_config(args, args.crop_size or (48 if name != "demo" else None))
    t0 = time.perf_counter()
    crop_path = (
        without_label_images(ch5_path, Path(args.cache)) if args.without_labels else ch5_path
    )
    with CellH5(crop_path) as ch5:
        mapping = pipeline.load_mapping(mapping_path, ch5)
        obj = pipeline.resolve_object(ch5, None)
        crops = pipeline.collect(
            ch5, obj, config.crop_size, pipeline.resolve_channels(ch5, obj, None), mask=config.mask
        )
        class_names = [c.name for c in ch5.class_labels(obj) or []]
    with CellH5(ch5_path) as ch5:  # the truth (crowding) from the original's labels
        labelled = label_crops(ch5, crops)
    masks, crowding = labelled if labelled is not None else (None, None)
    if args.without_labels:
        masks = None  # region properties get what a user without labels has: Otsu masks
    region = region_properties(crops, masks)  # at the box size, before any resampling
    to_network_size(crops, config.network_size)
    crop_s = time.perf_counter() - t0
    if mapping is None or not class_names or (crops.class_idx < 0).any():
        print(f"{ch5_path}: needs a mapping and class predictions for every cell", file=sys.stderr)
        return 1

    trainer = pipeline.make_trainer(crops, mapping, config)
    random_model = trainer.result()  # the same network before any training step
    t0 = time.perf_counter()
    last = None
    for last in trainer.run():
        if not args.quiet:
            print(
                f"  epoch {last.epoch:3d}  loss {last.train_loss:.5f}  "
                f"held-out {last.held_out_loss:.5f}  {last.samples_per_second:.0f} cells/s",
                file=sys.stderr,
            )
    train_s = time.perf_counter() - t0
    trained = trainer.result()

    t0 = time.perf_counter()
    learned = feature_readout.encode(trained, crops.crops, **args.encode)
    learned = with_outline(trained, learned, crops.morphology)
    encode_s = time.perf_counter() - t0
    random = feature_readout.encode(random_model, crops.crops, **args.encode)
    random = with_outline(random_model, random, crops.morphology)
    names = cell_feature_names(trained)
    views = novelty_views(names) if len(names) == learned.shape[1] else None
    pixels = trained.normalisation.apply(crops.crops)

    # Evaluate the first frame of each position only (one view per cell).
    first = np.zeros(len(crops), bool)
    for p in np.unique(crops.position_index):
        rows = crops.position_index == p
        first |= rows & (crops.time_idx == crops.time_idx[rows].min())
    infos = [mapping.lookup(key) for key in crops.positions]
    wells = np.array([f"{key.plate}/{key.well}" for key in crops.positions])
    truth = {
        "labels": crops.class_idx[first].astype(np.int64),
        "well": wells[crops.position_index[first]],
        "control": np.array([infos[p].is_control for p in crops.position_index[first]]),
        "reference": class_names.index("interphase") if "interphase" in class_names else 0,
        "crowding": crowding[first] if crowding is not None else None,
    }
    sets = [
        ("learned", learned, views),
        ("random weights, same readout", random, views),
        (
            f"raw-pixel PCA ({learned.shape[1]})",
            raw_pca(pixels, learned.shape[1], config.seed),
            None,
        ),
        ("region properties", region, None),
        ("region properties + learned", np.c_[region, learned], None),
    ]
    t0 = time.perf_counter()
    # One BLAS thread: small problems, and spinning BLAS threads on busy cores cost 30x.
    with threadpool_limits(1):
        rows = [score(label, feats[first], truth, args, v) for label, feats, v in sets]
    metrics_s = time.perf_counter() - t0

    counts = np.bincount(truth["labels"], minlength=len(class_names))
    n_hit_wells = len(set(truth["well"][~truth["control"]]))
    mask_source = "label images" if masks is not None else "Otsu (region properties)"
    if args.without_labels:
        mask_source += "; the network's crops from a copy without label images"
    print(
        f"\n== {name}: {ch5_path.name}, {first.sum()} cells evaluated of {len(crops)} cropped, "
        f"{len(set(truth['well']))} wells ({n_hit_wells} perturbed); majority class "
        f"{counts.max() / counts.sum():.1%}; masks from {mask_source}"
    )
    print(
        f"   {config.crop_size} px"
        + (f" resampled to {config.network_size} px" if config.input_size else "")
        + f", {config.architecture}, {last.epoch if last else 0} epochs, "
        f"batch {config.batch_size}, lr {config.learning_rate}, train on {config.train_on} "
        f"({trainer.n_train} + {trainer.n_held_out} held out), seed {config.seed}, "
        f"encode {args.encode or 'defaults'}; final held-out loss "
        f"{last.held_out_loss if last else float('nan'):.5f}"
    )
    print(
        f"   time: generate {generate_s:.1f} s, crop {crop_s:.1f} s, train {train_s:.1f} s, "
        f"encode {encode_s:.1f} s ({len(crops) / max(encode_s, 1e-9):.0f} cells/s), "
        f"metrics {metrics_s:.1f} s"
    )
    print_tables(rows, class_names, n_hit_wells)
    return 0


def without_label_images(path: Path, cache: Path) -> Path:
    """A copy of a CellH5 file with its label images (``image/region``) deleted, as a file
    written without segmentation (made once, in the benchmark cache)."""
    import hashlib
    import shutil

    import h5py

    tag = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"{path.stem}_{tag}_without_labels{path.suffix}"
    if out.is_file() and out.stat().st_mtime >= path.stat().st_mtime:
        return out
    part = out.with_name(out.name + ".part")
    shutil.copyfile(path, part)
    with h5py.File(part, "r+") as f:
        regions = []
        f.visititems(lambda name, obj: regions.append(name) if name.endswith("image/region")
                     and isinstance(obj, h5py.Dataset) else None)  # fmt: skip
        for name in regions:
            del f[name]
    part.replace(out)
    return out


def _encode_option(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    if not key or not value:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, int(value) if value.lstrip("-").isdigit() else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screen", nargs="+", default=["demo", "hard"],
                        help="demo, hard or a CellH5 file (default: demo hard)")  # fmt: skip
    parser.add_argument("--mapping", help="mapping file of a CellH5 --screen")
    parser.add_argument("--cells", type=int, default=4000, help="hard screen size (4000)")
    parser.add_argument("--screen-seed", type=int, default=0, help="hard screen seed (0)")
    parser.add_argument("--zoom", type=float, default=1.0, help="hard screen cell magnification")
    parser.add_argument("--light", type=float, default=1.0, help="hard screen exposure (1)")
    parser.add_argument("--segmentation", choices=SEGMENTATIONS, default="drawn",
                        help="hard screen objects: per cell, per piece, or joined")  # fmt: skip
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    parser.add_argument("--cache", default=str(cache / "napari-cellae" / "benchmark"),
                        help="where generated hard screens are kept")  # fmt: skip
    parser.add_argument("--preset", default="classic", help="training preset (classic)")
    parser.add_argument("--epochs", type=int, help="default: the preset's")
    parser.add_argument("--architecture", help="default: the preset's")
    parser.add_argument("--crop-size", type=int, help="default: 48 (hard), preset's (demo)")
    parser.add_argument("--input-size", type=int, help="network input px (default: preset's)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--train-on", choices=["controls", "all"], help="default: the preset's")
    parser.add_argument("--seed", type=int, default=0, help="training seed (0)")
    parser.add_argument("--device", help="cpu, cuda or auto (default: the preset's)")
    parser.add_argument("--mask", choices=["none", "neighbours", "cell"], help="default: preset's")
    parser.add_argument("--intensity", choices=["screen", "cell"], help="default: preset's")
    parser.add_argument("--corruption", type=float, help="default: the preset's")
    parser.add_argument("--augment", action="store_true", default=None, help="rotate/mirror")
    parser.add_argument("--encode", action="append", type=_encode_option, default=[],
                        metavar="KEY=VALUE", help="extra argument of features.encode")  # fmt: skip
    parser.add_argument("--without-labels", action="store_true",
                        help="crop from a copy of the screen without label images")  # fmt: skip
    parser.add_argument("--f1-seeds", type=int, default=5, help="logistic-regression splits (5)")
    parser.add_argument("--quick", action="store_true", help="tiny screen, 1 epoch (seconds)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    args = parser.parse_args(argv)
    args.encode = dict(args.encode)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
        args.cache = tempfile.mkdtemp(prefix="bench_quality_")
    status = 0
    try:
        for name in args.screen:
            status |= run_screen(name, args)
    finally:
        if args.quick and args.cache != parser.get_default("cache"):
            shutil.rmtree(args.cache, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
