"""Training crops only the cells it draws: the same cells, and the same model, in bounded
memory; several plates share one draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import synthetic_position
from napari_cellae.core.config import TrainConfig
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.io.mapping import PositionMapping, read_mapping
from napari_cellae.pipeline import steps
from napari_cellae.pipeline.runs import run_train
from napari_cellae.pipeline.sampling import (
    sampled_training_crops,
)

ARCH = "c4.3r_p2_d16.0s"


def _both(path: Path, config: TrainConfig, mapping=None, obj=None):
    """(drawn crops, number of cells) and the crops select_training draws from all."""
    with CellH5(path) as ch5:
        obj = obj or ch5.default_object
        channels = steps.resolve_channels(ch5, obj, None)
        drawn = sampled_training_crops(ch5, obj, channels, mapping, config)
        every = steps.collect(ch5, obj, config.crop_size, channels, mask=config.mask)
    _, idx = steps.training_indices(every, mapping, config)
    return drawn, every.subset(idx)


@pytest.mark.parametrize("flavour", ["cellcognition_file", "cellprofiler_file"])
def test_the_drawn_cells_are_those_training_draws_from_all(flavour, request):
    path = request.getfixturevalue(flavour)
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=7, seed=3, mask="cell")
    (drawn, n_cells), expected = _both(path, config)
    assert len(drawn) == 7 and n_cells == (30 if "cellcognition" in flavour else 12)
    np.testing.assert_array_equal(drawn.crops, expected.crops)
    for name in ("object_index", "label_id", "time_idx", "bbox", "origin_y", "origin_x"):
        np.testing.assert_array_equal(getattr(drawn, name), getattr(expected, name))
    positions = [drawn.positions[i] for i in drawn.position_index]
    assert positions == [expected.positions[i] for i in expected.position_index]
    assert drawn.box == 16 and drawn.mask == "cell"


def test_files_without_label_images_segment_among_all_the_cells(tmp_path):
    # Without label images each crop is split from its neighbours at the midline to every
    # other object centre: the centres of the cells not drawn count too.
    bare = synthetic_position("A01", "1", n_frames=2, n_per_frame=12, seed=4)
    bare.labels = None
    path = write_cellh5(tmp_path / "bare.ch5", [bare], channel_names=["H2B"],
                        object_channels={"primary__primary": 0})  # fmt: skip
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=9, mask="cell")
    with pytest.warns(UserWarning, match="no label images"):  # cropping every cell says so
        (drawn, n_cells), expected = _both(path, config)
    assert len(drawn) == 9 and n_cells == 24 and drawn.unlabelled_positions
    np.testing.assert_array_equal(drawn.crops, expected.crops)


def test_controls_only(cellcognition_file, mapping_file):
    mapping = read_mapping(mapping_file)  # A01 is the control well: 15 cells
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=10, train_on="controls")
    (drawn, n_cells), expected = _both(cellcognition_file, config, mapping)
    assert len(drawn) == 10 and n_cells == 30
    assert {drawn.positions[i].well for i in drawn.position_index} == {"A01"}
    np.testing.assert_array_equal(drawn.crops, expected.crops)


def test_nothing_to_leave_out_crops_as_usual(cellcognition_file, mapping_file):
    with CellH5(cellcognition_file) as ch5:
        for samples in (30, 1000):  # every candidate is used
            config = TrainConfig(crop_size=16, architecture=ARCH, samples=samples)
            assert sampled_training_crops(ch5, "primary__primary", [0], None, config) is None
        # no control position: cropping everything gives the usual error
        unmarked = PositionMapping(mapping_file, [])
        config = TrainConfig(crop_size=16, architecture=ARCH, samples=5, train_on="controls")
        assert sampled_training_crops(ch5, "primary__primary", [0], unmarked, config) is None


def test_a_position_that_changed_is_named(cellcognition_file, monkeypatch):
    real = CellH5.object_count
    monkeypatch.setattr(CellH5, "object_count", lambda self, key, obj: real(self, key, obj) + 1)
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=5)
    with CellH5(cellcognition_file) as ch5, pytest.raises(ValueError, match=r"A01.*fewer.*changed"):
        sampled_training_crops(ch5, "primary__primary", [0], None, config)


def test_the_model_is_the_same(cellcognition_file):
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=12, epochs=1, seed=1)
    every = run_train(cellcognition_file, config)
    drawn = run_train(cellcognition_file, config, only_drawn=True)
    assert (len(every.crops), every.n_cells) == (30, 30)
    assert (len(drawn.crops), drawn.n_cells) == (12, 30)
    assert (drawn.n_trained, drawn.n_held_out) == (every.n_trained, every.n_held_out)
    for name, weights in every.trained.model.state_dict().items():
        torch.testing.assert_close(drawn.trained.model.state_dict()[name], weights)


def test_rows_of_positions_split_as_a_filter_per_position_would() -> None:
    # One sort and a binary search (comparing every drawn index with every position grew
    # with both: 0.9 s for 50,000 drawn of 30,720 positions); empty positions, a drawn
    # order that is not sorted, and the last cell of a position all as before.
    from napari_cellae.pipeline.sampling import rows_of_positions

    rng = np.random.default_rng(3)
    counts = [int(c) for c in rng.integers(0, 6, 40)]
    starts = np.concatenate([[0], np.cumsum(counts)])
    for drawn in (np.arange(starts[-1]), rng.permutation(starts[-1])[: starts[-1] // 2]):
        split = rows_of_positions(drawn, counts)
        assert len(split) == len(counts)
        for i, rows in enumerate(split):
            inside = drawn[(drawn >= starts[i]) & (drawn < starts[i + 1])] - starts[i]
            np.testing.assert_array_equal(rows, inside)
    assert [len(r) for r in rows_of_positions(np.zeros(0, np.int64), [2, 0])] == [0, 0]


def test_a_draw_of_few_cells_out_of_many_is_warned_about() -> None:
    import warnings

    from napari_cellae.pipeline.sampling import FEW_SAMPLES, draw_training

    # '--samples 1' (for 10000) trained on one cell of thousands without a word.
    many = np.arange(5000)
    with pytest.warns(UserWarning, match="draws only 1 of the 5000 cells.*at least 100"):
        assert len(draw_training(many, 1, seed=0)) == 1
    with pytest.warns(UserWarning, match="draws only 40 of the 45 cells.*draw them all"):
        draw_training(many[:45], 40, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(draw_training(many, FEW_SAMPLES, seed=0)) == FEW_SAMPLES
        assert len(draw_training(many[:30], 50, seed=0)) == 30  # a small file: all its cells
        assert len(draw_training(many, 0, seed=0)) == 5000  # no limit


def test_cells_without_signal_leave_both_draws_alike(tmp_path):
    # A position whose images were never acquired (all zeros) has crops without signal:
    # training leaves them out, and the cells drawn position by position must still be
    # those select_training keeps of all crops (the same model from cellae train as from
    # the widget).
    lit = synthetic_position("A01", "1", n_frames=2, n_per_frame=10, seed=1)
    dark = synthetic_position("A02", "1", n_frames=2, n_per_frame=10, seed=2)
    dark.image = np.zeros_like(dark.image)
    path = write_cellh5(tmp_path / "dark.ch5", [lit, dark], channel_names=["H2B"],
                        object_channels={"primary__primary": 0})  # fmt: skip
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=12, seed=3, mask="none")
    with pytest.warns(UserWarning, match="without signal"):
        (drawn, n_cells), expected = _both(path, config)
    assert n_cells == 40 and expected.blank.sum() == 0
    _, kept = steps.training_indices(drawn, None, config)  # what training keeps of them
    assert len(kept) == len(expected)
    np.testing.assert_array_equal(drawn.subset(kept).crops, expected.crops)
    np.testing.assert_array_equal(drawn.subset(kept).label_id, expected.label_id)
