"""Tests for napari_cellae.io.position_stack: lazy reads, axes, damaged planes."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import damage_chunk, synthetic_position
from napari_cellae.io.cellh5 import CellH5, CellH5Error
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.io.plane_cache import PlaneCache
from napari_cellae.io.position_stack import LazyPositionStack


def test_stack_over_positions_equals_the_stored_pixels(cellcognition_file: Path) -> None:
    with CellH5(cellcognition_file) as ch5:
        stack = LazyPositionStack(ch5, ch5.positions, 0)
        assert stack.shape == (2, 3, 64, 80) and stack.ndim == 4 and len(stack) == 2
        assert stack.axis_labels == ("position", "t", "y", "x")
        assert stack.dtype == np.uint8 and stack.size == 2 * 3 * 64 * 80
        ref = np.stack([ch5.image(p)[0, :, 0] for p in ch5.positions])
        np.testing.assert_array_equal(np.asarray(stack), ref)
        np.testing.assert_array_equal(stack[1, 2, 10:20, ::3], ref[1, 2, 10:20, ::3])
        np.testing.assert_array_equal(stack[:, -1, 5], ref[:, -1, 5])
        np.testing.assert_array_equal(stack[[1, 0], 0, ::-1], ref[[1, 0], 0, ::-1])
        assert stack[0:0].shape == (0, 3, 64, 80)
        np.testing.assert_array_equal(stack.plane(1, 2, 0, (slice(3, 9), 4)), ref[1, 2, 3:9, 4])
        with pytest.raises(IndexError, match="out of bounds"):
            stack[2]
        with pytest.raises(IndexError, match="too many indices"):
            stack[0, 0, 0, 0, 0]


def test_single_position_with_z_planes(tmp_path: Path) -> None:
    position = synthetic_position("A01", "1", n_frames=2)
    position.image = np.concatenate([position.image, position.image // 2], axis=2)  # z = 2
    path = write_cellh5(tmp_path / "z.ch5", [position], ["dna"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        stack = LazyPositionStack(ch5, ch5.positions, 0)
        assert stack.shape == (2, 2, 64, 80)
        assert stack.axis_labels == ("t", "z", "y", "x")
        np.testing.assert_array_equal(stack[1, 1], position.image[0, 1, 1])


def test_damaged_plane_while_browsing(cellcognition_file: Path) -> None:
    part = cellcognition_file.parent / "A01_0001.ch5"
    dataset = "sample/0/plate/plate1/experiment/A01/position/0001/image/channel"
    damage_chunk(part, dataset, (0, 2, 0, 0, 0))
    with CellH5(cellcognition_file) as ch5:
        stack = LazyPositionStack(ch5, ch5.positions, 0)
        assert stack[0, 1].shape == (64, 80)  # undamaged frames still read
        with pytest.raises(CellH5Error) as info:
            stack[0, 2]
    message = str(info.value)
    assert message.startswith(f"{cellcognition_file}: cannot read channel 0 (rfp), frame 2 of")
    assert f"position A01_0001 (stored in {part}): the stored pixels are damaged" in message


def test_positions_of_other_sizes_are_padded_into_one_canvas(tmp_path: Path) -> None:
    small = synthetic_position("A01", "1", n_frames=2)  # 64 x 80
    large = synthetic_position("A02", "1", n_frames=3, seed=1)
    pad = ((0, 0), (0, 0), (0, 0), (0, 16), (0, 0))  # 80 x 80
    large.image, large.labels = np.pad(large.image, pad), np.pad(large.labels, pad)
    path = write_cellh5(tmp_path / "sizes.ch5", [small, large], ["dna"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        stack = LazyPositionStack(ch5, ch5.positions, 0)
        assert stack.shape == (2, 3, 80, 80)
        assert stack.shapes == [(1, 2, 1, 64, 80), (1, 3, 1, 80, 80)]
        ref = np.zeros((2, 3, 80, 80), stack.dtype)
        ref[0, :2, :64] = small.image[0, :, 0]
        ref[1] = large.image[0, :, 0]
        np.testing.assert_array_equal(np.asarray(stack), ref)
        for key in [
            (0, 1, slice(50, 75), slice(None, None, 2)),  # across the edge of A01_1
            (0, 1, slice(70, 200)),  # beyond it; a slice past the canvas is cut
            (0, 2),  # a frame A01_1 lacks
            (0, 0, -1),  # the canvas's last row
            (0, 0, 70, -3),
            (slice(None), 1, 63),
            (0, 0, slice(64, 64)),
        ]:
            np.testing.assert_array_equal(stack[key], ref[key])
        with pytest.raises(IndexError, match="out of bounds"):
            stack[0, 0, 80]


def _open_hdf5(kind: int) -> int:
    """HDF5 objects of ``kind`` (h5py.h5f.OBJ_DATASET, ...) open in this process."""
    return h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, kind)


def open_ch5_files() -> int:
    """``.ch5`` files this process holds open (HDF5 counts no file an external link opened)."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += os.readlink(fd).endswith(".ch5")
        except OSError:  # closed meanwhile
            pass
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts files in /proc")
def test_stepping_through_positions_keeps_few_datasets_and_files_open(tmp_path: Path) -> None:
    # Every dataset viewed stayed open: HDF5 gives each a chunk cache of up to 8 MiB and a
    # master file's position keeps its file open, so stepping through a 384-well plate grew
    # by 4 GB and 384 open files.
    positions = [synthetic_position(f"A{i + 1:02d}", "1", n_frames=1, seed=i) for i in range(8)]
    path = write_cellh5(
        tmp_path / "_all_positions.ch5", positions, ["dna"], {"primary__primary": 0},
        split_files=True,
    )  # fmt: skip
    files, datasets = open_ch5_files(), _open_hdf5(h5py.h5f.OBJ_DATASET)
    with CellH5(path) as ch5:
        stack = LazyPositionStack(ch5, ch5.positions, 0)
        for i, position in enumerate(positions):
            np.testing.assert_array_equal(stack[i, 0], position.image[0, 0, 0])
            assert _open_hdf5(h5py.h5f.OBJ_DATASET) - datasets <= 2
            # the master file, the file /definition is read from and two positions'
            assert open_ch5_files() - files <= 4
    del stack  # a layer removed from napari
    assert open_ch5_files() == files


