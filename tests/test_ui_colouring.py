"""Colourings of the embedding: categories, a colour map for novelty, phenotype groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_cellae._ui.colouring import (
    LEGEND_ITEMS,
    NOT_NOVEL,
    categorical,
    colourings,
    continuous,
    hex_colour,
    rgba,
)
from napari_cellae.export.palette import PALETTE


def test_categories_in_order_of_appearance_with_the_shared_palette():
    colouring = categorical("condition", ["PLK1", "neg", "PLK1", "KIF11"])
    assert colouring.labels == ["PLK1", "neg", "KIF11"]
    np.testing.assert_array_equal(colouring.codes, [0, 1, 0, 2])
    assert [hex_colour(c) for c in colouring.palette] == list(PALETTE[:3])
    np.testing.assert_allclose(colouring.colours(np.array([3])), [rgba(PALETTE[2])])
    assert colouring.colours().shape == (4, 4) and colouring.colours().dtype == np.float32
    html = colouring.legend_html()
    assert html.startswith("condition: ")
    assert f'color:{PALETTE[1]}">■</span>&nbsp;neg' in html


def test_given_colours_win_and_long_legends_are_cut():
    colouring = categorical("class", ["a", "b"], {"b": "#123456", "unused": "#000000"})
    assert hex_colour(colouring.palette[1]) == "#123456"
    assert hex_colour(colouring.palette[0]) == PALETTE[0]
    many = categorical("condition", [f"c{i}" for i in range(LEGEND_ITEMS + 5)])
    html = many.legend_html()
    assert "… and 5 more" in html and f"c{LEGEND_ITEMS - 1}" in html
    assert f"c{LEGEND_ITEMS}<" not in html and "&lt;" not in categorical("x", ["<b>"]).labels[0]
    assert "&lt;b&gt;" in categorical("x", ["<b>"]).legend_html()  # names are escaped


def test_continuous_values_map_to_256_levels_between_the_limits():
    colouring = continuous("novelty", np.array([-5.0, 0.0, 0.5, 1.0, 9.0]), (0.0, 1.0), "note")
    np.testing.assert_array_equal(colouring.codes, [0, 0, 128, 255, 255])
    assert colouring.continuous and colouring.palette.shape == (256, 4)
    # viridis: dark violet to yellow
    assert hex_colour(colouring.palette[0]) == "#440154"
    assert hex_colour(colouring.palette[-1]) == "#fde725"
    html = colouring.legend_html()
    assert html.startswith("novelty: low") and "high — note" in html
    flat = continuous("novelty", np.ones(3), (1.0, 1.0))  # no spread: no division by zero
    assert np.all(flat.codes == 0)


def test_colourings_offers_what_the_table_has():
    cells = pd.DataFrame({"condition": ["a", "b", "a", "b"]})
    assert list(colourings(cells)) == ["condition"]
    cells = cells.assign(
        novelty=[0.1, 5.0, 0.2, 6.0],
        novel=[False, True, False, True],
        cluster=np.array([0, 1, 0, 2], np.int16),
        **{"class": ["x", "y", "x", "x"]},
    )
    modes = colourings(cells, threshold=1.5, class_colours={"y": "#ff0000"})
    assert list(modes) == ["condition", "novelty", "phenotype group", "class"]
    assert "novel above 1.5" in modes["novelty"].legend_html()
    assert modes["novelty"].codes[3] == 255 and modes["novelty"].codes[0] == 0
    groups = modes["phenotype group"]
    assert groups.labels == [NOT_NOVEL, "group 1 (1)", "group 2 (1)"]
    np.testing.assert_array_equal(groups.codes, [0, 1, 0, 2])
    assert hex_colour(groups.palette[1]) == PALETTE[0]
    assert hex_colour(modes["class"].palette[1]) == "#ff0000"
    # 12 groups (more than the palette's 10 colours): every group its own colour
    many = colourings(cells.assign(cluster=np.array([0, 12, 11, 1], np.int16)))
    colours = {hex_colour(c) for c in many["phenotype group"].palette[1:]}
    assert len(colours) == 12 and hex_colour(many["phenotype group"].palette[0]) not in colours
    assert not {"#7f7f7f", "#c7c7c7"} & colours  # grey means "not novel"


@pytest.mark.parametrize("value", ["#1f77b4", "#ffffff", "#000000"])
def test_hex_and_rgba_round_trip(value):
    assert hex_colour(np.array(rgba(value))) == value


def test_cells_without_a_class_are_called_unclassified_as_on_the_points_layer():
    # obs["class"] is "" for a cell without a prediction (-1): the legend listed a blank
    # class, where the reader's points layer says "unclassified" (gray, as there).
    cells = pd.DataFrame({"condition": ["a"] * 3, "class": ["x", "", "unknown (7)"]})
    colouring = colourings(cells, class_colours={"x": "#ff0000"})["class"]
    assert colouring.labels == ["x", "unclassified", "unknown (7)"]
    assert hex_colour(colouring.palette[1]) == "#b3b3b3"
