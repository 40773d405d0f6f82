"""Tiny training data shared by the trainer, optimisation and model-file tests."""

from __future__ import annotations

import numpy as np

from napari_cellae.core.config import TrainConfig

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
