"""Tests for napari_cellae.core.readout: pooled readout, its names, orientation averaging."""

from __future__ import annotations

import pytest
import torch

from napari_cellae.core.model import ConvAutoencoder
from napari_cellae.core.readout import readout, readout_names, readout_width


def _model(arch: str = "c4.3r_p2_c6.3r_p2_d8.0s", size: int = 16, channels: int = 1):
    torch.manual_seed(0)
    return ConvAutoencoder(arch, size, channels).eval()


def test_names_say_which_layer_each_feature_comes_from() -> None:
    model = _model()
    names = readout_names(model)
    assert names[:8] == [f"code_{i}" for i in range(8)]
    assert names[8:12] == [f"conv1_mean_{f}" for f in range(4)]
    assert names[12:16] == [f"conv1_max_{f}" for f in range(4)]
    assert names[16:] == [f"conv2_mean_{f}" for f in range(6)] + [
        f"conv2_max_{f}" for f in range(6)
    ]
    assert readout_width(model) == 28
    assert readout_names(model, "code") == names[:8]


@pytest.mark.parametrize(
    "arch", ["c4.3r_p2_c6.3r_p2_d8.0s", "c5.3r_c3.3s_p2_d4.0s", "p2_c3.3r_d5.0s"]
)
def test_pooled_values_are_what_the_names_say(arch: str) -> None:
    model = _model(arch)
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        feats = readout(model, x, orientations=1)
        assert feats.shape == (3, readout_width(model))
        names = readout_names(model)
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
        assert k == sum(isinstance(m, torch.nn.Conv2d) for m in mods)


def test_orientation_averaging_makes_features_rotation_and_mirror_invariant() -> None:
    model = _model()
    x = torch.rand(4, 1, 16, 16)
    turned = torch.rot90(x, 1, dims=(2, 3))
    mirrored = x.flip(3)
    with torch.no_grad():
        plain = readout(model, x, orientations=8)
        torch.testing.assert_close(readout(model, turned, orientations=8), plain)
        torch.testing.assert_close(readout(model, mirrored, orientations=8), plain)
        torch.testing.assert_close(
            readout(model, turned, orientations=4), readout(model, x, orientations=4)
        )
        # Without averaging, a turned cell does get other features (the test can fail).
        assert not torch.allclose(
            readout(model, turned, orientations=1), readout(model, x, orientations=1)
        )


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
