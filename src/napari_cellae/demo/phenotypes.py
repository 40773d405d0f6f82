"""The benchmark screen's cell model: a MitoCheck-like catalogue of 15 nuclear phenotypes.

A cell is one or more *bodies* (wobbly ellipses, each with its own offset, turn and gain)
with chromatin texture sampled in the cell's own frame, dark nucleoli and bright foci,
optional dark holes and an optional defocus blur. The phenotypes differ in what a
biologist looks at (size, shape, number and arrangement of bodies, condensation, texture,
holes, sharpness); angle, crowding and brightness of the well are set elsewhere
(:mod:`napari_cellae.demo.benchmark`). The classes overlap on purpose: small interphase vs.
small irregular nuclei, large interphase vs. "large", early prophase vs. interphase, early
apoptotic bodies vs. prometaphase, compact grapes vs. polylobed nuclei.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from napari_cellae.demo.pixels import bump, edge, outline_distance, smooth

__all__ = ["CLASS_LABELS", "PHENOTYPES", "Body", "Cell", "TextureFields", "new_cell", "render_cell"]

PHENOTYPES: tuple[str, ...] = (
    "interphase",
    "prophase",
    "prometaphase",
    "metaphase",
    "metaphase alignment",
    "anaphase",
    "apoptosis",
    "binuclear",
    "polylobed",
    "grape",
    "large",
    "elongated",
    "small irregular",
    "hole",
    "out of focus",
)
_COLOURS = (
    "#2ca02c #1f77b4 #d62728 #ff7f0e #e377c2 #8c564b #9467bd #17becf "
    "#bcbd22 #7f7f7f #ff9896 #aec7e8 #98df8a #c5b0d5 #c49c94"
).split()
# (label, name, colour) rows of the classifier definition; class_idx indexes this list.
CLASS_LABELS: list[tuple[int, str, str]] = [
    (i + 1, name, colour) for i, (name, colour) in enumerate(zip(PHENOTYPES, _COLOURS, strict=True))
]

Harmonics = tuple[tuple[float, float, float], ...]


@dataclass
class TextureFields:
    """Standardised noise fields of one position, sampled in each cell's own frame."""

    fine: np.ndarray
    coarse: np.ndarray
    grain: np.ndarray  # the finest: condensed chromosomes


@dataclass
class Body:
    """One compact part of a cell: offset (u, v) and turn in the cell's frame, semi-axes a, b."""

    u: float
    v: float
    a: float
    b: float
    turn: float = 0.0
    harmonics: Harmonics = ()
    gain: float = 1.0


@dataclass
class Cell:
    """Parameters of one cell; geometry is in the cell's own frame, turned by ``angle``."""

    phenotype: int
    bodies: list[Body]
    brightness: float
    texture: float  # contrast of the chromatin texture
    coarse: float  # share of coarse texture
    grain: float  # share of the finest grain (condensed chromatin)
    spots: list[tuple[float, float, float, float]] = field(default_factory=list)  # u, v, r, gain
    holes: list[tuple[float, float, float, float]] = field(default_factory=list)  # u, v, r, depth
    blur: float = 0.0
    angle: float = 0.0
    tex_y: int = 0
    tex_x: int = 0
    y: float = 0.0
    x: float = 0.0

    @property
    def extent(self) -> float:
        """Radius that bounds the cell, used for placement and patch size."""
        reach = max(
            math.hypot(b.u, b.v) + max(b.a, b.b) * (1.0 + sum(abs(h[1]) for h in b.harmonics))
            for b in self.bodies
        )
        return reach + 1.5 + 3.0 * self.blur


def _wobble(rng: np.random.Generator, amp: float, orders: tuple[int, ...] = (2, 3, 4)) -> Harmonics:
    return tuple((k, rng.uniform(0.0, amp), rng.uniform(0, 2 * math.pi)) for k in orders)


def _nucleoli(rng: np.random.Generator, a: float, b: float, lo: int, hi: int) -> list:
    """Dark nucleoli and bright heterochromatin foci inside an interphase-like nucleus."""
    spots = []
    for _ in range(int(rng.integers(lo, hi + 1))):
        r, phi = rng.uniform(0.0, 0.55), rng.uniform(0, 2 * math.pi)
        spots.append((r * a * math.cos(phi), r * b * math.sin(phi), rng.uniform(1.5, 3.8), -0.45))
    for _ in range(int(rng.integers(0, 5))):
        r, phi = rng.uniform(0.0, 0.8), rng.uniform(0, 2 * math.pi)
        spots.append((r * a * math.cos(phi), r * b * math.sin(phi), rng.uniform(1.0, 2.0), 0.4))
    return spots


