"""A gallery PNG of phenotype groups: one row of typical crops per group of novel cells.

Each row is labelled with the group, its number of cells and the conditions it comes from
most, so a user sees at a glance what each hit does to the cells. Crops are scaled like the
model's input (the training normalisation) and drawn in grey (one channel) or as the first
three channels in red, green, blue.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.export.plots import agg_figure, save_png
from napari_cellae.io.atomic import check_output

if TYPE_CHECKING:
    from napari_cellae.core.normalisation import Normalisation

__all__ = ["group_caption", "write_gallery"]


def group_caption(group: int, n_cells: int, conditions: Sequence[str], top: int = 3) -> str:
    """``group 1: 120 cells (PLK1 60%, KIF11 30%)``: the conditions a group comes from most.

    Parameters
    ----------
    group : int
    n_cells : int
    conditions : sequence of str
        The condition of every cell of the group.
    top : int
        Conditions named.

    Returns
    -------
    str
    """
    names, counts = np.unique(np.asarray(conditions, dtype=str), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    total = max(int(counts.sum()), 1)
    shares = ", ".join(f"{names[i]} {counts[i] / total:.0%}" for i in order)
    return f"group {group}: {n_cells} cells" + (f" ({shares})" if shares else "")


def _display(crops: np.ndarray, normalisation: Normalisation | None) -> np.ndarray:
    """(n, S, S) grey or (n, S, S, 3) colour float images in [0, 1]."""
    if normalisation is None:
        from napari_cellae.core.normalisation import Normalisation

        normalisation = Normalisation.from_crops(crops)
    scaled = normalisation.apply(crops)
    scaled = np.asarray(scaled.detach().cpu() if hasattr(scaled, "detach") else scaled)
    scaled = np.clip(scaled.astype(np.float32), 0.0, 1.0)
    if scaled.shape[1] == 1:
        return scaled[:, 0]
    rgb = np.zeros((*scaled.shape[:1], *scaled.shape[2:], 3), np.float32)
    rgb[..., : min(3, scaled.shape[1])] = np.moveaxis(scaled[:, :3], 1, -1)
    return rgb


def write_gallery(
    path: str | os.PathLike,
    crops: np.ndarray,
    rows: Mapping[int, np.ndarray],
    captions: Mapping[int, str],
    normalisation: Normalisation | None = None,
    title: str = "",
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Save a PNG with one row of crops per phenotype group.

    Parameters
    ----------
    path : path-like
        PNG file; written to a temporary name and renamed.
    crops : ndarray (N, C, S, S)
        All cells' crops in their stored dtype (a ``CropSet``'s ``crops``).
    rows : mapping of int to ndarray of int
        Per group, the cells to show (most typical first).
    captions : mapping of int to str
        Per group, the row's label (:func:`group_caption`).
    normalisation : Normalisation, optional
        Scaling of the crops (the model's); default: from these crops.
    title : str
    inputs : iterable of path-like, optional
        Input files of the run; writing over one of them is refused.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        If there is no group to show, an index is out of range, or the file cannot be
        written (naming the path).
    """
    crops = np.asarray(getattr(crops, "crops", crops))
    if crops.ndim != 4:
        raise ValueError(f"cannot draw {path}: crops must have shape (N, C, S, S)")
    if not rows:
        raise ValueError(f"cannot draw {path}: there are no phenotype groups to show")
    for group, idx in rows.items():
        idx = np.asarray(idx)
        if len(idx) == 0 or idx.min() < 0 or idx.max() >= len(crops):
            raise ValueError(f"cannot draw {path}: group {group} has no cells or bad indices")
    path = check_output(path, inputs, "gallery")
    columns = max(len(v) for v in rows.values())
    top = 0.75 if title else 0.35  # inches above the first row: its caption, the title
    fig = agg_figure(figsize=(max(0.9 * columns, 4.0), 1.2 * len(rows) + top))
    axes = fig.subplots(len(rows), columns, squeeze=False)
    # Room above every row for its caption; crops close together.
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=0.02, top=1 - top / fig.get_figheight(), hspace=0.45
    )
    for r, (group, idx) in enumerate(rows.items()):
        images = _display(crops[np.asarray(idx)], normalisation)
        for c in range(columns):
            ax = axes[r, c]
            ax.set_axis_off()
            if c < len(images):
                ax.imshow(images[c], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        axes[r, 0].set_title(captions.get(group, f"group {group}"), loc="left", fontsize=9)
    if title:  # in the top margin, above the first row's caption
        fig.suptitle(title, fontsize=10, y=1 - 0.08 / fig.get_figheight(), va="top")
    return save_png(fig, path, dpi=100)
