"""UMAP maps made in a process of their own (napari_cellae.pipeline.map_process)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from napari_cellae.core.features import embed_2d
from napari_cellae.pipeline import map_process


def _features(n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(3)
    return (rng.normal(size=(n, 8)) + np.repeat(np.eye(8)[:3] * 4, n // 3, axis=0)).astype(
        np.float32
    )


def test_the_map_is_made_in_another_process_and_is_the_same_map() -> None:
    x = _features()
    apart = map_process.embed_apart(x)
    process = map_process._process
    assert process is not None and process.poll() is None and process.pid != os.getpid()
    np.testing.assert_array_equal(apart, embed_2d(x, "umap", 0))
    np.testing.assert_array_equal(map_process.embed_apart(x, "pca"), embed_2d(x, "pca", 0))
    # the process serves the next map too
    map_process.embed_apart(x[:150], seed=1)
    assert map_process._process is process


def test_its_errors_are_raised_as_embed_2d_raises_them() -> None:
    bad = _features()
    bad[4, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        map_process.embed_apart(bad)
    assert map_process.embed_apart(_features()).shape == (300, 2)  # and it goes on


def test_a_process_that_died_is_replaced_and_a_missing_one_made_up_for(monkeypatch) -> None:
    x = _features()
    map_process.embed_apart(x)
    map_process._process.kill()
    map_process._process.wait()
    np.testing.assert_array_equal(map_process.embed_apart(x), embed_2d(x, "umap", 0))

    def no_process(*args, **kwargs):
        raise OSError(24, "Too many open files")

    map_process._stop()
    monkeypatch.setattr(map_process.subprocess, "Popen", no_process)
    np.testing.assert_array_equal(map_process.embed_apart(x), embed_2d(x, "umap", 0))
