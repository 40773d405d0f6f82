"""Image tiles never written (napari_cellae.io.tiles): crops reaching into them are warned."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import synthetic_position
from napari_cellae.core.crops import collect_crops
from napari_cellae.core.windows import crop_origins
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5

IMAGE = "sample/0/plate/plate1/experiment/A01/position/1/image/channel"
TILE = 16
# Frame 0: one cell beside channel 1's missing tile (0, 0); frame 1: cells reaching into
# channel 0's missing tile (rows 16-31, columns 32-47) partly, or not at all.
CENTRES = [(10, 10), (24, 40), (40, 60), (50, 20), (26, 42), (30, 30), (10, 10), (40, 60)]
MISSING = [(0, 1, 1, 2), (1, 0, 0, 0)]  # (channel, frame, tile row, tile column)


def _file(tmp_path: Path, missing: list[tuple[int, int, int, int]]) -> Path:
    """Two channels, two frames of 64 x 80 px in 16 px chunks, ``missing`` never written."""
    position = synthetic_position(
        "A01", "1", n_frames=2, n_per_frame=4, n_channels=2, centers_yx=np.array(CENTRES)
    )
    path = write_cellh5(tmp_path / "c.ch5", [position], ["dna", "gfp"], {"primary__primary": 0})
    with h5py.File(path, "a") as f:
        pixels = f[IMAGE][()]
        del f[IMAGE]
        image = f.create_dataset(
            IMAGE, shape=pixels.shape, dtype=pixels.dtype, chunks=(1, 1, 1, TILE, TILE)
        )
        c_, t_, _, h, w = pixels.shape
        for c in range(c_):
            for t in range(t_):
                for r in range(h // TILE):
                    for q in range(w // TILE):
                        if (c, t, r, q) not in missing:
                            tile = np.s_[
                                c, t, 0, r * TILE : (r + 1) * TILE, q * TILE : (q + 1) * TILE
                            ]
                            image[tile] = pixels[tile]
    return path


def _reaching(channel: int, size: int) -> int:
    """Cells whose window reaches into ``channel``'s missing tile of their frame, counted
    window by window."""
    y0, x0 = crop_origins(*np.array(CENTRES).T, size, 64, 80)
    frames = np.repeat([0, 1], 4)
    count = 0
    for y, x, t in zip(y0, x0, frames, strict=True):
        for c, ft, r, q in MISSING:
            rows = set(range(y, y + size)) & set(range(r * TILE, (r + 1) * TILE))
            cols = set(range(x, x + size)) & set(range(q * TILE, (q + 1) * TILE))
            count += c == channel and ft == t and bool(rows) and bool(cols)
    return count


@pytest.mark.parametrize(("channel", "size"), [(0, 16), (1, 16), (0, 24)])
def test_crops_reaching_into_tiles_never_written_are_warned(
    tmp_path: Path, channel: int, size: int
) -> None:
    # Only crops wholly of the fill value were warned about (cells without signal); a crop
    # partly on a tile never written held a flat rectangle its features took for the cell.
    path = _file(tmp_path, MISSING)
    expected = _reaching(channel, size)
    assert expected > 0
    with pytest.warns(UserWarning, match="never written") as said:
        crops = collect_crops(CellH5(path), "primary__primary", size, channels=[channel])
    assert not crops.blank.any()  # none lies wholly on the tile: only this warning
    texts = [str(w.message) for w in said if "tiles never written" in str(w.message)]
    assert texts == [
        f"{path}, position A01_1: {expected} of 8 cells' crops reach into image tiles never "
        "written (HDF5 chunks never stored, read as 0): part of each crop is a flat rectangle "
        "that their features take for the cell; the program writing the file stopped?"
    ]


def test_a_crop_wholly_on_a_tile_never_written_is_left_to_the_blank_check(tmp_path: Path) -> None:
    # (24, 40) of frame 0 is cut from rows 16-31, columns 32-47: all of it fill value, a
    # cell without signal (warned about as such), not one reaching partly into the tile
    path = _file(tmp_path, [(0, 0, 1, 2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        crops = collect_crops(CellH5(path), "primary__primary", 16, channels=[0])
    assert crops.blank.tolist() == [False, True] + [False] * 6


def test_a_file_whose_tiles_are_all_written_is_not_warned_about(tmp_path: Path) -> None:
    chunked = _file(tmp_path, [])
    position = synthetic_position("A01", "1", n_frames=2, n_per_frame=4, n_channels=2)
    written = write_cellh5(tmp_path / "w.ch5", [position], ["dna", "gfp"], {"primary__primary": 0})
    for path in (chunked, written):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            collect_crops(CellH5(path), "primary__primary", 16, channels=[0, 1])


def test_cells_on_unwritten_tiles_are_those_a_pixel_by_pixel_lookup_finds(tmp_path: Path) -> None:
    """Random chunk shapes (several channels, frames or planes a chunk; partial last chunks
    at every edge) with a fifth of the chunks never written, against a lookup of every
    pixel's chunk of every cropped channel in the stored chunks."""
    from itertools import product

    from napari_cellae.io.tiles import cells_on_unwritten_tiles

    for seed in range(30):
        rng = np.random.default_rng(seed)
        shape = (*rng.integers(1, 4, 2), int(rng.integers(1, 3)), *rng.integers(4, 30, 2))
        chunks = tuple(int(rng.integers(1, n + 1)) for n in shape)
        grid = [range(-(-n // k)) for n, k in zip(shape, chunks, strict=True)]
        written = {at for at in product(*grid) if rng.random() < 0.8}
        with h5py.File(tmp_path / f"{seed}.h5", "w") as f:
            image = f.create_dataset("image", shape, np.uint16, chunks=chunks, compression="gzip")
            for at in written:
                image[tuple(slice(i * k, (i + 1) * k) for i, k in zip(at, chunks, strict=True))] = 1
            n, size = int(rng.integers(1, 30)), int(rng.integers(1, min(shape[-2:]) + 1))
            t = rng.integers(0, shape[1], n)
            y0, x0 = (rng.integers(0, side - size + 1, n) for side in shape[-2:])
            channels = sorted({int(c) for c in rng.integers(0, shape[0], 2)})
            found = cells_on_unwritten_tiles(image, channels, t, (y0, x0), size)
        for i in range(n):
            pixels = product(channels, range(y0[i], y0[i] + size), range(x0[i], x0[i] + size))
            expected = any(
                (c // chunks[0], t[i] // chunks[1], 0, y // chunks[3], x // chunks[4])
                not in written
                for c, y, x in pixels
            )
            assert found[i] == expected, f"seed {seed}, cell {i}"
