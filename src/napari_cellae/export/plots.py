"""Plots saved as files: the cells' features in 2-D, coloured by condition.

Colours come from :func:`napari_cellae.export.palette.condition_colours`, so a condition
has the same colour in napari and in the PNG.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.export.palette import condition_colours
from napari_cellae.io.atomic import atomic_output, check_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["agg_figure", "plot_embedding", "save_png"]

_TITLE_CHARACTERS = 70  # per line of an 11-point title on the 7-inch plot


def agg_figure(**kwargs) -> Figure:
    """A matplotlib ``Figure(**kwargs)`` drawn by Agg directly: no pyplot state, no display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: Path, **kwargs) -> Path:
    """Save ``fig`` as a PNG at ``path`` atomically (temporary name, then rename)."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", **kwargs)  # the temporary name has no .png suffix
    return path


def plot_embedding(
    path: str | os.PathLike,
    embedding: np.ndarray,
    groups: Sequence[str],
    title: str = "",
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Save a scatter plot of a 2-D embedding coloured by group (e.g. condition), with legend.

    Parameters
    ----------
    path : path-like
        PNG file; written to a temporary name and renamed.
    embedding : ndarray, shape (N, 2)
    groups : sequence of str, length N
        The group of every point; the legend lists groups in order of first appearance,
        with their counts.
    title : str
    inputs : iterable of path-like, optional
        Input files of the run; writing over one of them is refused.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        If the embedding is not (N, 2) for N groups, or the file cannot be written
        (naming the path).
    """
    embedding = np.asarray(embedding)
    labels = np.asarray([str(g) for g in groups])
    if embedding.ndim != 2 or embedding.shape[1] != 2 or len(embedding) != len(labels):
        raise ValueError(
            f"cannot plot {path}: embedding has shape {embedding.shape}, expected "
            f"({len(labels)}, 2) for {len(labels)} groups"
        )
    path = check_output(path, inputs, "plot")
    fig = agg_figure(figsize=(7, 5.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for name, colour in condition_colours(labels.tolist()).items():
        sel = labels == name
        ax.scatter(
            embedding[sel, 0],
            embedding[sel, 1],
            s=6,
            alpha=0.6,
            color=colour,
            label=f"{name} ({int(sel.sum())})",
            linewidths=0,
        )
    ax.set_xlabel("PC 1 of the standardised features")
    ax.set_ylabel("PC 2 of the standardised features")
    if title:  # wrapped: a long one ran off the figure's edge
        ax.set_title(textwrap.fill(title, _TITLE_CHARACTERS), fontsize=11)
    ax.legend(loc="best", fontsize=8, markerscale=2, frameon=False)
    fig.tight_layout()
    return save_png(fig, path)
