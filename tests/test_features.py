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


# Metamorphic checks from the image file to the features (the recommended preset's mask,
# per-cell intensity, relative readout over 8 orientations and outline measurements, on a
# small network): what the features claim to ignore, changed in the file itself.
_H, _W, _BOX = 60, 76, 16
_CENTRES = np.array([[14, 14], [40, 30], [30, 24], [44, 56], [46, 14], [4, 70], [57, 3]])


def _cells(dtype=np.uint16, peak: float = 3000.0) -> tuple[np.ndarray, np.ndarray]:
    """An image of textured elliptic cells on noise (two of them at the border), and its
    label image."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:_H, 0:_W].astype(float)
    image = 100.0 + rng.normal(0, 5, (_H, _W))
    labels = np.zeros((_H, _W), np.uint16)
    for i, (cy, cx) in enumerate(_CENTRES):
        a, b, turn = rng.uniform(3.5, 5.5), rng.uniform(2.5, 4), rng.uniform(0, np.pi)
        u = ((xx - cx) * np.cos(turn) + (yy - cy) * np.sin(turn)) / a
        v = (-(xx - cx) * np.sin(turn) + (yy - cy) * np.cos(turn)) / b
        inside = u * u + v * v <= 1
        texture = 1 + 0.3 * np.sin(xx / 1.5 + i) * np.cos(yy / 2)
        image += inside * rng.uniform(0.4, 1) * peak * (1 - 0.5 * (u * u + v * v)) * texture
        labels[inside] = i + 1
    return np.clip(np.round(image), 0, np.iinfo(dtype).max).astype(dtype), labels


def _file(path, image, labels, centres, ids=None):
    from napari_cellae.io.cellh5_writer import ObjectData, PositionData, write_cellh5

    ids = np.arange(1, len(centres) + 1) if ids is None else np.asarray(ids)
    boxes = []
    for i in ids:
        ys, xs = np.nonzero(labels == i)
        boxes.append([xs.min(), xs.max(), ys.min(), ys.max()])
    objects = ObjectData(
        time_idx=np.zeros(len(ids), np.int32),
        label_id=ids.astype(np.int32),
        center_x=centres[:, 1].astype(np.int32),
        center_y=centres[:, 0].astype(np.int32),
        bbox=np.asarray(boxes, np.int32),
    )
    position = PositionData(
        "p", "A01", "1", image[None, None, None], {"cells": objects}, labels[None, None, None]
    )
    return write_cellh5(path, [position], ["dna"], {"cells": 0})


def _recommended():
    from napari_cellae.core.config import TrainConfig
    from napari_cellae.core.model_file import TrainedModel

    torch.manual_seed(0)
    config = TrainConfig.from_preset("recommended", crop_size=_BOX, architecture=ARCH)
    model = ConvAutoencoder(ARCH, _BOX, 1).eval()
    return TrainedModel(model, config, Normalisation([0.0], [4095.0], per_cell=True), ["dna"])


def _features(trained, path) -> tuple[np.ndarray, np.ndarray]:
    """All features of the file's cells (learned, brightness, outline) and the crops."""
    from napari_cellae.core.crops import collect_crops
    from napari_cellae.core.features import with_outline
    from napari_cellae.io.cellh5 import CellH5

    with CellH5(path) as ch5:
        crops = collect_crops(ch5, "cells", _BOX, mask=trained.config.mask)
    return with_outline(trained, encode(trained, crops), crops.morphology), crops.crops


def _turned(a: np.ndarray, k: int, mirror: bool) -> np.ndarray:
    a = np.rot90(a, k, axes=(-2, -1))
    return np.ascontiguousarray(a[..., ::-1] if mirror else a)


