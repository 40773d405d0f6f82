"""The demo screen's nucleus model: appearance of each phenotype, drawing and placement.

A nucleus is an ellipse with a wobbly outline (low-order harmonics) and chromatin texture
sampled in its own frame, or, if apoptotic, a cluster of small discs. :func:`place_cells`
scatters any objects with an ``extent`` so that some touch, and is shared with the
benchmark screen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from napari_cellae.demo.pixels import bump, edge, outline_distance

__all__ = [
    "APOPTOTIC",
    "ENLARGED",
    "INTERPHASE",
    "MITOTIC",
    "Nucleus",
    "new_nucleus",
    "place_cells",
    "render_nucleus",
]

# Indices into the demo's class table (screen.CLASS_LABELS).
INTERPHASE, MITOTIC, APOPTOTIC, ENLARGED = range(4)


class Placeable(Protocol):
    """Anything :func:`place_cells` can position: a bounding radius and a centre."""

    y: float
    x: float

    @property
    def extent(self) -> float: ...


P = TypeVar("P", bound=Placeable)


@dataclass
class Nucleus:
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


def _harmonics(
    rng: np.random.Generator, orders: tuple[int, ...], amplitude: float
) -> list[tuple[float, float, float]]:
    """Outline harmonics: (order, random amplitude up to ``amplitude``, random phase)."""
    return [(order, rng.uniform(0.0, amplitude), rng.uniform(0, 2 * math.pi)) for order in orders]


def _spot(
    rng: np.random.Generator,
    a: float,
    b: float,
    r_max: float,
    radius: tuple[float, float],
    weight: float,
) -> tuple[float, float, float, float]:
    """A spot at a random place inside ``r_max`` of the (a, b) ellipse, random radius."""
    r = rng.uniform(0.0, r_max)
    phi = rng.uniform(0, 2 * math.pi)
    return (r * a * math.cos(phi), r * b * math.sin(phi), rng.uniform(*radius), weight)


def new_nucleus(rng: np.random.Generator, phenotype: int, tex_size: int) -> Nucleus:
    """Draw the appearance of one nucleus of a phenotype (its centre is set by placement).

    The class distributions overlap on purpose (big interphase vs. small enlarged
    nuclei, dim mitotic vs. bright interphase nuclei, early apoptotic vs. prometaphase)
    so raw pixels do not separate them perfectly.

    Parameters
    ----------
    rng : numpy.random.Generator
    phenotype : int
        ``INTERPHASE``, ``MITOTIC``, ``APOPTOTIC`` or ``ENLARGED``.
    tex_size : int
        Side of the position's texture fields; the nucleus samples a window of them.

    Returns
    -------
    Nucleus
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
        harmonics = _harmonics(rng, (2, 3, 4), 0.05)
        for _ in range(rng.integers(0, 4)):  # dark nucleoli
            spots.append(_spot(rng, a, b, 0.55, (1.5, 3.0), -0.45))
        for _ in range(rng.integers(0, 5)):  # bright heterochromatin foci
            spots.append(_spot(rng, a, b, 0.8, (1.0, 2.0), 0.5))
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
        harmonics = _harmonics(rng, (2, 3, 5), amp)
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
        harmonics = _harmonics(rng, (2, 3, 4), 0.09)
        for _ in range(rng.integers(1, 6)):
            spots.append(_spot(rng, a, b, 0.6, (1.5, 3.5), -0.4))
    margin = 40
    return Nucleus(
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


def render_nucleus(
    cell: Nucleus,
    y: float,
    x: float,
    angle: float,
    shape: tuple[int, int],
    fine: np.ndarray,
    coarse: np.ndarray,
) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """Draw one nucleus at ``(y, x)`` turned by ``angle``.

    Parameters
    ----------
    cell : Nucleus
    y, x, angle : float
        Centre (pixels) and major-axis angle (radians) in this frame.
    shape : tuple of int
        Image height and width.
    fine, coarse : ndarray
        Standardised fine and coarse chromatin texture fields of the position.

    Returns
    -------
    tuple or None
        ``(rows, columns, intensity, mask)``: the patch slices, its intensity and its mask,
        or None if the nucleus lies outside the image.
    """
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
            profile = np.maximum(profile, gain * edge(dist, 1.0))
        mask = profile > 0.5 * min(f[3] for f in cell.fragments)
    else:
        dist, rn = outline_distance(u, v, cell.a, cell.b, cell.harmonics)
        profile = edge(dist) * (0.8 + 0.2 * np.clip(1.0 - rn * rn, 0.0, None))
        mask = dist > 0
        for su, sv, sr, gain in cell.spots:
            profile = profile * (1.0 + gain * bump((u - su) ** 2 + (v - sv) ** 2, sr))

    # Chromatin texture is sampled in the nucleus' own frame so it moves and turns with it.
    ti = np.clip(np.rint(v).astype(np.int64) + cell.tex_y, 0, fine.shape[0] - 1)
    tj = np.clip(np.rint(u).astype(np.int64) + cell.tex_x, 0, fine.shape[1] - 1)
    tex = (1.0 - cell.coarse) * fine[ti, tj] + cell.coarse * coarse[ti, tj]
    intensity = cell.brightness * profile * np.clip(1.0 + cell.texture * tex, 0.05, None)
    return slice(y0, y1), slice(x0, x1), intensity, mask


def place_cells(
    rng: np.random.Generator,
    cells: list[P],
    size: tuple[int, int],
    snuggle: float = 0.2,
    closest: float = 0.78,
) -> list[P]:
    """Scatter cells with little overlap; some touch a neighbour, some are cut by the border.

    Parameters
    ----------
    rng : numpy.random.Generator
    cells : list
        Objects with an ``extent`` (bounding radius); their ``y`` and ``x`` are set.
    size : tuple of int
        Image height and width.
    snuggle : float
        Chance that a cell is tried right beside an already placed one (touching
        neighbours, clusters) rather than anywhere.
    closest : float
        Two centres never come closer than this fraction of the sum of their extents.

    Returns
    -------
    list
        The cells that found a place (60 tries each), in input order.
    """
    height, width = size
    placed: list[P] = []
    ys = np.empty(0)
    xs = np.empty(0)
    rs = np.empty(0)
    for cell in cells:
        ext = cell.extent
        for _ in range(60):
            if len(placed) and rng.random() < snuggle:  # snuggle up to a neighbour
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
                if np.any(d2 < ((ext + rs) * closest) ** 2):
                    continue
            cell.y, cell.x = y, x
            placed.append(cell)
            ys, xs, rs = np.append(ys, y), np.append(xs, x), np.append(rs, ext)
            break
    return placed
