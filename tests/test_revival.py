"""Silent convolution filters get new weights (napari_cellae.core.revival) during training."""

from __future__ import annotations

import torch

from napari_cellae.core.model import ConvAutoencoder
from napari_cellae.core.optimisation import glorot_init
from napari_cellae.core.readout import block_outputs
from napari_cellae.core.revival import SILENT_RESPONSE, revive_silent_filters
from napari_cellae.core.trainer import Trainer
from training_helpers import blob_crops, config

ARCH = "c4.3r_p2_c6.3r_p2_d8.0s"


def _model() -> ConvAutoencoder:
    torch.manual_seed(0)
    model = ConvAutoencoder(ARCH, 16, 1)
    glorot_init(model)
    return model


def _silence(conv: torch.nn.Conv2d, f: int) -> None:
    """Make filter f answer every non-negative input with zero after its ReLU."""
    with torch.no_grad():
        conv.weight[f] = -conv.weight[f].abs() - 0.1
        conv.bias[f] = -1.0


def _mean_responses(model: ConvAutoencoder, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return [h.mean(dim=(0, 2, 3)) for _, h in block_outputs(model, x)[0]]


def test_silent_filters_get_new_weights_that_respond_and_fresh_optimiser_state():
    model = _model()
    first, second = (m for m in model.encoder_maps if isinstance(m, torch.nn.Conv2d))
    _silence(first, 1)
    _silence(second, 4)
    x = torch.rand(16, 1, 16, 16)
    before = [r.clone() for r in _mean_responses(model, x)]
    assert before[0][1] == 0 and before[1][4] == 0
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.1)
    model(x).square().mean().backward()
    optimizer.step()
    kept = {k: v.clone() for k, v in model.state_dict().items()}

    revived = revive_silent_filters(model, x, optimizer, torch.Generator().manual_seed(1))

    assert revived >= 2
    after = _mean_responses(model, x)
    assert after[0][1] > SILENT_RESPONSE and after[1][4] > SILENT_RESPONSE
    assert first.bias[1].item() == 0.0 and second.bias[4].item() == 0.0
    # Filters that responded keep their weights; their optimiser state is untouched.
    live = [f for f in range(4) if before[0][f] >= SILENT_RESPONSE]
    assert torch.equal(first.weight[live], kept["encoder_maps.0.weight"][live])
    sums = optimizer.state[first.weight]["sum"]
    assert float(sums[1].abs().sum()) == 0.0 and float(sums[live].abs().sum()) > 0.0


def test_nothing_changes_when_every_filter_responds():
    model = _model()
    with torch.no_grad():
        for m in model.encoder_maps:
            if isinstance(m, torch.nn.Conv2d):
                m.weight.abs_()  # every filter answers bright pixels
    kept = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.rand(8, 1, 16, 16)
    assert revive_silent_filters(model, x, optimizer, torch.Generator().manual_seed(0)) == 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, kept[key])


def _trained(revive: bool, seed: int = 0) -> Trainer:
    trainer = Trainer(
        config(architecture=ARCH, epochs=2, revive=revive, seed=seed, learning_rate=0.05),
        blob_crops(128),
    )
    first = next(m for m in trainer.model.encoder_maps if isinstance(m, torch.nn.Conv2d))
    _silence(first, 2)
    list(trainer.run())
    return trainer


def test_training_revives_silent_filters_only_when_asked():
    crops = torch.as_tensor(blob_crops(64), dtype=torch.float32) / 255.0
    on, off = _trained(revive=True), _trained(revive=False)
    assert on.revived >= 1 and off.revived == 0
    assert _mean_responses(on.result().model, crops)[0][2] > SILENT_RESPONSE
    assert _mean_responses(off.result().model, crops)[0][2] == 0


def test_revival_is_reproducible_with_a_seed():
    a, b = _trained(revive=True, seed=3), _trained(revive=True, seed=3)
    other = b.model.state_dict()
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, other[key]), key


def _revive_on_rank(rank: int, init_file: str, out: str) -> None:
    """One torchrun-like rank: its own sample and generator seed, as torchrun gives them."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        model = _model()
        first = next(m for m in model.encoder_maps if isinstance(m, torch.nn.Conv2d))
        _silence(first, 1)
        optimizer = torch.optim.Adagrad(model.parameters(), lr=0.01)
        sample = torch.from_numpy(blob_crops(16 + 8 * rank)).float() / 255
        generator = torch.Generator().manual_seed(100 + rank)  # seeded apart, per rank
        revived = revive_silent_filters(model, sample, optimizer, generator)
        torch.save({"revived": revived, "state": model.state_dict()}, f"{out}/rank{rank}.pt")
        dist.barrier()  # a rank leaving while the other still talks aborted it (SIGABRT)
    finally:
        dist.destroy_process_group()


def test_ranks_under_torchrun_revive_the_same_filters_with_the_same_weights(tmp_path):
    # Ranks draw from differently seeded generators; unequal new weights made the ranks
    # train apart (torchrun's model was rank 0's alone).
    import torch.multiprocessing as mp

    mp.spawn(_revive_on_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert a["revived"] == b["revived"] >= 1
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])


def test_revival_takes_the_largest_seed():
    # seed * 7919 + epoch overflowed torch's 64-bit seed: 'Overflow when unpacking long
    # long' after the first epoch, for any seed above about 1e15
    trainer = Trainer(config(epochs=1, revive=True, seed=2**32 - 1), blob_crops(32))
    assert len(list(trainer.run())) == 1
