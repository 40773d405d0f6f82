"""Deterministic synthetic high-content screen with ground-truth phenotypes (the bundled demo).

The demo screen imitates a CellCognition analysis of a live-cell siRNA screen
imaged with a nuclear marker (H2B): one plate, one site per well, a few frames
per site, nuclei segmented as ``primary__primary`` and the true phenotype of every
nucleus stored as its classification. Negative-control wells hold mostly
interphase nuclei; perturbed wells hold mixed populations enriched for mitotic,
apoptotic or enlarged (polyploid) nuclei, as a real screen would.

Everything is drawn from :class:`numpy.random.Generator` instances seeded from
``seed`` and the position index, and the pixel model only uses arithmetic that
is exact in IEEE floating point where it matters (see :mod:`napari_cellae.demo.pixels`),
so the same seed gives the same arrays on every machine. The nuclei are drawn by
:mod:`napari_cellae.demo.nuclei`; files are written by :mod:`napari_cellae.demo.layout`.

Run ``python -m napari_cellae.demo.screen OUT_DIR [SEED]`` to write the files.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from napari_cellae.demo.layout import (
    Condition,
    ObjectRow,
    RenderedPosition,
    WellSpec,
    check_screen_outputs,
    write_mapping,
    write_screen,
)
from napari_cellae.demo.nuclei import new_nucleus, place_cells, render_nucleus
from napari_cellae.demo.pixels import measure_labels, smooth, standardise

__all__ = [
    "CH5_NAME",
    "CLASS_LABELS",
    "DEMO_LAYOUT",
    "DEMO_SEED",
    "MAPPING_NAME",
    "Condition",
    "RenderedPosition",
    "WellSpec",
    "demo_paths",
    "make_demo",
    "render_position",
    "write_mapping",
]

DEMO_SEED = 0
CH5_NAME = "demo_screen.ch5"
MAPPING_NAME = "demo_screen_mapping.txt"
PLATE = "demo_plate"
CHANNEL_NAME = "H2B"
OBJECT_NAME = "primary__primary"

# (label, name, colour) rows of the classifier definition; class_idx indexes this list
# (the order of napari_cellae.demo.nuclei's INTERPHASE, MITOTIC, APOPTOTIC, ENLARGED).
# Colour-blind-safe colours (export.palette's): green and red hid the mitotic cells among
# the interphase ones from red-green colour-blind users.
CLASS_LABELS: list[tuple[int, str, str]] = [
    (1, "interphase", "#009e73"),
    (2, "mitotic", "#d55e00"),
    (3, "apoptotic", "#cc79a7"),
    (4, "enlarged", "#e69f00"),
]

NEG = Condition("scrambled", "s_neg_01", "neg", (0.91, 0.05, 0.02, 0.02))
KIF11 = Condition("KIF11", "s7902", "target", (0.45, 0.50, 0.03, 0.02))
COPB1 = Condition("COPB1", "s3371", "target", (0.55, 0.03, 0.40, 0.02))
INCENP = Condition("INCENP", "s7424", "target", (0.44, 0.04, 0.02, 0.50))
PLK1 = Condition("PLK1", "s449", "target", (0.42, 0.30, 0.25, 0.03))

DEMO_LAYOUT: tuple[WellSpec, ...] = (
    WellSpec("A01", "1", NEG),
    WellSpec("A02", "1", KIF11),
    WellSpec("A03", "1", NEG),
    WellSpec("A04", "1", COPB1),
    WellSpec("B01", "1", INCENP),
    WellSpec("B02", "1", NEG),
    WellSpec("B03", "1", PLK1),
    WellSpec("B04", "1", NEG),
)

MIN_AREA = 12  # a nucleus cut by the border to fewer pixels is not segmented


def render_position(
    seed: int,
    index: int,
    condition: Condition,
    size: tuple[int, int] = (512, 512),
    n_frames: int = 3,
    n_cells: int = 105,
) -> RenderedPosition:
    """Render all frames of one position.

    Parameters
    ----------
    seed : int
        Screen seed.
    index : int
        Position index; seeds this position's generator together with ``seed``.
    condition : Condition
        Treatment that sets the phenotype mix.
    size : tuple of int
        Image height and width in pixels.
    n_frames : int
        Number of time points.
    n_cells : int
        Mean number of nuclei (Poisson distributed per position).

    Returns
    -------
    RenderedPosition
        Image, label image and ground-truth object table in CellH5 order.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    height, width = size
    tex_size = 256
    fine = standardise(smooth(rng.standard_normal((tex_size, tex_size)), 0.9))
    coarse = standardise(smooth(rng.standard_normal((tex_size, tex_size)), 2.2))

    count = int(rng.poisson(n_cells * height * width / 512**2))
    phenotypes = rng.choice(
        4, size=count, p=np.asarray(condition.fractions) / sum(condition.fractions)
    )
    cells = [new_nucleus(rng, int(p), tex_size) for p in phenotypes]
    cells = place_cells(rng, cells, size)

    # Uneven illumination (vignetting) and background offset of a widefield microscope.
    gy = (np.arange(height) - height / 2 + rng.uniform(-40, 40)) / (height / 2)
    gx = (np.arange(width) - width / 2 + rng.uniform(-40, 40)) / (width / 2)
    flat = 1.0 - 0.18 * (gy[:, None] ** 2 + gx[None, :] ** 2) / 2
    background = rng.uniform(7.0, 11.0)
    haze = 1.2 * standardise(smooth(rng.standard_normal((height, width)), 16.0))
    photons_per_level = 3.0

    image = np.zeros((1, n_frames, 1, height, width), np.uint8)
    labels = np.zeros((1, n_frames, 1, height, width), np.uint16)
    rows: list[ObjectRow] = []
    for t in range(n_frames):
        signal = np.zeros((height, width))
        lab = np.zeros((height, width), np.uint16)
        for label, cell in enumerate(cells, start=1):
            y = cell.y + t * cell.vy + rng.normal(0.0, 0.4)
            x = cell.x + t * cell.vx + rng.normal(0.0, 0.4)
            drawn = render_nucleus(cell, y, x, cell.angle + t * cell.spin, size, fine, coarse)
            if drawn is None:
                continue
            sy, sx, intensity, mask = drawn
            signal[sy, sx] += intensity
            lab[sy, sx][mask] = label  # later nuclei win touching pixels
        bleach = 1.0 - 0.03 * t
        expected = (background + haze + bleach * signal) * flat
        # Quantise the expected value so platform ulp differences cannot change the noise draw.
        expected = np.rint(np.clip(expected, 0.0, None) * 64.0) / 64.0
        counts = rng.poisson(expected * photons_per_level) / photons_per_level
        counts = counts + rng.normal(0.0, 0.6, size=counts.shape)  # camera read noise
        image[0, t, 0] = np.clip(np.rint(counts), 0, 255).astype(np.uint8)
        for label, *measured in measure_labels(lab, len(cells), MIN_AREA):
            rows.append((t, label, *measured, cells[label - 1].phenotype))
        labels[0, t, 0] = lab

    return RenderedPosition.from_rows(image, labels, rows)


