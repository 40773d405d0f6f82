"""pipeline.cells: the AnnData output streamed position by position (equal to the in-memory
encode, any runner, outputs checked first)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from napari_cellae.pipeline.cells import run_encode_cells
from napari_cellae.pipeline.runs import run_encode
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


def test_positions_of_the_cells_file_come_back_without_pixels(cellcognition_file, tmp_path):
    from dataclasses import replace

    from napari_cellae.pipeline.streaming import encode_position

    trained = random_model(mask="cell")
    plan = plan_encode([cellcognition_file], trained, tmp_path / "c.h5ad", thumbnails=False)
    task = plan.tasks[1]
    bare = encode_position(task, trained)
    shown = encode_position(replace(task, thumbnails=True), trained)  # as for the .hdf
    assert bare.crops.crops.shape == (15, 1, 0, 0)
    assert shown.crops.crops.shape == (15, 1, 16, 16) and shown.crops.crops.dtype == np.uint8
    np.testing.assert_array_equal(bare.features, shown.features)
    np.testing.assert_array_equal(bare.crops.center_x, shown.crops.center_x)


def test_maps_put_each_plate_on_its_own_controls_scale() -> None:
    from napari_cellae.pipeline.cells import embeddings

    # Two plates of the same cells, the second imaged otherwise (every feature shifted and
    # stretched): on one scale the plates lie apart along the first axis; each on its own
    # controls, they lie on top of each other.
    rng = np.random.default_rng(0)
    cells = rng.normal(size=(200, 6)).astype(np.float32)
    features = np.r_[cells, cells * 2.0 + 5.0]
    plates = np.repeat(["A", "B"], 200)
    controls = np.tile(np.arange(200) < 100, 2)
    apart = embeddings(features, "pca")["X_pca"]
    together = embeddings(features, "pca", plates=plates, controls=controls)["X_pca"]
    gap = abs(apart[:200, 0].mean() - apart[200:, 0].mean())
    assert gap > 3 * apart[:200, 0].std()
    np.testing.assert_allclose(together[:200], together[200:], atol=1e-4)
    # one plate: the map of the features as they are
    single = embeddings(features, "pca", plates=np.full(400, "A"), controls=controls)
    np.testing.assert_array_equal(single["X_pca"], apart)
