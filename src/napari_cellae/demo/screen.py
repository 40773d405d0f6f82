"""Deterministic synthetic high-content screen with ground-truth phenotypes.

The demo screen imitates a CellCognition analysis of a live-cell siRNA screen
imaged with a nuclear marker (H2B): one plate, one site per well, a few frames
per site, nuclei segmented as ``primary__primary`` and the true phenotype of every
nucleus stored as its classification. Negative-control wells hold mostly
interphase nuclei; perturbed wells hold mixed populations enriched for mitotic,
apoptotic or enlarged (polyploid) nuclei, as a real screen would.

Everything is drawn from :class:`numpy.random.Generator` instances seeded from
``seed`` and the position index, and the pixel model only uses arithmetic that
is exact in IEEE floating point where it matters (no vectorised transcendental
functions), so the same seed gives the same arrays on every machine.

Run ``python -m napari_cellae.demo.screen OUT_DIR`` to write the files.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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

# (label, name, colour) rows of the classifier definition; class_idx indexes this list.
CLASS_LABELS: list[tuple[int, str, str]] = [
    (1, "interphase", "#2ca02c"),
    (2, "mitotic", "#d62728"),
    (3, "apoptotic", "#9467bd"),
    (4, "enlarged", "#ff7f0e"),
]
INTERPHASE, MITOTIC, APOPTOTIC, ENLARGED = range(4)


@dataclass(frozen=True)
class Condition:
    """One treatment of the screen.

    Parameters
    ----------
    gene : str
        Treatment name (``Gene Symbol`` column of the mapping file).
    sirna : str
        Reagent ID (``siRNA ID`` column).
    group : str
        ``neg`` for negative controls, ``target`` otherwise.
    fractions : tuple of float
        Expected fraction of interphase, mitotic, apoptotic and enlarged nuclei.
    """

    gene: str
    sirna: str
    group: str
    fractions: tuple[float, float, float, float]


@dataclass(frozen=True)
class WellSpec:
    """One imaged position: well, site and its condition."""

    well: str
    site: str
    condition: Condition


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


# ----------------------------------------------------------------------------- pixels


def _gauss_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian kernel from scalar libm calls (reproducible)."""
    radius = max(1, math.ceil(3 * sigma))
    weights = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    total = math.fsum(weights)
    return np.array([w / total for w in weights])


