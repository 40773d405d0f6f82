"""A harder synthetic screen for measuring feature quality, with a MitoCheck-like catalogue.

One 12-bit plate of 32 wells (one site each): 8 negative-control wells (Group ``neg``) with
the natural share of mitotic stages and rarer phenotypes, and 24 perturbation wells each
enriched for one to three of the 15 phenotypes of :mod:`napari_cellae.demo.phenotypes`,
some strongly, some weakly. What features must *see* (shape, size, texture, condensation,
fragments, holes, focus) is set per cell by its phenotype. What they must *ignore* is set
per well, independently of its condition: the cell density (so crowding and touching
neighbours), the brightness of the well, the background, the uneven illumination and a
slight blur; the angle of every cell is random. ``light`` dims (or brightens) the whole
screen: fewer photons per pixel, so noisier images, as in live-cell imaging kept dim to spare
the cells. ``segmentation`` cuts the objects as an analysis of the image might: ``drawn``
(one object per cell, however many pieces it is drawn in), ``pieces`` (every connected piece
its own object, such as a grape's lobes, an apoptotic cell's bodies or the daughters of a
binuclear cell that do not touch) or ``joined`` (also touching cells as one object).

The true phenotype of every object is stored as its CellH5 classification, the masks as
``image/region`` label images, and the layout as a CellCognition position-mapping file.
Everything is drawn from generators seeded by ``seed`` and the well index, so a seed gives
the same files. Run ``cellae make-screen OUT [--seed S] [--cells N] [--zoom Z] [--light L]
[--segmentation S]`` or
``python -m napari_cellae.demo.benchmark`` with the same arguments.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_cellae.demo.catalogue import BENCHMARK_LAYOUT
from napari_cellae.demo.layout import (
    ObjectRow,
    RenderedPosition,
    WellSpec,
    check_screen_outputs,
    write_mapping,
    write_screen,
)
from napari_cellae.demo.nuclei import place_cells
from napari_cellae.demo.phenotypes import (
    CLASS_LABELS,
    PHENOTYPES,
    TextureFields,
    new_cell,
    render_cell,
)
from napari_cellae.demo.pixels import measure_labels, smooth, standardise

__all__ = [
    "BENCHMARK_LAYOUT",
    "CH5_NAME",
    "MAPPING_NAME",
    "WellPlan",
    "make_benchmark_screen",
    "plan_screen",
    "render_well",
]

CH5_NAME = "benchmark_screen.ch5"
MAPPING_NAME = "benchmark_screen_mapping.txt"
PLATE = "benchmark_plate"
CHANNEL_NAME = "H2B"
OBJECT_NAME = "primary__primary"
#: how objects are cut from the cells' masks (see the module's text)
SEGMENTATIONS = ("drawn", "pieces", "joined")
MIN_AREA = 20  # smaller pieces (cut by the border or hidden by neighbours) are not segmented
LEVEL = 700.0  # camera counts above background of an interphase nucleus in a well of gain 1
AREA_PER_CELL = 2200.0  # image pixels per cell at density 1 (about 15 % covered)
SEGMENT_THRESHOLD = 150.0  # counts above background that the segmentation calls foreground


@dataclass(frozen=True)
class WellPlan:
    """What one well looks like, drawn independently of its condition.

    Attributes
    ----------
    spec : WellSpec
        Well, site and condition.
    index : int
        Position index (seeds the well's generator).
    density : float
        Cells per image area relative to the screen's mean (crowding, touching neighbours).
    n_cells : int
        Cells to place (Poisson around ``density`` x the mean).
    gain : float
        Brightness of the whole well (staining, exposure).
    background : float
        Camera counts without light.
    vignette, gradient, gradient_angle : float
        Uneven illumination: fall-off towards the corners and a linear tilt.
    blur : float
        Slight defocus of the whole well (Gaussian sigma, pixels).
    """

    spec: WellSpec
    index: int
    density: float
    n_cells: int
    gain: float
    background: float
    vignette: float
    gradient: float
    gradient_angle: float
    blur: float


def plan_screen(
    seed: int = 0, n_cells: int = 5000, layout: tuple[WellSpec, ...] = BENCHMARK_LAYOUT
) -> tuple[list[WellPlan], int]:
    """Draw every well's nuisances and cell count, without rendering any pixels.

    Density and gain levels are evenly spread and shuffled over the wells, so controls and
    hits span the same range whatever their condition.

    Parameters
    ----------
    seed : int
        Screen seed.
    n_cells : int
        About how many cells the whole screen holds.
    layout : tuple of WellSpec

    Returns
    -------
    plans : list of WellPlan
        One per well, in layout order.
    side : int
        Image side in pixels (every well has the same field of view).
    """
    n_wells = len(layout)
    mean = max(1.0, n_cells / n_wells)
    side = max(96, round(math.sqrt(mean * AREA_PER_CELL)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1_000_000]))
    density = rng.permutation(np.linspace(0.45, 1.7, n_wells))
    gain = rng.permutation(np.exp(np.linspace(-0.55, 0.55, n_wells)))
    plans = []
    for index, spec in enumerate(layout):
        plans.append(
            WellPlan(
                spec=spec,
                index=index,
                density=float(density[index]),
                n_cells=int(rng.poisson(mean * density[index])),
                gain=float(gain[index]),
                background=float(rng.uniform(100.0, 260.0)),
                vignette=float(rng.uniform(0.1, 0.35)),
                gradient=float(rng.uniform(0.0, 0.2)),
                gradient_angle=float(rng.uniform(-math.pi, math.pi)),
                blur=float(rng.uniform(0.0, 0.9)),
            )
        )
    return plans, side


def _upsample(grid: np.ndarray, side: int) -> np.ndarray:
    """Bilinear upsampling of a coarse grid to ``side`` x ``side`` (elementwise, exact)."""
    pos = np.arange(side) * ((grid.shape[0] - 1) / side)
    i0 = pos.astype(np.int64)
    f = pos - i0
    rows = grid[i0] * (1.0 - f)[:, None] + grid[i0 + 1] * f[:, None]
    return rows[:, i0] * (1.0 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


def _illumination(plan: WellPlan, rng: np.random.Generator, side: int) -> np.ndarray:
    """Flat field of a widefield microscope: off-centre vignetting, a tilt, faint haze."""
    cy, cx = rng.uniform(-0.25, 0.25, size=2)
    g = (np.arange(side) - side / 2) / (side / 2)
    gy, gx = g[:, None] - cy, g[None, :] - cx
    flat = 1.0 - plan.vignette * (gy * gy + gx * gx) / 2
    tilt = math.cos(plan.gradient_angle) * g[None, :] + math.sin(plan.gradient_angle) * g[:, None]
    haze = _upsample(standardise(smooth(rng.standard_normal((10, 10)), 1.0)), side)
    return flat * (1.0 + plan.gradient * tilt) * (1.0 + 0.04 * haze)


def _fill_small_holes(mask: np.ndarray, max_area: int) -> np.ndarray:
    """``mask`` with its holes (background enclosed by foreground) under ``max_area`` filled."""
    holes = ndimage.binary_fill_holes(mask) & ~mask
    parts, n = ndimage.label(holes)
    small = np.bincount(parts.ravel(), minlength=n + 1) < max_area
    small[0] = False
    return mask | small[parts]


def _cut_objects(lab: np.ndarray, segmentation: str) -> tuple[np.ndarray, np.ndarray]:
    """Objects of a label image of drawn cells: the new label image and, per new label, the
    cell it shows (the one with most of its pixels)."""
    from skimage.measure import label as connected

    if segmentation == "drawn":
        return lab, np.arange(int(lab.max()) + 1)
    # Pieces of one value are apart, so 'pieces' splits cells only; 'joined' merges too.
    cut = connected(lab if segmentation == "pieces" else lab > 0, connectivity=2)
    inside = cut > 0
    if not inside.any():
        return cut.astype(np.uint16), np.zeros(1, np.int64)
    pairs, counts = np.unique(np.stack([cut[inside], lab[inside]]), axis=1, return_counts=True)
    new, old = pairs[:, np.lexsort((counts, pairs[0]))]  # per new label, largest overlap last
    last = np.append(new[1:] != new[:-1], True)
    owner = np.zeros(int(cut.max()) + 1, np.int64)
    owner[new[last]] = old[last]
    return cut.astype(np.uint16), owner


def render_well(
    seed: int,
    plan: WellPlan,
    side: int,
    zoom: float = 1.0,
    light: float = 1.0,
    segmentation: str = "drawn",
) -> RenderedPosition:
    """Render the single 12-bit frame of one well.

    Parameters
    ----------
    seed : int
        Screen seed; with ``plan.index`` it seeds this well's generator.
    plan : WellPlan
        The well's condition, density and nuisances.
    side : int
        Image height and width at the standard magnification.
    zoom : float
        Magnification against the standard one: the same cells, drawn ``zoom`` times as
        large on an image of ``round(side * zoom)`` pixels (below 1 the drawing is shrunk
        with anti-aliasing; above 1 enlarged, without detail finer than at 1). Blur,
        illumination, camera noise and segmentation are then applied at that size.
    light : float
        Exposure against the standard one: the cells' light (and the segmentation's
        threshold above background) times ``light``; background and camera noise stay, so
        below 1 the images are noisier, above 1 bright cells saturate the 12 bits.
    segmentation : str
        One of :data:`SEGMENTATIONS`: one object per cell, per connected piece, or per
        connected piece of all cells together; each object has the phenotype of the cell
        with most of its pixels.

    Returns
    -------
    RenderedPosition
        uint16 image with values in 0..4095, label image and the object table.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, plan.index]))
    tex_size = 256
    fields = TextureFields(
        fine=standardise(smooth(rng.standard_normal((tex_size, tex_size)), 0.9)),
        coarse=standardise(smooth(rng.standard_normal((tex_size, tex_size)), 2.2)),
        grain=standardise(smooth(rng.standard_normal((tex_size, tex_size)), 0.5)),
    )
    fractions = np.asarray(plan.spec.condition.fractions)
    phenotypes = rng.choice(len(PHENOTYPES), size=plan.n_cells, p=fractions / fractions.sum())
    cells = [new_cell(rng, int(p), tex_size) for p in phenotypes]
    # Crowded wells also grow in clumps: more cells start beside a neighbour.
    snuggle = 0.1 + 0.25 * (plan.density - 0.45) / 1.25
    cells = place_cells(rng, cells, (side, side), snuggle=snuggle)

    signal = np.zeros((side, side))
    lab = np.zeros((side, side), np.uint16)
    for label, cell in enumerate(cells, start=1):
        drawn = render_cell(cell, (side, side), fields)
        if drawn is None:
            continue
        sy, sx, intensity, mask = drawn
        signal[sy, sx] += intensity
        lab[sy, sx][mask] = label  # later cells win touching pixels
    if zoom != 1.0:
        signal, lab = _magnify(signal, lab, zoom)
        side = signal.shape[0]
    if plan.blur * zoom > 0.3:
        pad = 4  # zero padding: light must not wrap around the image
        signal = smooth(np.pad(signal, pad), plan.blur * zoom)[pad:-pad, pad:-pad]

    flat = _illumination(plan, rng, side)
    expected = plan.background * (0.9 + 0.1 * flat) + plan.gain * LEVEL * light * flat * signal
    # Quantise the expected value so platform ulp differences cannot change the noise draw.
    expected = np.rint(expected * 64.0) / 64.0
    photons_per_count = 0.8
    counts = rng.poisson(expected * photons_per_count) / photons_per_count
    counts = counts + rng.normal(0.0, 3.0, size=counts.shape)  # camera read noise
    image = np.clip(np.rint(counts), 0, 4095).astype(np.uint16)

    # Segmentation as an analysis would do it: smoothed image above background + threshold
    # (small holes filled), split between cells by where each was drawn. So masks lose dim
    # rims and dim cells, and depend on the well's brightness like real ones.
    pad = 5
    above = image - plan.background * (0.9 + 0.1 * flat)
    foreground = smooth(np.pad(above, pad), 1.5)[pad:-pad, pad:-pad] > SEGMENT_THRESHOLD * light
    lab[~_fill_small_holes(foreground, 30)] = 0
    lab, cell_of = _cut_objects(lab, segmentation)
    least = max(1, round(MIN_AREA * zoom**2))
    rows: list[ObjectRow] = [
        (0, label, *measured, cells[cell_of[label] - 1].phenotype)
        for label, *measured in measure_labels(lab, len(cell_of) - 1, least)
    ]
    return RenderedPosition.from_rows(image[None, None, None], lab[None, None, None], rows)


