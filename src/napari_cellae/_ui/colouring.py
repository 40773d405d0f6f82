"""How the embedding is coloured: by condition, novelty, phenotype group or class.

A :class:`Colouring` gives every cell a code into a small RGBA palette: a category for
condition, phenotype group and class, one of 256 colour-map levels for novelty. Points take
their colour from the code, and the density image of a large screen colours a bin by the
majority category (or the mean novelty) of its cells. Built in the worker thread with the
cell table; plain numpy, no Qt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.export.palette import PALETTE, condition_colours
from napari_cellae.io.centres import UNCLASSIFIED, UNCLASSIFIED_COLOUR

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COLOUR_MODES",
    "LEGEND_ITEMS",
    "Colouring",
    "categorical",
    "colourings",
    "continuous",
    "hex_colour",
    "rgba",
]

#: the colour modes in the order the widget offers them (those a run has data for)
COLOUR_MODES = ("condition", "novelty", "phenotype group", "class")
LEGEND_ITEMS = 12  # categories named in a legend; the rest are counted
NOT_NOVEL = "not novel"
_NOT_NOVEL_COLOUR = "#5a5a5a"  # grey: the cells that look like the controls
_LEVELS = 256


def rgba(hex_colour: str) -> tuple[float, float, float, float]:
    """``"#rrggbb"`` as an opaque RGBA tuple of floats in [0, 1]."""
    value = hex_colour.lstrip("#")
    r, g, b = (int(value[i : i + 2], 16) / 255.0 for i in (0, 2, 4))
    return r, g, b, 1.0


def hex_colour(colour: np.ndarray) -> str:
    """An RGB(A) colour of floats in [0, 1] as ``"#rrggbb"``."""
    r, g, b = (round(float(c) * 255) for c in colour[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass
class Colouring:
    """One way of colouring the cells.

    Attributes
    ----------
    name : str
        One of :data:`COLOUR_MODES`.
    codes : ndarray (N,) int32
        Per cell, a row of ``palette``.
    palette : ndarray (K, 4) float32
        RGBA colours.
    labels : list of str
        Name of each palette row (categorical), empty for a colour map.
    continuous : bool
        True for a colour map (codes are levels, a density bin takes the mean level).
    note : str
        Appended to the legend (e.g. the novelty threshold).
    """

    name: str
    codes: np.ndarray
    palette: np.ndarray
    labels: list[str]
    continuous: bool = False
    note: str = ""

    def colours(self, cells: np.ndarray | None = None) -> np.ndarray:
        """RGBA (n, 4) float32 of ``cells`` (all cells when None)."""
        codes = self.codes if cells is None else self.codes[cells]
        return self.palette[codes]

    def legend_html(self) -> str:
        """A rich-text legend: a coloured square before each category (or a colour bar)."""
        if self.continuous:
            bar = "".join(
                f'<span style="color:{hex_colour(self.palette[i])}">■</span>'
                for i in np.linspace(0, len(self.palette) - 1, 8).astype(int)
            )
            text = f"{escape(self.name)}: low {bar} high"
        else:
            items = [
                f'<span style="color:{hex_colour(colour)}">■</span>&nbsp;{escape(label)}'
                for label, colour in zip(self.labels[:LEGEND_ITEMS], self.palette, strict=False)
            ]
            more = len(self.labels) - LEGEND_ITEMS
            if more > 0:
                items.append(f"… and {more} more")
            text = f"{escape(self.name)}: " + " ".join(items)
        return text + (f" — {escape(self.note)}" if self.note else "")


def categorical(
    name: str, values: Sequence | np.ndarray, colours: dict[str, str] | None = None
) -> Colouring:
    """Colour cells by category, in order of first appearance.

    Parameters
    ----------
    name : str
    values : array-like (N,)
        Category of every cell (converted to str).
    colours : dict of str to str, optional
        Hex colour per category; others cycle through the shared palette.
    """
    import pandas as pd

    codes, labels = pd.factorize(pd.Series(np.asarray(values)).astype(str), sort=False)
    labels = [str(v) for v in labels]
    hexes = condition_colours(labels)
    hexes.update({k: v for k, v in (colours or {}).items() if k in hexes})
    palette = np.array([rgba(hexes[v]) for v in labels], np.float32).reshape(-1, 4)
    return Colouring(name, codes.astype(np.int32), palette, labels)


def continuous(
    name: str,
    values: np.ndarray,
    limits: tuple[float, float],
    note: str = "",
    cmap: str = "viridis",
) -> Colouring:
    """Colour cells by a value through a matplotlib colour map of 256 levels.

    Parameters
    ----------
    name : str
    values : ndarray (N,)
    limits : (float, float)
        Values mapped to the first and the last colour (clipped outside).
    note : str
    cmap : str
    """
    from matplotlib import colormaps

    lo, hi = float(limits[0]), float(limits[1])
    span = hi - lo if hi > lo else 1.0
    level = np.clip((np.asarray(values, np.float64) - lo) / span, 0.0, 1.0)
    codes = np.round(level * (_LEVELS - 1)).astype(np.int32)
    palette = colormaps[cmap](np.linspace(0.0, 1.0, _LEVELS)).astype(np.float32)
    return Colouring(name, codes, palette, [], continuous=True, note=note)


def _groups(clusters: np.ndarray) -> Colouring:
    """Phenotype groups 1..k in the palette's colours, cells that are not novel in grey."""
    clusters = np.asarray(clusters, np.int32)
    k = int(clusters.max()) if len(clusters) else 0
    counts = np.bincount(clusters, minlength=k + 1)
    labels = [NOT_NOVEL] + [f"group {g} ({counts[g]})" for g in range(1, k + 1)]
    # Grey is for the cells that are not novel: no group takes a grey of the palettes.
    hues = [rgba(h) for h in PALETTE if h != "#7f7f7f"]
    if k > len(hues):  # matplotlib's 20 colours, less its two greys (the auto choice is <= 12)
        from matplotlib import colormaps

        hues = [(*c, 1.0) for c in colormaps["tab20"].colors if len(set(c)) > 1]
    colours = [hues[(g - 1) % len(hues)] for g in range(1, k + 1)]
    palette = np.array([rgba(_NOT_NOVEL_COLOUR), *colours], np.float32)
    return Colouring("phenotype group", clusters, palette, labels)


