"""Tests for napari_cellae.core.readout: pooled and shape readouts, their names, orientation
averaging."""

from __future__ import annotations

import pytest
import torch

from napari_cellae.core.model import ConvAutoencoder
from napari_cellae.core.readout import (
    LIGHT_FLOOR,
    READOUTS,
    block_outputs,
    moment_features,
    readout,
    readout_names,
    readout_width,
)


def _model(arch: str = "c4.3r_p2_c6.3r_p2_d8.0s", size: int = 16, channels: int = 1):
    torch.manual_seed(0)
    return ConvAutoencoder(arch, size, channels).eval()


def _reference_moments(h: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Size and elongation written out the slow way (the lab's numeric spec), in float64."""
    h = h.double()
    s = h.shape[-1]
    coords = (torch.arange(s, dtype=h.dtype) - (s - 1) / 2) / s
    mass = h.sum((2, 3)) + eps
    py, px = h.sum(3), h.sum(2)
    cy, cx = (py * coords).sum(2) / mass, (px * coords).sum(2) / mass
    yy = (py * coords**2).sum(2) / mass - cy**2
    xx = (px * coords**2).sum(2) / mass - cx**2
    xy = (h * coords[:, None] * coords[None, :]).sum((2, 3)) / mass - cx * cy
    tr, det = xx + yy, xx * yy - xy**2
    disc = torch.sqrt(torch.clamp(tr**2 / 4 - det, min=0))
    l1, l2 = torch.clamp(tr / 2 + disc, min=0), torch.clamp(tr / 2 - disc, min=0)
    return torch.sqrt(l1 + l2 + eps).float(), (1 - torch.sqrt((l2 + eps) / (l1 + eps))).float()


def _pass_through(size: int = 24) -> torch.nn.Module:
    """One 1-filter convolution that passes the input on (delta kernel), then a 2x2 pool: the
    filter's response map is the (pooled) crop itself."""
    model = _model("c1.3r_p2_d4.0s", size)
    conv = model.encoder_maps[0]
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0
        conv.bias.zero_()
    return model


def _ellipse(size: int, ry: float, rx: float, angle: float = 0.0) -> torch.Tensor:
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float32) - (size - 1) / 2,
        torch.arange(size, dtype=torch.float32) - (size - 1) / 2,
        indexing="ij",
    )
    cos, sin = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
    u, v = cos * yy + sin * xx, -sin * yy + cos * xx
    return ((u / ry) ** 2 + (v / rx) ** 2 <= 1).float()[None, None]


def test_names_say_which_layer_each_feature_comes_from() -> None:
    model = _model()
    names = readout_names(model, "pooled")
    assert names[:8] == [f"code_{i}" for i in range(8)]
    assert names[8:12] == [f"conv1_mean_{f}" for f in range(4)]
    assert names[12:16] == [f"conv1_max_{f}" for f in range(4)]
    assert names[16:] == [f"conv2_mean_{f}" for f in range(6)] + [
        f"conv2_max_{f}" for f in range(6)
    ]
    assert readout_width(model, "pooled") == 28
    assert readout_names(model, "code") == names[:8]


def test_shape_names_are_the_pooled_ones_then_size_and_elongation_per_block() -> None:
    model = _model()
    names = readout_names(model, "shape")
    assert names[:28] == readout_names(model, "pooled")
    assert names[28:] == (
        [f"conv1_size_{f}" for f in range(4)]
        + [f"conv1_elongation_{f}" for f in range(4)]
        + [f"conv2_size_{f}" for f in range(6)]
        + [f"conv2_elongation_{f}" for f in range(6)]
    )
    assert readout_width(model, "shape") == 28 + 2 * (4 + 6)


