"""The pieces of a training step (napari_cellae.core.optimisation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cellae.core.optimisation import (
    as_tensor,
    check_crops,
    crops_tensor,
    random_orientation,
    resolve_device,
    shard_count,
    shard_pool,
    spread,
)
from napari_cellae.core.trainer import Trainer
from training_helpers import blob_crops, config


def test_adagrad_matches_the_original_lasagne_formula() -> None:
    """step = lr * g / sqrt(sum g^2 + 1e-6): tiny gradients take tiny first steps (plain
    torch Adagrad would move every weight by the full learning rate and saturate the net)."""
    trainer = Trainer(config(learning_rate=0.05), blob_crops(8))
    params = list(trainer.model.parameters())
    before = [p.detach().clone() for p in params]
    grads = [torch.full_like(p, 1e-4) for p in params]
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    trainer.optimizer.step()
    expected_step = 0.05 * 1e-4 / np.sqrt(1e-8 + 1e-6)
    for p, b in zip(params, before, strict=True):
        torch.testing.assert_close(
            b - p.detach(), torch.full_like(b, expected_step), rtol=1e-4, atol=0
        )


def test_random_orientation_turns_each_crop_and_is_seeded() -> None:
    x = torch.arange(64 * 2 * 5 * 5, dtype=torch.float32).reshape(64, 2, 5, 5)
    out = random_orientation(x, torch.Generator().manual_seed(1))
    again = random_orientation(x, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    assert out.is_contiguous(memory_format=torch.channels_last)
    variants = []
    for i in range(len(x)):
        crop = x[i]
        turns = [torch.rot90(crop, k, dims=(-2, -1)) for k in range(4)]
        turns += [torch.rot90(crop.flip(-1), k, dims=(-2, -1)) for k in range(4)]
        match = [k for k, t in enumerate(turns) if torch.equal(out[i], t)]
        assert len(match) == 1  # each crop is one of its 8 orientations, channels together
        variants.append(match[0])
    assert len(set(variants)) == 8  # all orientations occur in a batch of 64


def test_shard_count_and_pool() -> None:
    # of the batch alone, never of the cores: about 32 crops a shard, two halves from 32
    assert [shard_count(n) for n in (10, 16, 31, 32, 63, 64, 96, 128, 512)] == [
        1, 1, 1, 2, 2, 2, 3, 4, 16
    ]  # fmt: skip
    assert shard_pool(1) is None
    pool = shard_pool(2)
    try:
        assert pool is not None and pool.submit(torch.get_num_threads).result() == 1
    finally:
        pool.shutdown()


def test_crops_tensor_shares_memory_and_widens_only_what_torch_lacks() -> None:
    crops = blob_crops(4)
    data = crops_tensor(crops, torch.device("cpu"))
    assert data.dtype == torch.uint8 and data.data_ptr() == crops.ctypes.data
    wide = as_tensor(np.arange(8, dtype=np.uint32).reshape(2, 1, 2, 2))
    assert wide.dtype == torch.float32 and wide.max() == 7


def test_check_crops_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        check_crops(np.zeros((4, 16, 16)), 16)
    with pytest.raises(ValueError, match="no crops"):
        check_crops(np.zeros((0, 1, 16, 16)), 16)
    with pytest.raises(ValueError, match="numeric"):
        check_crops(np.zeros((1, 1, 16, 16), dtype=bool), 16)
    # +inf survives a fixed scale (clipped to 1) but per-cell scaling multiplies it by a
    # scale of 0: the whole crop became NaN in training.
    infinite = blob_crops(2).astype(np.float32)
    infinite[0, 0, 3, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite pixels"):
        check_crops(infinite, 16)
    assert check_crops(blob_crops(2), 16).shape == (2, 1, 16, 16)


def test_spread_and_device() -> None:
    same = torch.ones(3, 2, 2, dtype=torch.float64)
    assert spread(same.sum(0), (same * same).sum(0), 3) == 0.0
    x = torch.tensor([[0.0], [2.0]], dtype=torch.float64)  # two cells, one pixel: std 1
    assert spread(x.sum(0), (x * x).sum(0), 2) == pytest.approx(1.0)
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_a_gpu_the_machine_lacks_is_named(monkeypatch) -> None:
    # cuda:5 on a one-GPU machine ended in torch's 'invalid device ordinal' traceback
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match=r"'cuda:5' requested but this machine has 1 GPU\(s\)"):
        resolve_device("cuda:5")
