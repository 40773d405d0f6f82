"""Memory of ``cellae encode ... --out cells.h5ad``: every crop held vs streamed by position.

The AnnData output (features, novelty, phenotype groups, 2-D map, gallery) used to crop every
cell of the file into memory before encoding. It now encodes position by position as the
Explorer output does, keeps the features and the cell table, and crops the gallery's few
typical cells again (``napari_cellae.pipeline.cells``). Prints, side by side, the peak of
memory allocated through Python and numpy (tracemalloc; the network's own buffers are the
same for both) and the time of the in-memory way and of the streamed one, on a benchmark
screen drawn at 2x magnification (a 72 px box resampled to 40 px), and checks that both give
the same features, novelty and gallery crops.

Run: ``python benchmarks/bench_cells.py [--cells 8000]``. The screen and an untrained model
(the cost does not depend on the weights) are made once into ``--cache``. Timings are noisy:
compare within one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from bench_training_crops import screen_at_2x, screen_options
from napari_cellae.core.config import TrainConfig
from napari_cellae.core.features import cell_feature_names
from napari_cellae.core.model import ConvAutoencoder
from napari_cellae.core.model_file import TrainedModel
from napari_cellae.core.morphology import novelty_views
from napari_cellae.core.normalisation import Normalisation
from napari_cellae.demo.benchmark import CH5_NAME, MAPPING_NAME
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.pipeline.cells import class_names, run_encode_cells
from napari_cellae.pipeline.discovery import DiscoveryOptions, cell_table, discover
from napari_cellae.pipeline.steps import check_model_fits, crops_for, encode_crops, load_mapping


def untrained(ch5_path: Path) -> TrainedModel:
    """The recommended network (72 px box, 40 px input), random weights, 12-bit scaling."""
    config = TrainConfig.from_preset("recommended", crop_size=72, input_size=40)
    torch.manual_seed(0)
    model = ConvAutoencoder(config.architecture, 40, 1).eval()
    with CellH5(ch5_path) as f:
        obj = f.object_names[0]
        channel = f.channels[f.object_channel(obj)].name
    norm = Normalisation([0.0], [4095.0], per_cell=config.intensity == "cell")  # as trained
    return TrainedModel(model, config, norm, [channel], obj)


def in_memory(path: Path, mapping_path: Path, trained: TrainedModel, options):
    """The former way: every crop of the file cut, then encoded and scored."""
    with CellH5(path) as f:
        mapping = load_mapping(mapping_path, f)
        obj, channels = check_model_fits(trained, f, None)
        crops = crops_for(f, obj, channels, trained.config)
        names = class_names(f, obj)
    features = encode_crops(trained, crops)
    views = novelty_views(cell_feature_names(trained))  # as the product scores them
    found = discover(features, cell_table(crops, mapping, names), options, views)
    shown = np.unique(np.concatenate(list(found.typical.values())))
    return features, found, crops.crops[shown]


def streamed(path: Path, mapping_path: Path, trained: TrainedModel, options, out: Path):
    """Now: ``run_encode_cells`` (writes the .h5ad and the gallery as well)."""
    captured = {}
    import napari_cellae.pipeline.cells as cells

    keep = cells.typical_crops

    def typical(*args, **kwargs):  # the gallery's crops, kept for the comparison
        captured["crops"] = keep(*args, **kwargs)
        return captured["crops"]

    cells.typical_crops = typical
    try:
        done = run_encode_cells(
            path,
            trained,
            out / "cells.h5ad",
            mapping_path,
            options=options,
            embedding="pca",
            gallery=out / "groups.png",
        )
    finally:
        cells.typical_crops = keep
    return done.result.features, done.discovery, captured["crops"]


def measure(run, *args):
    tracemalloc.start()
    t0 = time.perf_counter()
    result = run(*args)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, peak, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    screen_options(parser)
    folder = screen_at_2x(parser.parse_args())
    path, mapping = folder / CH5_NAME, folder / MAPPING_NAME
    trained = untrained(path)
    options = DiscoveryOptions(groups=6)
    (old, peak_old, s_old) = measure(in_memory, path, mapping, trained, options)
    with tempfile.TemporaryDirectory() as tmp:
        (new, peak_new, s_new) = measure(streamed, path, mapping, trained, options, Path(tmp))
    same_features = np.allclose(old[0], new[0], atol=1e-5, rtol=1e-5)
    same_novel = np.array_equal(old[1].novelty.novel, new[1].novelty.novel)
    same_gallery = np.array_equal(old[2], new[2])
    print(
        f"{len(old[0])} cells, 72 px box resampled to 40 px; novelty, 6 groups, PCA map\n"
        f"{'':26}{'peak MiB':>10}{'seconds':>10}\n"
        f"{'every crop in memory':26}{peak_old:>10.0f}{s_old:>10.2f}\n"
        f"{'streamed (cells.h5ad)':26}{peak_new:>10.0f}{s_new:>10.2f}\n"
        f"ratio (in memory / streamed): memory {peak_old / peak_new:.1f}x, time "
        f"{s_old / s_new:.2f}x; same features: {same_features}, same novel cells: "
        f"{same_novel}, same gallery crops: {same_gallery}"
    )


if __name__ == "__main__":
    main()
