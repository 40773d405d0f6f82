"""pipeline.plate_cells: plates named alike told apart, class names across plates, the
gallery's crops cut again as the model saw them."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from conftest import CLASS_LABELS, synthetic_position
from napari_cellae._ui.colouring import colourings
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.io.centres import hex_rgba
from napari_cellae.pipeline.cells import run_encode_cells
from napari_cellae.pipeline.hits import hit_list
from napari_cellae.pipeline.plate_cells import class_colours, plate_classes, typical_crops
from napari_cellae.pipeline.steps import crops_for
from napari_cellae.pipeline.streaming import plan_encode
from test_streaming import random_model


def test_typical_crops_are_cut_as_the_model_saw_them(cellcognition_file, tmp_path):
    trained = random_model(mask="cell")
    done = run_encode_cells(cellcognition_file, trained, tmp_path / "c.h5ad")
    plan = plan_encode([cellcognition_file], trained, tmp_path / "other.h5ad")
    rows = np.array([0, 4, 14, 15, 29])  # both positions, first and last cell
    got = typical_crops(plan, done.result.crops, rows, trained)
    with CellH5(cellcognition_file) as f:
        whole = crops_for(f, "primary__primary", [0], trained.config).crops
    np.testing.assert_array_equal(got, whole[rows])


def _same_named_plate(path, wells, seed):
    positions = [
        synthetic_position(w, "1", plate="plate1", seed=seed + i) for i, w in enumerate(wells)
    ]
    return write_cellh5(path, positions, ["rfp"], {"primary__primary": 0})


def test_plates_named_alike_in_two_files_are_told_apart(tmp_path):
    (tmp_path / "run1").mkdir()
    (tmp_path / "run2").mkdir()
    first = _same_named_plate(tmp_path / "run1" / "plate.ch5", ["A01", "B01"], 1)
    second = _same_named_plate(tmp_path / "run2" / "plate.ch5", ["A01"], 5)
    trained = random_model()
    done = run_encode_cells([first, second], trained, tmp_path / "c.h5ad")
    obs = ad.read_h5ad(done.anndata_path).obs
    assert len(obs) == 45 and obs.index.is_unique
    assert list(obs["plate"].cat.categories) == [
        "plate1 (run1/plate.ch5)",
        "plate1 (run2/plate.ch5)",
    ]
    table = hit_list(obs, np.zeros(len(obs), bool), "position")
    assert len(table) == 3  # the two A01 wells stay two rows
    plan = plan_encode([first], trained, tmp_path / "one.h5ad")
    assert [k.plate for k in plan.distinct_positions()] == ["plate1", "plate1"]  # one file: as is


def _classified(path, classes):
    return write_cellh5(
        path, [synthetic_position("A01", "1")], ["rfp"], {"primary__primary": 0},
        class_labels={"primary__primary": classes},
    )  # fmt: skip


def test_class_names_are_kept_only_when_every_plate_agrees(tmp_path):
    a = _classified(tmp_path / "a.ch5", CLASS_LABELS)
    b = _classified(tmp_path / "b.ch5", CLASS_LABELS)
    other = _classified(tmp_path / "c.ch5", [(0, "mitotic", "#FF0000"), (1, "dead", "#0000FF")])
    names, colours, notes = plate_classes([a, b], "primary__primary")
    assert names == {0: "interphase", 1: "mitotic"} and notes == []
    assert colours == {name: colour for _, name, colour in CLASS_LABELS}
    names, colours, notes = plate_classes([a, other], "primary__primary")
    assert names is None and colours is None
    assert "name their classes differently" in notes[0] and str(other) in notes[0]
    done = run_encode_cells([a, other], random_model(), tmp_path / "c.h5ad")
    assert done.notes[0] == notes[0]
    assert set(ad.read_h5ad(done.anndata_path).obs["class"].astype(str)) <= {"0", "1"}


def test_class_indices_beyond_the_class_list_are_called_unknown(tmp_path):
    # A classifier's class 1 with only class 0 listed came out as a bare "1" in
    # obs['class'], read as a class name, and nothing said the file was inconsistent.
    short = _classified(tmp_path / "a.ch5", CLASS_LABELS[:1])  # cells are of class 0 and 1
    done = run_encode_cells(short, random_model(), tmp_path / "c.h5ad")
    obs = ad.read_h5ad(done.anndata_path).obs
    assert set(obs["class"].astype(str)) == {"interphase", "unknown (1)"}
    assert list(obs["class_index"].unique()) == [0, 1]
    assert done.notes[0] == (
        f"{short}: cells carry class indices 1, beyond the 1 class(es) its classifier lists "
        "(0-0): obs['class'] calls them 'unknown (1)' and so on"
    )
    fine = _classified(tmp_path / "b.ch5", CLASS_LABELS)
    notes = run_encode_cells(fine, random_model(), tmp_path / "d.h5ad").notes
    assert not [note for note in notes if "class indices" in note]


def test_the_classifiers_colours_go_to_the_cells_file(tmp_path):
    # scanpy coloured obs['class'] with tab10 where napari shows the file's class colours.
    plate = _classified(tmp_path / "a.ch5", CLASS_LABELS)  # interphase green, mitotic red
    done = run_encode_cells(plate, random_model(), tmp_path / "c.h5ad")
    adata = ad.read_h5ad(done.anndata_path)
    assert list(adata.obs["class"].cat.categories) == ["interphase", "mitotic"]
    assert list(adata.uns["class_colors"]) == ["#00FF00", "#FF0000"]


def test_class_colours_are_hex_codes_every_view_reads(tmp_path):
    # '#F00' (napari's points take it) and '#GGGGGG' reached the widget's class colouring,
    # which read '#F00' as '#F0' plus nothing: ValueError, a traceback in napari.
    classes = [(0, "a", "#F00"), (1, "b", "#GGGGGG"), (2, "c", " #00FF00"), (3, "d", "#0000FF80")]
    with CellH5(_classified(tmp_path / "a.ch5", classes)) as ch5:
        colours = class_colours(ch5, "primary__primary")
    assert colours == {"a": "#FF0000", "c": "#00FF00", "d": "#0000FF80"}
    cells = pd.DataFrame({"condition": ["x"] * 4, "class": ["a", "b", "c", "d"]})
    palette = colourings(cells, class_colours=colours)["class"].palette
    np.testing.assert_array_equal(palette[[0, 2, 3], :3], [[1, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_class_colours_leave_out_hex_codes_with_spaces_inside(tmp_path):
    # '#FF 000' was read pair by pair (int(' 0', 16) is 0) and stored as it was written in
    # the .h5ad's class colours, which matplotlib and scanpy refuse.
    classes = [(0, "a", "#FF 000"), (1, "b", "#F00")]
    with CellH5(_classified(tmp_path / "a.ch5", classes)) as ch5:
        colours = class_colours(ch5, "primary__primary")
    assert colours == {"b": "#FF0000"}
    assert hex_rgba("#FF 000") is None and hex_rgba("#FF0000") is not None


def test_cells_without_a_prediction_are_unclassified_in_the_cells_file(tmp_path):
    # obs['class'] held "" for a cell without a prediction (class -1): scanpy's legend
    # showed a blank category in a palette colour, where the widget's colouring and the
    # reader's points layer call such cells "unclassified", in gray.
    position = synthetic_position("A01", "1")
    position.objects["primary__primary"].class_idx[:4] = -1
    plate = write_cellh5(
        tmp_path / "a.ch5", [position], ["rfp"], {"primary__primary": 0},
        class_labels={"primary__primary": CLASS_LABELS},
    )  # fmt: skip
    done = run_encode_cells(plate, random_model(), tmp_path / "c.h5ad")
    adata = ad.read_h5ad(done.anndata_path)
    obs = adata.obs
    unpredicted = (obs["class_index"] == -1).to_numpy()
    assert unpredicted.any() and not unpredicted.all()
    assert set(obs["class"][unpredicted]) == {"unclassified"}
    assert set(obs["class"][~unpredicted]) <= {"interphase", "mitotic"}
    assert "" not in obs["class"].cat.categories
    colours = dict(zip(obs["class"].cat.categories, adata.uns["class_colors"], strict=True))
    assert colours == {"interphase": "#00FF00", "mitotic": "#FF0000", "unclassified": "#b3b3b3"}
