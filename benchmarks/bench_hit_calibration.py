"""Are the hit list's p- and q-values calibrated? Simulated screens, printed side by side.

Each screen has ``W`` control wells and treated wells of ``n`` cells. Every well's cells
have normal novelty scores around a well mean that varies from well to well by ``tau``
(0: wells differ by chance alone; 0.1 and 0.25: some 3 and 7 points of the novel share,
as a plate's edge, seeding or staining make them); a cell is novel above the control
cells' 80th percentile, as ``cellae encode`` decides. Treated wells are drawn like the
control wells (null wells), or with 10, 20 or 30 points more novel cells (hit wells).

Two tests of each well against the control wells, side by side:

- ``plug-in``: the beta-binomial with the control wells' rate and spread taken as known
  (as the hit list had it before; computed here);
- ``product``: :func:`napari_cellae.core.hit_p_values.enrichment_p_values` as it is
  (the rate's uncertainty counted, the spread's law over its W - 1 degrees of freedom).

Columns: ``p<.05`` the share of null wells with p below 0.05 (0.05 if calibrated, below if
cautious); ``q<.05`` the share of null wells with q below 0.05; ``any`` the share of
screens of null wells only with any q below 0.05 (Benjamini-Hochberg keeps it at or
below 0.05); ``power +10/+20/+30`` the share of hit wells with q below 0.05 in screens of
60 null and 20 hit wells. q is over the treated wells.

Measured (40 screens a setting, 399 s): with wells differing (tau 0.1, 0.25) and 200 or
2,000 cells, plug-in p < 0.05 in 5.6-24 % of null wells and a false q in 15-57 % of the
screens; product 2.3-11 % (the most with 2 control wells) and 0-10 %. Without (tau 0)
the product is cautious (p < 0.05 in 0.2-3.6 %). Power, 20 points more, 200 cells, tau 0:
plug-in 0.99-1.00; product 0.12 / 0.74 / 0.97 / 1.00 with 2 / 4 / 8 / 16 control wells.

Run: ``python benchmarks/bench_hit_calibration.py [--screens 40] [--quick]`` (some
minutes; ``--quick``: fewer screens and settings, seconds).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from napari_cellae.core.hit_p_values import enrichment_p_values
from napari_cellae.core.hit_statistics import q_values

PERCENTILE = 80


def screen(rng: np.random.Generator, controls: int, null: int, hits: int, cells: int,
           tau: float, extra: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """One simulated screen: (novel, wells, controls) per cell; wells in the order
    control, null, hit. Counts are drawn directly from each well's rate above the bar
    (the same law as drawing every cell's score)."""
    n_wells = controls + null + hits
    mean = rng.normal(0.0, tau, n_wells)
    control_scores = rng.normal(mean[:controls, None], 1.0, (controls, cells))
    bar = np.percentile(control_scores, PERCENTILE)
    rate = stats.norm.sf(bar - mean[controls:])
    rate[null:] = np.clip(rate[null:] + extra, 0.0, 1.0)
    k = np.concatenate([(control_scores > bar).sum(axis=1), rng.binomial(cells, rate)])
    wells = np.repeat(np.arange(n_wells), cells)
    novel = (np.arange(cells)[None, :] < k[:, None]).ravel()
    return novel, wells, wells < controls


def plug_in(
    novel: np.ndarray, groups: np.ndarray, controls: np.ndarray, wells: np.ndarray
) -> np.ndarray:
    """Each well's one-sided p (``groups`` are the wells here) against the control wells'
    pooled rate and method-of-moments overdispersion, both taken as known (NaN for the
    control wells)."""
    n = np.bincount(wells).astype(float)
    k = np.bincount(wells, weights=novel)
    control = np.bincount(wells, weights=controls) == n
    big_k, big_n = k[control].sum(), n[control].sum()
    rate = big_k / big_n if 0 < big_k < big_n else (big_k + 0.5) / (big_n + 1)
    rho = 0.0
    if control.sum() > 1 and 0 < big_k < big_n:
        mean_n = n[control].mean()
        excess = np.var(k[control] / n[control], ddof=1) / (rate * (1 - rate)) - 1 / mean_n
        rho = float(np.clip(excess / (1 - 1 / mean_n), 0.0, 0.5))
    if rho <= 1e-9:
        p = stats.binom.sf(k - 1, n, rate)
    else:
        s = 1 / rho - 1
        p = stats.betabinom.sf(k - 1, n, rate * s, (1 - rate) * s)
    return np.where(control, np.nan, p)


TESTS = {"plug-in": plug_in, "product": enrichment_p_values}


def null_rates(rng, controls, cells, tau, screens, null=40) -> dict[str, tuple[float, ...]]:
    """Per test: share of null wells with p < 0.05, with q < 0.05, screens with any."""
    counts = {name: np.zeros(3) for name in TESTS}
    for _ in range(screens):
        novel, wells, is_control = screen(rng, controls, null, 0, cells, tau, 0.0)
        for name, test in TESTS.items():
            p = test(novel, wells, is_control, wells)[controls:]
            q = q_values(p)
            counts[name] += [np.mean(p < 0.05), np.mean(q < 0.05), (q < 0.05).any()]
    return {name: tuple(c / screens) for name, c in counts.items()}


def power(rng, controls, cells, tau, extra, screens, null=60, hits=20) -> dict[str, float]:
    """Per test: share of hit wells with q < 0.05 (q over null and hit wells)."""
    found = dict.fromkeys(TESTS, 0.0)
    for _ in range(screens):
        novel, wells, is_control = screen(rng, controls, null, hits, cells, tau, extra)
        for name, test in TESTS.items():
            q = q_values(test(novel, wells, is_control, wells)[controls:])
            found[name] += np.mean(q[null:] < 0.05)
    return {name: value / screens for name, value in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--screens", type=int, default=40, help="screens per setting (40)")
    parser.add_argument("--quick", action="store_true", help="few screens and settings")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    screens = 4 if args.quick else args.screens
    taus = (0.0, 0.25) if args.quick else (0.0, 0.1, 0.25)
    sizes = (200,) if args.quick else (20, 200, 2000)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    print(f"{screens} screens per setting; null: p<.05 / q<.05 / any; power +10/+20/+30")
    for tau in taus:
        for controls in (2, 4, 8, 16):
            for cells in sizes:
                rates = null_rates(rng, controls, cells, tau, screens)
                powers = [power(rng, controls, cells, tau, e, screens) for e in (0.1, 0.2, 0.3)]
                line = f"tau {tau:4.2f}  W {controls:2d}  n {cells:4d} |"
                for name in TESTS:
                    null = "/".join(f"{r:.3f}" for r in rates[name][:2])
                    found = "/".join(f"{p[name]:.2f}" for p in powers)
                    line += f" {name} {null}/{rates[name][2]:.2f} power {found} |"
                print(line, flush=True)
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
