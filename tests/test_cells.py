"""pipeline.cells: the AnnData output streamed position by position, plates told apart, the
gallery's crops cut again."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from conftest import synthetic_position
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.pipeline.cells import distinct_plates, run_encode_cells, typical_crops
from napari_cellae.pipeline.hits import hit_list
from napari_cellae.pipeline.runs import run_encode
from napari_cellae.pipeline.steps import crops_for
from napari_cellae.pipeline.streaming import encode_serial, plan_encode
from test_streaming import random_model


@pytest.mark.parametrize("flavour", ["cellcognition", "cellprofiler"])
def test_streamed_cells_equal_the_in_memory_encode(flavour, request, mapping_file, tmp_path):
    if flavour == "cellcognition":
        ch5, trained = request.getfixturevalue("cellcognition_file"), random_model(mask="cell")
        mapping = mapping_file
    else:
        ch5, mapping = request.getfixturevalue("cellprofiler_file"), None
        trained = random_model(("DNA", "GFP"), "Nuclei", 3000.0, mask="cell")
    seen = []
    done = run_encode_cells(
        ch5, trained, tmp_path / "c.h5ad", mapping, progress=lambda d, t: seen.append((d, t))
    )
    memory = run_encode(ch5, trained, tmp_path / "r.hdf", mapping)
    adata = ad.read_h5ad(done.anndata_path)
    np.testing.assert_allclose(adata.X, memory.features, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(adata.obs["x"], memory.crops.center_x)
    np.testing.assert_array_equal(adata.obs["frame"], memory.crops.time_idx)
    assert seen == [(0, 2), (1, 2), (2, 2)]  # over positions
    assert done.result.crops.crops.shape[2:] == (0, 0)  # no pixels held
    assert adata.obs_names.is_unique
    if mapping is not None:
        assert "novelty" in adata.obs and adata.obs["control"].any()


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
    assert [k.plate for k in distinct_plates(plan)] == ["plate1", "plate1"]  # one file: as is


def test_positions_are_encoded_by_the_runner_given(cellcognition_file, tmp_path):
    calls = []

    def runner(tasks, trained, batch_size):
        calls.append([t.position.well for t in tasks])
        return encode_serial(tasks, trained, batch_size)

    done = run_encode_cells(cellcognition_file, random_model(), tmp_path / "c.h5ad", runner=runner)
    assert calls == [["A01", "B02"]]
    assert len(done.obs) == 30


def test_an_output_that_is_an_input_is_refused_before_any_work(cellcognition_file, tmp_path):
    trained = random_model()
    with pytest.raises(ValueError, match="gallery"):
        run_encode_cells(
            cellcognition_file, trained, tmp_path / "c.h5ad", gallery=cellcognition_file
        )
    with pytest.raises(ValueError, match=r"\.h5ad"):
        run_encode_cells(cellcognition_file, trained, tmp_path / "c.hdf")
    assert not (tmp_path / "c.h5ad").exists()
