"""Browsing a real-sized screen in napari's reader: reads, time, memory and open files.

Steps through every position of each channel layer (as napari's position slider does, one
plane per layer and step) and through the frames of one position, on files laid out as
CellCognition writes them (a master file of external links to one file per position; every
channel of a frame and a quarter of its height and width per chunk) and as napari-cellae's
writer does (one file, 256 x 256 chunks). Each run is measured twice, each in a fresh process:
"before" as the reader was before a86f006 (every dataset viewed kept open, each channel layer
reading the chunks all channels share, /definition read per plane, the points layer's
class names, colours and position columns built per object), "after" as it is now; a screen
of 1.9 M centres shows the points layer's part of opening.
Pixels are compressed once and written as raw chunks, so building the files is fast.
Run: ``python benchmarks/bench_browse.py`` (``--small`` for a quick check).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import h5py
import numpy as np

from napari_cellae.io.cellh5_writer import (
    CENTER_DTYPE,
    OBJECT_DTYPE,
    PREDICTION_DTYPE,
    _write_definition,
)

_CLASSES = {"Nuclei": [(0, "interphase", "#00FF00"), (1, "mitosis", "#FF0000"), (2, "dead", "")]}


def _frame(channels: int, height: int, width: int, seed: int) -> np.ndarray:
    """12-bit camera-like pixels: noise and bright nuclei."""
    rng = np.random.default_rng(seed)
    image = rng.integers(100, 164, (channels, height, width)).astype(np.uint16)
    for y, x in rng.integers(8, (height - 8, width - 8), (150, 2)):
        image[:, y - 8 : y + 8, x - 8 : x + 8] += 2000
    return image


def _write_image(group: h5py.Group, shape: tuple[int, ...], chunks: tuple[int, ...]) -> None:
    channels, frames, _, height, width = shape
    dataset = group.create_dataset(
        "image/channel", shape=shape, dtype=np.uint16, chunks=chunks, compression="gzip"
    )
    image = _frame(channels, height, width, seed=frames)
    cc, _, _, ch, cw = chunks
    for c0 in range(0, channels, cc):
        for y0 in range(0, height, ch):
            for x0 in range(0, width, cw):
                block = np.zeros((cc, ch, cw), np.uint16)
                part = image[c0 : c0 + cc, y0 : y0 + ch, x0 : x0 + cw]
                block[: part.shape[0], : part.shape[1], : part.shape[2]] = part
                raw = zlib.compress(block.tobytes(), 4)
                for t in range(frames):
                    dataset.id.write_direct_chunk((c0, t, 0, y0, x0), raw)


def make_screen(
    path: Path, n_positions: int, shape: tuple[int, ...], layout: str, cells: int = 200
) -> Path:
    """A screen of ``n_positions`` positions of ``shape`` (c, t, 1, y, x) uint16 pixels and
    ``cells`` classified centres per frame; ``layout`` "cellcognition" (master file of
    external links, chunks of all channels and a quarter of each side) or "cellae" (one
    file, 256 x 256 chunks)."""
    channels, frames, _, height, width = shape
    if layout == "cellcognition":
        chunks = (channels, 1, 1, -(-height // 4), -(-width // 4))
    else:
        chunks = (1, 1, 1, min(height, 256), min(width, 256))
    rng = np.random.default_rng(0)
    names = ["DNA", "GFP", "RFP", "Cy5"][:channels]
    with h5py.File(path, "w") as root:
        _write_definition(root, names, {"Nuclei": 0}, _CLASSES, "cellprofiler")
        for i in range(n_positions):
            well = f"{'ABCDEFGHIJKLMNOP'[i // 24 % 16]}{i % 24 + 1:02d}"
            where = f"sample/0/plate/P1/experiment/{well}/position/{i // 384 + 1}"
            if layout == "cellcognition":
                part = path.parent / f"{well}_{i // 384 + 1:02d}.ch5"
                holder = h5py.File(part, "w")
                root[where] = h5py.ExternalLink(part.name, where)
                group = holder.create_group(where)
            else:
                holder, group = None, root.create_group(where)
            _write_image(group, shape, chunks)
            n = cells * frames
            table = np.zeros(n, OBJECT_DTYPE)
            table["time_idx"] = np.repeat(np.arange(frames), cells)
            table["obj_label_id"] = np.tile(np.arange(1, cells + 1), frames)
            group.create_dataset("object/Nuclei", data=table)
            center = np.zeros(n, CENTER_DTYPE)
            center["x"], center["y"] = rng.integers(0, width, n), rng.integers(0, height, n)
            group.create_dataset("feature/Nuclei/center", data=center)
            prediction = np.zeros(n, PREDICTION_DTYPE)
            prediction["label_idx"] = rng.integers(-1, 4, n)  # with ids the classifier lacks
            group.create_dataset("feature/Nuclei/object_classification/prediction", data=prediction)
            if holder is not None:
                holder.close()
    return path


def _as_before() -> None:
    """The reader as before a86f006, for the comparison."""
    import napari_cellae.io.centres as centres_module
    import napari_cellae.io.position_stack as stack_module
    from napari_cellae._reader import PlaneCache

    stack_module._OPEN_DATASETS = 10**9  # every dataset viewed stays open
    original = stack_module.LazyPositionStack._where

    def where(self, index: int, t: int, z: int) -> str:
        self._channel_name = None  # /definition/image/channel read per plane
        return original(self, index, t, z)

    stack_module.LazyPositionStack._where = where
    # no shared windows: each channel layer inflates the chunks all channels share
    PlaneCache.__init__.__defaults__ = (0, 0)
    centres_module._categorical = _categorical_per_object
    centres_module._class_columns = _class_columns_per_object


def _categorical_per_object(values: list[str], rows: np.ndarray) -> object:
    import pandas as pd

    return pd.Categorical(np.asarray(values, dtype=object)[rows])


def _class_columns_per_object(labels: list, class_idx: np.ndarray) -> tuple[object, np.ndarray]:
    import pandas as pd

    from napari_cellae.io.centres import _UNCLASSIFIED, hex_rgba

    by_idx = dict(enumerate(labels))
    names = [by_idx[c].name if c in by_idx else "unclassified" for c in class_idx]
    palette = {c: hex_rgba(by_idx[c].color) for c in by_idx}
    colors = [palette[c] if palette.get(c) is not None else _UNCLASSIFIED for c in class_idx]
    return pd.Categorical(names), np.array(colors, np.float32).reshape(-1, 4)


def _counter(module: object, name: str) -> list[int]:
    calls = [0]
    original = getattr(module, name)

    def counted(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        return original(*args, **kwargs)

    setattr(module, name, counted)
    return calls


def _open_ch5_files() -> int:
    """``.ch5`` files open in this process (Linux; HDF5 counts none an external link opened)."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir() if Path("/proc/self/fd").is_dir() else ():
        try:
            count += os.readlink(fd).endswith(".ch5")
        except OSError:
            pass
    return count


