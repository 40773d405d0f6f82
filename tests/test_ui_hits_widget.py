"""The widget's results: colour modes, hit table, gallery, Save AnnData, UMAP, density view."""

from __future__ import annotations

import numpy as np

from napari_cellae import _widget
from napari_cellae._reader import METADATA_KEY
from napari_cellae._ui import files
from napari_cellae._ui.colouring import hex_colour
from napari_cellae._ui.embedding_view import DENSITY_LAYER
from napari_cellae._ui.result_layers import MARKER_LAYER
from napari_cellae._widget import EMBEDDING_LAYER, GALLERY_LAYER, DeepLearningWidget
from ui_helpers import TIMEOUT_MS, run_job, tiny, use_pca, wait_background


def _centres(viewer, path=None):
    """The (first) centres layer of ``path`` (of any file when None)."""
    return next(
        layer
        for layer in viewer.layers
        if layer.metadata.get(METADATA_KEY, {}).get("kind") == "centres"
        and (path is None or layer.metadata[METADATA_KEY]["path"] == str(path))
    )


def _cells_of_centres(layer, rows) -> set[tuple[object, int]]:
    positions = layer.metadata[METADATA_KEY]["positions"]
    return {
        (
            positions[int(layer.features["position_index"][r])],
            int(layer.features["object_index"][r]),
        )
        for r in rows
    }


def _trained(make_napari_viewer, qtbot, path, mapping):
    """(viewer, widget) after a tiny training run on ``path`` with ``mapping``."""
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    widget.form.file.value = path
    widget.form.mapping.value = mapping
    use_pca(widget)
    tiny(widget)
    run_job(qtbot, widget, widget.start_training)
    return viewer, widget


def _save(qtbot, widget, path):
    worker = widget.save_anndata(path, start=False)
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()