def _look(
    bodies: list[Body], brightness: float, texture: float, coarse: float, grain: float = 0.0
) -> dict:
    """Keyword arguments of :class:`Cell` (all but the pose)."""
    return {"bodies": bodies, "brightness": brightness, "texture": texture, "coarse": coarse,
            "grain": grain, "spots": []}  # fmt: skip


def _nucleus(rng: np.random.Generator, a_lo: float, a_hi: float, ratio: tuple, amp: float) -> dict:
    """One interphase-like body with nucleoli and normal chromatin."""
    a = rng.uniform(a_lo, a_hi)
    b = a * rng.uniform(*ratio)
    out = _look([Body(0.0, 0.0, a, b, harmonics=_wobble(rng, amp))], 1.0,
                rng.uniform(0.2, 0.38), rng.uniform(0.3, 0.8))  # fmt: skip
    out["spots"] = _nucleoli(rng, a, b, 0, 3)
    return out


def _interphase(rng: np.random.Generator) -> dict:
    # G1 to G2: the nucleus grows and its DNA doubles (bigger, brighter, slightly grainier)
    cycle = rng.uniform(0.0, 1.0)
    out = _nucleus(rng, 8.5 + 2.0 * cycle, 13.0 + 4.0 * cycle, (0.58, 0.97), 0.09)
    out["brightness"] = 1.0 + 0.35 * cycle
    out["grain"] = rng.uniform(0.0, 0.3) * cycle
    return out


def _prophase(rng: np.random.Generator) -> dict:
    a = rng.uniform(9.0, 14.0)
    body = Body(0.0, 0.0, a, a * rng.uniform(0.8, 1.0), harmonics=_wobble(rng, 0.05))
    # condensing chromosomes: threads of fine, high-contrast grain; nucleoli gone
    return _look([body], rng.uniform(1.05, 1.5), rng.uniform(0.35, 0.65), rng.uniform(0.0, 0.4),
                 rng.uniform(0.25, 0.75))  # fmt: skip


def _condensed(rng: np.random.Generator, bodies: list[Body], brightness: float) -> dict:
    return _look(bodies, brightness, rng.uniform(0.35, 0.55), rng.uniform(0.0, 0.2),
                 rng.uniform(0.5, 0.9))  # fmt: skip


def _prometaphase(rng: np.random.Generator) -> dict:
    a = rng.uniform(6.0, 9.5)
    body = Body(0.0, 0.0, a, a * rng.uniform(0.7, 1.0), harmonics=_wobble(rng, 0.16, (2, 3, 5)))
    return _condensed(rng, [body], rng.uniform(1.4, 2.3))


def _plate(rng: np.random.Generator) -> Body:
    # a plate seen edge-on is a thin bar, seen tilted a broader ellipse
    a, b = rng.uniform(7.5, 12.0), rng.uniform(2.5, 6.0)
    return Body(0.0, 0.0, a, b, harmonics=_wobble(rng, 0.05))


def _metaphase(rng: np.random.Generator) -> dict:
    return _condensed(rng, [_plate(rng)], rng.uniform(1.5, 2.4))


def _alignment_defect(rng: np.random.Generator) -> dict:
    bodies = [_plate(rng)]
    for _ in range(int(rng.integers(2, 6))):  # chromosomes left behind near the poles
        side = 1.0 if rng.random() < 0.5 else -1.0
        u, v = rng.uniform(-6.0, 6.0), side * rng.uniform(4.5, 9.0)
        r = rng.uniform(1.5, 2.6)
        bodies.append(Body(u, v, r, r * rng.uniform(0.7, 1.0), gain=rng.uniform(0.8, 1.1)))
    return _condensed(rng, bodies, rng.uniform(1.8, 2.4))


def _anaphase(rng: np.random.Generator) -> dict:
    gap, a = rng.uniform(4.0, 9.0), rng.uniform(7.0, 10.0)
    bodies = []
    for side in (-1.0, 1.0):  # two sister plates pulled apart
        u, b = rng.normal(0, 0.8), rng.uniform(2.0, 3.5)
        turn, wobble = rng.normal(0, 0.12), _wobble(rng, 0.06)
        bodies.append(Body(u, side * gap, a * rng.uniform(0.9, 1.0), b, turn, wobble))
    return _condensed(rng, bodies, rng.uniform(1.7, 2.2))