def _magnify(signal: np.ndarray, lab: np.ndarray, zoom: float) -> tuple[np.ndarray, np.ndarray]:
    """The drawn light and labels as seen at ``zoom`` times the magnification."""
    from skimage.transform import resize

    side = max(1, round(signal.shape[0] * zoom))
    light = resize(signal, (side, side), order=1, anti_aliasing=zoom < 1, preserve_range=True)
    labels = resize(lab, (side, side), order=0, anti_aliasing=False, preserve_range=True)
    return light, labels.astype(np.uint16)


def make_benchmark_screen(
    out_dir: Path | str,
    seed: int = 0,
    n_cells: int = 5000,
    *,
    layout: tuple[WellSpec, ...] = BENCHMARK_LAYOUT,
    zoom: float = 1.0,
    light: float = 1.0,
    segmentation: str = "drawn",
) -> tuple[Path, Path]:
    """Generate the benchmark screen: a CellH5 file with true phenotypes and its mapping.

    Parameters
    ----------
    out_dir : Path or str
        Folder to write into (created if missing).
    seed : int
        Seed of the screen; the same seed (and size) gives the same files.
    n_cells : int
        About how many cells the screen holds (the image side scales with it; 150 makes a
        screen in about a second, 4000 a realistic one in about 5 s).
    layout : tuple of WellSpec
        Wells and their conditions (default: :data:`BENCHMARK_LAYOUT`).
    zoom : float
        Magnification (0.25-4): the same screen with cells ``zoom`` times as large, to check
        that features hold at another cell size in pixels (see :func:`render_well`).
    light : float
        Exposure (0.05-4): the same screen with ``light`` times the cells' light, to check
        that features hold in noisier (or saturated) images (see :func:`render_well`).
    segmentation : str
        One of :data:`SEGMENTATIONS` (see :func:`render_well`).

    Returns
    -------
    tuple of Path
        ``benchmark_screen.ch5`` and ``benchmark_screen_mapping.txt``.
    """
    if n_cells < 1:
        raise ValueError(f"n_cells must be >= 1, got {n_cells}")
    if not 0.25 <= zoom <= 4:
        raise ValueError(f"zoom must be between 0.25 and 4, got {zoom}")
    if not 0.05 <= light <= 4:
        raise ValueError(f"light must be between 0.05 and 4, got {light}")
    if segmentation not in SEGMENTATIONS:
        raise ValueError(
            f"segmentation must be one of {', '.join(SEGMENTATIONS)}, got {segmentation!r}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_screen_outputs(out / CH5_NAME, out / MAPPING_NAME)
    plans, side = plan_screen(seed, n_cells, layout)
    rendered = [render_well(seed, plan, side, zoom, light, segmentation) for plan in plans]
    ch5 = write_screen(
        out / CH5_NAME,
        layout,
        rendered,
        plate=PLATE,
        channel_name=CHANNEL_NAME,
        object_name=OBJECT_NAME,
        class_labels=CLASS_LABELS,
    )
    return ch5, write_mapping(out / MAPPING_NAME, layout)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m napari_cellae.demo.benchmark OUT [--seed S] ...``."""
    parser = argparse.ArgumentParser(prog="python -m napari_cellae.demo.benchmark")
    parser.add_argument("out", type=Path, help="folder to write into")
    parser.add_argument("--seed", type=int, default=0, help="screen seed (default: 0)")
    parser.add_argument("--cells", type=int, default=5000, help="about how many cells")
    parser.add_argument("--zoom", type=float, default=1.0, help="cell magnification (1)")
    parser.add_argument("--light", type=float, default=1.0, help="exposure (1)")
    parser.add_argument("--segmentation", choices=SEGMENTATIONS, default="drawn")
    args = parser.parse_args(argv)
    ch5, mapping = make_benchmark_screen(
        args.out,
        args.seed,
        args.cells,
        zoom=args.zoom,
        light=args.light,
        segmentation=args.segmentation,
    )
    print(f"wrote {ch5} and {mapping}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
