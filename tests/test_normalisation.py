"""Tests for napari_cellae.core.normalisation: per-channel ranges, scaling, round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cellae.core.normalisation import Normalisation


def test_normalisation_uint8_uint16_and_round_trip() -> None:
    rng = np.random.default_rng(0)
    for dtype, top in (("uint8", 255), ("uint16", 40000)):
        crops = rng.integers(0, top + 1, (500, 2, 8, 8)).astype(dtype)
        crops[:, 1] //= 4
        norm = Normalisation.from_crops(crops)
        assert len(norm.low) == 2
        assert norm.high[1] < norm.high[0]  # per-channel ranges
        assert norm.high[0] > 0.95 * top  # 16-bit range used, not 8-bit
        out = norm.apply(crops)
        assert out.dtype == np.float32
        assert out.min() == 0.0 and out.max() == 1.0
        tensor_out = norm.apply(torch.from_numpy(crops))
        np.testing.assert_allclose(tensor_out.numpy(), out, atol=1e-6)
        again = Normalisation.from_dict(norm.to_dict())
        assert again == norm


def test_normalisation_constant_and_errors() -> None:
    norm = Normalisation.from_crops(np.full((3, 1, 4, 4), 7, np.uint8))
    assert norm.high[0] > norm.low[0]
    assert (norm.apply(np.full((1, 1, 4, 4), 7, np.uint8)) == 0).all()
    with pytest.raises(ValueError, match="NaN"):
        Normalisation.from_crops(np.full((2, 1, 4, 4), np.nan, np.float32))
    with pytest.raises(ValueError, match="invalid normalisation"):
        Normalisation.from_dict({"low": [1.0], "high": [0.0]})
    with pytest.raises(ValueError, match="expected"):
        Normalisation(low=[0.0], high=[1.0]).apply(np.zeros((1, 2, 4, 4)))
