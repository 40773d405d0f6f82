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


def _two_plate_cells(per_site: int = 12, seed: int = 0):
    """A cell table of two plates (plate 'P10' sorting after 'P9' only naturally, wells
    'A2' before 'A10'), control wells on both, and features with a plate effect."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for plate in ("P9", "P10"):
        for well, control in (("A2", True), ("A10", False), ("B1", True)):
            for site in ("1", "2"):
                rows += [(plate, well, site, i, control) for i in range(per_site)]
    obs = pd.DataFrame(rows, columns=["plate", "well", "site", "object_index", "control"])
    obs.index = [f"{p}/{w}_{s}/{i}" for p, w, s, i, _ in rows]
    obs["no_signal"] = False
    features = rng.normal(size=(len(obs), 6)).astype(np.float32)
    features[obs["plate"].to_numpy() == "P10"] *= 1.5
    features[obs["well"].to_numpy() == "A10", 0] += 3.0
    return obs, features


@pytest.mark.parametrize("method", ["pca", "umap"])
def test_maps_are_the_same_for_cells_in_any_order(method) -> None:
    # UMAP's layout, the cells a map of more than MAX_EMBED_FIT is fitted on (drawn by
    # row) and each plate's scaling followed the rows' order: a run of plates given the
    # other way round put every cell elsewhere in the map.
    from napari_cellae.core.features import MAX_EMBED_FIT
    from napari_cellae.pipeline.cell_ids import cell_order
    from napari_cellae.pipeline.cells import embeddings
    from napari_cellae.pipeline.map_features import map_references

    per_site = 12 if method == "umap" else MAX_EMBED_FIT // 12 + 10  # PCA: fitted on some
    obs, features = _two_plate_cells(per_site)
    maps = embeddings(features, method, 0, *map_references(obs), order=cell_order(obs))
    for shuffle in (np.random.default_rng(1).permutation(len(obs)), np.arange(len(obs))[::-1]):
        moved = obs.iloc[shuffle]
        again = embeddings(
            features[shuffle], method, 0, *map_references(moved), order=cell_order(moved)
        )
        assert (
            again.keys() == maps.keys() == ({"X_pca", "X_umap"} if method == "umap" else {"X_pca"})
        )
        for name, xy in maps.items():
            np.testing.assert_array_equal(again[name], xy[shuffle])


def test_plates_given_in_any_order_make_one_cells_file(tmp_path) -> None:
    # 'cellae encode a.ch5 b.ch5 --out cells.h5ad' and 'b.ch5 a.ch5': each cell's row,
    # novelty and place in the maps are the same (the rows follow the order given).
    from test_plate_training import _mapping, _plate

    plates = [
        _plate(tmp_path / "run1" / "plate.ch5", ["A01", "B01"], 1),
        _plate(tmp_path / "run2" / "plate.ch5", ["A01", "B01"], 5),
        _plate(tmp_path / "other.ch5", ["B01", "A01"], 9, plate="plate2"),
    ]
    mapping = _mapping(tmp_path / "mapping.txt", {"A01": "neg", "B01": "target"})
    trained = random_model()
    runs = [
        run_encode_cells(given, trained, tmp_path / f"c{i}.h5ad", mapping)
        for i, given in enumerate((plates, [plates[2], plates[1], plates[0]]))
    ]
    first, other = (ad.read_h5ad(run.anndata_path) for run in runs)
    assert list(first.obs_names) != list(other.obs_names)  # the rows come as given
    other = other[first.obs_names]
    np.testing.assert_array_equal(other.X, first.X)
    np.testing.assert_array_equal(other.obs["novelty"], first.obs["novelty"])
    for name in ("X_pca", "X_umap"):
        np.testing.assert_array_equal(other.obsm[name], first.obsm[name])


def test_one_files_cells_are_mapped_as_they_come(cellcognition_file, mapping_file, tmp_path):
    # One file's cells are already in the maps' order: its maps are those of its features
    # as they are, unchanged.
    from napari_cellae.pipeline.cell_ids import cell_order
    from napari_cellae.pipeline.cells import embeddings

    done = run_encode_cells(cellcognition_file, random_model(), tmp_path / "c.h5ad", mapping_file)
    np.testing.assert_array_equal(cell_order(done.obs), np.arange(len(done.obs)))
    as_they_are = embeddings(done.result.features, "umap", 0)
    for name, xy in as_they_are.items():
        np.testing.assert_array_equal(done.embeddings[name], xy)