def colourings(
    cells: pd.DataFrame,
    threshold: float | None = None,
    class_colours: dict[str, str] | None = None,
    condition: Colouring | None = None,
) -> dict[str, Colouring]:
    """Every colouring the cell table has data for, in :data:`COLOUR_MODES` order.

    Parameters
    ----------
    cells : pandas.DataFrame
        ``condition``; ``novelty``, ``novel`` and ``cluster`` where novelty was scored;
        ``class`` where the file has classifier predictions.
    threshold : float, optional
        Novelty threshold (a cell above it is novel), named in the legend.
    class_colours : dict of str to str, optional
        The classifier's own colour per class name (as the CellH5 file stores them).
    condition : Colouring, optional
        The condition colouring, if already made.
    """
    out = {"condition": condition or categorical("condition", cells["condition"])}
    if "novelty" in cells:
        scores = np.asarray(cells["novelty"], np.float64)
        # Spread the colour map over the bulk of the scores; a few extreme cells would
        # otherwise leave every other cell at the bottom of the map.
        limits = (float(np.percentile(scores, 1)), float(np.percentile(scores, 99)))
        note = f"novel above {threshold:.3g}" if threshold is not None else ""
        out["novelty"] = continuous("novelty", scores, limits, note)
    if "cluster" in cells:
        out["phenotype group"] = _groups(np.asarray(cells["cluster"]))
    if "class" in cells:
        # A cell without a prediction (-1) is "unclassified" (older .h5ad files: ""), gray,
        # as the reader's points layer calls such cells (beyond the file's: "unknown (7)")
        classes = np.asarray(cells["class"]).astype(str)
        classes = np.where(classes == "", UNCLASSIFIED, classes)
        colours = {**(class_colours or {}), UNCLASSIFIED: UNCLASSIFIED_COLOUR}
        out["class"] = categorical("class", classes, colours)
    return out
