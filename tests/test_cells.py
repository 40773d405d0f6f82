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


def test_maps_scale_a_plate_without_two_control_wells_as_novelty_does() -> None:
    from napari_cellae.core.novelty import novelty_scores
    from napari_cellae.pipeline.cells import embeddings, plates_aligned

    # Plate A: two control wells and a hit well; plate B: treated wells only, all of one
    # phenotype (feature 0 raised). Novelty scales B on A's controls; the map scaled B on
    # its own cells, which put B's phenotype on top of A's controls (the same cells given
    # as one file per position, each its own plate, lost every hit in the map).
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 5))
    a[200:, 0] += 5.0
    b = rng.normal(size=(200, 5))
    b[:, 0] += 5.0
    features = np.r_[a, b].astype(np.float32)
    plates = np.repeat(["A", "B"], [300, 200])
    wells = np.repeat([0, 1, 2, 3, 4], 100)
    controls = wells < 2
    ref = features[controls].astype(np.float64)
    by_hand = (features - ref.mean(0)) / ref.std(0)  # every plate on A's control cells
    aligned = plates_aligned(features, plates, controls, wells)
    np.testing.assert_allclose(aligned[300:], by_hand[300:], rtol=1e-5, atol=1e-5)
    xy = embeddings(features, "pca", plates=plates, controls=controls, wells=wells)["X_pca"]
    control_xy, b_xy = xy[controls], xy[300:]
    gap = np.linalg.norm(b_xy.mean(0) - control_xy.mean(0))
    assert gap > control_xy[:, 0].std()  # on top of them (gap near 0) before
    # novelty scores B's cells on that scale too (with a warning that says so)
    with pytest.warns(UserWarning, match="plate B holds control cells of fewer than two"):
        scored = novelty_scores(features, controls, wells, plates=plates)
    assert scored.novel[300:].mean() > 0.9
    # B with one control well of its own: on every plate's controls too, not on that well
    b_one = controls | (wells == 3)
    aligned = plates_aligned(features, plates, b_one, wells)
    ref = features[b_one].astype(np.float64)
    by_hand = (features - ref.mean(0)) / ref.std(0)
    np.testing.assert_allclose(aligned[300:], by_hand[300:], rtol=1e-5, atol=1e-5)
