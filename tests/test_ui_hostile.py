"""The dock widget driven as a careless or impatient user would: layers deleted or renamed
under it, buttons pressed at the wrong time, the same file saved twice at once.

napari's test fixtures fail a test on any exception in the Qt event loop, so every
scenario here also checks that nothing raised.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellae._ui.result_layers import cellae_layers
from napari_cellae._ui.results import TAKEN
from napari_cellae._widget import EMBEDDING_LAYER, DeepLearningWidget
from ui_helpers import run_job, tiny, use_pca, wait_background


@pytest.fixture
def trained(make_napari_viewer, qtbot, errors):
    """A docked widget after a tiny training run on the demo screen: (viewer, widget)."""
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    viewer.window.add_dock_widget(widget)
    tiny(widget)
    use_pca(widget)
    run_job(qtbot, widget, widget.start_training)
    wait_background(qtbot, widget)
    assert widget.result is not None and not errors, errors
    return viewer, widget


def _centres(viewer):
    return cellae_layers(viewer, "centres")[0]


def _embedding_cells(layer) -> set[int]:
    return {int(layer.features["cell"][r]) for r in layer.selected_data}


def test_a_deleted_or_renamed_embedding_layer(trained, qtbot, errors):
    # Selecting a cell in the image after deleting 'feature embedding' raised IndexError
    # (the cell was selected in a new, empty layer); colouring or a hit-table row put
    # thousands of colours on that empty layer (napari's warning), and a renamed layer
    # was left behind beside a new empty one.
    viewer, widget = trained
    n = len(widget.result.crops)
    combo = widget.panel.colour_by
    mine = viewer.layers[EMBEDDING_LAYER]
    mine.name = "mine"
    combo.setCurrentIndex((combo.currentIndex() + 1) % combo.count())
    assert EMBEDDING_LAYER not in viewer.layers  # the renamed layer is still the one drawn
    np.testing.assert_allclose(mine.face_color, widget.results.view._face(np.arange(n)))

    viewer.layers.remove(mine)
    centres = _centres(viewer)
    centres.selected_data = {5}
    embedding = viewer.layers[EMBEDDING_LAYER]  # drawn again, with every cell
    assert len(embedding.data) == n and len(embedding.face_color) == n
    (cell,) = _embedding_cells(embedding)
    assert "Selected cell" in widget.status.text()
    # ... and linked again: a cell picked in the new layer is selected in the image
    other = (cell + 1) % n
    embedding.selected_data = {other}
    assert widget.results.link.locate(other) == (centres, next(iter(centres.selected_data)))

    viewer.layers.remove(embedding)
    combo.setCurrentIndex((combo.currentIndex() + 1) % combo.count())
    assert len(viewer.layers[EMBEDDING_LAYER].data) == n

    viewer.layers.remove(EMBEDDING_LAYER)
    keys = widget.panel.hits.keys()
    if keys:  # a hit-table row selects its cells in a drawn-again layer
        widget.panel.hits.select_rows(keys[:1])
        wait_background(qtbot, widget)
        assert _embedding_cells(viewer.layers[EMBEDDING_LAYER])
    assert not errors, errors


def test_saving_to_a_file_that_is_being_saved_is_refused(trained, qtbot, errors, tmp_path):
    # Save pressed twice: both workers wrote the same temporary file and the user saw
    # HDF5's "unable to truncate a file which is already open" and "No such file or
    # directory" beside "Saved".
    from napari_cellae.export.explorer import read_explorer_hdf

    _viewer, widget = trained
    for save, name in ((widget.save_features, "f.hdf"), (widget.save_anndata, "c.h5ad")):
        first = save(tmp_path / name, start=False)
        assert first is not None
        assert save(tmp_path / name, start=False) is None
        assert "is still being saved" in errors[-1] and name in errors[-1]
        with qtbot.waitSignal(first.finished, timeout=60_000):
            first.start()
        errors.clear()
        again = save(tmp_path / name, start=False)  # once it is written, it may be again
        assert again is not None
        with qtbot.waitSignal(again.finished, timeout=60_000):
            again.start()
        qtbot.wait(50)
        assert not errors, errors
    assert read_explorer_hdf(tmp_path / "f.hdf").features.shape == widget.result.features.shape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5ad", "f.hdf"]


def test_a_second_dock_on_the_viewer(trained, qtbot, errors, cellcognition_file, mapping_file):
    # Two docks of the widget share the result layers by name. Once the second showed its
    # run, the first's hit-table row raised IndexError (its cells selected in the other
    # run's points), its colour modes painted its colours on them, and a click in the
    # embedding made it show a cell of its own file as the one picked.
    viewer, first = trained
    second = DeepLearningWidget(viewer)
    viewer.window.add_dock_widget(second, name="second")
    second.form.file.value = cellcognition_file
    second.form.mapping.value = mapping_file
    tiny(second)
    use_pca(second)
    run_job(qtbot, second, second.start_training)
    wait_background(qtbot, second)
    embedding = viewer.layers[EMBEDDING_LAYER]
    n = len(second.result.crops)
    assert len(embedding.data) == n < len(first.result.crops)

    combo = first.panel.colour_by
    combo.setCurrentIndex((combo.currentIndex() + 1) % combo.count())
    np.testing.assert_allclose(embedding.face_color, second.results.view._face(np.arange(n)))
    keys = first.panel.hits.keys()
    assert keys
    first.panel.hits.select_rows(keys[:1])
    wait_background(qtbot, first)
    assert not embedding.selected_data and first.status.text() == TAKEN

    embedding.selected_data = {3}
    assert "A01_0001" in second.status.text()  # a cell of the second dock's file
    assert first.status.text() == TAKEN
    assert not errors, errors


def test_closing_the_viewer_while_the_umap_map_is_made(
    make_napari_viewer, qtbot, errors, monkeypatch
):
    # The map's thread went on waiting for the map process (a minute for a plate) after
    # the viewer closed; when Python exited meanwhile, its end aborted Python.
    import subprocess
    import sys

    from napari_cellae._ui.runner import warm_up_engine
    from napari_cellae.core import features
    from napari_cellae.pipeline import map_process

    warm_up_engine().join()  # its own small map goes to the real process
    map_process._stop()
    popen, made_here = subprocess.Popen, []
    silent = [sys.executable, "-c", "import time; time.sleep(600)"]  # never answers
    ours = [sys.executable, "-m", map_process.__name__]
    monkeypatch.setattr(  # subprocess's own: napari's canvas starts one too (xdpyinfo)
        subprocess, "Popen", lambda args, **kw: popen(silent if args == ours else args, **kw)
    )
    embed_2d = features.embed_2d

    def here(x, method="umap", seed=0):  # the job's PCA map is made here, as it should be
        if method == "umap":
            made_here.append(x)
        return embed_2d(x, method, seed)

    monkeypatch.setattr(features, "embed_2d", here)
    viewer = make_napari_viewer()
    widget = DeepLearningWidget(viewer)
    viewer.window.add_dock_widget(widget)
    tiny(widget)  # and the UMAP map
    run_job(qtbot, widget, widget.start_training)
    assert list(widget.results.pending) == ["map 1"]
    viewer.close()
    wait_background(qtbot, widget, timeout=30_000)  # the map's thread ended
    assert not made_here  # ... without making the map here instead
    assert map_process._process is None and not errors, errors


def test_a_model_that_does_not_fit_the_file_leaves_the_trained_one(
    trained, qtbot, errors, tmp_path
):
    # Load model took the model before applying it: one trained on another object failed
    # ('... does not have'), yet Save model then saved it, not the network just trained
    # (an hour's training lost unless saved before).
    import dataclasses

    from napari_cellae.core.model_load import load_model

    _viewer, widget = trained
    own = widget.result.trained
    other = dataclasses.replace(own, object_name="Nuclei")
    foreign = other.save(tmp_path / "nuclei.pt")
    worker = widget.load_model(foreign, start=False)
    assert worker is not None, errors
    worker.errored.connect(lambda err: None)  # shown in the status line, as checked below
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        worker.start()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=5000)
    assert "Nuclei" in errors[-1] and widget.status.text().startswith("Failed")
    assert widget._model_path is None  # not an input of later saves
    saved = widget.save_model(tmp_path / "mine.pt")
    assert load_model(saved).object_name == own.object_name == "primary__primary"