def make_demo(
    out_dir: Path | str,
    seed: int = DEMO_SEED,
    *,
    layout: tuple[WellSpec, ...] = DEMO_LAYOUT,
    size: tuple[int, int] = (512, 512),
    n_frames: int = 3,
    n_cells: int = 105,
) -> tuple[Path, Path]:
    """Generate the synthetic demo screen.

    Parameters
    ----------
    out_dir : Path or str
        Folder to write into (created if missing).
    seed : int
        Seed of the screen; the same seed gives identical arrays.
    layout : tuple of WellSpec
        Positions and their conditions (default: 8 wells, 4 of them negative controls).
    size : tuple of int
        Image height and width.
    n_frames : int
        Frames per position.
    n_cells : int
        Mean number of nuclei per 512 × 512 frame.

    Returns
    -------
    tuple of Path
        The CellH5 file ``demo_screen.ch5`` and the mapping ``demo_screen_mapping.txt``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_screen_outputs(out / CH5_NAME, out / MAPPING_NAME)
    rendered = [
        render_position(seed, index, spec.condition, size, n_frames, n_cells)
        for index, spec in enumerate(layout)
    ]
    ch5 = write_screen(
        out / CH5_NAME,
        layout,
        rendered,
        plate=PLATE,
        channel_name=CHANNEL_NAME,
        object_name=OBJECT_NAME,
        class_labels=CLASS_LABELS,
    )
    mapping = write_mapping(out / MAPPING_NAME, layout)
    return ch5, mapping


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "napari-cellae" / "demo"


def demo_paths() -> tuple[Path, Path]:
    """Return the bundled demo screen, regenerating it locally if it is missing.

    Returns
    -------
    tuple of Path
        ``(ch5, mapping)``: the files in the package's ``sample_data`` folder, or,
        if the installation lacks them, freshly generated copies in the user cache
        (``$XDG_CACHE_HOME/napari-cellae/demo``). Nothing is downloaded.
    """
    bundled = Path(__file__).resolve().parent.parent / "sample_data"
    ch5, mapping = bundled / CH5_NAME, bundled / MAPPING_NAME
    if ch5.is_file() and mapping.is_file():
        return ch5, mapping
    cache = _cache_dir()
    ch5, mapping = cache / CH5_NAME, cache / MAPPING_NAME
    if ch5.is_file() and mapping.is_file():
        return ch5, mapping
    return make_demo(cache)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m napari_cellae.demo.screen OUT_DIR [SEED]``."""
    args = sys.argv[1:] if argv is None else argv
    if not args or len(args) > 2:
        print("usage: python -m napari_cellae.demo.screen OUT_DIR [SEED]", file=sys.stderr)
        return 2
    seed = int(args[1]) if len(args) == 2 else DEMO_SEED
    ch5, mapping = make_demo(Path(args[0]), seed)
    print(f"wrote {ch5} and {mapping}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
