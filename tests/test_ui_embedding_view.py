"""The embedding view: all cells as points, or a density image plus a sample for many."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellae._reader import METADATA_KEY
from napari_cellae._ui.cell_table import cell_table
from napari_cellae._ui.embedding_view import DENSITY_LAYER, EmbeddingView
from napari_cellae._ui.findings import find
from napari_cellae._ui.linking import SelectionLink
from napari_cellae._ui.result_layers import EMBEDDING_LAYER, ResultLayers, embedding_meta
from ui_helpers import fake_run

NAMES = ["A01_0001", "B02_0001"]


@pytest.fixture
def shown(make_napari_viewer, cellcognition_file, mapping_file):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 80), np.float32), metadata={METADATA_KEY: {"kind": "image"}})
    result = fake_run(cellcognition_file, mapping_file)
    table = cell_table(result, NAMES, find(result))
    return viewer, result, table


def test_small_tables_are_all_points(shown):
    viewer, result, table = shown
    view = EmbeddingView(ResultLayers(viewer), dense_above=1000)
    layer = view.show(table, embedding_meta(result, table.colours), "novelty")
    assert not view.dense and DENSITY_LAYER not in viewer.layers
    assert layer.name == EMBEDDING_LAYER and len(layer.data) == len(table)
    np.testing.assert_array_equal(layer.features["cell"], np.arange(len(table)))
    np.testing.assert_allclose(layer.face_color, table.colourings["novelty"].colours())
    view.recolour("phenotype group")
    np.testing.assert_allclose(layer.face_color, table.colourings["phenotype group"].colours())
    view.select(np.array([3, 1]))
    assert set(layer.selected_data) == {1, 3}
    # a spotlit selection (a hit-table row) leaves the other points faint
    view.select(np.array([3, 1]), spotlight=True)
    alpha = layer.face_color[:, 3]
    assert np.all(alpha[[1, 3]] == 1) and np.allclose(np.delete(alpha, [1, 3]), 0.3)
    view.select(np.array([3, 1]))
    assert np.all(layer.face_color[:, 3] == 1)
    np.testing.assert_array_equal(view.cells_of(np.array([2, 0])), [2, 0])
    # another map moves the points and keeps the selection
    before = layer.data.copy()
    table.add_map("umap", result.features[:, 4:6])
    table.show_map("umap")
    view.moved()
    assert not np.allclose(layer.data, before) and set(layer.selected_data) == {1, 3}


def test_large_tables_are_a_density_image_and_a_sample(shown):
    viewer, result, table = shown
    n = len(table)
    view = EmbeddingView(ResultLayers(viewer), dense_above=10, sample=8, bins=16)
    view.prepare(10)  # as many cells as the threshold: no density layer
    assert DENSITY_LAYER not in viewer.layers
    view.prepare(n)  # added while the features are computed, filled when they are shown
    prepared = viewer.layers[DENSITY_LAYER]
    layer = view.show(table, embedding_meta(result, table.colours))
    assert view.dense and viewer.layers[DENSITY_LAYER] is prepared
    density = viewer.layers[DENSITY_LAYER]
    # under the points, which keep the image's right side as in the small view
    assert viewer.layers.index(density) < viewer.layers.index(layer)
    assert density.rgb and density.data.shape == (16, 16, 4)
    assert int(density.data[..., 3].astype(bool).sum()) == int((view.grid.counts > 0).sum())
    assert len(layer.data) == 8 and len(set(view.rows)) == 8
    np.testing.assert_array_equal(layer.features["cell"], view.rows)
    np.testing.assert_allclose(layer.face_color, table.face[view.rows])
    assert layer.metadata[METADATA_KEY]["kind"] == "embedding"

    # selecting cells that are not in the sample adds them as points, and spotlights them
    outside = np.setdiff1d(np.arange(n), view.sample)[:3]
    base = density.data.copy()
    view.select(outside, spotlight=True)
    cells = view.cells_of(np.array(sorted(layer.selected_data)))
    np.testing.assert_array_equal(np.sort(cells), outside)
    assert len(layer.data) == 11 and len(layer.size) == 11
    assert np.all(layer.size == layer.size[0])  # added points keep the view's style
    assert not np.array_equal(density.data, base)
    assert (density.data[..., 3] == 255).sum() >= 1  # the spotlit bins stay opaque
    view.select(np.zeros(0, np.int64))
    np.testing.assert_array_equal(density.data, base)
    assert len(layer.data) == 8

    # recolouring repaints the density by the new colouring
    view.recolour("class")
    assert not np.array_equal(density.data, base)
    np.testing.assert_allclose(layer.face_color, table.colourings["class"].colours(view.rows))

    # a small table again: the density layer goes
    small = EmbeddingView(ResultLayers(viewer), dense_above=1000)
    small.show(table, embedding_meta(result, table.colours))
    assert DENSITY_LAYER not in viewer.layers and len(layer.data) == n


def test_selecting_in_the_density_view_sets_no_style_for_all_points(shown):
    # each property set for all points rebuilds napari's visual: the points a selection
    # adds take the view's size, rim width and black rim without setting them for all
    viewer, result, table = shown
    view = EmbeddingView(ResultLayers(viewer), dense_above=10, sample=8, bins=16)
    layer = view.show(table, embedding_meta(result, table.colours))
    size, width = float(layer.size[0]), float(layer.border_width[0])
    set_for_all = []
    for name in ("size", "border_width", "border_color"):
        getattr(layer.events, name).connect(lambda event, name=name: set_for_all.append(name))
    outside = np.setdiff1d(np.arange(len(table)), view.sample)[:3]
    view.select(outside, spotlight=True)
    assert len(layer.data) == 11 and not set_for_all
    np.testing.assert_allclose(layer.size, size)
    np.testing.assert_allclose(layer.border_width, width)
    np.testing.assert_allclose(layer.border_color, np.tile([0, 0, 0, 1], (11, 1)))
    np.testing.assert_allclose(layer.face_color[:, :3], table.face[view.rows][:, :3])


def test_linking_reaches_cells_outside_the_sample(shown):
    viewer, result, table = shown
    crops = result.crops
    centres = viewer.add_points(
        np.stack([crops.position_index, crops.center_y, crops.center_x], axis=1).astype(float),
        name="centres",
        features={"position_index": crops.position_index, "object_index": crops.object_index},
        metadata={
            METADATA_KEY: {
                "kind": "centres",
                "path": str(crops.source),
                "object": crops.object_name,
                "positions": list(crops.positions),
            }
        },
    )
    view = EmbeddingView(ResultLayers(viewer), dense_above=10, sample=5, bins=8)
    layer = view.show(table, embedding_meta(result, table.colours))
    picked: list[int] = []
    link = SelectionLink(viewer, on_focus=picked.append, on_pick=picked.append)
    link.connect(layer, cells=table.features, show=view.select)
    cell = int(np.setdiff1d(np.arange(len(table)), view.sample)[0])
    centres.selected_data = {cell}  # the centres layer lists the cells in crop order
    assert picked == [cell]
    (row,) = layer.selected_data
    assert view.cells_of(np.array([row]))[0] == cell
    # several cells selected in the embedding select their centres
    layer.selected_data = {0, 1}
    assert set(centres.selected_data) == set(view.cells_of(np.array([0, 1])).tolist())


@pytest.mark.parametrize("dense_above", [1000, 10])
def test_clearing_shows_no_cells(shown, dense_above):
    # Features dropped by a Stop left the older run's points on screen, answering no click.
    viewer, result, table = shown
    view = EmbeddingView(ResultLayers(viewer), dense_above=dense_above, sample=8, bins=16)
    layer = view.show(table, embedding_meta(result, table.colours), "novelty")
    view.select(np.array([1]))
    view.clear()
    assert len(layer.data) == 0 and len(layer.features) == 0 and not layer.selected_data
    assert DENSITY_LAYER not in viewer.layers and view.table is None
    assert EMBEDDING_LAYER in viewer.layers  # the layer stays for the next run
    again = view.show(table, embedding_meta(result, table.colours), "novelty")
    assert again is layer and len(layer.data) == (len(table) if dense_above > 10 else 8)


def test_points_are_rimmed_on_a_light_canvas(shown, qtbot):
    # viridis' light end (the most novel cells) hardly showed on the light theme's white
    from napari_cellae._ui.results import Results

    viewer, result, table = shown
    viewer.theme = "dark"
    results = Results(viewer, ResultLayers(viewer), lambda text: None, lambda err: None)
    qtbot.addWidget(results.panel)
    view = results.view
    layer = view.show(table, embedding_meta(result, table.colours), "novelty")
    assert np.all(layer.border_width == 0)  # on black: no rims
    viewer.theme = "light"  # switched while the embedding is shown
    assert np.allclose(layer.border_width, 0.15)
    np.testing.assert_allclose(layer.border_color[:, :3], layer.face_color[:, :3] * 0.5)
    view.select(np.array([3, 1]), spotlight=True)  # the faint points' rims are as faint
    np.testing.assert_allclose(layer.border_color[:, 3], layer.face_color[:, 3])
    view.recolour("condition")
    layer = view.show(table, embedding_meta(result, table.colours), "novelty")  # a new run
    assert np.allclose(layer.border_width, 0.15)
    viewer.theme = "dark"
    assert np.all(layer.border_width == 0)


def test_points_the_user_deleted_leave_the_others_their_cells(shown):
    # Delete on the embedding (the layer the widget keeps active) removed the selected
    # points: the rows after them moved up, and cell 5 chosen elsewhere selected cell 6's
    # point; the colours of all cells no longer fitted the points left.
    viewer, result, table = shown
    view = EmbeddingView(ResultLayers(viewer), dense_above=1000)
    layer = view.show(table, embedding_meta(result, table.colours), "novelty")
    layer.selected_data = {0, 2}
    layer.remove_selected()
    cells = np.delete(np.arange(len(table)), [0, 2])
    np.testing.assert_array_equal(layer.features["cell"], cells)
    view.select(np.array([5, 2]))  # cell 2's point is gone
    assert set(layer.features["cell"][list(layer.selected_data)]) == {5}
    view.recolour("phenotype group")
    np.testing.assert_allclose(layer.face_color, table.colourings["phenotype group"].colours(cells))
    view.select(np.array([5]), spotlight=True)
    assert layer.face_color[list(layer.selected_data), 3] == [1]
    table.add_map("umap", result.features[:, 4:6])
    table.show_map("umap")
    view.moved()
    np.testing.assert_allclose(layer.data, view._offset + table.unit[cells] * view._side)
    assert set(layer.features["cell"][list(layer.selected_data)]) == {5}
