"""Training throughput of napari_cellae's Trainer vs a plain PyTorch Dataset/DataLoader loop.

Default architecture, 40 px crops, batch 128, Adagrad, CPU. Prints, side by side:

- crops/s of the plain loop (reads every crop from HDF5 in ``__getitem__``, NCHW, the layers
  run literally), two intermediate steps, and our Trainer; the ratio ours / plain (target >= 3x)
- achieved GFLOP/s (nominal fwd+bwd FLOPs of the model, counted with FlopCounterMode, times
  crops/s) next to the machine's fp32 1024x1024 matmul GFLOP/s measured in the same run
- peak memory while training on 100 000 uint8 crops (child process, ru_maxrss): the crops are
  held once in their stored dtype, no float copy of the set

Run: ``python benchmarks/bench_training.py [--batches 8] [--repeats 3]``. Timings on a shared
machine are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from napari_cellae.core.config import PRESETS, TrainConfig
from napari_cellae.core.crops import Normalisation, collect_crops, crop_origins
from napari_cellae.core.model import ConvAutoencoder
from napari_cellae.core.trainer import Trainer
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import ObjectData, PositionData, write_cellh5

# The original module's settings (the "classic" preset), whatever the current defaults are.
_CLASSIC = PRESETS["classic"].settings
SIZE, BATCH, LR = _CLASSIC["crop_size"], _CLASSIC["batch_size"], _CLASSIC["learning_rate"]
ARCH = _CLASSIC["architecture"]
OBJECT = "primary__primary"


def make_file(folder: Path, n_objects: int, seed: int = 0) -> Path:
    """Two positions x 2 frames of 512x512 uint8 with a Gaussian nucleus per object."""
    rng = np.random.default_rng(seed)
    h = w = 512
    yy, xx = np.mgrid[0:h, 0:w]
    per_frame = n_objects // 4
    positions = []
    for p in range(2):
        cy = rng.integers(0, h, 2 * per_frame).astype(np.int32)
        cx = rng.integers(0, w, 2 * per_frame).astype(np.int32)
        t = np.repeat(np.arange(2), per_frame).astype(np.int32)
        frames = np.zeros((2, h, w))
        for i in range(len(cy)):
            y0, y1, x0, x1 = max(cy[i] - 8, 0), cy[i] + 9, max(cx[i] - 8, 0), cx[i] + 9
            d2 = (yy[y0:y1, x0:x1] - cy[i]) ** 2 + (xx[y0:y1, x0:x1] - cx[i]) ** 2
            frames[t[i], y0:y1, x0:x1] += 180 * np.exp(-d2 / 18.0)
        image = np.clip(frames + rng.normal(20, 5, frames.shape), 0, 255).astype(np.uint8)
        bbox = np.stack([cx - 4, cx + 4, cy - 4, cy + 4], axis=1).clip(0, 511).astype(np.int32)
        label = np.tile(np.arange(1, per_frame + 1), 2).astype(np.int32)
        objects = ObjectData(t, label, cx, cy, bbox)
        positions.append(
            PositionData("p", f"A{p + 1:02d}", "1", image[None, :, None], {OBJECT: objects})
        )
    return write_cellh5(
        folder / "train_bench.ch5",
        positions,
        channel_names=["dna"],
        object_channels={OBJECT: 0},
        flavour="cellcognition",
    )


class H5CropDataset(Dataset):
    """The plain approach: every ``__getitem__`` reads one crop from the HDF5 file."""

    def __init__(self, path: Path, norm: Normalisation) -> None:
        self.file = CellH5(path)
        self.images, self.items = [], []
        for p, pos in enumerate(self.file.positions):
            image = self.file.image(pos)
            table = self.file.objects(pos, OBJECT)
            y0, x0 = crop_origins(table.center_y, table.center_x, SIZE, *image.shape[3:])
            self.images.append(image)
            self.items += [(p, t, y, x) for t, y, x in zip(table.time_idx, y0, x0, strict=True)]
        self.low, self.scale = norm.low[0], 1.0 / (norm.high[0] - norm.low[0])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> torch.Tensor:
        p, t, y, x = self.items[i]
        crop = self.images[p][0:1, t, 0, y : y + SIZE, x : x + SIZE].astype(np.float32)
        return torch.from_numpy(np.clip((crop - self.low) * self.scale, 0, 1))


def clock(cpu: bool) -> float:
    """CPU seconds of this process (robust against other processes) or wall seconds."""
    return time.process_time() if cpu else time.perf_counter()


def time_batches(step: Callable[[], None], batches: int, cpu: bool) -> float:
    """crops per (CPU or wall) second of ``batches`` training steps after two warm-up steps."""
    step()
    step()
    t0 = clock(cpu)
    for _ in range(batches):
        step()
    return batches * BATCH / (clock(cpu) - t0)


def plain_loader_step(path: Path, norm: Normalisation) -> Callable[[], None]:
    torch.manual_seed(0)
    model = ConvAutoencoder(ARCH, SIZE, 1)
    model.fast_paths = False  # the layers as written: conv, ReLU, pool, upsample, conv
    opt = torch.optim.Adagrad(model.parameters(), lr=LR)
    loader = DataLoader(H5CropDataset(path, norm), batch_size=BATCH, shuffle=True, drop_last=True)
    batches = iter(())

    def step() -> None:
        nonlocal batches
        x = next(batches, None)
        if x is None:
            batches = iter(loader)
            x = next(batches)
        opt.zero_grad(set_to_none=True)
        F.mse_loss(model(x), x).backward()
        opt.step()

    return step


def tensor_step(crops: np.ndarray, norm: Normalisation, channels_last: bool) -> Callable[[], None]:
    """Crops in one uint8 tensor, batches sliced by a permutation; literal layers."""
    torch.manual_seed(0)
    model = ConvAutoencoder(ARCH, SIZE, 1)
    model.fast_paths = False
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adagrad(model.parameters(), lr=LR)
    data = torch.from_numpy(crops)
    perm = torch.randperm(len(crops))
    pos = 0

    def step() -> None:
        nonlocal pos
        if pos + BATCH > len(crops):
            pos = 0
        x = norm.apply(data[perm[pos : pos + BATCH]])
        pos += BATCH
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        F.mse_loss(model(x), x).backward()
        opt.step()

    return step


def trainer_rate(crops: np.ndarray, norm: Normalisation, batches: int, cpu: bool) -> float:
    """Our Trainer: crops per (CPU or wall) second of its second epoch (the first warms up)."""
    n = min(len(crops), batches * BATCH)
    cfg = TrainConfig(
        crop_size=SIZE,
        architecture=ARCH,
        batch_size=BATCH,
        learning_rate=LR,
        epochs=2,
        device="cpu",
        held_out_fraction=0.0,
    )
    run = Trainer(cfg, crops[:n], norm).run()
    next(run)
    t0 = clock(cpu)
    report = next(run)
    return n / (clock(cpu) - t0) if cpu else report.samples_per_second


def flops_per_crop(fast: bool) -> float:
    model = ConvAutoencoder(ARCH, SIZE, 1)
    model.fast_paths = fast
    x = torch.rand(BATCH, 1, SIZE, SIZE)
    with FlopCounterMode(display=False) as counter:
        F.mse_loss(model(x), x).backward()
    return counter.get_total_flops() / BATCH


def matmul_gflops(cpu: bool) -> float:
    """fp32 1024 x 1024 matmul GFLOP/s (best of 10), per CPU- or wall-second."""
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    for _ in range(3):
        a @ b
    best = np.inf
    for _ in range(10):
        t0 = clock(cpu)
        a @ b
        best = min(best, clock(cpu) - t0)
    return 2 * 1024**3 / best / 1e9


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB.

    Linux: VmHWM of /proc/self/status (per address space; ru_maxrss would carry the parent's
    high-water mark over fork + exec). Elsewhere: ru_maxrss.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024


def memory_child(n: int) -> None:
    """Run in a fresh process: peak RSS before crops, with crops, after training batches."""
    rng = np.random.default_rng(0)
    base = peak_rss_mib()
    crops = np.empty((n, 1, SIZE, SIZE), np.uint8)
    for i in range(0, n, 10_000):
        crops[i : i + 10_000] = rng.integers(0, 256, crops[i : i + 10_000].shape, np.uint8)
    after_crops = peak_rss_mib()
    # the trainer trains on all n crops; 1000 held out whatever n (for n >= 2000), so the
    # evaluation costs the same
    cfg = TrainConfig(
        crop_size=SIZE,
        architecture=ARCH,
        batch_size=BATCH,
        epochs=1,
        device="cpu",
        held_out_fraction=min(1000, n // 2) / n,
    )
    trainer = Trainer(cfg, crops)
    calls = 0
    batch = trainer._batch

    def counting(idx: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 10:
            trainer.stop()  # 10 training batches, then the held-out evaluation
        return batch(idx)

    trainer._batch = counting  # type: ignore[method-assign]
    list(trainer.run())
    after_train = peak_rss_mib()
    shared = int(trainer._data.data_ptr() == crops.ctypes.data)
    mib = crops.nbytes / 2**20
    print(f"{base:.0f} {after_crops:.0f} {after_train:.0f} {mib:.0f} {shared}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8, help="timed batches per variant")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (best is reported)")
    parser.add_argument("--memory-crops", type=int, default=100_000)
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    if args.memory_child:
        memory_child(args.memory_child)
        return

    start = time.perf_counter()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; default architecture "
        f"{ARCH}, {SIZE} px, batch {BATCH}, Adagrad, CPU"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = make_file(Path(tmp), n_objects=4 * BATCH * (args.batches + 2))
        with CellH5(path) as f:
            crops = collect_crops(f, OBJECT, SIZE).crops
        norm = Normalisation.from_crops(crops)
        b = args.batches
        variants: dict[str, Callable[[bool], float]] = {
            "plain: DataLoader, HDF5 read per crop": lambda cpu: time_batches(
                plain_loader_step(path, norm), b, cpu
            ),
            "crops in one uint8 tensor": lambda cpu: time_batches(
                tensor_step(crops, norm, False), b, cpu
            ),
            "  + channels_last": lambda cpu: time_batches(tensor_step(crops, norm, True), b, cpu),
            "ours: Trainer (+ fast paths)": lambda cpu: trainer_rate(crops, norm, b, cpu),
        }
        # Two measurements per variant, interleaved over rounds so load changes hit all:
        # 1 thread timed in CPU seconds (what a core does, robust on a shared machine) and
        # all threads timed on the wall clock (what a user sees now).
        cpu_rates = {name: 0.0 for name in variants}
        wall_rates = {name: 0.0 for name in variants}
        for _ in range(args.repeats):
            for name, run in variants.items():
                torch.set_num_threads(1)
                cpu_rates[name] = max(cpu_rates[name], run(True))
                torch.set_num_threads(threads)
                wall_rates[name] = max(wall_rates[name], run(False))

    nominal, executed = flops_per_crop(False), flops_per_crop(True)
    torch.set_num_threads(1)
    peak1 = matmul_gflops(cpu=True)
    torch.set_num_threads(threads)
    peak = matmul_gflops(cpu=False)
    plain_name = "plain: DataLoader, HDF5 read per crop"
    ours_name = "ours: Trainer (+ fast paths)"
    print(
        f"\n{'':<40}{'1 thread, per CPU-second':^36}|{f'{threads} threads, wall clock':^36}"
        f"\n{'variant':<40}" + f"{'crops/s':>9}{'vs plain':>9}{'GFLOP/s':>9}{'% mm':>8} |" * 2
    )
    for name in variants:
        row = f"{name:<40}"
        for rates, mm in ((cpu_rates, peak1), (wall_rates, peak)):
            rate = rates[name]
            gflops = rate * nominal / 1e9
            row += (
                f"{rate:>9.0f}{rate / rates[plain_name]:>8.2f}x{gflops:>9.1f}"
                f"{100 * gflops / mm:>7.1f}% |"
            )
        print(row)
    ratio1 = cpu_rates[ours_name] / cpu_rates[plain_name]
    ratio = wall_rates[ours_name] / wall_rates[plain_name]
    print(
        f"\nratio ours / plain: {ratio1:.2f}x per CPU-second (1 thread), {ratio:.2f}x wall clock "
        f"({threads} threads); target >= 3x"
    )
    print(
        f"ours at {threads} threads: {wall_rates[ours_name]:.0f} crops/s wall clock "
        f"(goal 2000 crops/s; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(
        f"fp32 1024x1024 matmul (same run): {peak1:.0f} GFLOP/s per CPU-second on 1 thread, "
        f"{peak:.0f} GFLOP/s wall clock on {threads} threads ('% mm' columns)"
    )
    print(
        f"model FLOPs per crop, forward + backward: {nominal / 1e6:.1f} M (FlopCounterMode, "
        f"layers as written; our fast paths execute {executed / 1e6:.1f} M). GFLOP/s = nominal "
        "FLOPs x crops/s"
    )

    print(
        f"\npeak memory (VmHWM) while training, {SIZE} px uint8 crops, fresh process each:"
        f"\n{'crops':>8}{'crops MiB':>11}{'before':>8}{'with crops':>12}{'training':>10}"
        f"{'training overhead':>19}{'float32 copy would be':>23}{'shared':>8}"
    )
    for n in sorted({args.memory_crops // 10, args.memory_crops}):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                str(n),
                "--threads",
                str(torch.get_num_threads()),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        base, after_crops, after_train, crops_mb, shared = map(float, out[-5:])
        print(
            f"{n:>8}{crops_mb:>11.0f}{base:>8.0f}{after_crops:>12.0f}{after_train:>10.0f}"
            f"{after_train - after_crops:>19.0f}{4 * crops_mb:>23.0f}"
            f"{'yes' if shared else 'no':>8}"
        )
    print(f"  total benchmark time {time.perf_counter() - start:.0f} s")
    print(
        "  (MiB; 'training' = after 10 batches and the held-out evaluation; an overhead "
        "independent of the number of crops means they are held once, in uint8)"
    )


if __name__ == "__main__":
    main()