def test_relative_is_the_default_shape_readout_with_means_per_unit_of_light() -> None:
    model = _model()
    assert READOUTS[0] == "relative"
    names = readout_names(model)  # "relative" is the default
    shape_names = readout_names(model, "shape")
    assert names[-1] == "input_mean" and len(names) == len(shape_names) + 1
    assert [n.replace("relmean", "mean") for n in names[:-1]] == shape_names
    x = torch.rand(5, 1, 16, 16)
    x[1] *= 0.5  # the same pattern, half the light
    with torch.no_grad():
        shape = readout(model, x, "shape")
        relative = readout(model, x)
    light = x.mean(dim=(1, 2, 3))
    torch.testing.assert_close(relative[:, -1], light)
    means = [i for i, n in enumerate(shape_names) if "_mean_" in n]
    torch.testing.assert_close(
        relative[:, means], shape[:, means] / light[:, None], rtol=1e-4, atol=1e-6
    )
    others = [i for i, n in enumerate(shape_names) if "_mean_" not in n]
    torch.testing.assert_close(relative[:, others], shape[:, others])
    # A nearly black crop (a speck) is divided by LIGHT_FLOOR, not by its few photons: its
    # filters' biases over 1e-6 made means of 1e5, stretching every cell's spread.
    speck = torch.zeros(2, 1, 16, 16)
    speck[1, 0, 8, 8] = 0.05
    with torch.no_grad():
        shape, relative = readout(model, speck, "shape"), readout(model, speck)
    torch.testing.assert_close(relative[:, -1], speck.mean(dim=(1, 2, 3)))
    torch.testing.assert_close(relative[:, means], shape[:, means] / LIGHT_FLOOR)


def test_shape_readout_starts_with_the_pooled_one_unchanged() -> None:
    model = _model()
    x = torch.rand(5, 1, 16, 16)
    with torch.no_grad():
        pooled = readout(model, x, "pooled")
        shape = readout(model, x, "shape")
    assert shape.shape == (5, readout_width(model, "shape"))
    assert torch.equal(shape[:, : pooled.shape[1]], pooled)


@pytest.mark.parametrize(
    "arch", ["c4.3r_p2_c6.3r_p2_d8.0s", "c5.3r_c3.3s_p2_d4.0s", "p2_c3.3r_d5.0s"]
)
@pytest.mark.parametrize("kind", ["pooled", "shape"])
def test_values_are_what_the_names_say(arch: str, kind: str) -> None:
    model = _model(arch)
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        feats = readout(model, x, kind, orientations=1)
        assert feats.shape == (3, readout_width(model, kind))
        names = readout_names(model, kind)
        # The code is the encoder's output.
        torch.testing.assert_close(feats[:, : model.n_features], model.encode(x))
        # Recompute the block outputs literally (conv, activation, pool) and pool them.
        h, k, mods = x, 0, list(model.encoder_maps)
        for i, m in enumerate(mods):
            h = m(h)
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            seen_conv = any(isinstance(p, torch.nn.Conv2d) for p in mods[: i + 1])
            block_done = not isinstance(m, torch.nn.Conv2d) and (
                nxt is None or isinstance(nxt, torch.nn.Conv2d)
            )
            if seen_conv and block_done:
                k += 1
                mean_cols = [j for j, n in enumerate(names) if n.startswith(f"conv{k}_mean_")]
                max_cols = [j for j, n in enumerate(names) if n.startswith(f"conv{k}_max_")]
                torch.testing.assert_close(feats[:, mean_cols], h.mean(dim=(2, 3)))
                torch.testing.assert_close(feats[:, max_cols], h.amax(dim=(2, 3)))
                size_cols = [j for j, n in enumerate(names) if n.startswith(f"conv{k}_size_")]
                elong_cols = [j for j, n in enumerate(names) if n.startswith(f"conv{k}_elong")]
                if kind == "pooled":
                    assert size_cols == elong_cols == []
                    continue
                size, elongation = _reference_moments(h)
                assert len(size_cols) == len(elong_cols) == h.shape[1]
                torch.testing.assert_close(feats[:, size_cols], size)
                torch.testing.assert_close(feats[:, elong_cols], elongation, atol=1e-4, rtol=0)
        assert k == sum(isinstance(m, torch.nn.Conv2d) for m in mods)


@pytest.mark.parametrize("kind", ["shape", "pooled"])
def test_orientation_averaging_makes_features_rotation_and_mirror_invariant(kind: str) -> None:
    model = _model()
    x = torch.rand(4, 1, 16, 16)
    turned = torch.rot90(x, 1, dims=(2, 3))
    mirrored = x.flip(3)
    with torch.no_grad():
        plain = readout(model, x, kind, orientations=8)
        torch.testing.assert_close(readout(model, turned, kind, orientations=8), plain)
        torch.testing.assert_close(readout(model, mirrored, kind, orientations=8), plain)
        # Convolutions round slightly differently with the input's memory layout, which the
        # orientations of a turned crop do not share; size and elongation of a nearly dead
        # 4x4 map magnify that to ~1e-5.
        torch.testing.assert_close(
            readout(model, turned, kind, orientations=4),
            readout(model, x, kind, orientations=4),
            **({"atol": 1e-4, "rtol": 1e-4} if kind == "shape" else {}),
        )
        # Without averaging, a turned cell does get other features (the test can fail).
        assert not torch.allclose(
            readout(model, turned, kind, orientations=1), readout(model, x, kind, orientations=1)
        )