def test_colours_hits_gallery_and_anndata(make_napari_viewer, qtbot, errors, tmp_path):
    import anndata

    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)  # the demo screen: controls, hits and classes
    use_pca(widget)
    tiny(widget)
    run_job(qtbot, widget, widget.start_training)
    assert not errors, errors
    results, panel = widget.results, widget.panel
    assert widget.tabs.currentWidget() is panel  # the loss during training, then the hits
    table, findings = results.table, results.findings
    crops = widget.result.crops
    embedding = viewer.layers[EMBEDDING_LAYER]
    assert DENSITY_LAYER not in viewer.layers  # a small screen: every cell is a point

    # every colour mode recolours the points and the legend
    modes = [panel.colour_by.itemText(i) for i in range(panel.colour_by.count())]
    assert modes == ["condition", "novelty", "phenotype group", "class"]
    for mode in ("novelty", "phenotype group", "class", "condition"):
        panel.colour_by.setCurrentText(mode)
        np.testing.assert_allclose(embedding.face_color, table.colourings[mode].colours())
        assert panel.legend.text().startswith(f"{mode}: ")
    assert "interphase" in table.colourings["class"].labels

    # the hit table: one row per position, ranked; a row selects its cells everywhere
    hits = panel.hits
    assert hits.table.rowCount() == len(findings.hits["position"]) == 8
    assert hits.keys()[0].endswith(findings.hits["position"].iloc[0]["position"])
    gallery_before = viewer.layers[GALLERY_LAYER].data.copy()
    hits.table.selectRow(0)
    cells = findings.cells_of("position", [hits.keys()[0]])
    assert len(cells) > 1
    assert set(embedding.selected_data) == set(cells.tolist())
    centres = _centres(viewer)
    expected = {
        (crops.positions[crops.position_index[c]], int(crops.object_index[c])) for c in cells
    }
    assert _cells_of_centres(centres, centres.selected_data) == expected
    # the slider shows the hit's position
    top = int(findings.most_novel(cells, 1)[0])
    offset = viewer.dims.ndim - centres.ndim
    position = crops.positions.index(crops.positions[crops.position_index[top]])
    assert (
        centres.metadata[METADATA_KEY]["positions"][round(viewer.dims.point[offset])]
        == (crops.positions[position])
    )
    # its most novel cells are squared in the image, and shown in the gallery
    marker = viewer.layers[MARKER_LAYER]
    top32 = findings.most_novel(cells, 32)
    assert len(marker.data) == len(top32)
    np.testing.assert_allclose(
        marker.data, centres.data[[results.link.locate(c)[1] for c in top32]]
    )
    assert "most novel" in widget.status.text()
    wait_background(qtbot, widget)
    gallery = viewer.layers[GALLERY_LAYER].data
    assert not np.array_equal(gallery, gallery_before) and gallery.max() > 0

    # by condition
    hits.by.setCurrentText("condition")
    assert hits.table.rowCount() == 5
    hits.table.selectRow(0)
    condition = hits.keys()[0]
    chosen = np.array(sorted(embedding.selected_data))
    assert set(table.features["condition"].astype(str).iloc[chosen]) == {condition}
    assert len(chosen) == int((table.features["condition"] == condition).sum())
    wait_background(qtbot, widget)

    # Save AnnData: features, findings and the map shown
    _save(qtbot, widget, tmp_path / "cells")  # the suffix is added
    assert not errors, errors
    adata = anndata.read_h5ad(tmp_path / "cells.h5ad")
    assert adata.X.shape == widget.result.features.shape
    for column in ("novelty", "novel", "cluster", "condition", "class", "position"):
        assert column in adata.obs
    np.testing.assert_allclose(adata.obsm["X_pca"], table.maps["pca"])
    np.testing.assert_allclose(adata.obs["novelty"], findings.obs["novelty"])
    # scanpy colours conditions and classes as the widget does (uns["<column>_colors"])
    for column in ("condition", "class"):
        shown = table.colourings[column]
        pairs = zip(shown.labels, shown.palette, strict=True)
        napari = {label: hex_colour(c) for label, c in pairs}
        expected = [napari[c] for c in adata.obs[column].cat.categories]
        assert [c.lower() for c in adata.uns[f"{column}_colors"]] == expected, column

    # refused: inputs, and other suffixes; nothing is overwritten
    ch5, mapping = widget.form.file_path(), widget.form.mapping_path()
    before = {p: p.read_bytes() for p in (ch5, mapping)}
    for target in (ch5, mapping):
        assert widget.save_anndata(target) is None
        assert "refusing to write the AnnData file" in errors[-1] and str(target) in errors[-1]
    assert widget.save_anndata(tmp_path / "cells.csv") is None
    assert "must end in .h5ad" in errors[-1]
    assert all(p.read_bytes() == content for p, content in before.items())


def test_without_controls_the_hit_table_says_why(
    make_napari_viewer, qtbot, errors, cellcognition_file, tmp_path, monkeypatch
):
    import anndata

    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    widget.form.file.value = cellcognition_file  # no mapping: no controls
    use_pca(widget)
    tiny(widget)
    run_job(qtbot, widget, widget.start_training)
    assert not errors, errors
    hits, panel = widget.panel.hits, widget.panel
    assert hits.note.isVisibleTo(widget) and not hits.table.isVisibleTo(widget)
    assert "novelty needs negative-control cells" in hits.note.text()
    assert hits.note.text().startswith("No hit list")
    modes = [panel.colour_by.itemText(i) for i in range(panel.colour_by.count())]
    assert modes == ["condition", "class"]
    # the button asks where to save, then writes in a worker
    asked: list[tuple] = []
    out = tmp_path / "cells.h5ad"

    def ask_path(parent, title, filt, save):
        asked.append((title, filt, save))
        return out

    monkeypatch.setattr(_widget.files, "ask_path", ask_path)
    widget.buttons.save_anndata.native.click()
    assert asked == [("Save AnnData", "AnnData (*.h5ad)", True)]
    qtbot.waitUntil(out.exists, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not errors and anndata.read_h5ad(out) is not None, timeout=5000)
    obs = anndata.read_h5ad(out).obs
    assert "novelty" not in obs and "condition" in obs