def _apoptosis(rng: np.random.Generator) -> dict:
    bodies = []
    if rng.random() < 0.4:  # shrunken, bright nucleus budding a few blebs
        a = rng.uniform(4.0, 6.5)
        bodies.append(Body(0.0, 0.0, a, a * rng.uniform(0.85, 1.0)))
        n, spread = int(rng.integers(1, 4)), a + 2.0
    else:  # broken into many small bright bodies
        n, spread = int(rng.integers(4, 10)), rng.uniform(5.0, 10.0)
    for _ in range(n):
        r, phi = spread * math.sqrt(rng.uniform(0.05, 1.0)), rng.uniform(0, 2 * math.pi)
        radius, gain = rng.uniform(1.5, 3.5), rng.uniform(0.7, 1.3)
        bodies.append(Body(r * math.cos(phi), r * math.sin(phi), radius, radius, gain=gain))
    return _look(bodies, rng.uniform(1.6, 2.9), rng.uniform(0.05, 0.2), 0.5)


def _binuclear(rng: np.random.Generator) -> dict:
    bodies, spots = [], []
    for side in (-1.0, 1.0):
        a = rng.uniform(7.5, 10.5)
        b = a * rng.uniform(0.75, 0.95)
        u = side * b * rng.uniform(0.75, 1.1)  # two daughters side by side, touching
        v, turn, wobble = rng.normal(0, 1.0), rng.normal(0, 0.2), _wobble(rng, 0.05)
        bodies.append(Body(u, v, b, a, turn, wobble))
        spots += [(u + su, v + sv, sr, g) for su, sv, sr, g in _nucleoli(rng, b, a, 0, 2)]
    out = _look(bodies, 1.0, rng.uniform(0.2, 0.38), rng.uniform(0.3, 0.8))
    out["spots"] = spots
    return out


def _lobes(rng: np.random.Generator, n: int, radius: tuple, spread: tuple) -> list[Body]:
    """``n`` roundish lobes around the centre, each turned to face outwards."""
    start, step = rng.uniform(0, 2 * math.pi), 2 * math.pi / n
    bodies = []
    for i in range(n):
        phi = start + i * step + rng.normal(0, 0.25)
        d, r = rng.uniform(*spread), rng.uniform(*radius)
        b, wobble = r * rng.uniform(0.7, 1.0), _wobble(rng, 0.05)
        bodies.append(Body(d * math.cos(phi), d * math.sin(phi), r, b, phi, wobble))
    return bodies


def _polylobed(rng: np.random.Generator) -> dict:
    out = _nucleus(rng, 8.0, 11.0, (0.8, 1.0), 0.08)
    out["bodies"] += _lobes(rng, int(rng.integers(3, 6)), (5.5, 8.0), (7.0, 10.0))
    return out


def _grape(rng: np.random.Generator) -> dict:
    bodies = _lobes(rng, int(rng.integers(6, 11)), (3.0, 4.8), (4.5, 9.5))
    return _look(bodies, rng.uniform(1.0, 1.3), rng.uniform(0.2, 0.35), rng.uniform(0.3, 0.8))


def _large(rng: np.random.Generator) -> dict:
    out = _nucleus(rng, 14.5, 21.0, (0.65, 0.97), 0.07)
    out["spots"] += _nucleoli(rng, out["bodies"][0].a, out["bodies"][0].b, 1, 3)
    return out


def _elongated(rng: np.random.Generator) -> dict:
    return _nucleus(rng, 12.0, 20.0, (0.33, 0.6), 0.06)


def _small_irregular(rng: np.random.Generator) -> dict:
    out = _nucleus(rng, 6.5, 10.0, (0.6, 0.9), 0.2)
    out["bodies"][0].harmonics = _wobble(rng, 0.2, (2, 3, 4, 5))
    out["brightness"] = rng.uniform(0.95, 1.3)
    return out


def _hole(rng: np.random.Generator) -> dict:
    out = _nucleus(rng, 10.0, 16.0, (0.7, 0.97), 0.06)
    body = out["bodies"][0]
    r, phi = rng.uniform(0.0, 0.35) * body.b, rng.uniform(0, 2 * math.pi)
    radius, depth = body.b * rng.uniform(0.2, 0.45), rng.uniform(0.5, 0.95)
    out["holes"] = [(r * math.cos(phi), r * math.sin(phi), radius, depth)]
    return out


def _out_of_focus(rng: np.random.Generator) -> dict:
    out = _interphase(rng)
    out["blur"] = rng.uniform(1.2, 3.0)
    return out


# One drawer per phenotype, in PHENOTYPES order.
_DRAW: tuple[Callable[[np.random.Generator], dict], ...] = (
    _interphase, _prophase, _prometaphase, _metaphase, _alignment_defect, _anaphase,
    _apoptosis, _binuclear, _polylobed, _grape, _large, _elongated, _small_irregular,
    _hole, _out_of_focus,
)  # fmt: skip


