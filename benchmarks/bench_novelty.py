"""Novelty scoring of a whole screen: every control cell as the reference, or a sample.

Every cell is compared with every reference cell, so with all control cells as the
reference the time grows with cells x control cells: the square of the screen. Above
``_MAX_REFERENCE`` control cells the product draws a seeded sample of them. This script
scores synthetic screens (a share of control wells, a few perturbed wells whose cells are
shifted) both ways and prints time, the growth from one size to the next, and how far the
sampled scores agree with the full ones (Spearman r, and the AUROC of shifted cells against
control cells). Usage::

    python benchmarks/bench_novelty.py [--cells 100000 300000] [--features 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from napari_cellae.core import novelty


def screen(n: int, features: int, seed: int = 0):
    """Cells of 100-cell wells, 30 % of the wells controls; every tenth other well a hit."""
    rng = np.random.default_rng(seed)
    wells = np.arange(n) // 100
    controls = wells % 10 < 3
    hit = (wells % 10 == 5) & (rng.random(n) < 0.5)
    x = rng.normal(size=(n, features)).astype(np.float32)
    x[hit, : features // 4] += 1.5
    return x, controls, wells, hit


def timed(x, controls, wells, cap: int) -> tuple[np.ndarray, float]:
    novelty._MAX_REFERENCE = cap
    start = time.perf_counter()
    scores = novelty.novelty_scores(x, controls, wells).scores
    return scores, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--features", type=int, default=32)
    args = parser.parse_args()
    product = novelty._MAX_REFERENCE
    print(f"{'cells':>9}{'controls':>10}{'all controls':>14}{'sample':>9}{'ratio':>7}"
          f"{'r':>7}{'AUROC all':>11}{'sample':>8}")  # fmt: skip
    before = None
    for n in args.cells:
        x, controls, wells, hit = screen(n, args.features)
        full, t_full = timed(x, controls, wells, 10**12)
        part, t_part = timed(x, controls, wells, product)
        truth = np.r_[np.ones(hit.sum()), np.zeros(controls.sum())]
        auroc = [roc_auc_score(truth, np.r_[s[hit], s[controls]]) for s in (full, part)]
        print(
            f"{n:>9,}{int(controls.sum()):>10,}{t_full:>13.1f}s{t_part:>8.1f}s"
            f"{t_full / t_part:>7.1f}{spearmanr(full, part).statistic:>7.3f}"
            f"{auroc[0]:>11.3f}{auroc[1]:>8.3f}"
        )
        if before is not None:
            grow = np.log(n / before[0])
            full_exp, part_exp = (
                np.log(t / b) / grow for t, b in ((t_full, before[1]), (t_part, before[2]))
            )
            print(
                f"   growth exponent, x{n / before[0]:.1f} cells: all controls {full_exp:.2f}, "
                f"sample {part_exp:.2f}"
            )
        before = (n, t_full, t_part)
    novelty._MAX_REFERENCE = product
    print(f"   sample: {product:,} control cells (novelty._MAX_REFERENCE)")


if __name__ == "__main__":
    main()
