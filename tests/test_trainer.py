"""The training loop (napari_cellae.core.trainer): reports, stop, divergence, collapse."""

from __future__ import annotations

import math
import os
import re
import threading

import numpy as np
import pytest
import torch

from napari_cellae.core.config import TrainConfig
from napari_cellae.core.model_file import TrainedModel
from napari_cellae.core.normalisation import Normalisation
from napari_cellae.core.trainer import EpochReport, Trainer, TrainingDiverged
from training_helpers import blob_crops, config


def test_loss_decreases_and_reports() -> None:
    crops = blob_crops(320)
    trainer = Trainer(config(epochs=4, learning_rate=0.1), crops)
    assert trainer.n_held_out == 64 and trainer.n_train == 256
    # the crops are held once, in their stored dtype: the tensor shares the caller's memory
    assert trainer._data.dtype == torch.uint8
    assert trainer._data.data_ptr() == crops.ctypes.data
    reports = list(trainer.run())
    assert [r.epoch for r in reports] == [1, 2, 3, 4]
    assert all(isinstance(r, EpochReport) and not r.stopped for r in reports)
    assert all(r.samples_per_second > 0 and r.seconds > 0 for r in reports)
    assert reports[-1].train_loss < 0.7 * reports[0].train_loss
    assert reports[-1].held_out_loss < reports[0].held_out_loss
    trained = trainer.result()
    rec = trained.reconstruct(crops[:8])
    assert rec.shape == (8, 1, 16, 16) and rec.dtype == np.float32
    target = trained.normalisation.apply(crops[:8])
    assert np.mean((rec - target) ** 2) == pytest.approx(reports[-1].held_out_loss, rel=1.0)


def test_uint16_multichannel_and_nesterov() -> None:
    crops = blob_crops(96, channels=2, dtype="uint16")
    norm = Normalisation.from_crops(crops)
    assert norm.high[0] > 255
    trainer = Trainer(
        config(optimizer="nesterov", learning_rate=0.5, corruption=0.3),
        crops,
        norm,
        channel_names=["DNA", "GFP"],
        object_name="Nuclei",
    )
    reports = list(trainer.run())
    assert all(np.isfinite(r.train_loss) for r in reports)
    trained = trainer.result()
    assert trained.channel_names == ["DNA", "GFP"] and trained.object_name == "Nuclei"
    assert trained.reconstruct(crops[:3]).shape == (3, 2, 16, 16)


def test_determinism_with_seed() -> None:
    crops = blob_crops(128)
    cfg = {"corruption": 0.2, "architecture": "c4.3r_p2_d16.5r_d8.0s", "epochs": 2}

    def losses(seed: int) -> list[tuple[float, float]]:
        trainer = Trainer(config(seed=seed, **cfg), crops)
        return [(r.train_loss, r.held_out_loss) for r in trainer.run()]

    first = losses(3)
    assert losses(3) == first
    assert losses(4) != first


def test_held_out_split_is_fixed_for_a_seed_and_uses_every_crop() -> None:
    crops = blob_crops(50)
    trainer = Trainer(config(), crops)
    assert trainer.n_train + trainer.n_held_out == 50
    assert trainer.n_held_out == 10
    held, train = set(trainer._held_idx.tolist()), set(trainer._train_idx.tolist())
    assert not held & train
    same = Trainer(config(), crops)
    assert torch.equal(same._held_idx, trainer._held_idx)  # fixed split for a seed
    # choosing the training cells (at most `samples`) is the pipeline's job, done once:
    # the trainer trains on every crop it is given
    everything = Trainer(config(samples=50), blob_crops(200))
    assert everything.n_train + everything.n_held_out == 200


def test_no_history_kept_and_no_second_stop_flag() -> None:
    trainer = Trainer(config(epochs=1), blob_crops(16))
    list(trainer.run())
    assert not hasattr(trainer, "history") and not hasattr(trainer, "stop_requested")


def test_stop_mid_epoch() -> None:
    crops = blob_crops(256)
    trainer = Trainer(config(epochs=5, batch_size=16), crops)
    calls = {"n": 0}
    batch = trainer._batch

    def counting_batch(idx: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 3:
            trainer.stop()  # takes effect before the next batch
        return batch(idx)

    trainer._batch = counting_batch  # type: ignore[method-assign]
    reports = list(trainer.run())
    assert len(reports) == 1
    last = reports[0]
    assert last.stopped and last.epoch == 1
    assert calls["n"] == 3 + 1  # 3 training batches + 1 held-out evaluation batch
    assert np.isfinite(last.train_loss) and np.isfinite(last.held_out_loss)
    assert trainer.result().reconstruct(crops[:2]).shape == (2, 1, 16, 16)


def test_stop_from_another_thread_and_before_start() -> None:
    crops = blob_crops(64)
    trainer = Trainer(config(epochs=1000), crops)
    reports: list[EpochReport] = []

    def work() -> None:
        for report in trainer.run():
            reports.append(report)
            if report.epoch == 1:
                threading.Thread(target=trainer.stop).start()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert reports[-1].stopped and len(reports) < 1000

    early = Trainer(config(), crops)
    early.stop()
    (only,) = list(early.run())
    assert only.stopped and only.epoch == 0 and np.isnan(only.train_loss)
    assert isinstance(early.result(), TrainedModel)


def test_divergence_keeps_last_good_weights() -> None:
    crops = blob_crops(128)
    trainer = Trainer(config(learning_rate=0.1, epochs=5), crops)
    run = trainer.run()
    first = next(run)
    assert np.isfinite(first.train_loss)
    good = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    for group in trainer.optimizer.param_groups:
        group["lr"] = 1e30  # a huge learning rate from epoch 2 on
    with pytest.raises(TrainingDiverged, match="lower learning rate") as raised:
        list(run)
    # what to try and what became of the weights are two sentences
    assert re.search(
        r"\(e\.g\. 1e\+29\)\. The weights of the last good epoch \(1\)", str(raised.value)
    )
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, good[key]), key
    assert trainer.epochs_done == 1
    rec = trainer.result().reconstruct(crops[:4])
    assert np.isfinite(rec).all()


