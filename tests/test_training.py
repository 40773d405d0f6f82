"""Tests for napari_cellae.core.training: config, epoch generator, stop, divergence, model files."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_cellae.core.crops import Normalisation, collect_crops
from napari_cellae.core.training import (
    EpochReport,
    TrainConfig,
    TrainedModel,
    Trainer,
    TrainingDiverged,
    load_model,
    training_indices,
)
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.mapping import read_mapping

ARCH = "c4.3r_p2_d16.0s"


def blob_crops(n: int = 256, size: int = 16, channels: int = 1, dtype: str = "uint8") -> np.ndarray:
    """Gaussian spots at random places: simple data an autoencoder learns quickly."""
    rng = np.random.default_rng(42)
    yy, xx = np.mgrid[0:size, 0:size]
    cy = rng.uniform(4, size - 4, (n, 1, 1))
    cx = rng.uniform(4, size - 4, (n, 1, 1))
    spots = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)
    top = 250 if dtype == "uint8" else 50000
    out = np.stack([spots * top / (c + 1) for c in range(channels)], axis=1)
    return out.astype(dtype)


def config(**kwargs: object) -> TrainConfig:
    base = {
        "crop_size": 16,
        "architecture": ARCH,
        "batch_size": 32,
        "epochs": 2,
        "device": "cpu",
        "samples": 10_000,
    }
    base.update(kwargs)
    return TrainConfig(**base)


def test_config_defaults_round_trip_and_validation() -> None:
    cfg = TrainConfig()
    assert cfg.crop_size == 40 and cfg.optimizer == "adagrad" and cfg.held_out_fraction == 0.2
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown training settings: bogus"):
        TrainConfig.from_dict({"bogus": 1})
    bad = {
        "learning_rate": 0.0,
        "optimizer": "adam",
        "batch_size": 0,
        "corruption": 1.0,
        "epochs": 0,
        "train_on": "everything",
        "device": "tpu",
        "held_out_fraction": 0.95,
        "momentum": 1.0,
        "crop_size": 2,
    }
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name):
            TrainConfig(**{name: value})
    with pytest.raises(ValueError, match="divisible by 4"):
        TrainConfig(crop_size=42)
    with pytest.raises(ValueError, match="cannot parse layer"):
        TrainConfig(architecture="c16.5r_x")


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


def test_samples_subset_and_held_out_split() -> None:
    crops = blob_crops(200)
    trainer = Trainer(config(samples=50), crops)
    assert trainer.n_train + trainer.n_held_out == 50
    assert trainer.n_held_out == 10
    held, train = set(trainer._held_idx.tolist()), set(trainer._train_idx.tolist())
    assert not held & train
    same = Trainer(config(samples=50), crops)
    assert torch.equal(same._held_idx, trainer._held_idx)  # fixed split for a seed


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
    with pytest.raises(TrainingDiverged, match="lower learning rate"):
        list(run)
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


def test_save_load_round_trip(tmp_path: Path) -> None:
    crops = blob_crops(64, channels=2)
    trainer = Trainer(config(epochs=1), crops, channel_names=["a", "b"], object_name="obj")
    list(trainer.run())
    trained = trainer.result()
    path = trained.save(tmp_path / "model.pt")
    assert path.exists() and not list(tmp_path.glob(".*tmp"))
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "napari-cellae-model" and raw["version"] == 1
    loaded = load_model(path)
    assert loaded.config == trained.config
    assert loaded.normalisation == trained.normalisation
    assert loaded.channel_names == ["a", "b"] and loaded.object_name == "obj"
    np.testing.assert_array_equal(loaded.reconstruct(crops), trained.reconstruct(crops))
    loaded.check_compatible(16, 2)
    with pytest.raises(ValueError, match=r"model\.pt was trained on 16 px crops with 2"):
        loaded.check_compatible(40, 2)
    with pytest.raises(ValueError, match="2 channel"):
        loaded.check_compatible(16, 1)


def test_load_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt is not a napari-cellae model"):
        load_model(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match=r"other\.pt is not a napari-cellae model"):
        load_model(other)
    with pytest.raises(ValueError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    # weights of another architecture than the stored config says
    trainer = Trainer(config(epochs=1), blob_crops(16))
    path = trainer.result().save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    wrong = Trainer(config(epochs=1, architecture="c8.3r_p2_d16.0s"), blob_crops(16))
    payload["state_dict"] = wrong.result().model.state_dict()
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"m\.pt: damaged napari-cellae model file"):
        load_model(path)


def test_training_indices(cellcognition_file: Path, mapping_file: Path, tmp_path: Path) -> None:
    with CellH5(cellcognition_file) as f:
        crop_set = collect_crops(f, "primary__primary", 16)
    mapping = read_mapping(mapping_file)
    controls = training_indices(crop_set, mapping, "controls")
    wells = {crop_set.positions[i].well for i in crop_set.position_index[controls]}
    assert wells == {"A01"}
    assert len(controls) == int((crop_set.position_index == 0).sum())
    everything = np.arange(len(crop_set))
    np.testing.assert_array_equal(training_indices(crop_set, mapping, "all"), everything)
    np.testing.assert_array_equal(training_indices(crop_set, None, "controls"), everything)
    no_controls = tmp_path / "no_controls.txt"
    no_controls.write_text(mapping_file.read_text().replace("\tneg\n", "\ttarget\n"))
    with pytest.raises(ValueError, match="no control position"):
        training_indices(crop_set, read_mapping(no_controls), "controls")


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
    from napari_cellae.core.training import _random_orientation

    x = torch.arange(64 * 2 * 5 * 5, dtype=torch.float32).reshape(64, 2, 5, 5)
    out = _random_orientation(x, torch.Generator().manual_seed(1))
    again = _random_orientation(x, torch.Generator().manual_seed(1))
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
    # nothing held out: nothing to judge
    assert Trainer(config(epochs=1, held_out_fraction=0.0), blob_crops(16))._evaluate()[1] is False
