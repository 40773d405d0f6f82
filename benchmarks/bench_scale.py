"""Whole-screen encoding: throughput here and on a local Dask cluster, peak memory of the
streaming encode, and what that means for a 10^8-cell screen.

Prints, side by side in one run (default network and crop size of the 'classic' preset,
default readout, an untrained network: the cost does not depend on the weights):

- cells/s of ``cellae encode``'s streaming encode in this process, and on a
  ``distributed.LocalCluster`` of 1 and 2 single-threaded worker processes; the speed-up of
  2 workers over 1 and the output check (same rows, features within 1e-5);
- the write ceiling of the one client that appends all rows to the Explorer ``.hdf``;
- peak memory (VmHWM of a fresh process, minus the process with the model loaded and warm)
  of the streaming encode for ``--cells`` and ``--cells / 10`` cells, beside the in-memory
  ``run_encode`` of one plate;
- the time to encode 10^8 cells on N machines, extrapolated from the measured per-core rate
  and the 1 -> 2 worker efficiency, and capped by the write ceiling.

The synthetic screen is a folder of plates (CellH5 files of 50 positions; 2 frames of
512 x 512 uint8 with 1000 cells each), written quickly with ``io.cellh5_writer``.

Run: ``python benchmarks/bench_scale.py [--cells 1000000] [--rate-cells 20000]``. Timings on
a shared machine are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_cellae.core.config import DEFAULT_PRESET, TrainConfig
from napari_cellae.core.model import ConvAutoencoder
from napari_cellae.core.model_file import TrainedModel, save_model
from napari_cellae.core.model_load import load_model
from napari_cellae.core.normalisation import Normalisation
from napari_cellae.export.explorer import read_explorer_hdf
from napari_cellae.export.explorer_stream import ExplorerWriter
from napari_cellae.io.cellh5_writer import ObjectData, PositionData, write_cellh5
from napari_cellae.pipeline.distributed import cluster_runner, dask_client
from napari_cellae.pipeline.streaming import encode_serial, encode_stream, plan_encode

OBJECT = "primary__primary"
SIDE, FRAMES, PER_FRAME, PER_PLATE = 512, 2, 1000, 50
SCREEN = 10**8


def make_screen(folder: Path, cells: int, seed: int = 0) -> Path:
    """A folder of plates holding ``cells`` objects (rounded up to whole positions)."""
    rng = np.random.default_rng(seed)
    per_position = FRAMES * PER_FRAME
    n_positions = max(1, -(-cells // per_position))
    folder.mkdir(parents=True, exist_ok=True)
    # Blocky texture: gzip-compressible like microscopy, cheap to make.
    textures = [
        np.kron(rng.integers(0, 256, (1, FRAMES, 1, SIDE // 8, SIDE // 8)), np.ones((8, 8)))
        .astype(np.uint8)
        .reshape(1, FRAMES, 1, SIDE, SIDE)
        for _ in range(4)
    ]
    for plate in range(-(-n_positions // PER_PLATE)):
        positions = []
        for p in range(plate * PER_PLATE, min(n_positions, (plate + 1) * PER_PLATE)):
            n = per_position
            cy = rng.integers(0, SIDE, n).astype(np.int32)
            cx = rng.integers(0, SIDE, n).astype(np.int32)
            t = np.repeat(np.arange(FRAMES), PER_FRAME).astype(np.int32)
            bbox = np.stack([cx - 4, cx + 4, cy - 4, cy + 4], 1).clip(0, SIDE - 1)
            label = np.tile(np.arange(1, PER_FRAME + 1), FRAMES).astype(np.int32)
            objects = ObjectData(t, label, cx, cy, bbox.astype(np.int32))
            # Label images (each cell its bounding box), so neighbours are masked as usual.
            labels = np.zeros((1, FRAMES, 1, SIDE, SIDE), np.uint16)
            for i, (left, right, top, bottom) in enumerate(bbox):
                labels[0, t[i], 0, top : bottom + 1, left : right + 1] = label[i]
            well = f"{chr(65 + p // 24 % 16)}{p % 24 + 1:02d}"
            positions.append(
                PositionData(
                    f"P{plate}", well, f"{p // 384 + 1}", textures[p % 4], {OBJECT: objects}, labels
                )
            )
        write_cellh5(
            folder / f"plate{plate:04d}.ch5",
            positions,
            channel_names=["dna"],
            object_channels={OBJECT: 0},
        )
    return folder


def untrained_model(path: Path, architecture: str | None = None) -> Path:
    """The default network (or ``architecture``), freshly initialised, as a model file."""
    config = TrainConfig.from_preset(DEFAULT_PRESET)
    if architecture:
        config = TrainConfig.from_preset(DEFAULT_PRESET, architecture=architecture)
    torch.manual_seed(0)
    model = ConvAutoencoder(config.architecture, config.crop_size, 1).eval()
    per_cell = getattr(config, "intensity", "screen") == "cell"  # scaled as the preset says
    norm = Normalisation([0.0], [255.0], per_cell=per_cell)
    trained = TrainedModel(model, config, norm, ["dna"], OBJECT)
    return save_model(trained, path)


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (VmHWM on Linux, else ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024


def memory_child(screen: Path, model_path: Path, mode: str, out: Path) -> None:
    """Fresh process: peak RSS with the model loaded and warm, then after encoding."""
    from napari_cellae.pipeline.runs import run_encode

    trained = load_model(model_path)
    size = trained.config.crop_size
    warm = np.zeros((600, 1, size, size), np.uint8)  # more than one batch: buffers at size
    from napari_cellae.core.features import encode

    encode(trained, warm)
    base = peak_rss_mib()
    if mode == "stream":
        cells = encode_stream([screen], trained, out).n_cells
    else:  # everything of the first plate in memory, as run_encode does
        plate = sorted(screen.glob("*.ch5"))[0]
        cells = len(run_encode(plate, trained, out).crops)
    print(f"{base:.0f} {peak_rss_mib():.0f} {cells}")


def measure_memory(screen: Path, model: Path, mode: str, out: Path) -> tuple[float, float, int]:
    done = subprocess.run(
        [sys.executable, __file__, "--memory-child", mode, str(screen), str(model), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    base, peak, cells = done.stdout.split()[-3:]
    out.unlink(missing_ok=True)
    return float(base), float(peak), int(cells)


def encode_rate(
    screen: Path, trained: TrainedModel, out: Path, workers: int
) -> tuple[float, float]:
    """Cells per wall-clock second and per CPU-second of the streaming encode, here
    (``workers`` 0) or on a LocalCluster (started and warmed first, not timed).

    CPU seconds count this process (client, scheduler, writer) and every worker process:
    what the work costs on dedicated cores, however busy the machine is with other jobs.
    """
    if workers == 0:
        c0, t0 = time.process_time(), time.perf_counter()
        cells = encode_stream([screen], trained, out).n_cells
        return cells / (time.perf_counter() - t0), cells / (time.process_time() - c0)
    with dask_client(workers) as client:
        client.run(_warm_worker)
        w0 = client.run(time.process_time)
        c0, t0 = time.process_time(), time.perf_counter()
        cells = encode_stream([screen], trained, out, runner=cluster_runner(client)).n_cells
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        w1 = client.run(time.process_time)
    cpu += sum(w1[w] - w0[w] for w in w0)
    return cells / wall, cells / cpu


def _warm_worker() -> None:
    import napari_cellae.core.features  # noqa: F401  (torch and the encoder, imported once)


def write_ceiling(screen: Path, trained: TrainedModel, out: Path, rows: int) -> tuple[float, float]:
    """Rows per wall second and per CPU-second one client appends to the Explorer .hdf (the
    results already encoded)."""
    plan = plan_encode([screen], trained, out)
    encoded, n = [], 0
    for result in encode_serial(plan.tasks, trained, 512):
        encoded.append(result)
        n += len(result.crops)
        if n >= min(rows, 20_000):
            break
    c0, t0 = time.process_time(), time.perf_counter()
    written = 0
    with ExplorerWriter(out, plan.mapping, normalisation=trained.normalisation) as writer:
        while written < rows:
            for result in encoded:
                writer.append(result.crops, result.features)
                written += len(result.crops)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out.unlink()
    return written / wall, written / cpu


def human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000, help="cells of the memory run")
    parser.add_argument("--rate-cells", type=int, default=20_000, help="cells of the speed runs")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="cluster sizes")
    parser.add_argument(
        "--memory-architecture",
        default="",
        help="network of the memory runs (default: the default network); a small one makes "
        "the 1M-cell run quick on a small machine, the memory beyond the model is the same",
    )
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        mode, screen, model, out = args.memory_child
        memory_child(Path(screen), Path(model), mode, Path(out))
        return

    start = time.perf_counter()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cores} cores, load "
        f"average {os.getloadavg()[0]:.1f}; untrained network of the '{DEFAULT_PRESET}' preset"
    )
    preset = TrainConfig.from_preset(DEFAULT_PRESET)
    print(
        f"  {preset.architecture}, {preset.crop_size} px, mask {preset.mask}, intensity "
        f"{getattr(preset, 'intensity', 'screen')}, readout {preset.readout} over "
        f"{preset.orientations} orientations"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    try:
        model_path = untrained_model(tmp / "model.pt")
        trained = load_model(model_path)
        t0 = time.perf_counter()
        rate_screen = make_screen(tmp / "rate", args.rate_cells, seed=1)
        made = time.perf_counter() - t0
        print(f"synthetic screen of {args.rate_cells} cells written in {made:.0f} s")

        rates = {0: encode_rate(rate_screen, trained, tmp / "serial.hdf", 0)}
        reference = read_explorer_hdf(tmp / "serial.hdf")
        same, largest = True, 0.0
        for w in args.workers:
            rates[w] = encode_rate(rate_screen, trained, tmp / f"dask{w}.hdf", w)
            got = read_explorer_hdf(tmp / f"dask{w}.hdf")
            same &= bool(np.array_equal(got.bbox, reference.bbox))
            same &= bool(np.allclose(got.features, reference.features, atol=1e-5, rtol=1e-5))
            largest = max(largest, float(np.abs(got.features - reference.features).max()))
        print(
            f"\n{'encoding ' + str(args.rate_cells) + ' cells':<30}{'cells/s':>9}{'x 1 worker':>12}"
            f"{'cells/CPU-s':>13}{'x 1 worker':>12}"
        )
        one = rates.get(1)
        for w, (wall, cpu) in rates.items():
            threads = torch.get_num_threads()
            name = f"here ({threads} torch threads)" if w == 0 else f"Dask, {w} worker(s)"
            ratios = [f"{r / one[k]:>11.2f}x" if one else "" for k, r in enumerate((wall, cpu))]
            print(f"{name:<30}{wall:>9.0f}{ratios[0]:>12}{cpu:>13.0f}{ratios[1]:>12}")
        same_text = "yes" if same else "NO"
        print(
            f"Dask output equals the serial output (rows, features within 1e-5): {same_text} "
            f"(largest feature difference {largest:.1e})"
        )
        ceiling, ceiling_cpu = write_ceiling(
            rate_screen, trained, tmp / "ceiling.hdf", 4 * args.rate_cells
        )
        print(
            f"write ceiling of the one client: {ceiling:.0f} rows/s appended to the .hdf "
            f"({ceiling_cpu:.0f} rows per CPU-second)"
        )
        shutil.rmtree(rate_screen)

        memory_model = model_path
        if args.memory_architecture:
            memory_model = untrained_model(tmp / "memory.pt", args.memory_architecture)
        print(
            "\npeak memory (VmHWM of a fresh process, MiB; 'beyond': above the process with the "
            f"model loaded and warm), network {load_model(memory_model).config.architecture}:"
        )
        print(f"{'run':<44}{'cells':>10}{'model':>8}{'peak':>8}{'beyond':>8}")
        small_n = max(args.cells // 10, FRAMES * PER_FRAME)
        rows = []
        for n in sorted({small_n, args.cells}):
            t0 = time.perf_counter()
            screen = make_screen(tmp / f"mem{n}", n, seed=2)
            made = time.perf_counter() - t0
            if n == small_n:
                rows.append(
                    (
                        "in memory (run_encode, first plate)",
                        *measure_memory(screen, memory_model, "memory", tmp / "m.hdf"),
                    )
                )
            t0 = time.perf_counter()
            rows.append(
                (
                    "streaming (cellae encode)",
                    *measure_memory(screen, memory_model, "stream", tmp / "s.hdf"),
                )
            )
            took = time.perf_counter() - t0
            print(f"  ({n} cells: screen written in {made:.0f} s, streamed in {took:.0f} s)")
            shutil.rmtree(screen)
        for name, base, peak, cells in rows:
            print(f"{name:<44}{cells:>10}{base:>8.0f}{peak:>8.0f}{peak - base:>8.0f}")

        if one and 2 in rates:
            per_core = rates[2][1]  # cells per CPU-second with 2 workers, overheads included
            print(
                f"\n10^8 cells, extrapolated from {per_core:.0f} cells per CPU-second (2 workers: "
                f"{rates[2][1] / one[1]:.0%} of 1 worker's rate per CPU-second, client and "
                f"scheduler included) and the one client's {ceiling_cpu:.0f} rows per CPU-second:"
            )
            print(
                f"{'machines':>9}{'cores each':>12}{'cells/s':>10}{'one output':>12}"
                f"{'outputs per plate group':>26}"
            )
            for machines, per in ((1, cores), (10, cores), (10, 32), (100, 32)):
                rate = per_core * per * machines
                one_file = human(SCREEN / min(rate, ceiling_cpu))
                print(
                    f"{machines:>9}{per:>12}{rate:>10.0f}{one_file:>12}{human(SCREEN / rate):>26}"
                )
            print(
                "  (every core encoding as a dedicated core here does and the shared file system "
                "keeping up; one output is capped by its one writer, so split big screens into "
                "one 'cellae encode' per group of plates)"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total benchmark time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