def test_umap_replaces_pca_in_the_background(
    make_napari_viewer, qtbot, errors, cellcognition_file, mapping_file
):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    widget.form.file.value = cellcognition_file
    widget.form.mapping.value = mapping_file
    assert widget.panel.method == "umap"  # the default map
    tiny(widget)
    run_job(qtbot, widget, widget.start_training)
    table = widget.results.table
    embedding = viewer.layers[EMBEDDING_LAYER]
    pca = embedding.data.copy()
    embedding.selected_data = {0, 5}  # kept when the map changes
    # PCA is shown at once; UMAP follows (numba compiles on its first call)
    if widget.results.pending:
        assert table.method == "pca" and "computing" in widget.panel.map_state.text()
    wait_background(qtbot, widget, timeout=300_000)
    assert not errors, errors
    assert table.method == "umap" and set(table.maps) == {"pca", "umap"}
    assert widget.panel.map_state.text() == ""
    np.testing.assert_allclose(embedding.features["embedding_1"], table.maps["umap"][:, 0])
    assert not np.allclose(embedding.data, pca)
    assert set(embedding.selected_data) == {0, 5}
    # switching maps needs no worker once both exist
    use_pca(widget)
    assert not widget.results.pending and table.method == "pca"
    np.testing.assert_allclose(embedding.data, pca)


def test_large_screens_use_the_density_view(
    make_napari_viewer, qtbot, errors, cellcognition_file, mapping_file
):
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    view = widget.results.view
    view.dense_above, view.n_sample = 10, 6  # 30 cells count as a large screen here
    widget.form.file.value = cellcognition_file
    widget.form.mapping.value = mapping_file
    use_pca(widget)
    tiny(widget)
    run_job(qtbot, widget, widget.start_training)
    assert not errors, errors
    assert DENSITY_LAYER in viewer.layers
    embedding = viewer.layers[EMBEDDING_LAYER]
    assert len(embedding.data) == 6
    density = viewer.layers[DENSITY_LAYER]
    plain = density.data.copy()

    widget.panel.colour_by.setCurrentText("novelty")
    assert not np.array_equal(density.data, plain)
    np.testing.assert_allclose(
        embedding.face_color, widget.results.table.colourings["novelty"].colours(view.rows)
    )
    # a hit row: all its cells become points, selected, and spotlit in the density image
    findings = widget.results.findings
    widget.panel.hits.table.selectRow(0)
    cells = findings.cells_of("position", [widget.panel.hits.keys()[0]])
    selected = view.cells_of(np.array(sorted(embedding.selected_data)))
    np.testing.assert_array_equal(np.sort(selected), cells)
    np.testing.assert_array_equal(view.spotlit, cells)
    centres = _centres(viewer, cellcognition_file)
    assert len(centres.selected_data) == len(cells)
    # picking one centre in the image selects that cell among the points
    row = next(iter(set(range(len(centres.data))) - set(centres.selected_data)))
    centres.selected_data = {row}
    (point,) = embedding.selected_data
    cell = int(view.cells_of(np.array([point]))[0])
    crops = widget.result.crops
    assert (
        crops.positions[crops.position_index[cell]],
        int(crops.object_index[cell]),
    ) == next(iter(_cells_of_centres(centres, [row])))
    wait_background(qtbot, widget)