def test_divergence_in_first_epoch() -> None:
    crops = blob_crops(64)
    trainer = Trainer(config(learning_rate=1e38), crops)
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(
        TrainingDiverged, match=r"learning rate 1e\+38; try a lower learning rate \(e\.g\. 1e\+37\)"
    ):
        list(trainer.run())
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, initial[key])


def test_source_indices_default_and_check() -> None:
    crops = blob_crops(8)
    np.testing.assert_array_equal(Trainer(config(), crops).source_indices, np.arange(8))
    shifted = Trainer(config(), crops, source_indices=np.arange(10, 18)).source_indices
    np.testing.assert_array_equal(shifted, np.arange(10, 18))
    with pytest.raises(ValueError, match=r"source_indices has shape \(3,\), expected \(8,\)"):
        Trainer(config(), crops, source_indices=np.arange(3))


def test_trainer_input_errors() -> None:
    with pytest.raises(ValueError, match="crops are 20 px"):
        Trainer(config(), np.zeros((4, 1, 20, 20), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        Trainer(config(), np.full((4, 1, 16, 16), np.nan, np.float32))
    with pytest.raises(ValueError, match="normalisation has 2"):
        Trainer(config(), blob_crops(8), Normalisation([0, 0], [1, 1]))


def test_augment_option_trains_only_on_turned_crops() -> None:
    crops = blob_crops(128)
    assert TrainConfig().augment is False
    with pytest.raises(ValueError, match="augment"):
        TrainConfig(augment="yes")  # type: ignore[arg-type]
    plain, turned = Trainer(config(augment=False), crops), Trainer(config(augment=True), crops)
    # same init and held-out crops; the held-out loss before training is identical
    assert plain._evaluate() == turned._evaluate()
    a, b = list(plain.run()), list(turned.run())
    assert a[0].train_loss != b[0].train_loss
    assert [r.train_loss for r in Trainer(config(augment=True), crops).run()] == [
        r.train_loss for r in b
    ]


def test_weights_start_glorot_uniform_as_in_the_original() -> None:
    # PyTorch's smaller default init left the default (tied-weight) network outputting the
    # mean crop for dozens of epochs on the demo; Lasagne's Glorot init does not.
    trainer = Trainer(config(architecture="c4.3r_p2_d16.0s"), blob_crops(16))
    for m in trainer.model.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
            fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(m.weight)
            bound = (6 / (fan_in + fan_out)) ** 0.5
            largest = float(m.weight.detach().abs().max())
            assert 0.8 * bound < largest <= bound
            assert not m.bias.any()


def test_sharded_step_equals_the_whole_batch_step() -> None:
    """A batch split into shards trained in parallel threads (summed gradients) takes the
    same optimiser step as the whole batch at once."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = config(batch_size=64, optimizer="nesterov", learning_rate=0.1, momentum=0.9)
    crops = blob_crops(64)
    sharded, whole = Trainer(cfg, crops), Trainer(cfg, crops)
    x = sharded._batch(torch.arange(64))
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    with ThreadPoolExecutor(2) as pool:
        loss_sharded = sharded._step(x, x, gens, pool)
    loss_whole = whole._step(x, x, gens[:1], None)
    assert loss_sharded == pytest.approx(loss_whole, rel=1e-6)
    for a, b in zip(sharded.model.parameters(), whole.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    # and the step really changed the weights
    fresh = Trainer(cfg, crops)
    moved = [
        not torch.equal(a, b)
        for a, b in zip(sharded.model.parameters(), fresh.model.parameters(), strict=True)
    ]
    assert all(moved)


def test_sharded_training_is_reproducible_and_leaves_global_rng_alone() -> None:
    """Two threads (two shards with their own dropout generators): equal seeds give equal
    losses, and torch's global random state is untouched by training."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cfg = config(architecture="c4.3r_p2_d16.5r_d8.0s", batch_size=64, epochs=2)
        torch.manual_seed(123)
        before = torch.random.get_rng_state()
        first = [r.train_loss for r in Trainer(cfg, blob_crops(128)).run()]
        assert torch.equal(torch.random.get_rng_state(), before)
        second = [r.train_loss for r in Trainer(cfg, blob_crops(128)).run()]
        assert first == second
        # the calling thread's setting is restored (capped to the usable cores)
        assert torch.get_num_threads() == min(2, len(os.sched_getaffinity(0)))
        other = [
            r.train_loss
            for r in Trainer(config(**{**cfg.__dict__, "seed": 1}), blob_crops(128)).run()
        ]
        assert other != first
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("batch_size", [32, 64, 128])
def test_a_seed_gives_the_same_weights_whatever_the_thread_count(batch_size: int) -> None:
    """One thread or two (OMP_NUM_THREADS, a container's CPU limit, the widget leaving a
    core to the viewer): the same weights, bit for bit. The shards used to follow the
    cores, each with its own dropout masks and rounding, which training amplified: the
    demo's weights differed by 0.46 after two epochs."""
    threads = torch.get_num_threads()
    cfg = config(
        architecture="c4.3r_p2_d16.5r_d8.0s", batch_size=batch_size, epochs=2, decorrelation=0.01
    )
    weights = []
    try:
        for n in (1, 2):  # with one usable core both runs take one thread: trivially equal
            torch.set_num_threads(n)
            trainer = Trainer(cfg, blob_crops(200))
            losses = [r.train_loss for r in trainer.run()]
            weights.append((losses, trainer.model.state_dict()))
    finally:
        torch.set_num_threads(threads)
    (first, a), (second, b) = weights
    assert first == second
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_collapsed_network_is_reported() -> None:
    """Dead units: the same reconstruction for every cell. Detected on the held-out cells,
    reported per epoch; a healthy network is not flagged."""
    trainer = Trainer(config(epochs=1, held_out_fraction=0.25), blob_crops(64))
    assert trainer._evaluate()[1] is False
    with torch.no_grad():  # every ReLU of the first layer dead: nothing cell-specific passes
        first = trainer.model.encoder_maps[0]
        first.weight.zero_()
        first.bias.fill_(-1.0)
    assert trainer._evaluate()[1] is True
    (report,) = list(trainer.run())
    assert report.collapsed
    healthy = list(Trainer(config(epochs=2), blob_crops(128)).run())
    assert not any(r.collapsed for r in healthy)
    # nothing held out (held_out_fraction 0, or a file of one or two cells): judged on the
    # training cells, where dead units went unreported
    for n, fraction in ((16, 0.0), (2, 0.25)):
        trainer = Trainer(config(epochs=1, held_out_fraction=fraction), blob_crops(n))
        assert trainer.n_held_out == 0 and trainer._evaluate()[1] is False
        with torch.no_grad():
            first = trainer.model.encoder_maps[0]
            first.weight.zero_()
            first.bias.fill_(-1.0)
        (report,) = list(trainer.run())
        assert report.collapsed and math.isnan(report.held_out_loss)


def test_per_cell_batches_equal_per_cell_normalisation() -> None:

    crops = blob_crops(40)
    crops[::2] = (crops[::2] // 3).astype(crops.dtype)  # half the cells three times dimmer
    cfg = TrainConfig(
        crop_size=16, architecture="c4.3r_p2_d8.0s", epochs=1, intensity="cell", device="cpu"
    )
    trainer = Trainer(cfg, crops)
    assert trainer.normalisation.per_cell
    idx = torch.arange(0, 40, 3)
    batch = trainer._batch(idx).contiguous().numpy()
    np.testing.assert_allclose(batch, trainer.normalisation.apply(crops[idx.numpy()]), atol=1e-6)


@pytest.mark.parametrize("preset", ["classic", "recommended", "demo"])
def test_every_preset_trains_and_encodes(preset: str) -> None:
    from napari_cellae.core.features import encode, feature_names
    from napari_cellae.core.presets import PRESETS

    assert set(PRESETS) == {"classic", "recommended", "demo"}
    cfg = TrainConfig.from_preset(preset, epochs=1, device="cpu")
    size = cfg.crop_size
    crops = np.random.default_rng(0).integers(0, 255, (24, 1, size, size)).astype(np.uint8)
    trainer = Trainer(cfg, crops)
    reports = list(trainer.run())
    assert [r.epoch for r in reports] == [1] and np.isfinite(reports[0].train_loss)
    trained = trainer.result()
    feats = encode(trained, crops[:5])
    assert feats.shape == (5, len(feature_names(trained))) and np.all(np.isfinite(feats))


@pytest.mark.parametrize("intensity", ["cell", "screen"])
def test_wide_pixels_on_a_large_base_train_as_their_narrow_copy(intensity: str) -> None:
    # uint32 pixels 4e9 + (0 .. 50000): the trainer's float32 raw * scale + offset rounded
    # them to steps of 512, so it learnt from a coarse copy of the cells (loss 2x off).
    narrow = blob_crops(64, dtype="uint16")
    wide = narrow.astype(np.uint32) + np.uint32(4_000_000_000)
    losses = []
    for crops in (narrow, wide):
        trainer = Trainer(config(epochs=1, intensity=intensity), crops)
        losses.append([(r.train_loss, r.held_out_loss) for r in trainer.run()])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-3)
