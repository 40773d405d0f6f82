"""Encoding crops, 2-D embedding, k-NN accuracy and novelty scores."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from napari_cellae.core.crops import Normalisation
from napari_cellae.core.features import (
    embed_2d,
    encode,
    feature_names,
    pca_features,
)
from napari_cellae.core.model import ConvAutoencoder

ARCH = "c4.3r_p2_d16.0s"


@dataclass
class _Trained:
    """Just what encode() needs of a TrainedModel."""

    model: ConvAutoencoder
    normalisation: Normalisation

    @property
    def channel_names(self) -> list[str]:
        return [str(c) for c in range(self.model.in_channels)]

    def check_compatible(self, crop_size: int, n_channels: int) -> None:
        if crop_size != self.model.crop_size or n_channels != self.model.in_channels:
            raise ValueError(f"model expects {self.model.crop_size} px crops")


def _trained(channels: int = 1, size: int = 16) -> _Trained:
    torch.manual_seed(0)
    model = ConvAutoencoder(ARCH, size, channels)
    return _Trained(model, Normalisation([0.0] * channels, [255.0] * channels))


def _crops(n: int, channels: int = 1, size: int = 16, dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (n, channels, size, size)).astype(dtype)


def test_encode_shape_dtype_order_and_batches():
    trained = _trained()
    crops = _crops(37)
    calls = []
    feats = encode(
        trained,
        crops,
        batch_size=8,
        progress=lambda d, t: calls.append((d, t)),
        readout="code",
        orientations=1,
    )
    assert feats.shape == (37, trained.model.n_features) == (37, 16)
    assert feats.dtype == np.float32
    assert calls == [(8, 37), (16, 37), (24, 37), (32, 37), (37, 37)]
    # Batch size does not change the result, and row i belongs to crop i.
    code = {"readout": "code", "orientations": 1}
    np.testing.assert_allclose(encode(trained, crops, batch_size=512, **code), feats, atol=1e-6)
    np.testing.assert_allclose(encode(trained, crops[5:6], **code), feats[5:6], atol=1e-6)
    # Same as the model applied by hand with the model's normalisation.
    with torch.no_grad():
        x = torch.from_numpy(crops.astype(np.float32) / 255.0)
        expected = trained.model.eval().encode(x).numpy()
    np.testing.assert_allclose(feats, expected, atol=1e-5)


def test_default_features_are_shape_and_the_same_for_a_turned_cell():
    trained = _trained()
    crops = _crops(6)
    feats = encode(trained, crops)
    # bottleneck (16) + mean, max, size and elongation of the 4 filters of the one convolution
    assert feats.shape == (6, 16 + 4 * 4)
    assert feature_names(trained)[-4:] == [f"conv1_elongation_{f}" for f in range(4)]
    pooled = encode(trained, crops, readout="pooled")
    np.testing.assert_array_equal(feats[:, : 16 + 2 * 4], pooled)
    turned = np.ascontiguousarray(np.rot90(crops, 1, axes=(2, 3)))
    mirrored = np.ascontiguousarray(crops[..., ::-1])
    np.testing.assert_allclose(encode(trained, turned), feats, atol=1e-5)
    np.testing.assert_allclose(encode(trained, mirrored), feats, atol=1e-5)
    assert not np.allclose(
        encode(trained, turned, orientations=1), encode(trained, crops, orientations=1)
    )


def test_encode_uses_eval_mode_and_restores_it():
    trained = _trained()
    trained.model.train()
    crops = _crops(4)
    a = encode(trained, crops)
    b = encode(trained, crops)
    np.testing.assert_array_equal(a, b)  # no dropout / corruption while encoding
    assert trained.model.training


def test_encode_channels_last_model_and_uint16():
    trained = _trained(channels=2)
    trained.normalisation = Normalisation([0.0, 0.0], [4000.0, 4000.0])
    crops = (_crops(5, channels=2).astype(np.uint16) * 15).astype(np.uint16)
    plain = encode(trained, crops)
    trained.model = trained.model.to(memory_format=torch.channels_last)
    np.testing.assert_allclose(encode(trained, crops), plain, atol=1e-5)


def test_encode_runs_a_channels_last_copy_and_leaves_the_model_as_it_was():
    from napari_cellae.core.readout import readout

    trained = _trained(channels=2)
    crops = _crops(6, channels=2)
    conv = next(m for m in trained.model.modules() if isinstance(m, torch.nn.Conv2d))
    before = {k: v.clone() for k, v in trained.model.state_dict().items()}
    features = encode(trained, crops, readout="pooled", orientations=8)
    # The caller's model keeps its plain layout and its weights.
    assert conv.weight.is_contiguous()
    for key, value in trained.model.state_dict().items():
        assert torch.equal(value, before[key])
    # Same numbers as reading the plain-layout model directly (up to float rounding).
    with torch.inference_mode():
        x = torch.as_tensor(trained.normalisation.apply(crops), dtype=torch.float32)
        direct = readout(trained.model.eval(), x, "pooled", 8).numpy()
    np.testing.assert_allclose(features, direct, rtol=1e-5, atol=1e-5)


def test_encode_rejects_wrong_size_and_handles_empty():
    trained = _trained()
    with pytest.raises(ValueError):
        encode(trained, _crops(2, size=20))
    with pytest.raises(ValueError, match="shape"):
        encode(trained, np.zeros((2, 16, 16), np.uint8))
    assert encode(trained, _crops(0), readout="code").shape == (0, 16)
    assert encode(trained, _crops(0)).shape == (0, 32)


def test_embed_2d_pca_shapes_and_determinism():
    rng = np.random.default_rng(0)
    factor = rng.normal(size=50)
    feats = rng.normal(size=(50, 8)).astype(np.float32)
    feats[:, :4] += 5 * factor[:, None]  # four features share one factor: the first axis
    emb = embed_2d(feats)
    assert emb.shape == (50, 2) and emb.dtype == np.float32
    np.testing.assert_array_equal(emb, embed_2d(feats.copy()))
    # Deterministic sign: flipping the input's signs does not flip the picture's axes
    # relative to the loadings; the first axis follows the shared factor.
    assert np.corrcoef(emb[:, 0], factor)[0, 1] > 0.99
    np.testing.assert_allclose(embed_2d(-feats), -emb, atol=1e-4)
    # Centred, first axis has the larger variance.
    np.testing.assert_allclose(emb.mean(0), 0, atol=1e-4)
    assert emb[:, 0].var() >= emb[:, 1].var()


def test_embed_2d_degenerate_inputs():
    assert embed_2d(np.ones((1, 4))).tolist() == [[0.0, 0.0]]
    const = embed_2d(np.full((10, 3), 7.0))
    assert const.shape == (10, 2) and np.all(const == 0)
    one_feature = embed_2d(np.arange(6, dtype=float)[:, None])
    assert one_feature.shape == (6, 2)
    assert np.all(one_feature[:, 1] == 0) and np.all(np.isfinite(one_feature))
    assert embed_2d(np.zeros((0, 5))).shape == (0, 2)
    with pytest.raises(ValueError, match="method"):
        embed_2d(np.ones((3, 3)), method="tsne")
    with pytest.raises(ValueError, match="NaN"):
        embed_2d(np.array([[np.nan, 1.0], [1.0, 2.0]]))


def test_pca_features():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 6))
    p = pca_features(x, 4)
    assert p.shape == (30, 4)
    assert np.all(np.diff(p.var(0)) <= 1e-9)  # decreasing variance
    # Axes fitted on a subset: that subset's own projection equals a PCA of it alone.
    sub = pca_features(x, 2, fit=np.arange(10))
    np.testing.assert_allclose(sub[:10], pca_features(x[:10], 2), atol=1e-5)


def test_encode_warns_when_a_fixed_scale_clips_many_pixels():
    # A model trained on 8-bit images (top of the scale 255) meets 12-bit ones.
    trained = _trained()
    crops = _crops(20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encode(trained, crops)  # 1 in 256 pixels at the top: as in training
    with pytest.warns(
        UserWarning, match=r"more than 5% of the pixels of channel\(s\) 0 \(top 255\)"
    ):
        encode(trained, crops.astype(np.uint16) * 16)
    trained.normalisation = Normalisation([0.0], [255.0], per_cell=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encode(trained, crops.astype(np.uint16) * 16)  # per-cell scaling adapts


def test_encode_warns_when_the_brightest_pixel_is_far_below_a_fixed_scale():
    # A model trained on 12-bit images (scale to 4000) met 8-bit ones without a word: every
    # cell looked nearly black to it (found by the option sweep).
    trained = _trained()
    trained.normalisation = Normalisation([10.0], [4000.0])
    crops = _crops(20)  # brightest 255: 6 % of the scale
    with pytest.warns(
        UserWarning, match=r"brightest pixels of channel\(s\) 0 \(scale 10 to 4000\) reach less"
    ):
        encode(trained, crops)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encode(trained, crops.astype(np.uint16) * 4)  # brightest 1020: a quarter of it
        encode(trained, np.zeros((0, 1, 16, 16), np.uint8))  # nothing encoded: no verdict
        trained.normalisation = Normalisation([10.0], [4000.0], per_cell=True)
        encode(trained, crops)  # per-cell scaling adapts


def test_encode_given_a_run_wide_scale_check_counts_into_it_and_leaves_the_verdict():
    # Each call judged its own pixels: a run split into calls (batches, workers) warned or
    # not by where its calls fell. Given the run's ScaleCheck, encode only counts.
    from napari_cellae.core.scale_check import ScaleCheck

    trained = _trained()
    bright = _crops(20).astype(np.uint16) * 16  # most pixels above the 8-bit top
    check = ScaleCheck(trained.normalisation)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encode(trained, bright[:7], scale_check=check)
        encode(trained, bright[7:], scale_check=check)
    whole = ScaleCheck(trained.normalisation)
    whole.add(bright)
    assert check.pixels == whole.pixels == 20 * 16 * 16
    np.testing.assert_array_equal(check.saturated, whole.saturated)
    np.testing.assert_array_equal(check.brightest, whole.brightest)
    with pytest.warns(UserWarning, match=r"more than 5% of the pixels of channel\(s\) 0"):
        check.warn(trained.channel_names)  # the caller's, once


def test_a_cpu_runs_the_network_on_at_most_128_crops_at_once(monkeypatch):
    # Batches of 512 spilled the activations out of the caches: the default network
    # encoded 1.9x slower than in batches of 128 (2 cores).
    from napari_cellae.core import readout as readout_mod

    seen = []
    real = readout_mod.readout

    def counted(model, x, *args, **kwargs):
        seen.append(len(x))
        return real(model, x, *args, **kwargs)

    monkeypatch.setattr(readout_mod, "readout", counted)
    trained, crops = _trained(), _crops(300)
    feats = encode(trained, crops, batch_size=512)
    assert seen == [128, 128, 44]
    monkeypatch.setattr(readout_mod, "readout", real)
    np.testing.assert_allclose(feats, encode(trained, crops, batch_size=100), rtol=1e-6)