def browse(path: Path, before: bool) -> dict[str, float]:
    """Open ``path`` with the reader and browse it as napari does; the measures."""
    # imported by the reader's first call, which looks for a viewer: not part of opening
    import napari.utils.colormaps
    import napari.viewer  # noqa: F401

    if before:
        _as_before()
    import napari_cellae.io.cellh5 as cellh5_module
    import napari_cellae.io.position_stack as stack_module
    from napari_cellae._reader import read_cellh5

    pixels = _counter(stack_module, "read_pixels")
    tables = _counter(cellh5_module, "read_table")
    start = time.perf_counter()
    layers = read_cellh5(str(path))
    opened = time.perf_counter() - start
    stacks = [data for data, _, kind in layers if kind == "image"]
    n_positions, n_frames = stacks[0].shape[:2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pixels[0] = tables[0] = 0
    open_files = 0
    start = time.perf_counter()
    for i in [0, (n_positions - 1) // 2, *range(n_positions)]:  # napari's first look, then all
        for stack in stacks:
            stack[i, (n_frames - 1) // 2]
        open_files = max(open_files, _open_ch5_files())
    for t in range(n_frames):
        for stack in stacks:
            stack[0, t]
    browsed = time.perf_counter() - start
    steps = n_positions + 2 + n_frames
    return {
        "open s": opened,
        "browse s/step": browsed / steps,
        "planes read/step": pixels[0] / steps,
        "tables read/step": tables[0] / steps,
        "RSS growth MB": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024,
        "open files": open_files,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small files: a quick check")
    parser.add_argument("--one", nargs=2, metavar=("PATH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(browse(Path(args.one[0]), args.one[1] == "before")))
        return
    cases = [
        (
            "CellCognition, 96 x 3 ch 1040x1392, 4 t",
            96,
            (3, 4, 1, 1040, 1392),
            "cellcognition",
            200,
        ),
        ("napari-cellae, 192 x 1 ch 2048x2048", 192, (1, 1, 1, 2048, 2048), "cellae", 200),
        ("1.9 M centres: 96 x 20 t x 1000", 96, (1, 20, 1, 256, 256), "cellae", 1000),
    ]
    if args.small:
        cases = [
            ("CellCognition, 8 x 3 ch 256x320, 2 t", 8, (3, 2, 1, 256, 320), "cellcognition", 20),
            ("napari-cellae, 8 x 1 ch 512x512", 8, (1, 1, 1, 512, 512), "cellae", 20),
            ("20 k centres: 8 x 5 t x 500", 8, (1, 5, 1, 64, 64), "cellae", 500),
        ]
    for name, n_positions, shape, layout, cells in cases:
        with tempfile.TemporaryDirectory() as folder:
            where = Path(folder) / "_all_positions.ch5"
            path = make_screen(where, n_positions, shape, layout, cells)
            runs = {}
            for mode in ("before", "after"):
                done = subprocess.run(
                    [sys.executable, __file__, "--one", str(path), mode],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name}\n  {'measure':20s} {'before':>10s} {'after':>10s} {'before/after':>13s}")
        for key, old in runs["before"].items():
            new = runs["after"][key]
            ratio = f"{old / new:12.1f}x" if new else "       (none)"
            print(f"  {key:20s} {old:10.3f} {new:10.3f} {ratio}")


if __name__ == "__main__":
    main()
