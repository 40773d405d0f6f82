"""The per-cell table behind the embedding: coordinates, identity, findings and colours.

Built by :func:`cell_table` in the worker thread (vectorised; a screen has ~10^6 cells);
the GUI thread only places and assigns it. Plain numpy / pandas, no Qt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae._ui.colouring import Colouring, categorical, colourings, hex_colour
from napari_cellae._ui.density import DensityGrid

if TYPE_CHECKING:
    import pandas as pd

    from napari_cellae._ui.findings import Findings
    from napari_cellae.pipeline.results import RunResult

__all__ = [
    "CellTable",
    "FoundColumns",
    "cell_table",
    "density_view",
    "found_columns",
    "unit_square",
]

_FINDING_COLUMNS = ("novelty", "novel", "cluster", "class")
#: the colour modes that follow the novelty options
_FOUND_MODES = ("novelty", "phenotype group")


def unit_square(embedding: np.ndarray) -> np.ndarray:
    """A 2-D embedding scaled into [0, 1]², as napari (row, column): its second axis up.

    Returns
    -------
    ndarray (N, 2) float32
    """
    emb = np.asarray(embedding)
    unit = np.empty((len(emb), 2), np.float32)
    # column by column: reductions along the long axis of an (N, 2) array are slow
    for out, axis, flip in ((0, 1, True), (1, 0, False)):
        column = np.ascontiguousarray(emb[:, axis], np.float64)
        if len(column) == 0:
            continue
        lo, span = column.min(), column.max() - column.min()
        scaled = (column - lo) / (span if span > 0 else 1.0)
        unit[:, out] = 1.0 - scaled if flip else scaled
    return unit


@dataclass
class CellTable:
    """Everything the embedding shows, one row per cell (crop order).

    Attributes
    ----------
    features : DataFrame
        ``cell`` (the row number, kept when a layer shows only some cells),
        ``embedding_1``, ``embedding_2``, ``condition``, ``position``, ``position_index``
        (into the run's ``crops.positions``), ``object_index`` (row in that position's
        object table), ``time``; ``novelty``, ``novel``, ``cluster`` where novelty was
        scored, ``class`` where the file has classes.
    colourings : dict of str to Colouring
        The colour modes this run has data for.
    maps : dict of str to ndarray (N, 2)
        The 2-D maps computed so far, by method (``"pca"``, ``"umap"``).
    units : dict of str to ndarray (N, 2) float32
        The same maps scaled into the unit square (:func:`unit_square`).
    method : str
        The map shown.
    grids : dict
        Density grids of the maps, by (method, bins), made on first use.
    images : dict
        Density images, by (method, bins, colour mode), made on first use.
    """

    features: pd.DataFrame
    colourings: dict[str, Colouring]
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    units: dict[str, np.ndarray] = field(default_factory=dict)
    method: str = "pca"
    grids: dict[tuple[str, int], DensityGrid] = field(default_factory=dict)
    images: dict[tuple[str, int, str], np.ndarray] = field(default_factory=dict)

    @property
    def unit(self) -> np.ndarray:
        """The shown map in the unit square, napari (row, column)."""
        return self.units[self.method]

    @property
    def colours(self) -> dict[str, str]:
        """Condition -> hex colour."""
        condition = self.colourings["condition"]
        return {
            label: hex_colour(colour)
            for label, colour in zip(condition.labels, condition.palette, strict=True)
        }

    @property
    def face(self) -> np.ndarray:
        """RGBA (N, 4) float32 of every cell, by condition."""
        return self.colourings["condition"].colours()

    def __len__(self) -> int:
        return len(self.features)

    def add_map(
        self,
        method: str,
        embedding: np.ndarray,
        unit: np.ndarray | None = None,
        grid: DensityGrid | None = None,
        images: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Keep another map (its unit square is computed if not given; pass it, the
        density grid and the density images by colour mode from a worker for large
        tables: see :func:`density_view`)."""
        self.maps[method] = np.asarray(embedding, np.float32)
        self.units[method] = unit_square(embedding) if unit is None else unit
        if grid is not None:
            self.grids[(method, grid.bins)] = grid
            for colour, image in (images or {}).items():
                self.images[(method, grid.bins, colour)] = image

    def show_map(self, method: str) -> None:
        """Show the map of ``method`` (one of :attr:`maps`)."""
        emb = self.maps[method]
        self.method = method
        self.features["embedding_1"] = emb[:, 0]
        self.features["embedding_2"] = emb[:, 1]

    def grid(self, bins: int) -> DensityGrid:
        """The density grid of the shown map (cached)."""
        key = (self.method, int(bins))
        if key not in self.grids:
            self.grids[key] = DensityGrid(self.unit, bins)
        return self.grids[key]

    def density(self, bins: int, colour: str) -> np.ndarray:
        """The density image of the shown map coloured by ``colour`` (cached)."""
        key = (self.method, int(bins), colour)
        if key not in self.images:
            self.images[key] = self.grid(bins).render(self.colourings[colour])
        return self.images[key]

    def refind(self, found: FoundColumns) -> None:
        """Take the columns and colourings of other findings of the same cells (the novelty
        boxes changed); maps and their grids stay."""
        for name, values in found.columns.items():
            self.features[name] = values
        # the same dict: a map worker started before draws its density in these colourings
        self.colourings.clear()
        self.colourings.update(found.colourings)
        self.images = {k: v for k, v in self.images.items() if k[2] not in _FOUND_MODES}
        self.images.update(found.images)

    def prepare_density(self, bins: int) -> None:
        """Bin the shown map and draw its density image in every colouring (in a worker:
        the GUI thread then only shows them)."""
        for colour in self.colourings:
            self.density(bins, colour)


