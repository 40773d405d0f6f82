"""Phenotype discovery on a finished run, for the widget: novelty, groups and hit lists.

:func:`find` runs in the job's worker thread after encoding: the cell table and
:func:`~napari_cellae.pipeline.discovery.discover` of the ``cellae`` command, and the hit
lists by position and by condition of :func:`~napari_cellae.pipeline.hits.hit_list`.
:func:`refind` does it again with other options (the widget's novelty boxes), from the
features in memory. The GUI thread then only looks up which cells a hit-table row holds.
No Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.pipeline.hits import HIT_BY

if TYPE_CHECKING:
    import pandas as pd

    from napari_cellae.pipeline.discovery import Discovery, DiscoveryOptions
    from napari_cellae.pipeline.results import RunResult

__all__ = ["Findings", "find", "refind", "row_key"]

#: the columns :func:`~napari_cellae.pipeline.discovery.with_discovery` adds
_FOUND = ("novelty", "novel", "cluster")


@dataclass
class Findings:
    """Novelty, phenotype groups and hit lists of a run's cells (crop order).

    Attributes
    ----------
    obs : pandas.DataFrame
        The cell table of :func:`napari_cellae.pipeline.discovery.cell_table`, with
        ``novelty``, ``novel`` and ``cluster`` where there are control cells.
    discovery : Discovery
        ``discovery.note`` says why novelty is missing (no controls).
    hits : dict of str to pandas.DataFrame
        ``"position"`` and ``"condition"`` hit lists; empty without novelty.
    class_colours : dict of str to str
        The classifier's colour per class name, where the file stores classes.
    units : dict of str to (ndarray, list of str)
        Per hit unit, every cell's unit code and the unit keys (see :func:`row_key`).
    """

    obs: pd.DataFrame
    discovery: Discovery
    hits: dict[str, pd.DataFrame] = field(default_factory=dict)
    class_colours: dict[str, str] = field(default_factory=dict)
    units: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)

    @property
    def scores(self) -> np.ndarray | None:
        """Novelty of every cell, None without controls."""
        novelty = self.discovery.novelty
        return None if novelty is None else novelty.scores

    def cells_of(self, by: str, keys: list[str]) -> np.ndarray:
        """Cells (sorted row numbers) of the hit-list rows with ``keys`` (:func:`row_key`)."""
        codes, labels = self.units[by]
        wanted = np.flatnonzero(np.isin(np.asarray(labels, dtype=object), list(keys)))
        return np.flatnonzero(np.isin(codes, wanted))

    def most_novel(self, cells: np.ndarray, n: int) -> np.ndarray:
        """The ``n`` most novel of ``cells``, most novel first (the first ``n`` without
        novelty); cells without signal (``no_signal``) last."""
        from napari_cellae.pipeline.cell_flags import without_signal

        cells = np.asarray(cells, np.int64)
        scores = self.scores
        if scores is None:
            return cells[:n]
        # a blank crop scores as very novel but is never novel nor counted in the hit list:
        # it led the gallery of its hit-table row
        blank = without_signal(self.obs)[cells]
        return cells[np.lexsort((-scores[cells], blank))[:n]]


def row_key(row: pd.Series | dict, by: str) -> str:
    """The key of a hit-list row: ``plate/position`` (or position) or the condition."""
    if by == "condition":
        return str(row["condition"])
    return f"{row['plate']}/{row['position']}" if "plate" in row else str(row["position"])


def _units(obs: pd.DataFrame) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Per hit unit, each cell's code and the keys, as :func:`row_key` names them."""
    import pandas as pd

    def text(name: str) -> pd.Series:
        return obs[name].astype(str)

    position = text("position") if "plate" not in obs else text("plate") + "/" + text("position")
    out = {}
    for by, key in (("position", position), ("condition", text("condition"))):
        codes, labels = pd.factorize(key, sort=False)
        out[by] = (codes.astype(np.int64), [str(v) for v in labels])
    return out


def _classes(result: RunResult) -> tuple[dict[int, str] | None, dict[str, str]]:
    """Class names and colours stored in the run's file (none if it cannot be read)."""
    from napari_cellae.io.cellh5 import CellH5
    from napari_cellae.pipeline.plate_cells import class_colours, class_names

    crops = result.crops
    try:
        with CellH5(crops.source) as ch5:
            return class_names(ch5, crops.object_name), class_colours(ch5, crops.object_name)
    except (ValueError, OSError):  # cosmetic: the cells keep their class numbers
        return None, {}


def find(result: RunResult, options: DiscoveryOptions | None = None) -> Findings:
    """Score novelty against the controls, group the novel cells, rank positions and
    conditions (run in a worker thread: seconds for large screens).

    Parameters
    ----------
    result : RunResult
        With ``features``.
    options : DiscoveryOptions, optional
        As for ``cellae encode --out cells.h5ad`` (default: kNN, 80th percentile).
    """
    from napari_cellae.pipeline.discovery import cell_table, discover

    if result.features is None:
        raise ValueError("there are no features to look for hits in")
    names, colours = _classes(result)
    obs = cell_table(result.crops, result.mapping, names)
    found = discover(result.features, obs, options, _views(result), result.mapping)
    return _findings(obs, found, colours)


def _views(result: RunResult) -> list[np.ndarray] | None:
    """The learned features and the outline measurements, scored apart (a model's)."""
    from napari_cellae.core.features import cell_feature_names
    from napari_cellae.core.morphology import novelty_views

    trained = result.trained
    return novelty_views(cell_feature_names(trained)) if trained is not None else None


def _findings(obs: pd.DataFrame, found: Discovery, class_colours: dict[str, str]) -> Findings:
    from napari_cellae.pipeline.discovery import with_discovery
    from napari_cellae.pipeline.hits import hit_list

    obs = with_discovery(obs, found)
    hits = {}
    if found.novelty is not None:
        novelty = found.novelty
        hits = {by: hit_list(obs, novelty.novel, by, novelty.scores) for by in HIT_BY}
    return Findings(obs, found, hits, class_colours, _units(obs))


def refind(result: RunResult, findings: Findings, options: DiscoveryOptions) -> Findings:
    """``findings`` of ``result`` again with other discovery options, from the features
    in memory (no encoding; run it in a worker).

    Where only the percentile changed, the bar is drawn again through the stored scores
    (:func:`~napari_cellae.pipeline.rethreshold.rethreshold`, as ``cellae hits
    --novelty-percentile``); else the cells are scored again
    (:func:`~napari_cellae.pipeline.discovery.discover`, as ``cellae encode`` with those
    options). Either way the novel cells are grouped and the hit lists made again.

    Parameters
    ----------
    result : RunResult
        The run ``findings`` are of, with ``features``.
    findings : Findings
    options : DiscoveryOptions

    Returns
    -------
    Findings
    """
    from dataclasses import replace

    from napari_cellae.pipeline.discovery import discover
    from napari_cellae.pipeline.rethreshold import rethreshold

    if result.features is None:
        raise ValueError("there are no features to look for hits in")
    obs = findings.obs.drop(columns=list(_FOUND), errors="ignore")  # the cell table
    before = findings.discovery
    same_scores = replace(before.options, percentile=options.percentile) == options
    if same_scores and before.novelty is not None:
        found = rethreshold(result.features, obs, before, options.percentile)
    else:
        found = discover(result.features, obs, options, _views(result), result.mapping)
    return _findings(obs, found, findings.class_colours)
