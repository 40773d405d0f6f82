"""Tests for napari_cellae.pipeline.position_batches: small positions encoded in full batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import synthetic_position
from napari_cellae.core import features as features_mod
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.pipeline.position_batches import crop_task
from napari_cellae.pipeline.streaming import encode_position, encode_serial, plan_encode
from test_streaming import random_model

# Cells per position: small ones, one straddling batches, one larger than a batch, a last
# small one (batch size 16 below).
SIZES = (3, 5, 7, 2, 11, 40, 6, 1, 9)


@pytest.fixture
def screen(tmp_path: Path) -> Path:
    positions = [
        synthetic_position(f"A{i + 1:02d}", "1", n_frames=1, n_per_frame=n, seed=i)
        for i, n in enumerate(SIZES)
    ]
    return write_cellh5(tmp_path / "screen.ch5", positions, ["rfp"], {"primary__primary": 0})


def _calls(monkeypatch) -> list[int]:
    """The cells of every model call (features.encode) from now on."""
    calls: list[int] = []
    real = features_mod.encode

    def counted(trained, crops, *args, **kwargs):
        calls.append(len(crops))
        return real(trained, crops, *args, **kwargs)

    monkeypatch.setattr(features_mod, "encode", counted)
    return calls


@pytest.mark.parametrize("thumbnails", [True, False])
def test_batched_positions_equal_one_call_per_position(screen, tmp_path, thumbnails) -> None:
    trained = random_model(mask="cell")
    tasks = plan_encode([screen], trained, tmp_path / "x.hdf", thumbnails=thumbnails).tasks
    alone = [encode_position(task, trained, 16) for task in tasks]
    batched = list(encode_serial(tasks, trained, 16))
    assert [r.task for r in batched] == [r.task for r in alone] == tasks
    for a, b in zip(alone, batched, strict=True):
        for name in ("label_id", "center_x", "center_y", "bbox", "crops", "morphology"):
            np.testing.assert_array_equal(getattr(a.crops, name), getattr(b.crops, name))
        assert a.crops.positions == b.crops.positions
        assert a.features.shape == b.features.shape and a.features.dtype == b.features.dtype
        np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-6)


def test_small_positions_share_full_model_calls(screen, tmp_path, monkeypatch) -> None:
    # One model call per position made a screen of small positions pay each call's fixed
    # costs once per position (20-cell positions at half the rate of large ones).
    trained = random_model(mask="cell")
    tasks = plan_encode([screen], trained, tmp_path / "x.hdf").tasks
    calls = _calls(monkeypatch)
    done = [r.task.index for r in encode_serial(tasks, trained, 16)]
    assert done == list(range(len(SIZES)))
    # 3+5+7+2 = 17: one batch of 16, the 17th cell waits; 1+11 cells more, then the
    # 40-cell position alone (the 12 queued first); then 6+1+9 = 16, a last full batch.
    assert calls == [16, 12, 40, 16]


def test_a_position_comes_back_once_its_cells_are_encoded(screen, tmp_path, monkeypatch):
    trained = random_model(mask="cell")
    tasks = plan_encode([screen], trained, tmp_path / "x.hdf").tasks
    calls = _calls(monkeypatch)
    results = encode_serial(tasks, trained, 16)
    first = next(results)  # 3 + 5 + 7 cells queued, the 4th position fills the batch
    assert first.task.index == 0 and calls == [16]
    assert [r.task.index for r in results] == list(range(1, len(SIZES)))


def test_a_task_without_cells_comes_back_without_rows(screen, tmp_path, monkeypatch) -> None:
    # Planning leaves such positions out, but a task of none (a caller's own, a position
    # emptied since) must give (0, F) features in its turn: np.concatenate of no parts
    # raised before the branch meant for it.
    from napari_cellae.pipeline import position_batches

    trained = random_model(mask="cell")
    tasks = plan_encode([screen], trained, tmp_path / "x.hdf").tasks[:3]
    real = position_batches.crop_task

    def emptied(task, trained):
        crops = real(task, trained)
        return crops.subset(np.zeros(0, np.int64)) if task is tasks[1] else crops

    monkeypatch.setattr(position_batches, "crop_task", emptied)
    done = list(encode_serial(tasks, trained, 16))
    assert [r.task for r in done] == tasks
    width = done[0].features.shape[1]
    assert [r.features.shape for r in done] == [(SIZES[0], width), (0, width), (SIZES[2], width)]


def test_the_positions_scale_checks_add_up_to_the_whole_run(screen, tmp_path) -> None:
    # Cells of several positions share a model call: each position given back carries
    # the pixels counted since the one before, so that the run sums to all its cells.
    from napari_cellae.core.scale_check import ScaleCheck

    trained = random_model(high=100.0)
    tasks = plan_encode([screen], trained, tmp_path / "x.hdf").tasks
    run = ScaleCheck(trained.normalisation)
    for encoded in encode_serial(tasks, trained, 16):
        run.merge(encoded.scale)
    whole = ScaleCheck(trained.normalisation)
    for task in tasks:
        whole.add(crop_task(task, trained).crops)
    assert run.pixels == whole.pixels == sum(SIZES) * 16 * 16
    np.testing.assert_array_equal(run.saturated, whole.saturated)
    assert run.saturated.sum() > 0
    np.testing.assert_array_equal(run.brightest, whole.brightest)
