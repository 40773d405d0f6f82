"""Tests for napari_cellae.io.position_stack: lazy reads, axes, damaged planes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import damage_chunk, synthetic_position
from napari_cellae.io.cellh5 import CellH5, CellH5Error
from napari_cellae.io.cellh5_writer import write_cellh5
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
