"""2-D maps of the features (napari_cellae.core.features.embed_2d): UMAP and PCA."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from napari_cellae.core.features import DEFAULT_EMBEDDING, EMBEDDING_METHODS, embed_2d


def _clusters(n_per: int = 60, dims: int = 30, seed: int = 0):
    """Four tight clusters, two of them close together, plus one dominant noise feature
    that a PCA of the raw features would follow instead of the clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.0, (4, dims))
    centres[1] = centres[0] + 0.8
    labels = np.repeat(np.arange(4), n_per)
    x = centres[labels] + rng.normal(0, 0.15, (len(labels), dims))
    x[:, 0] = rng.normal(0, 20.0, len(labels))  # large-variance noise
    return x.astype(np.float32), labels


def _pairs(n_per: int = 40, dims: int = 30, seed: int = 0):
    """Three pairs of tight clusters, each pair's two close together: two principal axes
    cannot keep six clusters apart, a neighbourhood map can."""
    rng = np.random.default_rng(seed)
    centres = np.repeat(rng.normal(0, 1.0, (3, dims)), 2, axis=0)
    centres[1::2] += 1.5 * rng.normal(0, 1.0, (3, dims)) / np.sqrt(dims)
    labels = np.repeat(np.arange(6), n_per)
    x = centres[labels] + rng.normal(0, 0.15, (len(labels), dims))
    return x.astype(np.float32), labels


def _separation(embedding: np.ndarray, labels: np.ndarray) -> float:
    return cross_val_score(KNeighborsClassifier(5), embedding, labels, cv=4).mean()


def test_umap_is_the_default_map_and_separates_what_pca_mixes() -> None:
    assert DEFAULT_EMBEDDING == "umap" and set(EMBEDDING_METHODS) == {"umap", "pca"}
    x, labels = _pairs()
    umap = embed_2d(x, "umap", seed=0)
    assert umap.shape == (len(x), 2) and umap.dtype == np.float32
    assert np.all(np.isfinite(umap))
    assert _separation(umap, labels) > 0.95
    assert _separation(embed_2d(x, "pca"), labels) < 0.85  # pairs overlap in two axes
    np.testing.assert_array_equal(embed_2d(x, "umap", seed=0), umap)  # seeded


def test_pca_standardises_so_a_feature_in_large_units_does_not_rule_the_map() -> None:
    # A feature in pixels (an outline's area) beside learned ones of about one unit: the
    # map of centred features followed it alone.
    x, labels = _clusters()
    assert _separation(embed_2d(x, "pca"), labels) > 0.95
    centred = x - x.mean(0)
    first_axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    assert abs(first_axis[0]) > 0.99  # what a PCA of the centred features would show


def test_umap_fits_a_subset_and_places_the_rest_by_it() -> None:
    x, labels = _clusters(n_per=50)
    full = embed_2d(x, "umap", seed=1, max_fit=120)
    assert full.shape == (200, 2) and np.all(np.isfinite(full))
    # The cells not fitted land among the fitted cells of their own cluster.
    assert _separation(full, labels) > 0.95
    with pytest.raises(ValueError, match="max_fit"):
        embed_2d(x, "umap", max_fit=1)


def test_pca_with_a_fitting_subset_matches_a_full_fit_on_clean_data() -> None:
    rng = np.random.default_rng(3)
    latent = rng.normal(size=(400, 2)) * np.array([3.0, 1.5])  # two factors behind 5 features
    x = latent @ rng.normal(size=(2, 5)) + 0.1 * rng.normal(size=(400, 5))
    full = embed_2d(x, "pca")
    part = embed_2d(x, "pca", max_fit=300)
    assert np.corrcoef(full[:, 0], part[:, 0])[0, 1] > 0.99


@pytest.mark.parametrize("n", [1, 2, 4, 5, 8])
def test_umap_on_a_handful_of_cells_never_fails_or_gives_nan(n: int) -> None:
    x = np.random.default_rng(n).normal(size=(n, 6))
    out = embed_2d(x, "umap")
    assert out.shape == (n, 2) and np.all(np.isfinite(out))


def test_umap_degenerate_inputs() -> None:
    assert embed_2d(np.zeros((0, 5)), "umap").shape == (0, 2)
    assert np.all(embed_2d(np.full((30, 3), 7.0), "umap") == 0)  # nothing to lay out
    twins = np.repeat(np.random.default_rng(0).normal(size=(4, 6)), 10, axis=0)
    assert np.all(np.isfinite(embed_2d(twins, "umap")))
    with pytest.raises(ValueError, match="NaN"):
        embed_2d(np.array([[np.nan, 1.0]] * 10), "umap")
    with pytest.raises(ValueError, match="unknown embedding method 'tsne'"):
        embed_2d(np.ones((10, 3)), "tsne")


def test_bench_embedding_runs() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_embedding.py"
    done = subprocess.run(
        [sys.executable, str(script), "--sizes", "300", "--blas-threads", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "first UMAP call in a process" in done.stdout
    assert "      300 |" in done.stdout and "UMAP 5-NN" in done.stdout


@pytest.mark.parametrize("method", ["pca", "umap"])
def test_cells_placed_in_blocks_land_where_one_pass_puts_them(method, monkeypatch):
    from napari_cellae.core import features as features_module

    x, _ = _clusters()
    whole = embed_2d(x, method, seed=0, max_fit=100)  # 140 of 240 cells placed by the fit
    monkeypatch.setattr(features_module, "_BLOCK", 37)
    blocks = embed_2d(x, method, seed=0, max_fit=100)
    np.testing.assert_allclose(blocks, whole, rtol=1e-6, atol=1e-6)