def new_cell(rng: np.random.Generator, phenotype: int, tex_size: int) -> Cell:
    """Draw the appearance of one cell of a phenotype, at a random angle.

    Parameters
    ----------
    rng : numpy.random.Generator
    phenotype : int
        Index into :data:`PHENOTYPES`.
    tex_size : int
        Side of the position's texture fields; the cell samples a window of them.

    Returns
    -------
    Cell
        Its centre is set later, by placement.
    """
    params = _DRAW[phenotype](rng)
    params["brightness"] *= math.exp(rng.normal(0.0, 0.28))
    margin = 40
    return Cell(
        phenotype=phenotype,
        angle=rng.uniform(-math.pi, math.pi),
        tex_y=int(rng.integers(margin, tex_size - margin)),
        tex_x=int(rng.integers(margin, tex_size - margin)),
        **params,
    )


def render_cell(
    cell: Cell, shape: tuple[int, int], fields: TextureFields
) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """Draw one cell at its centre and angle.

    Parameters
    ----------
    cell : Cell
    shape : tuple of int
        Image height and width.
    fields : TextureFields
        The position's texture fields.

    Returns
    -------
    tuple or None
        ``(rows, columns, intensity, mask)``: the patch slices, its relative intensity
        (about 1 inside an interphase nucleus) and the cell's mask, or None if off-image.
    """
    height, width = shape
    r = math.ceil(cell.extent) + 2
    y0, y1 = int(cell.y) - r, int(cell.y) + r + 1
    x0, x1 = int(cell.x) - r, int(cell.x) + r + 1
    if y1 <= 0 or x1 <= 0 or y0 >= height or x0 >= width:
        return None
    # Draw the whole patch (also beyond the image), so a blur never wraps around.
    dy = np.arange(y0, y1, dtype=np.float64)[:, None] - cell.y
    dx = np.arange(x0, x1, dtype=np.float64)[None, :] - cell.x
    cos_t, sin_t = math.cos(cell.angle), math.sin(cell.angle)
    u = dx * cos_t + dy * sin_t
    v = -dx * sin_t + dy * cos_t

    profile = np.zeros(u.shape)
    mask = np.zeros(u.shape, bool)
    for body in cell.bodies:
        c, s = math.cos(body.turn), math.sin(body.turn)
        bu, bv = (u - body.u) * c + (v - body.v) * s, -(u - body.u) * s + (v - body.v) * c
        dist, rn = outline_distance(bu, bv, body.a, body.b, body.harmonics)
        dome = 0.8 + 0.2 * np.clip(1.0 - rn * rn, 0.0, None)
        profile = np.maximum(profile, body.gain * edge(dist) * dome)
        mask |= dist > 0
    for hu, hv, hr, depth in cell.holes:
        inside = edge(hr - np.sqrt((u - hu) ** 2 + (v - hv) ** 2))
        profile = profile * (1.0 - depth * inside)
        if depth > 0.7:  # only a dark enough hole is cut out of the segmentation
            mask &= inside < 0.5
    for su, sv, sr, gain in cell.spots:
        profile = profile * (1.0 + gain * bump((u - su) ** 2 + (v - sv) ** 2, sr))

    # Texture is sampled in the cell's own frame, so it turns with the cell.
    ti = np.clip(np.rint(v).astype(np.int64) + cell.tex_y, 0, fields.fine.shape[0] - 1)
    tj = np.clip(np.rint(u).astype(np.int64) + cell.tex_x, 0, fields.fine.shape[1] - 1)
    smooth_share = 1.0 - cell.grain
    tex = smooth_share * (
        (1.0 - cell.coarse) * fields.fine[ti, tj] + cell.coarse * fields.coarse[ti, tj]
    )
    tex = tex + cell.grain * fields.grain[ti, tj]
    intensity = cell.brightness * profile * np.clip(1.0 + cell.texture * tex, 0.05, None)
    if cell.blur > 0:
        intensity = smooth(intensity, cell.blur)
        # a defocused nucleus is segmented where its blurred light is bright enough
        mask = smooth(profile, cell.blur) > 0.4 * float(profile.max())

    cy0, cx0 = max(0, -y0), max(0, -x0)
    cy1, cx1 = intensity.shape[0] - max(0, y1 - height), intensity.shape[1] - max(0, x1 - width)
    return (
        slice(y0 + cy0, y0 + cy1),
        slice(x0 + cx0, x0 + cx1),
        intensity[cy0:cy1, cx0:cx1],
        mask[cy0:cy1, cx0:cx1],
    )