def _smooth(field: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (wrap-around) as a fixed-order sum of shifted copies."""
    kernel = _gauss_kernel(sigma)
    radius = len(kernel) // 2
    for axis in (0, 1):
        out = np.zeros_like(field)
        for offset, weight in zip(range(-radius, radius + 1), kernel, strict=True):
            out += weight * np.roll(field, offset, axis=axis)
        field = out
    return field


def _standardise(field: np.ndarray) -> np.ndarray:
    return (field - field.mean()) / field.std()


@dataclass
class _Cell:
    """Parameters of one nucleus; geometry is in the nucleus' own frame (u along the major axis)."""

    phenotype: int
    y: float
    x: float
    angle: float
    a: float  # semi-axis along u
    b: float  # semi-axis along v
    brightness: float
    texture: float  # contrast of the chromatin texture
    coarse: float  # share of coarse (vs fine) texture
    harmonics: tuple[tuple[float, float, float], ...]  # (order, amplitude, phase) of the outline
    spots: tuple[tuple[float, float, float, float], ...]  # (u, v, radius, gain): nucleoli/foci
    fragments: tuple[tuple[float, float, float, float], ...]  # (u, v, radius, gain): apoptotic
    tex_y: int
    tex_x: int
    vy: float
    vx: float
    spin: float

    @property
    def extent(self) -> float:
        """Radius that bounds the nucleus, used for placement and patch size."""
        if self.fragments:
            return max(math.hypot(u, v) + r for u, v, r, _ in self.fragments) + 1.0
        amp = sum(abs(h[1]) for h in self.harmonics)
        return self.a * (1.0 + amp) + 1.5


def _new_cell(rng: np.random.Generator, phenotype: int, tex_size: int) -> _Cell:
    """Draw the appearance of one nucleus of a phenotype.

    The class distributions overlap on purpose (big interphase vs. small enlarged
    nuclei, dim mitotic vs. bright interphase nuclei, early apoptotic vs. prometaphase)
    so raw pixels do not separate them perfectly.
    """
    harmonics: list[tuple[float, float, float]] = []
    spots: list[tuple[float, float, float, float]] = []
    fragments: list[tuple[float, float, float, float]] = []
    if phenotype == INTERPHASE:
        a = rng.uniform(9.5, 14.5)
        b = a * rng.uniform(0.68, 0.97)
        brightness = 70.0 * math.exp(rng.normal(0.0, 0.28))
        texture = rng.uniform(0.22, 0.42)
        coarse = rng.uniform(0.3, 0.8)
        for order in (2, 3, 4):
            harmonics.append((order, rng.uniform(0.0, 0.05), rng.uniform(0, 2 * math.pi)))
        for _ in range(rng.integers(0, 4)):  # dark nucleoli
            r = rng.uniform(0.0, 0.55)
            phi = rng.uniform(0, 2 * math.pi)
            spots.append(
                (r * a * math.cos(phi), r * b * math.sin(phi), rng.uniform(1.5, 3.0), -0.45)
            )
        for _ in range(rng.integers(0, 5)):  # bright heterochromatin foci
            r = rng.uniform(0.0, 0.8)
            phi = rng.uniform(0, 2 * math.pi)
            spots.append((r * a * math.cos(phi), r * b * math.sin(phi), rng.uniform(1.0, 2.0), 0.5))
    elif phenotype == MITOTIC:
        brightness = 125.0 * math.exp(rng.normal(0.0, 0.3))
        texture = rng.uniform(0.35, 0.6)
        coarse = rng.uniform(0.0, 0.3)  # condensed chromosomes: fine, high-contrast grain
        if rng.random() < 0.55:  # prometaphase: compact, rounded
            a = rng.uniform(7.0, 10.5)
            b = a * rng.uniform(0.8, 1.0)
            amp = 0.09
        else:  # metaphase plate: a bright bar
            a = rng.uniform(8.5, 12.0)
            b = a * rng.uniform(0.3, 0.55)
            amp = 0.05
        for order in (2, 3, 5):
            harmonics.append((order, rng.uniform(0.0, amp), rng.uniform(0, 2 * math.pi)))
    elif phenotype == APOPTOTIC:
        brightness = 140.0 * math.exp(rng.normal(0.0, 0.3))
        texture = rng.uniform(0.1, 0.25)
        coarse = 0.5
        early = rng.random() < 0.35
        if early:  # shrunken, bright nucleus budding a few fragments
            a = rng.uniform(5.5, 8.0)
            fragments.append((0.0, 0.0, a, 1.0))
            n_frag, spread = int(rng.integers(1, 4)), a + 2.5
        else:  # broken into many small bright bodies
            a = rng.uniform(2.0, 3.5)
            n_frag, spread = int(rng.integers(4, 9)), rng.uniform(5.0, 10.0)
        for _ in range(n_frag):
            r = spread * math.sqrt(rng.uniform(0.05, 1.0))
            phi = rng.uniform(0, 2 * math.pi)
            fragments.append(
                (r * math.cos(phi), r * math.sin(phi), rng.uniform(1.6, 4.0), rng.uniform(0.7, 1.3))
            )
        b = a
    else:  # ENLARGED: polyploid, large and often elongated or lobed
        a = rng.uniform(14.5, 21.0)
        b = a * rng.uniform(0.45, 0.8)
        brightness = 68.0 * math.exp(rng.normal(0.0, 0.28))
        texture = rng.uniform(0.25, 0.45)
        coarse = rng.uniform(0.5, 1.0)
        for order in (2, 3, 4):
            harmonics.append((order, rng.uniform(0.0, 0.09), rng.uniform(0, 2 * math.pi)))
        for _ in range(rng.integers(1, 6)):
            r = rng.uniform(0.0, 0.6)
            phi = rng.uniform(0, 2 * math.pi)
            spots.append(
                (r * a * math.cos(phi), r * b * math.sin(phi), rng.uniform(1.5, 3.5), -0.4)
            )
    margin = 40
    return _Cell(
        phenotype=phenotype,
        y=0.0,
        x=0.0,
        angle=rng.uniform(-math.pi, math.pi),
        a=a,
        b=b,
        brightness=brightness,
        texture=texture,
        coarse=coarse,
        harmonics=tuple(harmonics),
        spots=tuple(spots),
        fragments=tuple(fragments),
        tex_y=int(rng.integers(margin, tex_size - margin)),
        tex_x=int(rng.integers(margin, tex_size - margin)),
        vy=rng.normal(0.0, 1.2),
        vx=rng.normal(0.0, 1.2),
        spin=rng.normal(0.0, 0.06),
    )


def _bump(dist2: np.ndarray, radius: float) -> np.ndarray:
    """Smooth compact bump (1 - d²/r²)², a Gaussian look-alike without exp()."""
    t = np.clip(1.0 - dist2 / (radius * radius), 0.0, None)
    return t * t


def _edge(distance: np.ndarray, width: float = 1.2) -> np.ndarray:
    """Soft edge profile: 0 outside, 1 inside, linear ramp of ``width`` px across the border."""
    return np.clip(distance / width + 0.5, 0.0, 1.0)


def _render_cell(
    cell: _Cell,
    y: float,
    x: float,
    angle: float,
    shape: tuple[int, int],
    fine: np.ndarray,
    coarse: np.ndarray,
) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """Draw one nucleus; returns the patch slices, intensity and mask (or None if off-image)."""
    height, width = shape
    r = math.ceil(cell.extent) + 2
    y0, y1 = max(0, int(y) - r), min(height, int(y) + r + 1)
    x0, x1 = max(0, int(x) - r), min(width, int(x) + r + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    dy = np.arange(y0, y1, dtype=np.float64)[:, None] - y
    dx = np.arange(x0, x1, dtype=np.float64)[None, :] - x
    cos_t, sin_t = math.cos(angle), math.sin(angle)
    u = dx * cos_t + dy * sin_t
    v = -dx * sin_t + dy * cos_t

    if cell.fragments:
        profile = np.zeros(u.shape)
        for fu, fv, fr, gain in cell.fragments:
            dist = fr - np.sqrt((u - fu) ** 2 + (v - fv) ** 2)
            profile = np.maximum(profile, gain * _edge(dist, 1.0))
        mask = profile > 0.5 * min(f[3] for f in cell.fragments)
    else:
        un, vn = u / cell.a, v / cell.b
        rn = np.sqrt(un * un + vn * vn)
        safe = np.where(rn > 0, rn, 1.0)
        c1, s1 = un / safe, vn / safe  # cos/sin of the polar angle, no arctan2 needed
        # cos(k·phi + p) from Chebyshev recursions on (c1, s1)
        ck, sk = c1, s1
        boundary = np.ones(u.shape)
        orders = {h[0]: h for h in cell.harmonics}
        for k in range(2, 6):
            ck, sk = ck * c1 - sk * s1, sk * c1 + ck * s1
            if k in orders:
                _, amp, phase = orders[k]
                boundary += amp * (ck * math.cos(phase) - sk * math.sin(phase))
        dist = (boundary - rn) * cell.b
        profile = _edge(dist) * (0.8 + 0.2 * np.clip(1.0 - rn * rn, 0.0, None))
        mask = dist > 0
        for su, sv, sr, gain in cell.spots:
            profile = profile * (1.0 + gain * _bump((u - su) ** 2 + (v - sv) ** 2, sr))

    # Chromatin texture is sampled in the nucleus' own frame so it moves and turns with it.
    ti = np.clip(np.rint(v).astype(np.int64) + cell.tex_y, 0, fine.shape[0] - 1)
    tj = np.clip(np.rint(u).astype(np.int64) + cell.tex_x, 0, fine.shape[1] - 1)
    tex = (1.0 - cell.coarse) * fine[ti, tj] + cell.coarse * coarse[ti, tj]
    intensity = cell.brightness * profile * np.clip(1.0 + cell.texture * tex, 0.05, None)
    return slice(y0, y1), slice(x0, x1), intensity, mask


def _place_cells(
    rng: np.random.Generator, cells: list[_Cell], size: tuple[int, int]
) -> list[_Cell]:
    """Scatter nuclei with little overlap; some touch a neighbour, some are cut by the border."""
    height, width = size
    placed: list[_Cell] = []
    ys = np.empty(0)
    xs = np.empty(0)
    rs = np.empty(0)
    for cell in cells:
        ext = cell.extent
        for _ in range(60):
            if len(placed) and rng.random() < 0.2:  # snuggle up to a neighbour
                j = int(rng.integers(len(placed)))
                phi = rng.uniform(0, 2 * math.pi)
                d = (ext + rs[j]) * rng.uniform(0.8, 0.95)
                y, x = ys[j] + d * math.sin(phi), xs[j] + d * math.cos(phi)
            else:
                y, x = rng.uniform(-4, height + 4), rng.uniform(-4, width + 4)
            if not (0 <= y < height and 0 <= x < width):
                continue
            if len(placed):
                d2 = (ys - y) ** 2 + (xs - x) ** 2
                if np.any(d2 < ((ext + rs) * 0.78) ** 2):
                    continue
            cell.y, cell.x = y, x
            placed.append(cell)
            ys, xs, rs = np.append(ys, y), np.append(xs, x), np.append(rs, ext)
            break
    return placed


@dataclass
class RenderedPosition:
    """Pixels, labels and per-object ground truth of one position (all frames).

    Attributes
    ----------
    image : ndarray of uint8, shape (1, t, 1, h, w)
    labels : ndarray of uint16, shape (1, t, 1, h, w)
        Label images; label ``i`` is the same nucleus in every frame.
    time_idx, label_id, center_x, center_y : ndarray of int32, shape (n,)
        One row per segmented nucleus and frame, sorted by frame, then label.
    bbox : ndarray of int32, shape (n, 4)
        ``left, right, top, bottom`` of the mask, right and bottom inclusive.
    angle, eccentricity : ndarray of float64, shape (n,)
        Major-axis angle from the x axis towards +y (radians, [-pi/2, pi/2]) and
        eccentricity of the mask's second moments.
    class_idx : ndarray of int32, shape (n,)
        True phenotype, an index into :data:`CLASS_LABELS`.
    """

    image: np.ndarray  # uint8 (1, t, 1, h, w)
    labels: np.ndarray  # uint16 (1, t, 1, h, w)
    time_idx: np.ndarray
    label_id: np.ndarray
    center_x: np.ndarray
    center_y: np.ndarray
    bbox: np.ndarray  # (n, 4) left, right, top, bottom; right/bottom inclusive
    angle: np.ndarray
    eccentricity: np.ndarray
    class_idx: np.ndarray


def _moments(ys: np.ndarray, xs: np.ndarray) -> tuple[int, int, float, float]:
    """Rounded centroid, orientation (radians, [-pi/2, pi/2]) and eccentricity of a mask."""
    n = len(ys)
    sy, sx = int(ys.sum()), int(xs.sum())
    # integer arithmetic rounds half up without float ties
    cy, cx = (2 * sy + n) // (2 * n), (2 * sx + n) // (2 * n)
    # Central moments from exact integer sums: no BLAS dot products, whose rounding
    # depends on the CPU, so angle and eccentricity are identical on every machine.
    syy, sxx, sxy = int(ys @ ys), int(xs @ xs), int(ys @ xs)
    myy = (n * syy - sy * sy) / (n * n)
    mxx = (n * sxx - sx * sx) / (n * n)
    mxy = (n * sxy - sy * sx) / (n * n)
    angle = 0.5 * math.atan2(2 * mxy, mxx - myy)
    common = math.sqrt(((mxx - myy) / 2) ** 2 + mxy * mxy)
    l1 = (mxx + myy) / 2 + common
    l2 = (mxx + myy) / 2 - common
    ecc = math.sqrt(max(0.0, 1.0 - l2 / l1)) if l1 > 0 else 0.0
    return cy, cx, angle, ecc


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
    fine = _standardise(_smooth(rng.standard_normal((tex_size, tex_size)), 0.9))
    coarse = _standardise(_smooth(rng.standard_normal((tex_size, tex_size)), 2.2))

    count = int(rng.poisson(n_cells * height * width / 512**2))
    phenotypes = rng.choice(
        4, size=count, p=np.asarray(condition.fractions) / sum(condition.fractions)
    )
    cells = [_new_cell(rng, int(p), tex_size) for p in phenotypes]
    cells = _place_cells(rng, cells, size)

    # Uneven illumination (vignetting) and background offset of a widefield microscope.
    gy = (np.arange(height) - height / 2 + rng.uniform(-40, 40)) / (height / 2)
    gx = (np.arange(width) - width / 2 + rng.uniform(-40, 40)) / (width / 2)
    flat = 1.0 - 0.18 * (gy[:, None] ** 2 + gx[None, :] ** 2) / 2
    background = rng.uniform(7.0, 11.0)
    haze = 1.2 * _standardise(_smooth(rng.standard_normal((height, width)), 16.0))
    photons_per_level = 3.0

    image = np.zeros((1, n_frames, 1, height, width), np.uint8)
    labels = np.zeros((1, n_frames, 1, height, width), np.uint16)
    rows: list[tuple[int, int, int, int, int, int, int, int, float, float, int]] = []
    for t in range(n_frames):
        signal = np.zeros((height, width))
        lab = np.zeros((height, width), np.uint16)
        for label, cell in enumerate(cells, start=1):
            y = cell.y + t * cell.vy + rng.normal(0.0, 0.4)
            x = cell.x + t * cell.vx + rng.normal(0.0, 0.4)
            drawn = _render_cell(cell, y, x, cell.angle + t * cell.spin, size, fine, coarse)
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
        labels[0, t, 0] = lab

        flat_lab = lab.ravel()
        order = np.argsort(flat_lab, kind="stable")
        bounds = np.searchsorted(flat_lab[order], np.arange(len(cells) + 2))
        for label in range(1, len(cells) + 1):
            idx = order[bounds[label] : bounds[label + 1]]
            if len(idx) < MIN_AREA:
                if len(idx):
                    lab.ravel()[idx] = 0  # too small to be segmented: drop from the label image
                continue
            ys, xs = np.divmod(idx, width)
            cy, cx, ang, ecc = _moments(ys, xs)
            rows.append(
                (
                    t,
                    label,
                    cx,
                    cy,
                    int(xs.min()),
                    int(xs.max()),
                    int(ys.min()),
                    int(ys.max()),
                    ang,
                    ecc,
                    cells[label - 1].phenotype,
                )
            )
        labels[0, t, 0] = lab

    if rows:
        table = list(zip(*rows, strict=True))
    else:
        table = [()] * 11
    return RenderedPosition(
        image=image,
        labels=labels,
        time_idx=np.asarray(table[0], np.int32),
        label_id=np.asarray(table[1], np.int32),
        center_x=np.asarray(table[2], np.int32),
        center_y=np.asarray(table[3], np.int32),
        bbox=np.asarray(table[4:8], np.int32).T.reshape(-1, 4),
        angle=np.asarray(table[8], np.float64),
        eccentricity=np.asarray(table[9], np.float64),
        class_idx=np.asarray(table[10], np.int32),
    )


# ----------------------------------------------------------------------------- files


def _well_row_column(well: str) -> tuple[str, int]:
    return well[0], int(well[1:])


def write_mapping(path: Path, layout: tuple[WellSpec, ...]) -> Path:
    """Write the tab-separated CellCognition position mapping of a layout.

    Parameters
    ----------
    path : Path
        Output file (written to a temporary name, then renamed).
    layout : tuple of WellSpec
        Positions and their conditions, one row each.

    Returns
    -------
    Path
        ``path``.
    """
    header = ["Position", "Well", "Site", "Row", "Column", "Gene Symbol", "siRNA ID", "Group"]
    lines = ["\t".join(header)]
    for spec in layout:
        row, column = _well_row_column(spec.well)
        cond = spec.condition
        lines.append(
            "\t".join(
                [
                    f"{spec.well}_{int(spec.site):02d}",
                    spec.well,
                    spec.site,
                    row,
                    str(column),
                    cond.gene,
                    cond.sirna,
                    cond.group,
                ]
            )
        )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


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
    from napari_cellae.io.cellh5_writer import ObjectData, PositionData, write_cellh5

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    positions = []
    for index, spec in enumerate(layout):
        pos = render_position(seed, index, spec.condition, size, n_frames, n_cells)
        obj = ObjectData(
            time_idx=pos.time_idx,
            label_id=pos.label_id,
            center_x=pos.center_x,
            center_y=pos.center_y,
            bbox=pos.bbox,
            angle=pos.angle,
            eccentricity=pos.eccentricity,
            class_idx=pos.class_idx,
            probability=np.eye(len(CLASS_LABELS))[pos.class_idx],
        )
        positions.append(
            PositionData(
                plate=PLATE,
                well=spec.well,
                site=spec.site,
                image=pos.image,
                objects={OBJECT_NAME: obj},
                labels=pos.labels,
            )
        )
    # temp name + rename: a reader never sees a half-written demo
    tmp = write_cellh5(
        out / (CH5_NAME + ".tmp"),
        positions,
        channel_names=[CHANNEL_NAME],
        object_channels={OBJECT_NAME: 0},
        class_labels={OBJECT_NAME: CLASS_LABELS},
        flavour="cellcognition",
    )
    ch5 = out / CH5_NAME
    os.replace(tmp, ch5)
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
