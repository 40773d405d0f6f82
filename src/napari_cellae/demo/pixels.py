"""Reproducible pixel primitives shared by the synthetic screens.

Small functions over numpy arrays that use only arithmetic that is exact in IEEE floating
point where it matters (kernels from scalar libm calls, no vectorised transcendental
functions, integer moment sums), so a seed gives the same pixels on every machine.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "bump",
    "edge",
    "gauss_kernel",
    "measure_labels",
    "moments",
    "outline_distance",
    "smooth",
    "standardise",
]


def gauss_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian kernel built from scalar libm calls (reproducible).

    Parameters
    ----------
    sigma : float
        Standard deviation in pixels.

    Returns
    -------
    ndarray of float64, shape (2 * ceil(3 sigma) + 1,)
    """
    radius = max(1, math.ceil(3 * sigma))
    weights = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    total = math.fsum(weights)
    return np.array([w / total for w in weights])


def smooth(field: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (wrap-around) as a fixed-order sum of shifted copies.

    Parameters
    ----------
    field : ndarray of float64, shape (h, w)
    sigma : float
        Standard deviation in pixels.

    Returns
    -------
    ndarray of float64, shape (h, w)
        Opposite borders wrap into each other; pad first where that matters.
    """
    kernel = gauss_kernel(sigma)
    radius = len(kernel) // 2
    for axis in (0, 1):
        out = np.zeros_like(field)
        for offset, weight in zip(range(-radius, radius + 1), kernel, strict=True):
            out += weight * np.roll(field, offset, axis=axis)
        field = out
    return field


def standardise(field: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation."""
    return (field - field.mean()) / field.std()


def bump(dist2: np.ndarray, radius: float) -> np.ndarray:
    """Smooth compact bump (1 - d²/r²)², a Gaussian look-alike without exp().

    Parameters
    ----------
    dist2 : ndarray
        Squared distance from the bump's centre.
    radius : float
        Distance at which the bump reaches 0.

    Returns
    -------
    ndarray
        1 at the centre, 0 from ``radius`` on.
    """
    t = np.clip(1.0 - dist2 / (radius * radius), 0.0, None)
    return t * t


def edge(distance: np.ndarray, width: float = 1.2) -> np.ndarray:
    """Soft edge profile: 0 outside, 1 inside, a linear ramp ``width`` px wide across the border.

    Parameters
    ----------
    distance : ndarray
        Signed distance to the outline, positive inside.
    width : float
        Width of the ramp in pixels.

    Returns
    -------
    ndarray in [0, 1]
    """
    return np.clip(distance / width + 0.5, 0.0, 1.0)


def outline_distance(
    u: np.ndarray,
    v: np.ndarray,
    a: float,
    b: float,
    harmonics: tuple[tuple[float, float, float], ...] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance to a wobbly ellipse outline, in an object's own frame.

    Parameters
    ----------
    u, v : ndarray
        Pixel coordinates along the major and minor axis, relative to the centre.
    a, b : float
        Semi-axes along ``u`` and ``v``.
    harmonics : tuple of (order, amplitude, phase)
        Outline modulation ``1 + sum(amplitude * cos(order * phi + phase))`` for orders
        2 to 5 (higher orders are ignored).

    Returns
    -------
    distance : ndarray
        Approximate distance to the outline in pixels (scaled by ``b``), positive inside.
    rn : ndarray
        Normalised elliptic radius (1 on the unmodulated ellipse).
    """
    un, vn = u / a, v / b
    rn = np.sqrt(un * un + vn * vn)
    safe = np.where(rn > 0, rn, 1.0)
    c1, s1 = un / safe, vn / safe  # cos/sin of the polar angle, no arctan2 needed
    # cos(k·phi + p) from Chebyshev recursions on (c1, s1)
    ck, sk = c1, s1
    boundary = np.ones(u.shape)
    orders = {h[0]: h for h in harmonics}
    for k in range(2, 6):
        ck, sk = ck * c1 - sk * s1, sk * c1 + ck * s1
        if k in orders:
            _, amp, phase = orders[k]
            boundary += amp * (ck * math.cos(phase) - sk * math.sin(phase))
    return (boundary - rn) * b, rn


def moments(ys: np.ndarray, xs: np.ndarray) -> tuple[int, int, float, float]:
    """Rounded centroid, orientation and eccentricity of a mask given by its pixel coordinates.

    Parameters
    ----------
    ys, xs : ndarray of int
        Row and column of every mask pixel.

    Returns
    -------
    cy, cx : int
        Centroid, rounded half up.
    angle : float
        Major-axis angle from the x axis towards +y, radians in [-pi/2, pi/2].
    eccentricity : float
        Of the mask's second moments, in [0, 1).
    """
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


def measure_labels(
    lab: np.ndarray, n_labels: int, min_area: int
) -> list[tuple[int, int, int, int, int, int, int, float, float]]:
    """Measure every label of a label image, dropping those too small to be segmented.

    Parameters
    ----------
    lab : ndarray of uint16, shape (h, w)
        Label image; labels smaller than ``min_area`` pixels are set to 0 in place.
    n_labels : int
        Labels ``1 .. n_labels`` are measured, in that order.
    min_area : int
        Smallest area (pixels) of a segmented object.

    Returns
    -------
    list of tuple
        One ``(label, cx, cy, left, right, top, bottom, angle, eccentricity)`` per kept
        label (right and bottom inclusive), in label order.
    """
    width = lab.shape[1]
    flat_lab = lab.ravel()
    order = np.argsort(flat_lab, kind="stable")
    bounds = np.searchsorted(flat_lab[order], np.arange(n_labels + 2))
    rows = []
    for label in range(1, n_labels + 1):
        idx = order[bounds[label] : bounds[label + 1]]
        if len(idx) < min_area:
            if len(idx):
                lab.ravel()[idx] = 0  # too small to be segmented: drop from the label image
            continue
        ys, xs = np.divmod(idx, width)
        cy, cx, ang, ecc = moments(ys, xs)
        rows.append(
            (label, cx, cy, int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max()), ang, ecc)
        )
    return rows
