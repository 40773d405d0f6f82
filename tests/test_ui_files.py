"""The CellH5 file in the viewer, and outputs checked against the session's inputs."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import synthetic_position
from napari_cellae._reader import METADATA_KEY
from napari_cellae._ui import files
from napari_cellae.core.crops import collect_crops
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5
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
    # a loop of symbolic links: refused in words (Path.resolve raised RuntimeError here)
    (tmp_path / "l1").symlink_to(tmp_path / "l2")
    (tmp_path / "l2").symlink_to(tmp_path / "l1")
    with pytest.raises(ValueError, match="l1"):
        files.checked_output(tmp_path / "l1", "features file", inputs)


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


def test_another_file_hides_the_first_and_names_its_layers(
    make_napari_viewer, cellcognition_file, tmp_path
):
    # a second plate with the same channel and objects (as a CellCognition plate folder):
    # its images lie on the first's, whose cells were taken for its own
    other = write_cellh5(
        tmp_path / "plate2.ch5",
        [
            synthetic_position(w, "0001", plate="plate2", seed=s)
            for s, w in ((7, "C03"), (8, "C04"))
        ],
        channel_names=["rfp"],
        object_channels={"primary__primary": 0},
    )
    viewer = make_napari_viewer()
    files.open_file(viewer, cellcognition_file)
    first = list(viewer.layers)
    # the results of a run on the first file: the next run reuses them, so they stay shown
    meta = {METADATA_KEY: {"path": str(cellcognition_file), "kind": "embedding"}}
    embedding = viewer.add_points(np.zeros((1, 2)), name="feature embedding", metadata=meta)
    files.open_file(viewer, other)
    assert embedding.visible
    second = [layer for layer in viewer.layers if layer not in [*first, embedding]]
    assert [layer.name for layer in second] == ["rfp (plate2)", "primary__primary centres (plate2)"]
    assert not any(layer.visible for layer in first)
    assert all(layer.visible for layer in second)
    assert all(layer.metadata[METADATA_KEY]["path"] == str(other) for layer in second)
    viewer.dims.set_point(0, 1)
    assert files.shown_position(viewer) == "C04_0001"  # the shown plate's, not the hidden one's
    # chosen again: open already, so not opened twice, but shown again in place of the
    # second's (they stayed hidden: the form named one file, the viewer showed the other)
    files.open_file(viewer, cellcognition_file)
    assert len(viewer.layers) == len(first) + len(second) + 1
    assert all(layer.visible for layer in first) and embedding.visible
    assert not any(layer.visible for layer in second)
    # a file on show keeps the layers its user hid
    first[0].visible = False
    files.open_file(viewer, cellcognition_file)
    assert not first[0].visible and all(layer.visible for layer in first[1:])
    assert not any(layer.visible for layer in second)


def test_positions_of_different_sizes_are_one_at_a_time(make_napari_viewer, tmp_path):
    # Positions of two image sizes were two layers along one slider: a step showed A03_1
    # (64 x 80) and A04_1 (80 x 80) drawn over each other, A04_1's centres among A03_1's.
    positions = [
        synthetic_position(w, "1", seed=s) for s, w in enumerate(("A01", "A02", "A03", "A04"))
    ]
    for taller in positions[1::2]:  # A02 and A04: 80 x 80
        taller.image = np.pad(taller.image, ((0, 0), (0, 0), (0, 0), (0, 16), (0, 0)))
        taller.labels = np.pad(taller.labels, ((0, 0), (0, 0), (0, 0), (0, 16), (0, 0)))
    path = write_cellh5(
        tmp_path / "sizes.ch5",
        positions,
        channel_names=["dna"],
        object_channels={"primary__primary": 0},
    )
    viewer = make_napari_viewer()
    files.open_file(viewer, path)
    assert [layer.name for layer in viewer.layers] == ["dna", "primary__primary centres"]
    image, centres = viewer.layers
    viewer.dims.set_point(1, 0)  # frame 0
    for step, position in enumerate(positions):
        viewer.dims.set_point(0, step)
        assert files.shown_position(viewer) == f"A0{step + 1}_1"
        shown = np.asarray(image._slice.image.raw)  # what the canvas draws at this step
        _, _, _, h, w = position.image.shape
        np.testing.assert_array_equal(shown[:h, :w], position.image[0, 0, 0])
        assert not shown[h:].any()
        # the centres drawn are this position's, on its cells
        drawn = centres.data[centres._view_indices]
        assert set(drawn[:, 0]) == {step}
        cells = position.objects["primary__primary"]
        first = cells.time_idx == 0
        expected = sorted(zip(cells.center_y[first], cells.center_x[first], strict=True))
        assert sorted(map(tuple, drawn[:, 2:].astype(int))) == expected


def test_following_the_shown_position_keeps_nothing_of_the_follower(make_napari_viewer):
    # A viewer closed (the widget deleted with it, without a close event) but still
    # referenced (a script's or a console's `viewer`) kept the widget, its run's cells and
    # network through this follower.
    import gc
    import weakref

    from napari_cellae._ui.files import follow_shown_position

    class Widget:
        def on_step(self, event=None) -> None:
            self.steps = getattr(self, "steps", 0) + 1

    viewer = make_napari_viewer()
    widget = Widget()
    follow_shown_position(viewer, widget.on_step)
    viewer.add_points(np.zeros((1, 2)), name="a")  # named: napari reads no caller's locals
    assert widget.steps == 1  # followed
    gone = weakref.ref(widget)
    del widget
    gc.collect()
    assert gone() is None
    viewer.add_points(np.zeros((1, 2)), name="b")  # nobody to tell: nothing raised


def test_positions_named_with_control_characters_are_shown_escaped(make_napari_viewer, tmp_path):
    # A well named 'A01\x1b[2J' printed raw in the status bar and the centres' features,
    # which napari shows beside the cursor; the file keeps its name (the group is found).
    wells = ("A01\x1b[2J", "A02\n")
    positions = [synthetic_position(w, "1", seed=s) for s, w in enumerate(wells)]
    path = write_cellh5(
        tmp_path / "names.ch5",
        positions,
        channel_names=["dna"],
        object_channels={"primary__primary": 0},
    )
    viewer = make_napari_viewer()
    files.open_file(viewer, path)
    viewer.dims.set_point(0, 1)
    assert files.shown_position(viewer) == "A02\\n_1"
    centres = viewer.layers["primary__primary centres"]
    assert set(centres.features["position"]) == {"A01\\x1b[2J_1", "A02\\n_1"}
    assert set(centres.features["well"]) == {"A01\\x1b[2J", "A02\\n"}
