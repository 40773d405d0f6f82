"""Small positions: cells/s of the streaming encode for the same cells split into a few large
positions or many small ones, one model call per position against full batches over
positions (``pipeline/position_batches``), side by side in one run.

Prints, for a screen of ``--large`` positions and one of ``--small`` positions holding the
same number of cells (``--cells``; one 8-bit frame each, every cell labelled in a label
image, so neighbours are masked as usual):

- cells/s encoding each position in its own model call (``encode_position``, what
  ``cellae encode`` did before, and still what a Dask worker does per task) and in full
  batches (``encode_serial``, what ``cellae encode`` runs here);
- the ratio small / large of each (1.0: small positions cost nothing extra) and the speed-up
  of batching;
- the output check: the same cells in the same order, features equal to float rounding
  (largest difference).

Run: ``python benchmarks/bench_positions.py [--cells 4000] [--small 100] [--large 2]
[--preset demo] [--repeats 3]``. Timings on a shared machine are noisy: compare the ratios
within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_cellae.core.config import TrainConfig
from napari_cellae.core.model import ConvAutoencoder
from napari_cellae.core.model_file import TrainedModel, save_model
from napari_cellae.core.model_load import load_model
from napari_cellae.core.normalisation import Normalisation
from napari_cellae.io.cellh5_writer import ObjectData, PositionData, write_cellh5
from napari_cellae.pipeline.open_files import close_open_files
from napari_cellae.pipeline.streaming import encode_position, encode_serial, plan_encode

OBJECT = "primary__primary"


def make_screen(path: Path, n_positions: int, per_position: int, seed: int = 0) -> Path:
    """One plate of ``n_positions`` positions of ``per_position`` cells, a frame each."""
    rng = np.random.default_rng(seed)
    side = max(128, int(np.ceil(np.sqrt(per_position) * 3)) * 8)  # about 24 px per cell
    positions = []
    for p in range(n_positions):
        # Blocky texture: gzip-compressible like microscopy, cheap to make.
        image = np.kron(rng.integers(0, 256, (side // 8, side // 8)), np.ones((8, 8)))
        cy = rng.integers(0, side, per_position).astype(np.int32)
        cx = rng.integers(0, side, per_position).astype(np.int32)
        box = np.stack([cx - 4, cx + 4, cy - 4, cy + 4], 1).clip(0, side - 1).astype(np.int32)
        label = np.arange(1, per_position + 1, dtype=np.int32)
        labels = np.zeros((1, 1, 1, side, side), np.uint16)
        for i, (left, right, top, bottom) in enumerate(box):
            labels[0, 0, 0, top : bottom + 1, left : right + 1] = label[i]
        objects = ObjectData(np.zeros(per_position, np.int32), label, cx, cy, box)
        well = f"{chr(65 + p // 24 % 16)}{p % 24 + 1:02d}"
        positions.append(
            PositionData(
                "P1",
                well,
                f"{p // 384 + 1}",
                image.astype(np.uint8).reshape(1, 1, 1, side, side),
                {OBJECT: objects},
                labels,
            )
        )
    return write_cellh5(path, positions, ["dna"], {OBJECT: 0})


def untrained_model(path: Path, preset: str) -> Path:
    """The preset's network, freshly initialised (the cost does not depend on the weights)."""
    config = TrainConfig.from_preset(preset)
    torch.manual_seed(0)
    model = ConvAutoencoder(config.architecture, config.crop_size, 1).eval()
    per_cell = getattr(config, "intensity", "screen") == "cell"
    norm = Normalisation([0.0], [255.0], per_cell=per_cell)
    return save_model(TrainedModel(model, config, norm, ["dna"], OBJECT), path)


def per_position(tasks, trained, batch_size):
    """One model call per position."""
    try:
        for task in tasks:
            yield encode_position(task, trained, batch_size)
    finally:
        close_open_files()


def timed(runner, plate: Path, trained: TrainedModel, out: Path) -> tuple[float, list]:
    """Cells/s of one way of encoding every task of ``plate``, and its results."""
    tasks = plan_encode([plate], trained, out).tasks
    t0 = time.perf_counter()
    results = list(runner(tasks, trained, 512))
    return sum(len(r.crops) for r in results) / (time.perf_counter() - t0), results


def best_rates(plate: Path, trained: TrainedModel, out: Path, repeats: int) -> tuple:
    """The best cells/s of each way over ``repeats`` rounds (the least disturbed by other
    load; the two ways take turns going first), and the results of each."""
    best = {per_position: 0.0, encode_serial: 0.0}
    results = {}
    for round_ in range(repeats):
        for runner in list(best)[:: 1 if round_ % 2 == 0 else -1]:
            rate, results[runner] = timed(runner, plate, trained, out)
            best[runner] = max(best[runner], rate)
    return best[per_position], best[encode_serial], results[per_position], results[encode_serial]


def same_output(a: list, b: list) -> tuple[bool, float]:
    """Same cells in the same order, and the largest feature difference."""
    same = [r.task.index for r in a] == [r.task.index for r in b]
    same &= all(
        np.array_equal(x.crops.label_id, y.crops.label_id)
        and np.array_equal(x.crops.crops, y.crops.crops)
        for x, y in zip(a, b, strict=True)
    )
    fa = np.concatenate([r.features for r in a])
    fb = np.concatenate([r.features for r in b])
    return same and fa.shape == fb.shape, float(np.abs(fa - fb).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=4000, help="cells of each screen")
    parser.add_argument("--small", type=int, default=100, help="positions of the small screen")
    parser.add_argument("--large", type=int, default=2, help="positions of the large screen")
    parser.add_argument("--preset", default="demo", help="network and crop size (untrained)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the best counts")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cores} cores, load "
        f"average {os.getloadavg()[0]:.1f}; untrained network of the '{args.preset}' preset"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench_positions_"))
    try:
        trained = load_model(untrained_model(tmp / "model.pt", args.preset))
        screens = {}
        for name, n in (("large", args.large), ("small", args.small)):
            screens[name] = make_screen(tmp / f"{name}.ch5", n, args.cells // n)
        warm = plan_encode([screens["large"]], trained, tmp / "w.hdf").tasks[:1]
        list(per_position(warm, trained, 512))  # torch's thread pool and kernels, untimed
        rates, check = {}, {}
        for name, plate in screens.items():
            one, full, results_one, results_full = best_rates(
                plate, trained, tmp / "a.hdf", args.repeats
            )
            rates[name] = (one, full)
            check[name] = same_output(results_one, results_full)
        print(f"{'screen':>26} {'per position':>13} {'full batches':>13} {'speed-up':>9}")
        for name, n in (("large", args.large), ("small", args.small)):
            one, full = rates[name]
            label = f"{n} positions of {args.cells // n} cells"
            print(f"{label:>26} {one:>9.0f} c/s {full:>9.0f} c/s {full / one:>8.2f}x")
        one = rates["small"][0] / rates["large"][0]
        full = rates["small"][1] / rates["large"][1]
        print(f"{'small / large':>26} {one:>13.2f} {full:>13.2f}")
        for name, (same, diff) in check.items():
            print(
                f"output {name}: same cells and order {same}, largest feature difference {diff:.1e}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
