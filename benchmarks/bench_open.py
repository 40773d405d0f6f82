"""How long opening a CellH5 file takes, for small and huge images and many positions.

Opening must not scale with the pixel count: the pixels stay on disk until a plane is shown or
cropped. The huge files are written with unwritten (fill-value) chunks, so they claim tens of
GB of pixels while taking little disk space. Run: ``python benchmarks/bench_open.py``
(``--small`` for a quick check with small files).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from napari_cellae._reader import napari_get_reader
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import (
    CENTER_DTYPE,
    OBJECT_DTYPE,
    _write_definition,
)


def make_file(path: Path, n_wells: int, n_sites: int, frames: int, size: int) -> int:
    """A CellH5 of ``n_wells * n_sites`` positions with unwritten uint16 image chunks."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as root:
        _write_definition(root, ["DNA"], {"Nuclei": 0}, None, "cellprofiler")
        for w in range(n_wells):
            well = f"{'ABCDEFGHIJKLMNOP'[w // 24]}{w % 24 + 1:02d}"
            for site in range(1, n_sites + 1):
                group = root.create_group(f"sample/0/plate/P1/experiment/{well}/position/{site}")
                group.create_dataset(
                    "image/channel",
                    shape=(1, frames, 1, size, size),
                    dtype=np.uint16,
                    chunks=(1, 1, 1, 256, 256),
                    compression="gzip",
                )
                n = 200 * frames
                table = np.zeros(n, OBJECT_DTYPE)
                table["time_idx"] = np.repeat(np.arange(frames), 200)
                table["obj_label_id"] = np.tile(np.arange(1, 201), frames)
                group.create_dataset("object/Nuclei", data=table)
                center = np.zeros(n, CENTER_DTYPE)
                center["x"], center["y"] = rng.integers(0, size, (2, n))
                group.create_dataset("feature/Nuclei/center", data=center)
    return n_wells * n_sites * frames * size * size * 2


def time_open(path: Path) -> tuple[float, float]:
    """Seconds to open the file with CellH5 and to build the napari layer data."""
    start = time.perf_counter()
    with CellH5(path) as ch5:
        ch5.image_shape(ch5.positions[-1])
    opened = time.perf_counter() - start
    start = time.perf_counter()
    layers = napari_get_reader(str(path))(str(path))
    built = time.perf_counter() - start
    assert layers
    return opened, built


def main() -> None:
    # napari's colormap module is imported by the first reader call; keep it out of the timings.
    import napari.utils.colormaps  # noqa: F401

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small files: a quick check")
    args = parser.parse_args()
    cases = [
        ("1 position, 2k x 2k, 1 frame", 1, 1, 1, 2048),
        ("1 position, 16k x 16k, 20 frames", 1, 1, 20, 16384),
        ("96 positions, 1k x 1k, 3 frames", 96, 1, 3, 1024),
        ("384 wells x 4 sites, 2k x 2k", 384, 4, 1, 2048),
    ]
    if args.small:
        cases = [
            ("1 position, 512 x 512, 1 frame", 1, 1, 1, 512),
            ("24 wells x 2 sites, 512 x 512", 24, 2, 1, 512),
        ]
    print(f"{'file':36s} {'pixel bytes':>12s} {'open s':>8s} {'layers s':>9s}")
    with tempfile.TemporaryDirectory() as folder:
        for name, wells, sites, frames, size in cases:
            path = Path(folder) / f"{wells}_{sites}_{frames}_{size}.ch5"
            pixel_bytes = make_file(path, wells, sites, frames, size)
            opened, built = time_open(path)
            print(f"{name:36s} {pixel_bytes / 1e9:10.1f}GB {opened:8.3f} {built:9.3f}")


if __name__ == "__main__":
    main()
