"""Filters kept apart (napari_cellae.core.decorrelation): the step, and training with it."""

from __future__ import annotations

import numpy as np
import torch

from napari_cellae.core.decorrelation import decorrelate_filters
from napari_cellae.core.model import ConvAutoencoder
from napari_cellae.core.trainer import Trainer
from training_helpers import blob_crops, config


def _overlap(conv: torch.nn.Conv2d) -> float:
    """Sum of squared cosines between every two different filters of a layer."""
    flat = conv.weight.detach().flatten(1)
    unit = flat / flat.norm(dim=1, keepdim=True)
    gram = unit @ unit.T
    return float((gram - torch.eye(len(gram))).pow(2).sum())


def _convs(model: ConvAutoencoder) -> list[torch.nn.Conv2d]:
    return [m for m in model.encoder_maps if isinstance(m, torch.nn.Conv2d)]


def test_the_step_turns_filters_apart_and_keeps_their_lengths() -> None:
    torch.manual_seed(0)
    model = ConvAutoencoder("c8.3r_p2_c8.3r_p2_d16.0s", 16)
    first = _convs(model)[0]
    with torch.no_grad():  # four filters nearly alike
        first.weight[:4] = first.weight[0] + 0.01 * torch.randn_like(first.weight[:4])
    before = [_overlap(conv) for conv in _convs(model)]
    lengths = first.weight.detach().flatten(1).norm(dim=1)
    decoder = [p.detach().clone() for p in model.decoder_maps.parameters()]
    for _ in range(20):
        decorrelate_filters(model, 0.01)
    after = [_overlap(conv) for conv in _convs(model)]
    assert all(a < b for a, b in zip(after, before, strict=True))
    assert after[0] < 0.8 * before[0]
    # the penalty's gradient is orthogonal to each filter: lengths grow only to 2nd order
    np.testing.assert_allclose(first.weight.detach().flatten(1).norm(dim=1), lengths, rtol=0.1)
    for p, q in zip(model.decoder_maps.parameters(), decoder, strict=True):
        assert torch.equal(p, q)  # only the encoder's filters move


def test_strength_zero_changes_nothing() -> None:
    model = ConvAutoencoder("c4.3r_p2_d16.0s", 16)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    decorrelate_filters(model, 0.0)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


def test_training_with_it_keeps_filters_more_apart_and_is_reproducible() -> None:
    crops = blob_crops(128)
    arch = "c8.3r_p2_d16.0s"
    results = {}
    for strength in (0.0, 0.05, 0.05):
        trainer = Trainer(config(architecture=arch, epochs=3, decorrelation=strength), crops)
        reports = list(trainer.run())
        assert np.isfinite(reports[-1].train_loss)
        results.setdefault(strength, []).append(trainer.result().model)
    plain, kept, again = results[0.0][0], *results[0.05]
    assert _overlap(_convs(kept)[0]) < _overlap(_convs(plain)[0])
    for p, q in zip(kept.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)  # same seed, same weights


def test_the_step_is_the_penalty_gradient() -> None:
    # The written-out gradient against autograd's, on a layer of 32 filters.
    torch.manual_seed(1)
    model = ConvAutoencoder("c8.3r_p2_c32.3r_p2_d16.0s", 16)
    conv = _convs(model)[1]
    flat = conv.weight.detach().flatten(1).clone().requires_grad_(True)
    unit = flat / flat.norm(dim=1, keepdim=True)
    gram = unit @ unit.T
    (grad,) = torch.autograd.grad((gram - torch.eye(32)).pow(2).sum(), flat)
    before = conv.weight.detach().clone()
    decorrelate_filters(model, 0.5)
    step = (before - conv.weight.detach()).flatten(1) / 0.5
    torch.testing.assert_close(step, grad, rtol=1e-4, atol=1e-6)