def test_a_hit_row_of_two_plates_names_its_plate(make_napari_viewer, qtbot, errors, tmp_path):
    # two plates of one file with the same wells, B02 a hit on PlateA but not on PlateB
    from conftest import synthetic_position
    from napari_cellae.io.cellh5_writer import write_cellh5

    wells = [(p, w) for p in ("PlateA", "PlateB") for w in ("A01", "A02", "B02")]
    path = write_cellh5(
        tmp_path / "plates.ch5",
        [synthetic_position(w, "1", plate=p, seed=i) for i, (p, w) in enumerate(wells)],
        channel_names=["dna"],
        object_channels={"primary__primary": 0},
    )
    mapping = tmp_path / "mapping.txt"
    gene = {("PlateA", "B02"): "PLK1\ttarget"}
    rows = ["\t".join((p, w, "1", gene.get((p, w), "scrambled\tneg"))) for p, w in wells]
    header = "Plate\tWell\tSite\tGene Symbol\tGroup\n"
    mapping.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    viewer, widget = _trained(make_napari_viewer, qtbot, path, mapping)
    wait_background(qtbot, widget)
    assert not errors, errors
    hits = widget.panel.hits
    assert "PlateB/B02_1" in hits.keys()
    hits.select_rows(["PlateB/B02_1"])
    # it said "B02_1 (scrambled)", which B02_1 of PlateA, the hit, is not
    assert widget.status.text().startswith("15 cells of PlateB/B02_1 (scrambled) selected")
    layer = _centres(viewer, path)
    selected = _cells_of_centres(layer, layer.selected_data)
    assert {key.plate for key, _ in selected} == {"PlateB"}
    assert {key.well for key, _ in selected} == {"B02"} and len(selected) == 15
    assert widget.position_label.text() == "Shown position: PlateB/B02_1"
    wait_background(qtbot, widget)


def test_positions_without_cells_stay_named_beside_the_hit_table(
    make_napari_viewer, qtbot, errors, tmp_path
):
    # A well whose cells all died has no row; it was named only in a passing warning.
    from conftest import synthetic_position
    from napari_cellae.io.cellh5_writer import write_cellh5

    dead = synthetic_position("B02", "1", n_per_frame=1)
    dead.objects = {}
    wells = [synthetic_position(w, "1", seed=i) for i, w in enumerate(("A01", "A02", "B01"))]
    path = write_cellh5(tmp_path / "plate.ch5", [*wells, dead], ["dna"], {"primary__primary": 0})
    mapping = tmp_path / "mapping.txt"
    mapping.write_text("A01\tneg. control\nA02\tneg. control\nB01\tPLK1\nB02\tTOXIC1\n")
    _, widget = _trained(make_napari_viewer, qtbot, path, mapping)  # the warning passes
    assert not errors, errors
    hits = widget.panel.hits
    assert hits.table.isVisibleTo(widget) and hits.note.isVisibleTo(widget)
    assert hits.note.text() == "No cells, so no row: B02_1 (TOXIC1)."


def test_a_cell_found_after_choosing_another_file_is_shown_in_its_own(
    make_napari_viewer, qtbot, errors, cellcognition_file, mapping_file, cellprofiler_file
):
    # Choosing the next file to train on hides the run's file: a cell picked in the
    # embedding (or a hit-table row) was squared at its place on the other file's image.
    viewer, widget = _trained(make_napari_viewer, qtbot, cellcognition_file, mapping_file)
    wait_background(qtbot, widget)
    widget.form.file.value = cellprofiler_file
    run_file = _centres(viewer, cellcognition_file).metadata[METADATA_KEY]["path"]

    def shown() -> set[str]:
        return {
            layer.metadata[METADATA_KEY]["path"]
            for layer in viewer.layers
            if layer.visible and layer.metadata.get(METADATA_KEY, {}).get("kind") == "image"
        }

    assert shown() == {str(cellprofiler_file)}
    viewer.layers[EMBEDDING_LAYER].selected_data = {3}
    assert shown() == {run_file} and MARKER_LAYER in viewer.layers
    files.open_file(viewer, cellprofiler_file)  # what choosing it in the form does
    assert shown() == {str(cellprofiler_file)}
    widget.panel.hits.select_rows(widget.panel.hits.keys()[:1])
    wait_background(qtbot, widget)
    assert shown() == {run_file}
    assert not errors, errors
