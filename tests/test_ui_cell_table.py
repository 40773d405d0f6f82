"""The embedding's cell table: built off the GUI thread, with findings and colourings."""

from __future__ import annotations

import numpy as np

from napari_cellae._ui.cell_table import cell_table, density_view, unit_square
from napari_cellae._ui.findings import find
from napari_cellae.export.palette import PALETTE
from ui_helpers import fake_run

NAMES = ["A01_0001", "B02_0001"]


def test_columns_colours_and_unit_square(cellcognition_file, mapping_file):
    result = fake_run(cellcognition_file, mapping_file)
    table = cell_table(result, NAMES)
    crops, features = result.crops, table.features
    assert list(features.columns) == [
        "cell", "embedding_1", "embedding_2", "condition", "position", "position_index",
        "object_index", "time",
    ]  # fmt: skip
    np.testing.assert_array_equal(features["cell"], np.arange(len(crops)))
    np.testing.assert_allclose(features["embedding_2"], result.embedding[:, 1])
    np.testing.assert_array_equal(features["object_index"], crops.object_index)
    # A01 is the control well ("scrambled"), B02 holds PLK1; colours in order of appearance
    expected = np.where(crops.position_index == 0, "scrambled", "PLK1")
    np.testing.assert_array_equal(features["condition"].astype(str), expected)
    assert table.colours == {"scrambled": PALETTE[0], "PLK1": PALETTE[1]}
    np.testing.assert_array_equal(
        features["position"].astype(str), np.array(NAMES)[crops.position_index]
    )
    red = int(PALETTE[1][1:3], 16) / 255
    assert table.face.shape == (len(crops), 4) and table.face.dtype == np.float32
    np.testing.assert_allclose(table.face[crops.position_index == 1, 0], red, atol=1e-6)
    assert list(table.colourings) == ["condition"] and table.maps.keys() == {"pca"}
    # unit square, napari (row, column): the second embedding axis points up
    assert table.unit.min() == 0 and table.unit.max() == 1
    top = np.argmax(result.embedding[:, 1])
    assert table.unit[top, 0] == 0 and table.unit[np.argmax(result.embedding[:, 0]), 1] == 1


def test_findings_add_columns_and_colourings(cellcognition_file, mapping_file):
    result = fake_run(cellcognition_file, mapping_file)
    findings = find(result)
    table = cell_table(result, NAMES, findings)
    for column in ("novelty", "novel", "cluster", "class"):
        np.testing.assert_array_equal(table.features[column], findings.obs[column])
    assert list(table.colourings) == ["condition", "novelty", "phenotype group", "class"]
    threshold = findings.discovery.novelty.threshold
    assert f"novel above {threshold:.3g}" in table.colourings["novelty"].legend_html()


def test_another_map_replaces_the_coordinates(cellcognition_file):
    result = fake_run(cellcognition_file)
    table = cell_table(result, NAMES)
    other = result.features[:, 2:4] * 10
    table.add_map("umap", other)
    assert table.method == "pca" and set(table.maps) == {"pca", "umap"}
    grid = table.grid(8)
    assert table.grid(8) is grid  # cached per map
    table.show_map("umap")
    assert table.method == "umap" and table.grid(8) is not grid
    # density images: drawn once per map, size and colouring (a worker prepares them)
    table.prepare_density(8)
    image = table.density(8, "condition")
    assert table.density(8, "condition") is image and image.shape == (8, 8, 4)
    np.testing.assert_array_equal(image, table.grid(8).render(table.colourings["condition"]))
    grid, images = density_view(table.unit, table.colourings, 8)
    np.testing.assert_array_equal(grid.index, table.grid(8).index)
    np.testing.assert_array_equal(images["condition"], image)
    np.testing.assert_allclose(table.features["embedding_1"], other[:, 0])
    np.testing.assert_allclose(table.unit, unit_square(other))
    table.show_map("pca")
    np.testing.assert_allclose(table.features["embedding_1"], result.embedding[:, 0])


def test_without_mapping_colours_by_position(cellcognition_file):
    result = fake_run(cellcognition_file)
    result.embedding[:] = 0  # no spread: no division by zero
    table = cell_table(result, NAMES)
    assert set(table.colours) == {"A01_0001", "B02_0001"}
    assert np.isfinite(table.unit).all()
    assert unit_square(np.zeros((0, 2))).shape == (0, 2)
    assert table.unit.dtype == np.float32


def test_unmapped_positions_of_two_plates_are_two_conditions(tmp_path):
    # Without a mapping each position is its own condition. The hit list by condition (the
    # findings' cell table) named two plates' A01_1 apart, but the embedding called both
    # "A01_1": one colour, and a picked cell's condition was not its hit-table row's.
    from conftest import synthetic_position
    from napari_cellae.io.cellh5_writer import write_cellh5
    from napari_cellae.io.centres import position_labels

    positions = [synthetic_position("A01", "1", plate=p, seed=i) for i, p in enumerate("PQ")]
    path = write_cellh5(tmp_path / "two.ch5", positions, ["rfp"], {"primary__primary": 0})
    result = fake_run(path)
    findings = find(result)
    table = cell_table(result, position_labels(result.crops.positions, shown=True), findings)
    conditions = table.features["condition"].astype(str).to_numpy()
    np.testing.assert_array_equal(conditions, findings.obs["condition"].astype(str).to_numpy())
    assert set(conditions) == {"P/A01_1", "Q/A01_1"}
    assert len(table.colours) == 2