@dataclass
class FoundColumns:
    """What :meth:`CellTable.refind` takes: the finding columns, every colouring and the
    density images of the novelty and group colourings (made in a worker)."""

    columns: dict[str, np.ndarray]
    colourings: dict[str, Colouring]
    images: dict[tuple[str, int, str], np.ndarray]


def found_columns(
    findings: Findings, condition: Colouring, grids: dict[tuple[str, int], DensityGrid]
) -> FoundColumns:
    """The table's columns and colourings for ``findings`` (run it in a worker).

    Parameters
    ----------
    findings : Findings
        Of the table's cells.
    condition : Colouring
        The table's condition colouring (kept).
    grids : dict
        The table's density grids (:attr:`CellTable.grids`): their images in the novelty
        and group colourings are drawn here, not on the GUI thread.
    """
    import pandas as pd

    obs = findings.obs
    columns = {c: obs[c].to_numpy() for c in _FINDING_COLUMNS if c in obs}
    novelty = findings.discovery.novelty
    threshold = None if novelty is None else novelty.threshold
    modes = colourings(pd.DataFrame(columns), threshold, findings.class_colours, condition)
    images = {
        (method, bins, name): grid.render(modes[name])
        for (method, bins), grid in grids.items()
        for name in _FOUND_MODES
        if name in modes
    }
    return FoundColumns(columns, modes, images)


def density_view(
    unit: np.ndarray, colourings: dict[str, Colouring], bins: int
) -> tuple[DensityGrid, dict[str, np.ndarray]]:
    """The density grid of a map and its image in every colouring (for :meth:`add_map`)."""
    grid = DensityGrid(unit, bins)
    return grid, {colour: grid.render(c) for colour, c in colourings.items()}


def cell_table(
    result: RunResult,
    position_names: Sequence[str],
    findings: Findings | None = None,
    method: str = "pca",
) -> CellTable:
    """Build the embedding's table of a finished run (vectorised: run it in a worker).

    Parameters
    ----------
    result : RunResult
        With ``embedding`` set (the map of ``method``).
    position_names : sequence of str
        Label of each of ``result.crops.positions``.
    findings : Findings, optional
        Adds the novelty, group and class columns and their colourings.
    method : str
        Which map ``result.embedding`` is.
    """
    import pandas as pd

    from napari_cellae.pipeline.steps import cell_conditions

    crops, emb = result.crops, np.asarray(result.embedding, np.float32)
    by_condition = categorical("condition", cell_conditions(crops, result.mapping))
    labels = list(position_names)
    position = (
        pd.Categorical.from_codes(crops.position_index, labels)
        if len(set(labels)) == len(labels)
        else np.asarray(labels, dtype=object)[crops.position_index]
    )
    columns = {
        "cell": np.arange(len(crops), dtype=np.int64),
        "embedding_1": emb[:, 0],
        "embedding_2": emb[:, 1],
        "condition": pd.Categorical.from_codes(by_condition.codes, by_condition.labels),
        "position": position,
        "position_index": crops.position_index,
        "object_index": crops.object_index,
        "time": crops.time_idx,
    }
    threshold, class_colours = None, None
    if findings is not None:
        obs = findings.obs
        columns.update({c: obs[c].to_numpy() for c in _FINDING_COLUMNS if c in obs})
        novelty = findings.discovery.novelty
        threshold = None if novelty is None else novelty.threshold
        class_colours = findings.class_colours
    features = pd.DataFrame(columns)
    modes = colourings(features, threshold, class_colours, by_condition)
    table = CellTable(features, modes, method=method)
    table.add_map(method, emb)
    return table
