"""Crop extraction: napari_cellae.crops (frame-wise reads, vectorised gather) vs one h5py read
per object, on the same synthetic CellH5 file.

Run: ``python benchmarks/bench_crops.py [--objects 20000] [--size 40]``. Prints both timings
and the ratio (target: >= 20x) and checks that both give identical crops.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from napari_cellae.cellh5 import CellH5
from napari_cellae.cellh5_writer import ObjectData, PositionData, write_cellh5
from napari_cellae.crops import collect_crops, crop_origins

HEIGHT = WIDTH = 512


def make_file(folder: Path, n_objects: int, n_positions: int, n_frames: int, seed: int) -> Path:
    """A CellCognition-style file: uint8 blobs on noise, objects spread over all frames."""
    rng = np.random.default_rng(seed)
    per_frame = n_objects // (n_positions * n_frames)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    positions = []
    for p in range(n_positions):
        n = per_frame * n_frames
        time_idx = np.repeat(np.arange(n_frames), per_frame).astype(np.int32)
        cy = rng.integers(0, HEIGHT, n).astype(np.int32)
        cx = rng.integers(0, WIDTH, n).astype(np.int32)
        image = rng.integers(0, 40, (1, n_frames, 1, HEIGHT, WIDTH), dtype=np.uint8)
        image += ((yy + 2 * xx) % 200).astype(np.uint8)[None, None, None] // 4
        bbox = np.stack(
            [
                np.maximum(cx - 5, 0),
                np.minimum(cx + 5, WIDTH - 1),
                np.maximum(cy - 5, 0),
                np.minimum(cy + 5, HEIGHT - 1),
            ],
            axis=1,
        ).astype(np.int32)
        label_id = np.tile(np.arange(1, per_frame + 1), n_frames).astype(np.int32)
        objects = ObjectData(time_idx, label_id, cx, cy, bbox)
        positions.append(
            PositionData("plate1", f"A{p + 1:02d}", "1", image, {"primary__primary": objects})
        )
    return write_cellh5(
        folder / "bench.ch5",
        positions,
        channel_names=["rfp"],
        object_channels={"primary__primary": 0},
        flavour="cellcognition",
    )


def uncompressed_copy(path: Path, out: Path) -> Path:
    """Same file with contiguous, uncompressed image datasets (as the CellH5 reference
    writer's ``add_image`` creates them); everything else copied as is."""
    with h5py.File(path, "r") as src, h5py.File(out, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                if name.endswith("image/channel"):
                    dst.create_dataset(name, data=obj[...])
                else:
                    src.copy(obj, dst, name=name)

        src.visititems(visit)
    return out


def per_object_reads(path: Path, size: int) -> np.ndarray:
    """The slow reference: one h5py read per object (dataset handle hoisted out of the loop)."""
    out = []
    with CellH5(path) as f:
        for pos in f.positions:
            table = f.objects(pos, "primary__primary")
            image = f.image(pos)
            _, _, _, height, width = image.shape
            y0, x0 = crop_origins(table.center_y, table.center_x, size, height, width)
            for t, y, x in zip(table.time_idx.tolist(), y0.tolist(), x0.tolist(), strict=True):
                out.append(image[0, t, 0, y : y + size, x : x + size])
    return np.stack(out)[:, None]


def vectorised(path: Path, size: int) -> np.ndarray:
    """napari_cellae: collect_crops over all positions (opens the file afresh: cold caches)."""
    with CellH5(path) as f:
        return collect_crops(f, "primary__primary", size).crops


def open_and_read_tables(path: Path) -> int:
    """What both methods do before any pixel: open the file, read every object table."""
    with CellH5(path) as f:
        return sum(len(f.objects(pos, "primary__primary")) for pos in f.positions)


def read_all_frames(path: Path) -> int:
    """The floor: read (and decompress) every frame once, nothing else."""
    total = 0
    with CellH5(path) as f:
        for pos in f.positions:
            total += f.image(pos)[...].size
    return total


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, result = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--positions", type=int, default=10)
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        gz = make_file(Path(tmp), args.objects, args.positions, args.frames, seed=0)
        raw = uncompressed_copy(gz, Path(tmp) / "bench_uncompressed.ch5")
        n = args.objects // (args.positions * args.frames) * args.positions * args.frames
        print(
            f"synthetic CellH5: {args.positions} positions x {args.frames} frames of "
            f"{HEIGHT}x{WIDTH} uint8, {n} objects, {args.size} px crops "
            f"(written in {time.perf_counter() - t0:.1f} s); every run opens the file afresh"
        )
        print(
            f"{'layout':<34}{'per-object s':>13}{'ours s':>9}{'ratio':>8}"
            f"{'ours crops/s':>15}{'tables s':>10}{'ratio w/o tables':>18}"
            f"{'read-all-frames s':>19}"
        )
        for label, path in (
            ("gzip, 256x256 chunks (write_cellh5)", gz),
            ("uncompressed, contiguous", raw),
        ):
            fast_s, fast = best_of(lambda p=path: vectorised(p, args.size), 3)
            slow_s, slow = best_of(lambda p=path: per_object_reads(p, args.size), 2)
            floor_s, _ = best_of(lambda p=path: read_all_frames(p), 3)
            tables_s, _ = best_of(lambda p=path: open_and_read_tables(p), 3)
            assert np.array_equal(fast, slow), "vectorised crops differ from per-object reads"
            print(
                f"{label:<34}{slow_s:>13.3f}{fast_s:>9.3f}{slow_s / fast_s:>7.1f}x"
                f"{n / fast_s:>15,.0f}{tables_s:>10.3f}"
                f"{(slow_s - tables_s) / (fast_s - tables_s):>17.1f}x{floor_s:>19.3f}"
            )
        print("identical crops from both methods: yes")
        print(
            "target: ratio >= 20x. Both methods open the file and read the object tables "
            "('tables s'; 'ratio w/o tables' leaves that shared cost out) and both decompress "
            "every chunk once (HDF5's chunk cache serves the per-object reads), so on gzip "
            "files the ratio is bounded by (decompression + n * per-read overhead) / "
            "decompression; ours inflates frames in parallel on all cores."
        )


if __name__ == "__main__":
    main()