def _size_and_elongation(model: torch.nn.Module, crop: torch.Tensor) -> tuple[float, float]:
    names = readout_names(model)
    with torch.no_grad():
        feats = readout(model, crop)[0]
    return (
        feats[names.index("conv1_size_0")].item(),
        feats[names.index("conv1_elongation_0")].item(),
    )


def test_size_grows_with_the_cell_and_elongation_with_its_eccentricity() -> None:
    model = _pass_through(24)
    small_size, small_elong = _size_and_elongation(model, _ellipse(24, 3, 3))
    big_size, big_elong = _size_and_elongation(model, _ellipse(24, 8, 8))
    _, long_elong = _size_and_elongation(model, _ellipse(24, 10, 3, angle=0.5))
    assert big_size > 2 * small_size
    assert small_elong < 0.1 and big_elong < 0.1  # round
    assert long_elong > 0.5 > big_elong
    # The same on maps given directly: a disc of radius r has size r / (s * sqrt(2)).
    maps = torch.cat([_ellipse(32, 4, 4), _ellipse(32, 12, 12), _ellipse(32, 12, 4, 1.0)], 1)
    size, elongation = moment_features(maps)
    assert size[0, 0] < size[0, 1]
    torch.testing.assert_close(size[0, 1], torch.tensor(12 / 32 / 2**0.5), rtol=0.05, atol=0)
    assert elongation[0, 2] > 0.5 > 0.1 > elongation[0, 1]


def test_dead_filters_and_empty_crops_give_finite_features() -> None:
    size, elongation = moment_features(torch.zeros(2, 3, 8, 8))
    torch.testing.assert_close(size, torch.full((2, 3), 1e-3))
    assert torch.equal(elongation, torch.zeros(2, 3))
    # A nearly dead filter (one faint pixel) stays finite too.
    faint = torch.zeros(1, 1, 8, 8)
    faint[0, 0, 2, 5] = 1e-9
    assert all(torch.isfinite(t).all() for t in moment_features(faint))
    model = _model()
    with torch.no_grad():
        for kind in READOUTS:
            assert torch.isfinite(readout(model, torch.zeros(3, 1, 16, 16), kind)).all()
    size, elongation = _size_and_elongation(_pass_through(24), torch.zeros(1, 1, 24, 24))
    assert size == pytest.approx(1e-3) and elongation == 0


def test_channels_last_input_gives_the_same_features() -> None:
    model = _model(channels=2).to(memory_format=torch.channels_last)
    x = torch.rand(3, 2, 16, 16)
    with torch.no_grad():
        a = readout(model, x, orientations=8)
        b = readout(model, x.contiguous(memory_format=torch.channels_last), orientations=8)
    torch.testing.assert_close(a, b)


def test_bad_options_are_named() -> None:
    model = _model()
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match="unknown readout 'bottleneck'"):
        readout(model, x, kind="bottleneck")
    with pytest.raises(ValueError, match="orientations must be one of 1, 4, 8"):
        readout(model, x, orientations=2)


def test_shape_readout_is_the_same_with_gradients_and_passes_them_back() -> None:
    model = _model()
    x = torch.rand(3, 1, 16, 16)
    with torch.inference_mode():
        fast = readout(model, x)
    feats = readout(model, x)  # gradients on: the differentiable path
    torch.testing.assert_close(feats.detach(), fast, atol=1e-6, rtol=0)
    names = readout_names(model)
    feats[:, names.index("conv2_size_0")].sum().backward()
    assert model.encoder_maps[0].weight.grad.abs().sum() > 0


def test_block_outputs_are_each_convolution_after_its_activation_and_pool():
    torch.manual_seed(0)
    model = ConvAutoencoder("c4.3r_p2_c6.3r_p2_d8.0s", 16, 1)
    blocks, maps = block_outputs(model, torch.rand(3, 1, 16, 16))
    assert maps is blocks[-1][1]
    convs = [m for m in model.encoder_maps if isinstance(m, torch.nn.Conv2d)]
    assert [conv for conv, _ in blocks] == convs
    assert [tuple(h.shape) for _, h in blocks] == [(3, 4, 8, 8), (3, 6, 4, 4)]
    assert all(bool((h >= 0).all()) for _, h in blocks)  # after ReLU
