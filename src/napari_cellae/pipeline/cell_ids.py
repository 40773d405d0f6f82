"""Ids of the cells of a cell table, of their wells and of their sites.

Novelty holds control cells out by well (or by site) and deals every other cell to one of
those held-out folds by the cell's name; the maps and phenotype groups scale plates by the
same wells. All ids follow names, not the order of the rows: the same cells given in another
order (plates the other way round, positions listed anew) get the same ids, and
:func:`cell_order` puts them in one order, for what is fitted on all of them at once (the
2-D maps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["cell_keys", "cell_order", "held_out_ids", "position_order", "well_ids"]


def cell_keys(obs: pd.DataFrame) -> np.ndarray:
    """A number per cell from its name (the index, ``plate/position/object``), so that its
    novelty does not depend on where in the table it stands (``cell_keys`` of
    :func:`~napari_cellae.core.novelty.novelty_scores`)."""
    import pandas as pd

    # The index's own strings (as object): a fixed-width text copy of them took 2.3 s and
    # 280 bytes a cell for a million cells, against 0.5 s.
    return pd.util.hash_array(obs.index.astype(str).to_numpy(dtype=object))


def _joint_ids(obs: pd.DataFrame, names: list[str]) -> np.ndarray:
    """An integer id of every distinct combination of the columns ``names``, numbered in
    the order of their names (so the same cells in another order get the same ids, and
    novelty the same folds of control wells). Combined from each column's codes: making
    every cell's names text ('plate/well') took 2.8 s and 180 MiB for a million cells."""
    import pandas as pd

    ids = np.zeros(len(obs), np.int64)
    for name in names:
        codes, values = pd.factorize(obs[name], use_na_sentinel=False)
        rank = np.empty(len(values), np.int64)
        rank[np.argsort(np.asarray(values, dtype=object).astype(str), kind="stable")] = np.arange(
            len(values)
        )
        ids = pd.factorize(ids * len(values) + rank[codes], sort=True)[0].astype(np.int64)
    return ids


def _well_columns(obs: pd.DataFrame) -> list[str]:
    return ["plate", "well"] if "plate" in obs else ["well"]


def well_ids(obs: pd.DataFrame) -> np.ndarray:
    """An integer id of every cell's well (plate and well), as novelty holds controls out by.

    Parameters
    ----------
    obs : pandas.DataFrame
        The cell table (:func:`cell_table`): ``well``, and ``plate`` where present.

    Returns
    -------
    ndarray (N,) int64
    """
    return _joint_ids(obs, _well_columns(obs))


def held_out_ids(obs: pd.DataFrame, controls: np.ndarray) -> tuple[np.ndarray, bool]:
    """Integer id of the unit a control cell is held out by, and whether that is the site:
    its well (plate and well), or its site where all control cells lie in one well of
    several sites. Each control cell was then scored against all the others of its well:
    its own image's neighbours (in a time-lapse the same cell in the other frames) made the
    controls' scores small and most other cells novel."""
    wells = well_ids(obs)
    if len(np.unique(wells[controls])) > 1 or "site" not in obs:
        return wells, False
    sites = _joint_ids(obs, [*_well_columns(obs), "site"])
    if len(np.unique(sites[controls])) > 1:
        return sites, True
    return wells, False


def position_order(plate: str, well: str, site: str) -> tuple:
    """A position's place in :func:`cell_order`: by plate, well and site, each sorted
    naturally (``A2`` before ``A10``) as a file lists its positions
    (:func:`~napari_cellae.io.positions.find_positions`), then by their text where that
    ties (``A01`` and ``A1``), as the file's groups come."""
    from napari_cellae.io.positions import natural_key

    return (natural_key(plate), natural_key(well), natural_key(site), plate, well, site)


def cell_order(obs: pd.DataFrame) -> np.ndarray:
    """The cells of a cell table in one order, whatever order its rows are in.

    By position (:func:`position_order` of ``plate``, ``well`` and ``site``), then by
    ``object_index`` (the cell's row in its position's table). The cells of one file are
    already in this order, as it lists them; those of several plates come in the order the
    plates were given, and a map fitted on them in that order differed.

    Parameters
    ----------
    obs : pandas.DataFrame
        The cell table (:func:`~napari_cellae.pipeline.discovery.cell_table`): ``plate``,
        ``well``, ``site`` and ``object_index``, unique per cell.

    Returns
    -------
    ndarray (N,) of intp
        The rows in that order: ``obs.iloc[order]`` is the canonical table.
    """
    import pandas as pd

    # Each distinct position ranked once (a few thousand), not each cell's names compared.
    ids = np.zeros(len(obs), np.int64)
    values = []
    for name in ("plate", "well", "site"):
        codes, uniques = pd.factorize(obs[name], use_na_sentinel=False)
        ids = ids * max(len(uniques), 1) + codes
        values.append(np.asarray(uniques, dtype=object).astype(str))
    positions, at = np.unique(ids, return_inverse=True)
    triples = []
    for position in positions.tolist():
        parts = []
        for column in reversed(values):
            position, code = divmod(position, max(len(column), 1))
            parts.append(column[code])
        triples.append(position_order(*reversed(parts)))
    rank = np.empty(len(positions), np.int64)
    rank[sorted(range(len(positions)), key=triples.__getitem__)] = np.arange(len(positions))
    objects = obs["object_index"].to_numpy(np.int64)
    return np.lexsort((objects, rank[np.asarray(at).reshape(-1)])).astype(np.intp)
