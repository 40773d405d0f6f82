"""Ids of cells, wells and sites (napari_cellae.pipeline.cell_ids)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from napari_cellae.pipeline.cell_ids import cell_keys, held_out_ids, well_ids


def test_well_ids_number_plate_and_well_without_making_text_of_every_cell(monkeypatch) -> None:
    """Well ids (novelty's held-out units, the maps' and groups' plate scaling) come from
    the columns' codes: making 'plate/well' text of every cell took 2.8 s and 180 MiB for a
    million cells, and the .h5ad path made it three times."""
    obs = pd.DataFrame(
        {
            "plate": pd.Categorical(["P2", "P1", "P2", "P1", "P2", "P1"]),
            "well": pd.Categorical(["A01", "A01", "B01", "A01", "A01", "B01"]),
            "site": pd.Categorical(["1", "1", "1", "2", "2", "1"]),
        }
    )
    made_text = []
    astype = pd.Series.astype

    def spy(self, dtype, *args, **kwargs):
        if dtype is str:
            made_text.append(len(self))
        return astype(self, dtype, *args, **kwargs)

    monkeypatch.setattr(pd.Series, "astype", spy)
    # numbered in order of their names, whatever the cells' order; the same well of two
    # plates is two wells
    assert well_ids(obs).tolist() == [2, 0, 3, 0, 2, 1]
    assert well_ids(obs.iloc[::-1]).tolist() == [1, 2, 0, 3, 0, 2]
    assert well_ids(obs.drop(columns="plate")).tolist() == [0, 0, 1, 0, 0, 1]
    # one control well of two sites: held out by site (P2/A01 sites 1 and 2)
    ids, by_site = held_out_ids(obs, np.array([1, 0, 0, 0, 1, 0], bool))
    assert by_site and ids.tolist() == [3, 0, 5, 1, 4, 2]
    assert made_text == []


def test_cell_keys_follow_the_cells_names() -> None:
    obs = pd.DataFrame(
        {"well": ["A01", "B01", "A01"]}, index=["P/A01_1/0", "P/B01_1/1", "P/A01_1/2"]
    )
    keys = cell_keys(obs)
    assert keys.dtype == np.uint64 and len(set(keys.tolist())) == 3
    np.testing.assert_array_equal(cell_keys(obs.iloc[::-1]), keys[::-1])
