"""Memory of cutting the training crops: every cell of the file vs only the cells drawn.

``cellae train`` learns from at most ``--samples`` cells. Cropping every cell first held all
of them (and their masks) in memory; now only the drawn cells are cut, one position at a
time (``napari_cellae.pipeline.sampling``). Prints, side by side, the peak of memory
allocated through Python and numpy (tracemalloc) and the time of both, on a benchmark screen
drawn at 2x magnification (cells need a 72 px box), and checks that both give the same crops.

Run: ``python benchmarks/bench_training_crops.py [--cells 8000] [--samples 2000]``. The screen
is generated once into ``--cache``. Timings are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np

from napari_cellae.core.config import TrainConfig
from napari_cellae.demo.benchmark import CH5_NAME, MAPPING_NAME, make_benchmark_screen
from napari_cellae.pipeline.runs import training_crops
from napari_cellae.pipeline.steps import training_indices


def measure(path: Path, mapping: Path, config: TrainConfig, only_drawn: bool):
    """(crops to train on, cells in the file, peak MiB, seconds)."""
    tracemalloc.start()
    t0 = time.perf_counter()
    crops, loaded, n_cells = training_crops(path, config, mapping, only_drawn=only_drawn)
    _, idx = training_indices(crops, loaded, config)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return crops.crops[idx], n_cells, peak, seconds


def screen_options(parser: argparse.ArgumentParser) -> None:
    """``--cells`` and ``--cache`` of the benchmarks on the screen drawn at 2x."""
    parser.add_argument("--cells", type=int, default=8000, help="cells in the screen")
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache/napari-cellae/benchmark"
    )


def screen_at_2x(args: argparse.Namespace) -> Path:
    """The benchmark screen (seed 3) drawn at 2x magnification, made once into the cache."""
    folder = args.cache / f"seed3-cells{args.cells}-zoom2"
    if not (folder / CH5_NAME).is_file():
        make_benchmark_screen(folder, 3, args.cells, zoom=2.0)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    screen_options(parser)
    parser.add_argument("--samples", type=int, default=2000, help="cells training draws")
    parser.add_argument("--repeats", type=int, default=2, help="rounds (best is reported)")
    args = parser.parse_args()
    folder = screen_at_2x(args)
    config = TrainConfig.from_preset(
        "recommended", crop_size=72, input_size=40, samples=args.samples
    )
    best: dict[bool, tuple] = {}
    for _ in range(args.repeats):
        for only_drawn in (False, True):
            run = measure(folder / CH5_NAME, folder / MAPPING_NAME, config, only_drawn)
            if only_drawn not in best or run[3] < best[only_drawn][3]:
                best[only_drawn] = run
    (every, n_cells, peak_all, s_all), (drawn, _, peak_drawn, s_drawn) = best[False], best[True]
    print(
        f"{n_cells} cells, 72 px box resampled to 40 px, {args.samples} drawn for training\n"
        f"{'':24}{'peak MiB':>10}{'seconds':>10}\n"
        f"{'every cell cropped':24}{peak_all:>10.0f}{s_all:>10.2f}\n"
        f"{'only the drawn cells':24}{peak_drawn:>10.0f}{s_drawn:>10.2f}\n"
        f"ratio (every / drawn): memory {peak_all / peak_drawn:.1f}x, time "
        f"{s_all / s_drawn:.2f}x; same training crops: {np.array_equal(every, drawn)}"
    )
    split_drawn(args.samples)


def split_drawn(samples: int) -> None:
    """The drawn cells split into positions (``rows_of_positions``) against a filter per
    position, the way it was, for one plate of 1,536 positions and for 20 such plates."""
    from napari_cellae.pipeline.sampling import candidate_rows, rows_of_positions

    print(f"\nsplitting {samples} drawn cells into positions (64 cells each):")
    for n_positions in (1_536, 30_720):
        counts = [64] * n_positions
        drawn = np.sort(
            np.random.default_rng(0).choice(candidate_rows(counts, [True] * n_positions), samples)
        )
        starts = np.concatenate([[0], np.cumsum(counts)])
        t0 = time.perf_counter()
        filtered = [
            drawn[(drawn >= starts[i]) & (drawn < starts[i + 1])] - starts[i]
            for i in range(n_positions)
        ]
        t1 = time.perf_counter()
        split = rows_of_positions(drawn, counts)
        t2 = time.perf_counter()
        same = all(np.array_equal(a, b) for a, b in zip(filtered, split, strict=True))
        print(
            f"  {n_positions:>6} positions: filter per position {t1 - t0:.3f} s, "
            f"rows_of_positions {t2 - t1:.3f} s ({(t1 - t0) / (t2 - t1):.0f}x); same: {same}"
        )


if __name__ == "__main__":
    main()
