"""Result layers: placement of gallery, embedding and selected cell beside the images."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellae._reader import METADATA_KEY
from napari_cellae._ui.cell_table import cell_table
from napari_cellae._ui.embedding_view import EmbeddingView
from napari_cellae._ui.result_layers import (
    EMBEDDING_LAYER,
    GALLERY_LAYER,
    MARKER_LAYER,
    SELECTED_LAYER,
    ResultLayers,
    cellae_layers,
    embedding_meta,
)
from napari_cellae.core.crops import collect_crops
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.mapping import read_mapping
from napari_cellae.pipeline.results import RunResult


@pytest.fixture
def result(cellcognition_file, mapping_file) -> RunResult:
    with CellH5(cellcognition_file) as f:
        crops = collect_crops(f, "primary__primary", 16)
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(len(crops), 2)).astype(np.float32)
    return RunResult(None, crops, read_mapping(mapping_file), embedding=embedding)


def test_layers_are_placed_beside_the_images(make_napari_viewer, result):
    viewer = make_napari_viewer()
    image = viewer.add_image(
        np.zeros((100, 200), np.float32), metadata={METADATA_KEY: {"kind": "image"}}
    )
    layers = ResultLayers(viewer)
    assert cellae_layers(viewer, "image") == [image]
    y0, x0, y1, x1 = layers.image_box()  # napari's world extent: pixel centres
    assert (y0, x0, y1, x1) == (0.0, 0.0, 99.0, 199.0)
    layers.prepare(np.zeros((10, 50), np.float32))
    gallery = viewer.layers[GALLERY_LAYER]
    assert EMBEDDING_LAYER in viewer.layers
    assert gallery.translate[0] > y1 and gallery.scale[1] == pytest.approx(x1 / 50)
    layers.show_gallery(np.ones((10, 50), np.float32))
    assert viewer.layers[GALLERY_LAYER] is gallery and gallery.data.max() == 1

    table = cell_table(result, ["A01_0001", "B02_0001"])
    embedding = EmbeddingView(layers).show(table, embedding_meta(result, table.colours))
    assert len(embedding.data) == len(result.crops)
    y, x = embedding.data[:, 0], embedding.data[:, 1]
    assert y.min() == pytest.approx(y0) and y.max() == pytest.approx(y1)
    assert x.min() > x1  # right of the images
    meta = embedding.metadata[METADATA_KEY]
    assert meta["kind"] == "embedding" and meta["positions"] == list(result.crops.positions)
    assert meta["object"] == "primary__primary" and meta["colours"] == table.colours
    np.testing.assert_allclose(embedding.face_color, table.face)

    viewer.layers.selection.active = embedding
    layers.show_pair(np.ones((16, 33), np.float32))
    assert viewer.layers[SELECTED_LAYER].data.shape == (16, 33)
    assert viewer.layers.selection.active is embedding  # the user goes on picking cells
    centres = viewer.add_points(np.array([[5.0, 5.0]]))
    layers.mark(centres, np.array([5.0, 5.0]), 16.0)
    layers.mark(centres, np.array([7.0, 9.0]), 16.0)  # moved, not added twice
    np.testing.assert_array_equal(viewer.layers[MARKER_LAYER].data, [[7.0, 9.0]])
    assert viewer.layers.selection.active is embedding


def test_results_beside_a_one_pixel_image_get_a_size(make_napari_viewer):
    # A 1 px wide image has no world extent: the gallery scaled to it had scale 0, which
    # napari refuses with an exception at the Train click.
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((40, 1), np.float32), metadata={METADATA_KEY: {"kind": "image"}})
    layers = ResultLayers(viewer)
    y0, x0, y1, x1 = layers.image_box()
    assert (y0, x0, y1, x1) == (0.0, 0.0, 39.0, 1.0)
    layers.prepare(np.zeros((10, 50), np.float32))
    assert viewer.layers[GALLERY_LAYER].scale[1] == pytest.approx(1 / 50)


def test_marked_cells_land_on_centres_placed_in_the_world(make_napari_viewer):
    # A scale in µm (or a translate, a rotation) set on the centres layer left the cyan
    # squares at the cells' pixel coordinates: beside the cell, often off the image.
    viewer = make_napari_viewer()
    layers = ResultLayers(viewer)
    centres = viewer.add_points(
        np.array([[0.0, 40.0, 60.0], [1.0, 10.0, 20.0]]),
        scale=(1.0, 0.65, 0.65),
        translate=(0.0, 100.0, 50.0),
    )
    for turn in (None, 30.0):
        if turn is not None:  # the user turns the layer after a first square
            centres.rotate = turn
        layers.mark(centres, centres.data[0], 16.0)
        marker = viewer.layers[MARKER_LAYER]
        np.testing.assert_allclose(
            marker.data_to_world(marker.data[0]), centres.data_to_world(centres.data[0])
        )
        np.testing.assert_allclose(marker.scale, centres.scale)  # the square: 16 px of it
