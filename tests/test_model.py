"""Tests for napari_cellae.core.model: the mirrored, tied autoencoder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_cellae.core.architecture import DEFAULT_ARCHITECTURE
from napari_cellae.core.model import ConvAutoencoder, dropout, keep_mask


def test_model_refuses_crop_size_that_does_not_fit() -> None:
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvAutoencoder(DEFAULT_ARCHITECTURE, 18, 1)


@pytest.mark.parametrize(
    ("arch", "size", "channels", "features"),
    [
        ("c4.3r_p2_d16.0s", 16, 1, 16),
        ("c4.3r_p2_c8.3r_p2_d32.1r_d8.0s", 16, 2, 8),
        pytest.param(
            "c4.4r_p2",
            8,
            3,
            4 * 4 * 4,
            id="even-kernel-no-dense",
            marks=pytest.mark.filterwarnings("ignore:Using padding='same'"),
        ),
        ("d10.0s", 12, 1, 10),  # dense only
    ],
)
def test_shapes(arch: str, size: int, channels: int, features: int) -> None:
    model = ConvAutoencoder(arch, size, channels)
    x = torch.rand(3, channels, size, size)
    code = model.encode(x)
    assert code.shape == (3, features) == (3, model.n_features)
    out = model(x)
    assert out.shape == x.shape
    assert 0.0 <= out.min() and out.max() <= 1.0  # sigmoid output


def test_default_architecture_structure() -> None:
    model = ConvAutoencoder(DEFAULT_ARCHITECTURE, 40, 1)
    convs = [m for m in model.decoder_maps if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (32, 16, (3, 3)),
        (16, 1, (5, 5)),
    ]
    assert isinstance(model.decoder_maps[-1], nn.Sigmoid)
    assert sum(isinstance(m, nn.Upsample) for m in model.decoder_maps) == 2
    assert model.n_features == 64


def test_tied_weights() -> None:
    torch.manual_seed(0)
    model = ConvAutoencoder("c4.3r_p2_d16.0s", 8, 1)
    names = [n for n, _ in model.named_parameters()]
    # one weight matrix per dense layer; the decoder has only its own biases
    assert sum(n.startswith("dense") and n.endswith("weight") for n in names) == 1
    assert [tuple(b.shape) for b in model.decoder_bias] == [(4 * 4 * 4,)]
    out = model(torch.rand(2, 1, 8, 8))
    out.sum().backward()
    assert model.dense[0].weight.grad is not None and model.decoder_bias[0].grad is not None


def test_decoder_uses_transposed_encoder_weights() -> None:
    torch.manual_seed(0)
    model = ConvAutoencoder("d6.0s", 4, 1)  # dense only: decode = sigmoid(h W + b')
    h = torch.rand(2, 6)
    with torch.no_grad():
        for _ in range(2):
            w, b = model.dense[0].weight, model.decoder_bias[0]
            expected = torch.sigmoid(h @ w + b).reshape(2, 1, 4, 4)
            torch.testing.assert_close(model.decode(h), expected)
            model.dense[0].weight.mul_(-3.0)  # the decoder follows the encoder weight


def test_channels_last_same_result() -> None:
    torch.manual_seed(0)
    model = ConvAutoencoder("c4.3r_p2_c8.3r_p2_d16.0s", 16, 2).eval()
    x = torch.rand(4, 2, 16, 16)
    with torch.no_grad():
        ref = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        out = model_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_wrong_input_shape() -> None:
    model = ConvAutoencoder("c4.3r_p2_d16.0s", 16, 1)
    with pytest.raises(ValueError, match=r"expected input of shape \(n, 1, 16, 16\)"):
        model(torch.rand(2, 1, 20, 20))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    ("arch", "size", "channels"),
    [
        ("c8.5r_p2_c8.3r_p2_d16.1r_d8.0s", 16, 1),
        ("c4.3r_p2_c6.4s_p3_d8.0s", 24, 2),  # even kernel, pool 3, sigmoid before pool
        ("c3.1r_p2_c5.6r_p2_c4.5r_p2_d8.0s", 32, 3),
        ("c4.7r_p4_d6.0s", 16, 1),
    ],
)
def test_fast_paths_compute_the_same(
    arch: str, size: int, channels: int, channels_last: bool
) -> None:
    """Pool-before-activation and polyphase upsample+conv equal the literal layers."""
    torch.manual_seed(0)
    model = ConvAutoencoder(arch, size, channels).eval()
    x = torch.rand(4, channels, size, size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    results = []
    for fast in (False, True):
        model.fast_paths = fast
        out = model(x)
        grads = torch.autograd.grad(out.square().sum(), list(model.parameters()))
        results.append((out.detach(), grads))
    (ref, ref_grads), (out, grads) = results
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    for g_ref, g in zip(ref_grads, grads, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5)
    assert model.state_dict().keys() == ConvAutoencoder(arch, size, channels).state_dict().keys()


def test_dropout_rate_scaling_and_generator() -> None:
    h = torch.ones(1000, 1000)
    out = dropout(h, 0.1, torch.Generator().manual_seed(0))
    dropped = float((out == 0).float().mean())
    assert dropped == pytest.approx(0.1, abs=0.002)
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 65536 / (65536 - 6554)))
    assert float(out.mean()) == pytest.approx(1.0, abs=0.003)  # expectation kept
    again = dropout(h, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert not torch.equal(out, dropout(h, 0.1, torch.Generator().manual_seed(1)))
    assert dropout(h, 0.0, None) is h
    x = torch.ones(7, 3)  # numel not a multiple of 4
    assert dropout(x, 0.5, torch.Generator().manual_seed(0)).shape == (7, 3)


def test_dropout_only_in_training_mode() -> None:
    model = ConvAutoencoder("c4.3r_p2_d16.5r_d8.0s", 8, 1)
    x = torch.rand(4, 1, 8, 8)
    model.train()
    a = model(x, torch.Generator().manual_seed(0))
    b = model(x, torch.Generator().manual_seed(1))
    assert not torch.equal(a, b)
    assert torch.equal(a, model(x, torch.Generator().manual_seed(0)))
    model.eval()
    assert torch.equal(model(x), model(x, torch.Generator().manual_seed(5)))


def test_keep_mask_fraction_shape_and_seed() -> None:
    mask = keep_mask((300, 7, 11, 13), 0.3, torch.Generator().manual_seed(0))
    assert mask.shape == (300, 7, 11, 13) and mask.dtype == torch.bool
    assert float(mask.float().mean()) == pytest.approx(0.7, abs=0.005)
    assert torch.equal(mask, keep_mask((300, 7, 11, 13), 0.3, torch.Generator().manual_seed(0)))
    assert bool(keep_mask((50,), 0.0, None).all())
    assert float(keep_mask((100_000,), 0.999, None).float().mean()) < 0.002
