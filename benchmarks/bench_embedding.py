"""How long the 2-D maps take: PCA vs UMAP, for a demo-sized and a large screen.

Synthetic features: 12 phenotypes as Gaussian clusters in 150 dimensions (about the width of
the pooled readout), of unequal size and spread, so that the map has something to separate.
For each size it prints PCA and UMAP side by side: wall time and how well the 2-D map keeps
the phenotypes apart (5-nearest-neighbour accuracy of the phenotype in the map, on a random
5,000 cells, 5-fold). UMAP's first call in a process compiles numba kernels; that cost is
measured apart (on 500 cells) before the timed runs.

Run: ``python benchmarks/bench_embedding.py`` (``--sizes 2500 100000`` by default;
``--quick`` for 1,000 cells only; ``--blas-threads 1`` when other jobs share the cores:
OpenBLAS threads that spin while their core is taken made a 2,500-cell PCA 100x slower
here).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from napari_cellae.core.features import MAX_EMBED_FIT, embed_2d


def synthetic_features(n: int, dims: int = 150, classes: int = 12, seed: int = 0):
    """Features of ``n`` cells in ``classes`` clusters of unequal size and spread."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(classes, 2.0))
    labels = rng.choice(classes, size=n, p=weights)
    centres = rng.normal(0.0, 1.0, size=(classes, dims))
    spread = rng.uniform(0.6, 1.4, size=classes)
    x = centres[labels] + rng.normal(size=(n, dims)) * spread[labels, None]
    return x.astype(np.float32), labels


def separation(embedding: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """5-NN accuracy of the phenotype in the 2-D map (5-fold, on at most 5,000 cells)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(labels), size=min(5000, len(labels)), replace=False)
    scores = cross_val_score(KNeighborsClassifier(5), embedding[idx], labels[idx], cv=5)
    return float(scores.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2500, 100_000])
    parser.add_argument("--quick", action="store_true", help="1,000 cells only")
    parser.add_argument(
        "--blas-threads", type=int, default=None, help="limit BLAS/OpenMP threads (default: all)"
    )
    args = parser.parse_args()
    sizes = [1000] if args.quick else args.sizes
    with contextlib.ExitStack() as stack:
        if args.blas_threads:
            stack.enter_context(threadpool_limits(args.blas_threads))
        print(f"BLAS/OpenMP threads: {args.blas_threads or 'library default'}")
        run(sizes)


def run(sizes: list[int]) -> None:
    """Time the import, the first (compiling) call, then PCA vs UMAP per size."""
    t0 = time.perf_counter()
    import umap  # noqa: F401  (the import alone loads numba and pynndescent)

    imported = time.perf_counter() - t0
    warm_x, _ = synthetic_features(500, seed=1)
    embed_2d(warm_x, "pca")  # loads scikit-learn, so the PCA rows time PCA alone
    t0 = time.perf_counter()
    embed_2d(warm_x, "umap")
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    embed_2d(warm_x, "umap")
    second = time.perf_counter() - t0
    print(f"import umap: {imported:.1f} s")
    print(
        f"first UMAP call in a process (500 cells, numba compiles): {first:.1f} s; "
        f"the same call again: {second:.1f} s"
    )
    print(f"maps are fitted on at most {MAX_EMBED_FIT:,} cells; the rest are placed by them\n")
    print(f"{'cells':>9} | {'PCA s':>7} {'PCA 5-NN':>9} | {'UMAP s':>7} {'UMAP 5-NN':>9} | ratio")
    for n in sizes:
        x, labels = synthetic_features(n)
        row = {}
        for method in ("pca", "umap"):
            t0 = time.perf_counter()
            emb = embed_2d(x, method, seed=0)
            row[method] = (time.perf_counter() - t0, separation(emb, labels))
        (tp, sp), (tu, su) = row["pca"], row["umap"]
        print(f"{n:>9,} | {tp:>7.2f} {sp:>9.1%} | {tu:>7.1f} {su:>9.1%} | UMAP {tu / tp:.0f}x")


if __name__ == "__main__":
    main()