@pytest.mark.parametrize(
    ("k", "mirror"), [(1, False), (2, False), (3, False), (0, True), (1, True)]
)
def test_a_turned_or_mirrored_image_gives_its_cells_the_same_features(tmp_path, k, mirror):
    # Crops are even (the pools halve them) and a cell's centre pixel is size // 2, half a
    # pixel past the box's middle: in the turned image that pixel lies on another side of
    # the middle, so its crops are the original crops of centres moved by up to one pixel
    # (the convention, README) and must give exactly those cells' features.
    image, labels = _cells()
    trained = _recommended()
    marks = np.zeros((len(_CENTRES), _H, _W), bool)
    marks[np.arange(len(_CENTRES)), _CENTRES[:, 0], _CENTRES[:, 1]] = True
    moved = np.array([np.argwhere(m)[0] for m in _turned(marks, k, mirror)])
    turned, crops = _features(
        trained,
        _file(tmp_path / "t.ch5", _turned(image, k, mirror), _turned(labels, k, mirror), moved),
    )
    centre = np.zeros((_BOX, _BOX), bool)
    centre[_BOX // 2, _BOX // 2] = True
    back = centre[:, ::-1] if mirror else centre
    shift = _BOX // 2 - np.argwhere(np.rot90(back, -k))[0]  # the window moved
    assert np.abs(shift).max() <= 1
    original, expected = _features(
        trained, _file(tmp_path / "o.ch5", image, labels, _CENTRES + shift)
    )
    unturned = crops[..., ::-1] if mirror else crops
    np.testing.assert_array_equal(np.rot90(unturned, -k, axes=(2, 3)), expected)
    np.testing.assert_allclose(turned, original, rtol=1e-5, atol=1e-6)


def test_gain_and_offset_change_only_the_brightness(tmp_path):
    image, labels = _cells()
    trained = _recommended()
    names = feature_names(trained) + ["outline"] * 5
    bright = np.array([n.startswith("brightness_") for n in names])
    # float pixels: the painted background level is the median as is (integer crops round
    # it to a whole count, half a count off where the median is midway between two)
    base, _ = _features(
        trained, _file(tmp_path / "a.ch5", image.astype(np.float32), labels, _CENTRES)
    )
    for gain, offset in [(1.7, 0.0), (1e-3, 0.0), (1.0, -80.0), (2.5, 1000.0)]:
        pixels = (image.astype(np.float64) * gain + offset).astype(np.float32)
        changed, _ = _features(trained, _file(tmp_path / "b.ch5", pixels, labels, _CENTRES))
        np.testing.assert_allclose(changed[:, ~bright], base[:, ~bright], rtol=2e-3, atol=2e-4)
        # brightness is log1p of the cell's own range: the range times the gain
        expected = np.log1p(gain * np.expm1(base[:, bright].astype(np.float64)))
        np.testing.assert_allclose(changed[:, bright], expected, rtol=1e-4)


def test_8_bit_pixels_stored_wider_or_scaled_to_12_bit_give_the_same_features(tmp_path):
    image, labels = _cells(np.uint8, peak=180.0)
    trained = _recommended()
    bright = np.array([n.startswith("brightness_") for n in feature_names(trained)] + [False] * 5)
    eight, _ = _features(trained, _file(tmp_path / "a.ch5", image, labels, _CENTRES))
    for dtype in (np.uint16, np.int16):
        same, _ = _features(
            trained, _file(tmp_path / "b.ch5", image.astype(dtype), labels, _CENTRES)
        )
        np.testing.assert_array_equal(same, eight)
    # x16 in 12 bits: as the 8-bit values in float (neither rounds the painted level)
    floats, _ = _features(
        trained, _file(tmp_path / "f.ch5", image.astype(np.float32), labels, _CENTRES)
    )
    twelve, _ = _features(
        trained, _file(tmp_path / "c.ch5", image.astype(np.uint16) * 16, labels, _CENTRES)
    )
    np.testing.assert_allclose(twelve[:, ~bright], floats[:, ~bright], rtol=2e-3, atol=2e-4)


def test_moving_the_image_or_removing_far_neighbours_leaves_a_cell_alone(tmp_path):
    image, labels = _cells()
    trained = _recommended()
    base, crops = _features(trained, _file(tmp_path / "a.ch5", image, labels, _CENTRES))
    inner = [0, 1, 2, 3]  # boxes inside the image
    # the whole image moved by whole pixels, onto a canvas of the same noise
    canvas = np.round(100 + np.random.default_rng(9).normal(0, 5, (_H + 9, _W + 9)))
    canvas, canvas_labels = canvas.astype(np.uint16), np.zeros(canvas.shape, np.uint16)
    canvas[7 : 7 + _H, 2 : 2 + _W] = image
    canvas_labels[7 : 7 + _H, 2 : 2 + _W] = labels
    moved, _ = _features(
        trained, _file(tmp_path / "m.ch5", canvas, canvas_labels, _CENTRES + np.array([7, 2]))
    )
    np.testing.assert_array_equal(moved[inner], base[inner])
    # cell 3 with neighbour 2 removed, which is in its box but does not touch its rim
    from scipy import ndimage

    rim = ndimage.binary_dilation(labels == 3, np.ones((3, 3)), iterations=2)
    gone = labels == 2
    assert not (rim & gone).any() and gone[22:38, 16:32].any()
    alone = np.where(
        gone, np.round(100 + np.random.default_rng(2).normal(0, 5, image.shape)), image
    )
    ids = [1, 3, 4, 5, 6, 7]
    left, left_crops = _features(
        trained,
        _file(
            tmp_path / "n.ch5",
            alone.astype(np.uint16),
            np.where(gone, 0, labels).astype(np.uint16),
            _CENTRES[[0, 2, 3, 4, 5, 6]],
            ids,
        ),
    )
    np.testing.assert_array_equal(left_crops[1], crops[2])
    np.testing.assert_array_equal(left[1], base[2])


def test_a_cell_whose_box_leaves_the_image_but_not_its_rim_keeps_its_features(tmp_path):
    # The part of the box outside the image holds the crop's background level: with only
    # the cell and its rim shown, the crop is that of the same cell inside the image.
    from scipy import ndimage

    image, labels = _cells()
    trained = _recommended()
    base, crops = _features(trained, _file(tmp_path / "a.ch5", image, labels, _CENTRES))
    rim = np.argwhere(ndimage.binary_dilation(labels == 1, np.ones((3, 3)), iterations=2))
    top, left = rim.min(axis=0)  # the image moved so that the rim touches its edges
    assert _CENTRES[0, 0] - top < _BOX // 2 and _CENTRES[0, 1] - left < _BOX // 2
    for dy, dx in [(-top, 0), (0, -left), (-top, -left)]:
        moved = [np.roll(a, (dy, dx), axis=(0, 1)) for a in (image, labels)]
        cell = _CENTRES[:1] + np.array([dy, dx])
        features, moved_crops = _features(trained, _file(tmp_path / "b.ch5", *moved, cell))
        np.testing.assert_array_equal(moved_crops[0], crops[0])
        np.testing.assert_allclose(features[0], base[0], rtol=1e-4, atol=1e-6)  # 1 vs 7 cells
