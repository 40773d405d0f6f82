"""A second synthetic screen, drawn by a model written apart from the product's own.

``cellae make-screen`` and the bundled demo draw nuclei with the project's own model of
what cells look like, so features tuned on them may only have learned that model. This
screen is drawn independently, from other primitives: every nucleus is a star-shaped
outline (a radius that varies with the angle by a few harmonics) filled with a dome of
light, chromatin texture of filtered noise and dark nucleoli; mitotic cells are clusters of
small bright chromosome blobs, apoptotic cells a few bright fragments. Seven phenotypes
(interphase, mitotic, apoptotic, large, elongated, binuclear, lobed) at arbitrary angles,
12-bit, with per-well density, gain, background, vignetting and blur drawn independently of
the condition; label images from the drawn outlines. Eight control wells, sixteen perturbed
ones (strong and weak hits). ``bench_quality.py --screen FILE --mapping MAPPING`` scores
features on it. Usage::

    python benchmarks/independent_screen.py OUT_DIR [--seed 0] [--cells-per-well 150]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_cellae.demo.layout import (
    Condition,
    RenderedPosition,
    WellSpec,
    write_mapping,
    write_screen,
)

PHENOTYPES = ("interphase", "mitotic", "apoptotic", "large", "elongated", "binuclear", "lobed")
CONTROL = (0.88, 0.03, 0.02, 0.02, 0.02, 0.02, 0.01)
# (gene, enriched phenotypes and their shares); strong hits 40-60 %, weak ones 15-25 %.
HITS = (
    ("MIT1", {"mitotic": 0.5}),
    ("MIT2", {"mitotic": 0.2}),
    ("APO1", {"apoptotic": 0.45}),
    ("APO2", {"apoptotic": 0.2, "mitotic": 0.05}),
    ("LRG1", {"large": 0.55}),
    ("LRG2", {"large": 0.2}),
    ("ELO1", {"elongated": 0.5}),
    ("ELO2", {"elongated": 0.2}),
    ("BIN1", {"binuclear": 0.45}),
    ("BIN2", {"binuclear": 0.15, "large": 0.1}),
    ("LOB1", {"lobed": 0.5}),
    ("LOB2", {"lobed": 0.2}),
    ("MIX1", {"mitotic": 0.25, "apoptotic": 0.25}),
    ("MIX2", {"elongated": 0.15, "lobed": 0.15}),
    ("MIX3", {"large": 0.15, "binuclear": 0.1}),
    ("MIX4", {"mitotic": 0.1, "lobed": 0.1}),
)
PATCH = 72  # pixels drawn around every cell
LEVEL = 900.0  # counts of an interphase nucleus's centre at gain 1
SPACING = 19.0  # least distance between two cells' centres: touching, a little overlap


def _fractions(enriched: dict[str, float]) -> tuple[float, ...]:
    rest = 1.0 - sum(enriched.values())
    return tuple(rest * c + enriched.get(p, 0.0) for p, c in zip(PHENOTYPES, CONTROL, strict=True))


def layout() -> list[WellSpec]:
    """8 control wells and the 16 perturbed ones, shuffled over a 4 x 6 plate."""
    conditions = [Condition("neg", f"n{i}", "neg", _fractions({})) for i in range(8)]
    conditions += [Condition(g, f"s{i}", "target", _fractions(e)) for i, (g, e) in enumerate(HITS)]
    order = np.random.default_rng(12345).permutation(len(conditions))
    wells = [f"{'ABCD'[i // 6]}{i % 6 + 1:02d}" for i in range(len(conditions))]
    return [WellSpec(wells[i], "1", conditions[j]) for i, j in enumerate(order)]


def _star(rng, yy, xx, radius, aspect, harmonics, amplitude):
    """Soft inside (0-1) of a star-shaped outline and the normalised radius of each pixel."""
    turn = rng.uniform(0, 2 * math.pi)
    c, s = math.cos(turn), math.sin(turn)
    u, v = (xx * c + yy * s) / math.sqrt(aspect), (-xx * s + yy * c) * math.sqrt(aspect)
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    edge = np.ones_like(theta)
    for k in harmonics:
        edge += amplitude * rng.uniform(0.5, 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    edge *= radius
    return 1 / (1 + np.exp(-(edge - rho) / 0.6)), rho / edge


def _texture(rng, shape, sigma, contrast):
    noise = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return 1 + contrast * noise / (noise.std() + 1e-9)


def _blobs(rng, yy, xx, centres, sigma, heights):
    out = np.zeros_like(yy)
    for (cy, cx), h in zip(centres, heights, strict=True):
        out += h * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    return out


def draw_cell(rng: np.random.Generator, phenotype: str) -> tuple[np.ndarray, np.ndarray]:
    """Light (counts at gain 1) and mask of one cell, centred in a PATCH x PATCH patch."""
    half = (PATCH - 1) / 2
    yy, xx = np.mgrid[0:PATCH, 0:PATCH] - half
    radius = rng.normal(10.5, 1.3)

    def interphase(r, aspect=None, harmonics=(2, 3), amplitude=0.05):
        aspect = rng.uniform(1, 1.35) if aspect is None else aspect
        inside, rho = _star(rng, yy, xx, r, aspect, harmonics, amplitude)
        dome = 0.75 + 0.25 * np.clip(1 - rho**2, 0, 1)
        spots = [rng.uniform(-0.5, 0.5, 2) * r for _ in range(rng.integers(1, 4))]
        nucleoli = 1 - 0.35 * _blobs(rng, yy, xx, spots, 1.6, np.ones(len(spots)))
        light = LEVEL * inside * dome * nucleoli * _texture(rng, yy.shape, 1.2, 0.12)
        return light, inside

    if phenotype == "interphase":
        light, inside = interphase(radius)
    elif phenotype == "large":
        light, inside = interphase(radius * rng.uniform(1.3, 1.6))
        light *= 0.6  # the same DNA over a larger area
    elif phenotype == "elongated":
        light, inside = interphase(radius * 0.95, aspect=rng.uniform(1.8, 3.0))
    elif phenotype == "lobed":
        lobes = tuple(rng.choice([3, 4, 5], 2))
        light, inside = interphase(radius * 1.05, harmonics=lobes, amplitude=rng.uniform(0.2, 0.35))
    elif phenotype == "binuclear":
        offset = rng.uniform(7.5, 9.5)
        turn = rng.uniform(0, 2 * math.pi)
        light, inside = np.zeros_like(yy), np.zeros_like(yy)
        for sign in (-1, 1):
            shift = (sign * offset * math.sin(turn), sign * offset * math.cos(turn))
            part, soft = interphase(radius * 0.78)
            light += ndimage.shift(part, shift, order=1)
            inside = np.maximum(inside, ndimage.shift(soft, shift, order=1))
    elif phenotype == "mitotic":
        r = radius * rng.uniform(0.7, 0.85)
        inside, _ = _star(rng, yy, xx, r, rng.uniform(1, 1.6), (3, 4, 5, 6), 0.12)
        n = rng.integers(25, 45)
        angle, dist = rng.uniform(0, 2 * np.pi, n), r * np.sqrt(rng.uniform(0, 0.8, n))
        spots = np.c_[dist * np.sin(angle), dist * np.cos(angle)]
        chromosomes = _blobs(rng, yy, xx, spots, 1.1, rng.uniform(0.8, 1.2, n))
        light = LEVEL * inside * (0.5 + 1.6 * chromosomes / chromosomes.max())
    elif phenotype == "apoptotic":
        n = rng.integers(3, 7)
        angle, dist = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 7, n)
        light, inside = np.zeros_like(yy), np.zeros_like(yy)
        for a, d in zip(angle, dist, strict=True):
            r = rng.uniform(2.2, 3.8)
            soft = 1 / (1 + np.exp(-(r - np.hypot(yy - d * np.sin(a), xx - d * np.cos(a))) / 0.5))
            light += 2.4 * LEVEL * soft
            inside = np.maximum(inside, soft)
    else:
        raise ValueError(phenotype)
    return light * rng.lognormal(0, 0.15), inside > 0.5


def render_well(seed: int, index: int, spec: WellSpec, n_mean: int) -> RenderedPosition:
    """Draw one well: its cells, then the well's own gain, background, vignetting, blur."""
    rng = np.random.default_rng([seed, index])
    density = rng.uniform(0.5, 1.8)
    n = max(1, rng.poisson(n_mean))
    side = int(math.sqrt(n * 1500 / density))
    classes = rng.choice(len(PHENOTYPES), n, p=np.array(spec.condition.fractions) / 1)
    signal = np.zeros((side + PATCH, side + PATCH))
    labels = np.zeros(signal.shape, np.uint16)
    centres: list[tuple[float, float]] = []
    for _cell in classes:
        for _ in range(30):  # touching is fine, mostly covering another cell is not
            cy, cx = rng.uniform(0, side, 2) + PATCH / 2
            if all(math.hypot(cy - y, cx - x) > SPACING for y, x in centres):
                break
        centres.append((cy, cx))
    rows = []
    for label, ((cy, cx), cls) in enumerate(zip(centres, classes, strict=True), start=1):
        light, inside = draw_cell(rng, PHENOTYPES[cls])
        top, left = int(cy - PATCH / 2), int(cx - PATCH / 2)
        window = (slice(top, top + PATCH), slice(left, left + PATCH))
        signal[window] += light
        labels[window][inside] = label  # the later cell lies on top
    crop = (slice(PATCH // 2, PATCH // 2 + side),) * 2
    signal, labels = signal[crop], labels[crop]
    yy, xx = np.mgrid[0:side, 0:side] / side - 0.5
    vignette = 1 - rng.uniform(0, 0.45) * (yy**2 + xx**2) * 2
    signal = ndimage.gaussian_filter(signal, rng.uniform(0.3, 1.6)) * vignette
    counts = rng.uniform(100, 400) + rng.uniform(0.6, 1.7) * signal
    counts = rng.normal(counts, np.sqrt(0.5 * counts + 16))
    image = np.clip(np.rint(counts), 0, 4095).astype(np.uint16)
    for label in range(1, len(centres) + 1):
        ys, xs = np.nonzero(labels == label)
        if len(ys) < 20:  # hidden by neighbours or cut by the border: not segmented
            labels[labels == label] = 0
            continue
        cy, cx = ys.mean(), xs.mean()
        cov = np.cov(np.c_[xs, ys].T) + 1e-9 * np.eye(2)
        evals, evecs = np.linalg.eigh(cov)
        angle = math.atan2(evecs[1, 1], evecs[0, 1])
        angle = (angle + math.pi / 2) % math.pi - math.pi / 2
        ecc = math.sqrt(max(0.0, 1 - evals[0] / evals[1]))
        box = (xs.min(), xs.max(), ys.min(), ys.max())
        rows.append((0, label, round(cx), round(cy), *box, angle, ecc, int(classes[label - 1])))
    return RenderedPosition.from_rows(image[None, None, None], labels[None, None, None], rows)


def make_screen(out: Path, seed: int = 0, cells_per_well: int = 150) -> tuple[Path, Path]:
    """Write the screen and its mapping into ``out``; return both paths."""
    out.mkdir(parents=True, exist_ok=True)
    wells = layout()
    rendered = [render_well(seed, i, spec, cells_per_well) for i, spec in enumerate(wells)]
    colours = ["#FFFFFF", "#00FF00", "#FF0000", "#0000FF", "#FFFF00", "#00FFFF", "#FF00FF"]
    ch5 = write_screen(
        out / "independent_screen.ch5",
        wells,
        rendered,
        plate="independent",
        channel_name="H2B",
        object_name="primary__primary",
        class_labels=[(i, p, colours[i]) for i, p in enumerate(PHENOTYPES)],
    )
    return ch5, write_mapping(out / "independent_screen_mapping.txt", wells)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cells-per-well", type=int, default=150)
    args = parser.parse_args(argv)
    for path in make_screen(args.out, args.seed, args.cells_per_well):
        print(path)


if __name__ == "__main__":
    main()
