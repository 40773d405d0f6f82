"""Cells of objects other than the file's default: selecting one finds it in the image."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from conftest import synthetic_position
from napari_cellae._reader import METADATA_KEY
from napari_cellae._ui.cell_table import cell_table
from napari_cellae._ui.findings import find
from napari_cellae._ui.runner import Outcome
from napari_cellae._widget import EMBEDDING_LAYER, DeepLearningWidget
from napari_cellae.core.crops import collect_crops
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.io.centres import position_labels
from napari_cellae.pipeline.results import RunResult
from ui_helpers import use_pca, wait_background


def _nuclei_and_cells(path: Path) -> Path:
    """Positions of Nuclei (the default object) and Cells, whose centres differ."""
    positions = []
    for k, well in enumerate(("A01", "A02", "B01")):
        position = synthetic_position(well, "1", n_frames=2, object_name="Nuclei", seed=k)
        nuclei = position.objects["Nuclei"]
        cells = dataclasses.replace(nuclei, center_x=nuclei.center_x[::-1].copy())
        position.objects["Cells"] = cells
        positions.append(position)
    return write_cellh5(path, positions, ["DNA"], {"Cells": 0, "Nuclei": 0}, flavour="cellprofiler")


def test_a_cell_of_other_objects_is_found_in_the_image(
    make_napari_viewer, qtbot, monkeypatch, tmp_path
):
    # Learning from Cells where the reader shows Nuclei centres: clicking a cell in the
    # embedding said "position A01_1" and left the image at the position shown before.
    path = _nuclei_and_cells(tmp_path / "screen.ch5")
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-cellae")
    widget = DeepLearningWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    use_pca(widget)
    with CellH5(path) as ch5:
        assert ch5.default_object == "Nuclei"
        crops = collect_crops(ch5, "Cells", 16)
    features = np.random.default_rng(0).normal(size=(len(crops), 4)).astype(np.float32)
    result = RunResult(None, crops, None, features=features, embedding=features[:, :2].copy())
    findings = find(result)
    table = cell_table(result, position_labels(crops.positions), findings)
    monkeypatch.setattr(widget.results, "show_cell", lambda cell: None)  # no network here
    widget._on_returned(Outcome(result, table, findings))
    embedding = viewer.layers[EMBEDDING_LAYER]
    assert viewer.layers.selection.active is embedding  # still the layer to click cells in
    centres = [
        layer
        for layer in viewer.layers
        if layer.metadata.get(METADATA_KEY, {}).get("kind") == "centres"
        and layer.metadata[METADATA_KEY]["object"] == "Cells"
    ]
    assert len(centres) == 1 and centres[0].name == "Cells centres"
    labels = viewer.dims.axis_labels
    for cell in (0, len(crops) - 1):
        embedding.selected_data = {cell}
        step = dict(zip(labels, viewer.dims.current_step, strict=True))
        assert step["position"] == crops.position_index[cell]
        assert step["t"] == crops.time_idx[cell]
        camera = viewer.scene.camera.center[-2:]
        np.testing.assert_allclose(camera, (crops.center_y[cell], crops.center_x[cell]))
    # a second run of Cells adds no second layer
    widget._on_returned(Outcome(result, table, findings))
    assert [layer.name for layer in viewer.layers].count("Cells centres") == 1
    wait_background(qtbot, widget)