def _count_reads(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    calls = [0]
    original = getattr(module, name)

    def counted(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_a_plane_is_one_hdf5_read(cellcognition_file: Path, monkeypatch) -> None:
    # Each plane read /definition/image/channel again, to name the channel in messages.
    import napari_cellae.io.cellh5 as cellh5_module
    import napari_cellae.io.position_stack as stack_module

    tables = _count_reads(monkeypatch, cellh5_module, "read_table")
    pixels = _count_reads(monkeypatch, stack_module, "read_pixels")
    with CellH5(cellcognition_file) as ch5:
        stack = LazyPositionStack(ch5, ch5.positions, 0)
        for t in range(3):
            for i in range(2):
                stack[i, t]
    assert pixels[0] == 6
    assert tables[0] <= 1  # the channel's name, once


def _cellcognition_chunks(path: Path) -> None:
    """Store every position's pixels as CellCognition does: all channels of a frame and a
    quarter of its height and width in one chunk."""
    with h5py.File(path, "r+") as root:
        plates = root["sample/0/plate"]
        for plate in plates.values():
            for well in plate["experiment"].values():
                for site in well["position"].values():
                    pixels = site["image/channel"][()]
                    c, _, _, h, w = pixels.shape
                    del site["image/channel"]
                    site.create_dataset(
                        "image/channel", data=pixels, compression="gzip",
                        chunks=(c, 1, 1, -(-h // 4), -(-w // 4)),
                    )  # fmt: skip


def test_channels_sharing_a_chunk_are_read_once(tmp_path: Path, monkeypatch) -> None:
    # Each channel layer inflated every chunk of all channels for its own channel.
    import napari_cellae.io.position_stack as stack_module
    from napari_cellae._reader import read_cellh5

    positions = [
        synthetic_position(w, "1", n_channels=3, n_frames=2, seed=i)
        for i, w in enumerate(["A01", "A02", "A03"])
    ]
    path = write_cellh5(tmp_path / "cc.ch5", positions, ["a", "b", "c"], {"primary__primary": 0})
    _cellcognition_chunks(path)
    pixels = _count_reads(monkeypatch, stack_module, "read_pixels")
    layers = read_cellh5(str(path))
    stacks = [data for data, _, kind in layers if kind == "image"]
    try:
        assert len(stacks) == 3 and pixels[0] == 1  # contrast limits of all three channels
        # napari slices a new layer at position 0 before it is added, then where it opens
        for step in [(0, 0), (1, 0), (0, 0), (1, 0), (1, 0), (2, 1)]:
            for channel, stack in enumerate(stacks):
                np.testing.assert_array_equal(
                    stack[step], positions[step[0]].image[channel, step[1], 0]
                )
        assert pixels[0] == 1 + 1 + 1  # (0, 0) and (2, 1): (1, 0) was the contrast plane
    finally:
        stacks[0].cellh5.close()


def test_a_malformed_region_table_leaves_every_channel_readable(tmp_path: Path) -> None:
    # A plane's messages name its channel: asked for the first channel + 1 channel names,
    # the file's 2 rows outnumbered them and the region table was read, so a malformed one
    # made the first channel unreadable (the napari reader could not open the file).
    from napari_cellae._reader import read_cellh5

    position = synthetic_position("A01", "1", n_channels=2, n_frames=2)
    path = write_cellh5(tmp_path / "bad.ch5", [position], ["dna", "actin"], {"Nuclei": 0})
    with h5py.File(path, "a") as f:
        del f["definition/image/region"]
        f["definition/image/region"] = np.array([b"region___primary__primary"])
    layers = read_cellh5(str(path))
    stacks = [(data, kwargs["name"]) for data, kwargs, kind in layers if kind == "image"]
    try:
        assert [name for _, name in stacks] == ["dna", "actin"]
        for channel, (stack, _) in enumerate(stacks):
            np.testing.assert_array_equal(stack[1], position.image[channel, 1, 0])
    finally:
        stacks[0][0].cellh5.close()


def _declaring_planes_of(path: Path, side: int) -> Path:
    """A one-position file whose image declares planes of ``side`` x ``side`` px, never
    written (so the file stays small)."""
    position = synthetic_position("A01", "1", n_frames=1)
    path = write_cellh5(path, [position], ["dna"], {"primary__primary": 0})
    name = "sample/0/plate/plate1/experiment/A01/position/1/image/channel"
    with h5py.File(path, "r+") as f:
        del f[name]
        f.create_dataset(name, shape=(1, 1, 1, side, side), dtype="u1", chunks=(1, 1, 1, 64, 64))
    return path


def test_a_plane_larger_than_memory_is_refused_in_words(tmp_path: Path) -> None:
    # A damaged file can declare planes of 10**8 x 10**8 px (never written, so the file is
    # small): showing one raised numpy's "Unable to allocate 8.88 PiB" in napari. (More
    # than any address space, so that no memory overcommit lets it through.)
    path = _declaring_planes_of(tmp_path / "huge.ch5", 10**8)
    with CellH5(path) as ch5:
        stack = LazyPositionStack(ch5, ch5.positions, 0)
        assert stack[0, 5:9, 7:9].shape == (4, 2)  # small windows still read
        with pytest.raises(CellH5Error) as info:
            stack[0]
    assert str(info.value) == (
        f"{path}: cannot show channel 0 (dna), frame 0 of position A01_1: its 100000000 x"
        " 100000000 px need 9313226 GiB, more than this computer's memory holds"
    )


def test_a_plane_past_any_array_size_is_refused_in_words(tmp_path: Path) -> None:
    # 2**40 x 2**40 px is more bytes than numpy can even count: it raised "array is too
    # big; `arr.size * arr.dtype.itemsize` is larger than the maximum possible size"
    # (a ValueError, not a MemoryError) in napari.
    path = _declaring_planes_of(tmp_path / "huger.ch5", 2**40)
    with CellH5(path) as ch5:
        stack = LazyPositionStack(ch5, ch5.positions, 0)
        assert stack[0, 5:9, 7:9].shape == (4, 2)
        with pytest.raises(CellH5Error, match="more than this computer's memory holds"):
            stack[0]


def _random_index(rng: np.random.Generator, n: int) -> object:
    """An integer (negative too), a slice (any bounds, negative or other steps) or a numpy
    integer for an axis of length ``n``."""
    kind = int(rng.integers(0, 5))
    start, stop = (int(v) for v in rng.integers(-n - 3, n + 3, 2))
    if kind == 0:
        return int(rng.integers(-n, n))
    if kind == 1:
        return slice(start, stop)
    if kind == 2:
        return slice(start, stop, int(rng.choice([-3, -2, -1, 2, 3])))
    if kind == 3:
        return np.int64(rng.integers(0, n))
    return slice(None) if rng.integers(2) else slice(start, None)


def test_random_indices_read_what_the_padded_canvas_holds(tmp_path: Path) -> None:
    """Positions of random sizes, frame, plane and channel counts and pixel types; the
    channels' stacks share one small cache; random indices against numpy indexing of the
    canvas built position by position."""
    for seed in range(12):
        rng = np.random.default_rng(seed)
        positions = []
        for i in range(int(rng.integers(1, 4))):
            shape = (*rng.integers(1, 4, 2), int(rng.integers(1, 3)), *rng.integers(3, 20, 2))
            position = synthetic_position(f"A0{i + 1}", "1", n_frames=1, n_per_frame=1)
            position.image = rng.integers(1, 200, shape).astype(["uint8", "uint16"][i % 2])
            position.labels = None
            table = position.objects["primary__primary"]
            table.center_y[:], table.center_x[:], table.bbox[:] = 0, 0, 0  # on every image
            positions.append(position)
        path = write_cellh5(
            tmp_path / f"{seed}.ch5", positions, list("abc"), {"primary__primary": 0}
        )
        shapes = np.array([p.image.shape for p in positions])
        canvas = np.zeros((3, len(positions), *shapes[:, 1:].max(axis=0)), np.uint16)
        for i, p in enumerate(positions):
            c, t, z, h, w = p.image.shape
            canvas[:c, i, :t, :z, :h, :w] = p.image
        with CellH5(path) as ch5:
            assert [k.well for k in ch5.positions] == [p.well for p in positions]
            cache = PlaneCache(entries=int(rng.integers(1, 4)))
            for channel in range(3):
                stack = LazyPositionStack(ch5, ch5.positions, channel, cache)
                reference = canvas[channel]
                reference = reference[0] if len(positions) == 1 else reference
                reference = reference.take(0, axis=-3) if canvas.shape[3] == 1 else reference
                assert stack.shape == reference.shape
                for _ in range(30):
                    axes = int(rng.integers(1, reference.ndim + 1))
                    key = tuple(_random_index(rng, reference.shape[d]) for d in range(axes))
                    got = stack[key]
                    expected = reference[key]
                    assert got.shape == expected.shape, f"seed {seed}, key {key}"
                    np.testing.assert_array_equal(got, expected, err_msg=f"seed {seed}, {key}")


def test_index_lists_out_of_range_are_refused_as_numpy_refuses_them(tmp_path: Path) -> None:
    # A list beyond an axis read another position (-5 of 3 wrapped round to position 1) or
    # a blank frame (7 of 3) without a word; numpy raises IndexError.
    positions = [synthetic_position(w, "1", seed=i) for i, w in enumerate(("A01", "A02", "A03"))]
    path = write_cellh5(tmp_path / "s.ch5", positions, ["dna"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        stack = LazyPositionStack(ch5, ch5.positions, 0)
        reference = np.asarray(stack)
        assert reference.shape == (3, 3, 64, 80)
        for key in ([-3, 2], (1, [0, -1]), (slice(None), [2, 0], 5)):
            np.testing.assert_array_equal(stack[key], reference[key])
        for key in ([-5], [3], (0, [7]), (slice(None), [0, -4])):
            with pytest.raises(IndexError):
                reference[key]
            with pytest.raises(IndexError, match="out of bounds"):
                stack[key]


def test_boolean_and_float_index_lists_read_as_numpy_reads_them(tmp_path: Path) -> None:
    # A boolean list was read as the numbers 1 and 0: [True, False, True] gave positions
    # 1, 0, 1 where numpy gives 0 and 2; a float list ([1.0]) was read as position 1 where
    # numpy refuses it.
    positions = [synthetic_position(w, "1", seed=i) for i, w in enumerate(("A01", "A02", "A03"))]
    path = write_cellh5(tmp_path / "s.ch5", positions, ["dna"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        stack = LazyPositionStack(ch5, ch5.positions, 0)
        reference = np.asarray(stack)
        for key in ([True, False, True], (0, np.array([False, True, True])), [False] * 3):
            np.testing.assert_array_equal(stack[key], reference[key])
        for key in ([True, False], (0, [True] * 4), [1.0], (slice(None), np.array([0.0]))):
            with pytest.raises(IndexError):
                reference[key]
            with pytest.raises(IndexError):
                stack[key]
