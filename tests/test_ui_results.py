"""The results panel's map worker (:func:`napari_cellae._ui.results._embed`), without a viewer."""

from __future__ import annotations

import numpy as np

from napari_cellae._ui.results import _embed
from test_jobs import h5ad_maps, two_plate_run


def test_the_umap_map_scales_each_plate_as_the_h5ad_does(tmp_path):
    # The widget's UMAP (and the obsm of its "Save AnnData") was made of the features as
    # they are; cellae encode's .h5ad scales each plate on its control cells first.
    from napari_cellae.core.features import embed_2d

    result, _, _ = two_plate_run(tmp_path)
    expected = h5ad_maps(result, "umap")
    umap, unit, grid, images = _embed(result, "umap", None, {})
    np.testing.assert_array_equal(umap, expected["X_umap"])
    assert unit.shape == umap.shape and grid is None and images == {}
    assert not np.array_equal(embed_2d(result.features, "umap"), expected["X_umap"])
    pca, *_ = _embed(result, "pca", None, {})  # the map offered again after the job's
    np.testing.assert_array_equal(pca, result.embedding)
    np.testing.assert_array_equal(pca, expected["X_pca"])


def test_the_umap_map_reuses_the_plate_scaling_of_the_job(tmp_path, monkeypatch):
    # The job scaled each plate for its PCA map (cell table, each plate's control cells);
    # the UMAP asked for later built that scaling again from the start.
    import napari_cellae.pipeline.discovery as discovery

    result, _, _ = two_plate_run(tmp_path)
    assert result.map_scaling is not None and len(result.map_scaling.rows) == 2
    expected = h5ad_maps(result, "umap")

    def no_cell_table(*args, **kwargs):
        raise AssertionError("the plate scaling was built again")

    monkeypatch.setattr(discovery, "cell_table", no_cell_table)
    umap, *_ = _embed(result, "umap", None, {})
    np.testing.assert_array_equal(umap, expected["X_umap"])


def test_the_legend_says_what_novel_above_means(qtbot):
    # Coloured by novelty, the legend ends 'novel above 1.51': the number was explained
    # nowhere in the widget (the legend had no tooltip).
    from napari_cellae._ui.results_panel import ResultsPanel
    from napari_cellae.core.novelty import NOVEL_PERCENTILE

    panel = ResultsPanel(lambda c: None, lambda m: None, lambda u, k: None)
    qtbot.addWidget(panel)
    tip = panel.legend.toolTip()
    assert "'novel above'" in tip and f"{NOVEL_PERCENTILE:g} % of the control cells" in tip
