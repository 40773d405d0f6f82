"""Crop extraction: napari_cellae.core.crops (frame-wise reads, vectorised gather) vs one h5py read
per object, on the same synthetic CellH5 file, in three storage layouts.

- one gzip chunk per frame (``chunks=(1, 1, 1, h, w)``), here 1040 x 1392 camera frames,
  ~150 cells each. (CellCognition's own chunks hold every channel of a frame and a quarter
  of its height and width; the last line compares them read here and through h5py.)
  HDF5 >= 2.0 caches 8 MiB of chunks per dataset, so the per-object reads inflate each
  frame once; HDF5 1.x cached 1 MiB, less than one frame, so every per-object read inflated
  a whole frame (the second row opens the file with that cache for both methods).
- gzip in 256 x 256 tiles (napari_cellae's own writer): the chunk cache holds a frame's
  tiles, so the per-object reads pay each tile once plus a fixed cost per call.
- contiguous, uncompressed (the CellH5 reference writer's ``add_image``).

Run: ``python benchmarks/bench_crops.py [--objects 20000] [--size 40]``. Prints both timings
and the ratio (target: >= 20x) per layout and checks that both methods give identical crops
(the per-object reference centres border objects one by one, as ours does vectorised).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from napari_cellae.core.crops import collect_crops, crop_origins
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import ObjectData, PositionData, write_cellh5


def make_file(
    folder: Path,
    name: str,
    n_objects: int,
    n_positions: int,
    n_frames: int,
    shape: tuple[int, int],
    seed: int,
    channels: int = 1,
) -> Path:
    """A CellCognition-style file: uint8 pattern plus noise, objects spread over all frames
    (napari_cellae's writer: gzip in 256 x 256 tiles)."""
    rng = np.random.default_rng(seed)
    height, width = shape
    per_frame = n_objects // (n_positions * n_frames)
    yy, xx = np.mgrid[0:height, 0:width]
    pattern = ((yy + 2 * xx) % 200).astype(np.uint8) // 4
    positions = []
    for p in range(n_positions):
        n = per_frame * n_frames
        time_idx = np.repeat(np.arange(n_frames), per_frame).astype(np.int32)
        cy = rng.integers(0, height, n).astype(np.int32)
        cx = rng.integers(0, width, n).astype(np.int32)
        image = rng.integers(0, 40, (channels, n_frames, 1, height, width), dtype=np.uint8)
        image += pattern[None, None, None]
        bbox = np.stack(
            [
                np.maximum(cx - 5, 0),
                np.minimum(cx + 5, width - 1),
                np.maximum(cy - 5, 0),
                np.minimum(cy + 5, height - 1),
            ],
            axis=1,
        ).astype(np.int32)
        label_id = np.tile(np.arange(1, per_frame + 1), n_frames).astype(np.int32)
        objects = ObjectData(time_idx, label_id, cx, cy, bbox)
        positions.append(
            PositionData("plate1", f"A{p + 1:02d}", "1", image, {"primary__primary": objects})
        )
    return write_cellh5(
        folder / name,
        positions,
        channel_names=["rfp", "gfp", "cy5"][:channels],
        object_channels={"primary__primary": 0},
        flavour="cellcognition",
    )


def with_image_storage(path: Path, out: Path, **storage: object) -> Path:
    """The same file with its image datasets stored differently (``create_dataset`` keyword
    arguments, e.g. chunks and compression; none: contiguous, uncompressed)."""
    with h5py.File(path, "r") as src, h5py.File(out, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                if name.endswith("image/channel") and obj.ndim == 5:
                    chunks = storage.get("chunks")
                    extra = dict(storage)
                    if chunks == "frame":
                        extra["chunks"] = (1, 1, 1, *obj.shape[3:])
                    elif chunks == "quarter":  # CellCognition's: every channel, 1/4 frame
                        c, _, _, h, w = obj.shape
                        extra["chunks"] = (c, 1, 1, -(-h // 4), -(-w // 4))
                    dst.create_dataset(name, data=obj[...], **extra)
                else:
                    src.copy(obj, dst, name=name)

        src.visititems(visit)
    return out


def centred(window: np.ndarray, y: int, x: int, cy: int, cx: int) -> np.ndarray:
    """One crop centred on its object the plain way: ``window`` was read at ``(y, x)``
    (shifted inside the image); what the centred window sees outside the image takes the
    lower median (a pixel value) of ``window``'s outermost rows and columns."""
    size = window.shape[-1]
    dy, dx = y - (cy - size // 2), x - (cx - size // 2)
    if dy == 0 and dx == 0:
        return window
    ring = np.concatenate([window[0], window[-1], window[1:-1, 0], window[1:-1, -1]])
    out = np.full_like(window, np.quantile(ring, 0.5, method="lower"))
    # new[r, q] = old[r - dy, q - dx] wherever old has that pixel
    out[max(dy, 0) : size + min(dy, 0), max(dx, 0) : size + min(dx, 0)] = window[
        max(-dy, 0) : size - max(dy, 0), max(-dx, 0) : size - max(dx, 0)
    ]
    return out


def per_object_reads(path: Path, size: int, cache_bytes: int | None = None) -> np.ndarray:
    """The slow reference: one h5py read per object (dataset handle hoisted out of the loop),
    border objects centred one by one (:func:`centred`); ``cache_bytes``: HDF5's chunk
    cache per dataset (default: the library's)."""
    with CellH5(path) as f:
        work = []
        for pos in f.positions:
            table = f.objects(pos, "primary__primary")
            name, (_, _, _, height, width) = f.image(pos).name, f.image_shape(pos)
            y0, x0 = crop_origins(table.center_y, table.center_x, size, height, width)
            columns = (table.time_idx, y0, x0, table.center_y, table.center_x)
            work.append((name, list(zip(*(c.tolist() for c in columns), strict=True))))
    out = []
    # Opened again after CellH5 closed it: HDF5 shares an open dataset, with its cache.
    with h5py.File(path, "r", rdcc_nbytes=cache_bytes) as raw:
        for name, objects in work:
            image = raw[name]
            for t, y, x, cy, cx in objects:
                out.append(centred(image[0, t, 0, y : y + size, x : x + size], y, x, cy, cx))
    return np.stack(out)[:, None]


def vectorised(path: Path, size: int) -> np.ndarray:
    """napari_cellae: collect_crops over all positions (opens the file afresh: cold caches).
    Whole frames are read once, so HDF5's chunk cache setting does not matter here."""
    with CellH5(path) as f:
        return collect_crops(f, "primary__primary", size).crops


def through_h5py(path: Path, size: int) -> np.ndarray:
    """:func:`vectorised` with every frame read through h5py (as multi-channel chunks were
    before they were inflated here)."""
    from napari_cellae.io import planes

    original = planes.PlaneReader.__init__

    def plain(self, image):
        original(self, image)
        self.filters = None

    planes.PlaneReader.__init__ = plain
    try:
        return vectorised(path, size)
    finally:
        planes.PlaneReader.__init__ = original


def open_and_read_tables(path: Path) -> int:
    """What both methods do before any pixel: open the file, read every object table."""
    with CellH5(path) as f:
        return sum(len(f.objects(pos, "primary__primary")) for pos in f.positions)


def read_all_frames(path: Path) -> int:
    """The floor of a one-thread reader: read (and decompress) every frame once."""
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
    parser.add_argument("--objects", type=int, default=20_000, help="tiled/contiguous files")
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--positions", type=int, default=10)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument(
        "--camera-objects",
        type=int,
        default=1_200,
        help="objects in the CellCognition-layout file (2 positions x 4 frames of 1040 x 1392)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        tiled = make_file(
            folder, "tiled.ch5", args.objects, args.positions, args.frames, (512, 512), 0
        )
        camera_tiled = make_file(folder, "camera.ch5", args.camera_objects, 2, 4, (1040, 1392), 1)
        gzip = {"compression": "gzip"}
        cellcognition = with_image_storage(
            camera_tiled, folder / "cellcognition.ch5", chunks="frame", **gzip
        )
        camera = "2 positions x 4 frames of 1040x1392"
        small = f"{args.positions} x {args.frames} frames of 512x512"
        contiguous = with_image_storage(tiled, folder / "contiguous.ch5")
        layouts = [
            ("gzip, 1 chunk/frame", cellcognition, None, camera),
            ("  same, HDF5 1.x's 1 MiB chunk cache", cellcognition, 2**20, camera),
            ("gzip, 256x256 tiles", tiled, None, small),
            ("contiguous, uncompressed", contiguous, None, small),
        ]
        print(
            f"synthetic uint8 CellH5 files, {args.size} px crops (written in "
            f"{time.perf_counter() - t0:.1f} s); every run opens the file afresh"
        )
        print(
            f"{'layout':<36}{'objects':>8}{'per-object s':>13}{'ours s':>9}{'ratio':>8}"
            f"{'tables s':>10}{'ratio w/o tables':>18}{'read-all-frames s':>19}   frames"
        )
        for label, path, cache, frames in layouts:
            n = open_and_read_tables(path)
            fast_s, fast = best_of(lambda p=path: vectorised(p, args.size), 3)
            slow_s, slow = best_of(lambda p=path, c=cache: per_object_reads(p, args.size, c), 1)
            floor_s, _ = best_of(lambda p=path: read_all_frames(p), 3)
            tables_s, _ = best_of(lambda p=path: open_and_read_tables(p), 3)
            assert np.array_equal(fast, slow), "vectorised crops differ from per-object reads"
            print(
                f"{label:<36}{n:>8}{slow_s:>13.3f}{fast_s:>9.3f}{slow_s / fast_s:>7.1f}x"
                f"{tables_s:>10.3f}{(slow_s - tables_s) / (fast_s - tables_s):>17.1f}x"
                f"{floor_s:>19.3f}   {frames}"
            )
        print("identical crops from both methods: yes")
        two = make_file(folder, "two.ch5", 4 * args.camera_objects, 2, 16, (1040, 1392), 2, 2)
        quarters = with_image_storage(two, folder / "quarters.ch5", chunks="quarter", **gzip)
        ours_s, ours = best_of(lambda: vectorised(quarters, args.size), 3)
        plain_s, plain = best_of(lambda: through_h5py(quarters, args.size), 3)
        assert np.array_equal(ours, plain), "inflating here changed the crops"
        print(
            "CellCognition's own chunks (2 channels x 1/4 frame each, 2 positions x 16 "
            f"frames of 1040x1392, "
            f"{len(ours)} objects, channel 0): inflated here {ours_s:.3f} s, through h5py "
            f"{plain_s:.3f} s, ratio {plain_s / ours_s:.1f}x (identical crops)"
        )
        print(
            "target: ratio >= 20x. Both methods open the file and read the object tables "
            "('tables s'; 'ratio w/o tables' leaves that shared cost out). Where HDF5's chunk "
            "cache holds a frame, both decompress every chunk once, so the ratio is bounded "
            "by (decompression + n * per-read overhead) / decompression (ours inflates "
            "frames in parallel on all cores). Where it does not (CellCognition's one-chunk "
            "frames with HDF5 1.x, or any frame over 8 MiB, e.g. 16-bit sCMOS frames, with "
            "HDF5 2.x), every per-object read inflates a whole frame; ours still reads each "
            "frame once."
        )


if __name__ == "__main__":
    main()
