"""The CellH5 file in the viewer, and outputs checked against the session's inputs."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellae._ui import files
from napari_cellae.core.crops import collect_crops
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.pipeline.results import RunResult


def test_outputs_that_are_inputs_are_refused(cellcognition_file, mapping_file, tmp_path):
    inputs = [cellcognition_file, mapping_file, None]
    linked = next(cellcognition_file.parent.glob("A01*.ch5"))  # a position file it links to
    for target in (cellcognition_file, mapping_file, linked):
        with pytest.raises(ValueError, match="refusing to write the model"):
            files.checked_output(target, "model", inputs)
    with pytest.raises(ValueError, match="folder"):
        files.checked_output(tmp_path, "model", inputs)
    with pytest.raises(ValueError, match="does not exist"):
        files.checked_output(tmp_path / "missing" / "f.hdf", "features file", inputs)
    assert files.checked_output(tmp_path / "f.hdf", "features file", inputs) == tmp_path / "f.hdf"


def test_saved_files_get_their_suffix_and_keep_their_kind(cellcognition_file, tmp_path):
    inputs = [cellcognition_file]
    assert files.suffixed_output(tmp_path / "feat", ".hdf", "features file", inputs) == (
        tmp_path / "feat.hdf"
    )
    assert files.suffixed_output(tmp_path / "m.PT", ".pt", "model", inputs) == tmp_path / "m.PT"
    # a model saved over a features file (or under any other kind's name) is refused
    (tmp_path / "f.hdf").write_bytes(b"features")
    with pytest.raises(ValueError, match=r"f\.hdf as the model: the file name must end in \.pt"):
        files.suffixed_output(tmp_path / "f.hdf", ".pt", "model", inputs)
    assert (tmp_path / "f.hdf").read_bytes() == b"features"
    with pytest.raises(ValueError, match="refusing to write the model"):
        files.suffixed_output(cellcognition_file, ".pt", "model", inputs)


def test_features_writer_writes_the_explorer_file(qtbot, cellcognition_file, tmp_path):
    from napari_cellae.export.explorer import read_explorer_hdf

    with CellH5(cellcognition_file) as f:
        crops = collect_crops(f, "primary__primary", 16)
    features = np.random.default_rng(0).normal(size=(len(crops), 4)).astype(np.float32)
    result = RunResult(None, crops, features=features)
    worker = files.features_writer(result, tmp_path / "f.hdf", [cellcognition_file])
    written: list = []
    worker.returned.connect(written.append)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        worker.start()
    assert written == [tmp_path / "f.hdf"]
    np.testing.assert_allclose(read_explorer_hdf(tmp_path / "f.hdf").features, features)


def test_the_file_shown_in_the_viewer(make_napari_viewer, cellcognition_file, tmp_path):
    viewer = make_napari_viewer()
    assert files.shown_file(viewer) is None and files.shown_position(viewer) is None
    files.open_file(viewer, cellcognition_file)
    n = len(viewer.layers)
    files.open_file(viewer, cellcognition_file)  # already open: nothing added
    assert len(viewer.layers) == n > 0
    assert files.shown_file(viewer) == cellcognition_file
    assert files.remembered_mapping(viewer, cellcognition_file) is None
    # both positions share one layer along a position slider
    viewer.dims.set_point(0, 1)
    assert files.shown_position(viewer) == "B02_0001"
    bad = tmp_path / "broken.ch5"
    bad.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(ValueError, match="Could not show"):
        files.open_file(viewer, bad)


def test_the_demo_remembers_its_mapping(make_napari_viewer):
    from napari_cellae.demo.screen import demo_paths

    viewer = make_napari_viewer()
    viewer.open_sample("napari-cellae", "demo_screen")
    ch5, mapping = demo_paths()
    assert files.shown_file(viewer) == ch5
    assert files.remembered_mapping(viewer, ch5) == mapping
