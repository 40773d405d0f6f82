"""Phenotype discovery on a run's features: novelty against the controls, phenotype groups.

After encoding, every cell gets a row in a cell table (:func:`cell_table`: where it is, what
was done to it, whether it is a negative control). :func:`discover` then scores every cell's
novelty against the negative-control cells (:func:`napari_cellae.core.novelty.novelty_scores`),
marks the novel ones, and clusters the novel cells into phenotype groups (scikit-learn
k-means) with the most typical cells of each group for a gallery. Hit lists per position or
condition are in :mod:`napari_cellae.pipeline.hits`.

Everything here is plain numpy / pandas / scikit-learn without Qt: the widget calls it from
a worker thread, the ``cellae`` command directly::

    obs = cell_table(crops, mapping, class_names)
    found = discover(features, obs, DiscoveryOptions(method="knn", percentile=80))
    obs = with_discovery(obs, found)          # novelty, novel, cluster columns
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.core.novelty import (
    NOVEL_PERCENTILE,
    NOVELTY_METHODS,
    NOVELTY_NEIGHBOURS,
    Novelty,
    novelty_scores,
)
from napari_cellae.pipeline.cell_flags import without_signal
from napari_cellae.pipeline.cell_ids import cell_keys, held_out_ids
from napari_cellae.pipeline.phenotype_groups import phenotype_groups

if TYPE_CHECKING:
    import pandas as pd

    from napari_cellae.core.crops import CropSet
    from napari_cellae.io.mapping import PositionMapping

__all__ = [
    "NO_CONTROLS",
    "ONE_CONTROL_CELL",
    "Discovery",
    "DiscoveryOptions",
    "cell_table",
    "discover",
    "grouped",
    "phenotype_groups",
    "with_discovery",
]

NO_CONTROLS = (
    "novelty needs negative-control cells, and {why}: give a position mapping whose Group "
    "column marks the negative controls (e.g. 'neg'); the features are written without the "
    "novelty, novel and cluster columns"
)
#: where no row of the mapping is a control: its own hint, as training and the widget say
NO_CONTROL_ROWS = (
    "novelty needs negative-control cells, and {path}: {hint}; the features are written "
    "without the novelty, novel and cluster columns"
)
ONE_CONTROL_CELL = (
    "novelty needs at least two negative-control cells, and the control positions hold only "
    "one: mark more positions as controls in the mapping's Group column, or check the "
    "control positions' segmentation; the features are written without the novelty, novel "
    "and cluster columns"
)
NO_SIGNAL_CONTROLS = (
    "novelty needs negative-control cells, and only {n} of the {of} control cells have crops "
    "with signal (the others have a channel of a single value, as images never acquired "
    "read); check the control positions' images. The features are written without the "
    "novelty, novel and cluster columns"
)


@dataclass
class DiscoveryOptions:
    """How novelty is scored and novel cells are grouped.

    Attributes
    ----------
    method, k, nu : str, int, float
        How the score is made, as in :func:`napari_cellae.core.novelty.novelty_scores`:
        ``"knn"`` (mean distance to the ``k`` nearest control cells) or ``"svm"``.
    percentile : float
        A cell is novel above this percentile of the control cells' scores.
    groups : int or None
        Phenotype groups of the novel cells; None: chosen from the data (2 to 12, see
        :func:`~napari_cellae.pipeline.phenotype_groups.auto_groups`; 1 when there are too few
        novel cells to split).
    per_group : int
        Typical cells kept per group (for the gallery).
    seed : int
        Seed of the SVM's PCA, k-means and subsampling.
    """

    method: str = "knn"
    k: int = NOVELTY_NEIGHBOURS
    nu: float = 0.05
    percentile: float = NOVEL_PERCENTILE
    groups: int | None = None
    per_group: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in NOVELTY_METHODS:
            raise ValueError(
                f"unknown novelty method {self.method!r}; choose {' or '.join(NOVELTY_METHODS)}"
            )
        if self.groups is not None and self.groups < 1:
            raise ValueError(f"the number of phenotype groups must be >= 1, got {self.groups}")
        if self.per_group < 1:
            raise ValueError(f"per_group must be >= 1, got {self.per_group}")


@dataclass
class Discovery:
    """Novelty and phenotype groups of every cell (row ``i`` = cell ``i`` of the run).

    Attributes
    ----------
    novelty : Novelty or None
        Scores, threshold and novel flags; None when there are no control cells.
    clusters : ndarray (N,) int16
        Phenotype group of every novel cell, 1 = the largest group; 0 for cells that are
        not novel (and for every cell without novelty).
    typical : dict of int to ndarray of int
        Per group, the cells nearest its centre (most typical first).
    note : str or None
        Why novelty or groups are missing, for the user.
    options : DiscoveryOptions
    novelty_notes : list of str
        What the novelty scoring warned about (one control well, a plate without control
        wells of its own); also in ``note``, apart here for callers that use no groups.
    """

    novelty: Novelty | None
    clusters: np.ndarray
    typical: dict[int, np.ndarray] = field(default_factory=dict)
    note: str | None = None
    options: DiscoveryOptions = field(default_factory=DiscoveryOptions)
    novelty_notes: list[str] = field(default_factory=list)

    @property
    def n_groups(self) -> int:
        """Number of phenotype groups found."""
        return len(self.typical)

    def summary(self) -> dict:
        """JSON-able settings and outcome (stored in the AnnData ``uns``)."""
        out: dict = {"options": asdict(self.options), "n_groups": self.n_groups}
        if self.novelty is not None:
            out["threshold"] = float(self.novelty.threshold)
            out["n_novel"] = int(self.novelty.novel.sum())
        if self.note:
            out["note"] = self.note
        return out


def cell_table(
    crops: CropSet,
    mapping: PositionMapping | None = None,
    class_names: dict[int, str] | None = None,
) -> pd.DataFrame:
    """One row per cell saying where it is and what was done to it.

    Parameters
    ----------
    crops : CropSet
        The run's cells, in CellH5 order.
    mapping : PositionMapping, optional
        Gives ``condition``, ``group`` and ``control``; without it each position is its own
        condition (``plate/position`` where there are several plates) and no cell is a
        control.
    class_names : dict of int to str, optional
        Names of the classifier classes stored in the file; adds ``class`` (and
        ``class_index``) when the cells have class predictions.

    Returns
    -------
    pandas.DataFrame
        Columns ``plate``, ``well``, ``site``, ``position`` (well_site), ``object_index``,
        ``label_id``, ``frame``, ``x``, ``y``, ``condition``, ``group`` (the mapping's
        Group), ``control`` (bool), ``no_signal`` (bool: a channel of the crop holds one
        value, as images never acquired read; :mod:`napari_cellae.core.blank`), plus
        ``class_index`` / ``class`` where present; the index is
        ``plate/position/object_index`` (unique per cell).
    """
    import pandas as pd

    from napari_cellae.io.centres import position_labels

    keys = crops.positions
    infos = [mapping.lookup(k) if mapping is not None else None for k in keys]
    # An unmapped position is its own condition, named with its plate where there are
    # several: two plates' A01_1 were one condition to the hit list by condition.
    own = position_labels(keys)
    per_position = {
        "plate": [k.plate for k in keys],
        "well": [k.well for k in keys],
        "site": [k.site for k in keys],
        "position": [k.raw_label for k in keys],  # the file's names, as plate, well, site
        "condition": [i.condition if i is not None else o for o, i in zip(own, infos, strict=True)],
        "group": [i.group if i is not None else "" for i in infos],
    }
    at = np.asarray(crops.position_index, np.intp)
    columns: dict = {
        name: pd.Categorical(np.asarray(values, dtype=object)[at], categories=_ordered(values))
        for name, values in per_position.items()
    }
    is_control = np.array([i is not None and i.is_control for i in infos], bool)
    columns.update(
        object_index=np.asarray(crops.object_index, np.int32),
        label_id=np.asarray(crops.label_id, np.int32),
        frame=np.asarray(crops.time_idx, np.int32),
        x=np.asarray(crops.center_x, np.int32),
        y=np.asarray(crops.center_y, np.int32),
        control=is_control[at] if len(keys) else np.zeros(0, bool),
        no_signal=np.asarray(crops.blank, bool),
    )
    classes = np.asarray(crops.class_idx, np.int32)
    if len(classes) and (classes >= 0).any():
        from napari_cellae.pipeline.plate_cells import class_labels

        columns["class_index"] = classes
        columns["class"] = pd.Categorical(class_labels(classes, class_names))
    order = ["plate", "well", "site", "position", "object_index", "label_id", "frame", "x", "y"]
    order += ["condition", "group", "control", "no_signal"]
    order += [c for c in ("class_index", "class") if c in columns]
    index = [
        f"{keys[p].plate}/{keys[p].raw_label}/{o}"
        for p, o in zip(at.tolist(), columns["object_index"].tolist(), strict=True)
    ]
    return pd.DataFrame({name: columns[name] for name in order}, index=pd.Index(index, dtype=str))


def _ordered(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def discover(
    features: np.ndarray,
    obs: pd.DataFrame,
    options: DiscoveryOptions | None = None,
    views: list[np.ndarray] | None = None,
    mapping: PositionMapping | None = None,
) -> Discovery:
    """Score novelty against the controls of ``obs`` and group the novel cells.

    Parameters
    ----------
    features : ndarray (N, F)
    obs : pandas.DataFrame
        The cell table (:func:`cell_table`): ``control`` and ``well`` (plus ``plate``)
        columns, one row per feature row. Of several plates, each is standardised on its
        own control cells (:func:`~napari_cellae.core.novelty.novelty_scores`). Cells
        marked ``no_signal`` are left out of the controls and are never novel.
    options : DiscoveryOptions, optional
    views : list of ndarray of int, optional
        Feature columns novelty scores apart and adds up
        (:func:`napari_cellae.core.morphology.novelty_views` of the feature names).
    mapping : PositionMapping, optional
        The mapping ``obs`` was made with: where it marks no control, the note says how.

    Returns
    -------
    Discovery
        Without control cells: no novelty, no groups, and a ``note`` saying novelty needs
        them (this is not an error: the features are still useful).

    Raises
    ------
    ValueError
        If features and table do not match, or features hold NaN.
    """
    options = options or DiscoveryOptions()
    features = np.asarray(features)
    if features.ndim != 2 or len(features) != len(obs):
        raise ValueError(f"features {features.shape} do not match the {len(obs)} cells")
    # Cells without signal (column no_signal) are neither reference nor novel: their
    # features describe no cell, and a position of them topped the hit list.
    no_signal = without_signal(obs)
    in_controls = np.asarray(obs["control"], bool)
    controls = in_controls & ~no_signal
    empty = np.zeros(len(features), np.int16)
    if controls.sum() < 2:
        note = NO_CONTROLS.format(why="no cell is in a control position")
        if mapping is not None and not mapping.control_conditions:
            note = NO_CONTROL_ROWS.format(path=mapping.path, hint=mapping.controls_hint())
        elif in_controls.sum() == 1:  # the mapping marks controls: they hold one cell
            note = ONE_CONTROL_CELL
        elif in_controls.sum() >= 2:
            note = NO_SIGNAL_CONTROLS.format(n=controls.sum(), of=in_controls.sum())
        return Discovery(None, empty, note=note, options=options)
    wells, by_site = held_out_ids(obs, controls)
    keys = cell_keys(obs)  # scores and groups follow the cells, not their order
    plates = obs["plate"].astype(str).to_numpy() if "plate" in obs else None
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        novelty = novelty_scores(
            features,
            controls,
            wells,
            method=options.method,
            k=options.k,
            nu=options.nu,
            percentile=options.percentile,
            seed=options.seed,
            views=views,
            plates=plates,
            cell_keys=keys,
        )
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    if by_site:
        notes.append(
            "all negative-control cells come from one well: control cells are scored "
            "against those of the well's other sites"
        )
    novelty.novel &= ~no_signal
    return grouped(features, novelty, controls, options, notes, plates, wells, keys)


def grouped(
    features: np.ndarray,
    novelty: Novelty,
    controls: np.ndarray,
    options: DiscoveryOptions,
    novelty_notes: list[str],
    plates: np.ndarray | None,
    wells: np.ndarray,
    keys: np.ndarray,
) -> Discovery:
    """Group the novel cells of ``novelty`` into phenotype groups: the end of
    :func:`discover`, also of the bar drawn again
    (:func:`napari_cellae.pipeline.rethreshold.rethreshold`).

    Parameters
    ----------
    features : ndarray (N, F)
    novelty : Novelty
        Its ``novel`` flags final (cells without signal cleared).
    controls : ndarray (N,) bool
        The control cells with signal that novelty was scored against.
    options : DiscoveryOptions
    novelty_notes : list of str
        What the scoring noted.
    plates, wells, keys : ndarray
        Each cell's plate (or None), held-out unit and key (:func:`cell_keys`).

    Returns
    -------
    Discovery
    """
    clusters, typical = phenotype_groups(
        features,
        novelty.novel,
        controls,
        options.groups,
        options.per_group,
        options.seed,
        plates,
        wells,  # each plate on the controls novelty scaled it on
        keys,
    )
    notes = list(novelty_notes)
    if novelty.novel.any() and not typical:
        notes.append(f"{int(novelty.novel.sum())} novel cell(s) are too few to form groups")
    note = "; ".join(notes) or None
    return Discovery(novelty, clusters, typical, note, options, list(novelty_notes))


def with_discovery(obs: pd.DataFrame, found: Discovery) -> pd.DataFrame:
    """The cell table with ``novelty``, ``novel`` and ``cluster`` columns (a copy).

    Without novelty (no controls) the table is returned unchanged: absent columns say
    "not computed", which NaN or False would not.
    """
    if found.novelty is None:
        return obs
    out = obs.copy()
    out["novelty"] = found.novelty.scores.astype(np.float32)
    out["novel"] = found.novelty.novel.astype(bool)
    out["cluster"] = found.clusters.astype(np.int16)
    return out
