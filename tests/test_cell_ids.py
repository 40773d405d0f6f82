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


def test_cell_order_is_the_files_order_whatever_order_the_rows_come_in() -> None:
    from napari_cellae.pipeline.cell_ids import cell_order

    # as a file lists them: plates, wells and sites sorted naturally (P9 before P10, A2
    # before A10), then each position's rows; 'A01' and 'A1' (naturally alike) by text
    canonical = [
        ("P9", "A01", "1", 0),
        ("P9", "A01", "1", 3),
        ("P9", "A1", "1", 1),
        ("P9", "A2", "2", 0),
        ("P9", "A2", "10", 0),
        ("P9", "A10", "1", 5),
        ("P10", "A2", "1", 0),
        ("P10", "A2", "1", 1),
    ]
    obs = pd.DataFrame(canonical, columns=["plate", "well", "site", "object_index"])
    np.testing.assert_array_equal(cell_order(obs), np.arange(len(obs)))
    for shuffle in (np.arange(len(obs))[::-1], np.random.default_rng(3).permutation(len(obs))):
        moved = obs.iloc[shuffle]
        order = cell_order(moved)
        assert list(moved.iloc[order].itertuples(index=False, name=None)) == canonical
    # categorical columns, as cell_table makes them, order alike
    as_categories = obs.astype({name: "category" for name in ("plate", "well", "site")})
    np.testing.assert_array_equal(cell_order(as_categories.iloc[::-1]), np.arange(8)[::-1])
    assert cell_order(obs.iloc[:0]).tolist() == []


def test_cell_order_of_one_files_cells_is_their_order(cellcognition_file) -> None:
    # One file's cells are in this order already: a single file's maps are unchanged.
    from napari_cellae.io.cellh5 import CellH5
    from napari_cellae.pipeline.cell_ids import cell_order
    from napari_cellae.pipeline.discovery import cell_table
    from napari_cellae.pipeline.steps import collect

    with CellH5(cellcognition_file) as ch5:
        crops = collect(ch5, "primary__primary", 16, [0])
    np.testing.assert_array_equal(cell_order(cell_table(crops)), np.arange(len(crops)))
