"""Differential tests: the same cells get the same numbers whichever path writes them.

One trained model per preset and file flavour (CellCognition time-lapse with a mapping,
CellProfiler two-channel uint16, CellCognition without label images), then compared:
the model in memory and saved/loaded; the in-memory encode, the streamed Explorer ``.hdf``
(any batch size), the widget's chunked encode (any chunk), a Dask cluster (in process) and
the ``.h5ad``; the novelty flags of the widget's findings, of ``cellae encode`` and of
``cellae hits``; the features ``cellae demo`` writes and those ``cellae encode`` writes with
the model it saved.
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from conftest import CLASS_LABELS, synthetic_position, write_cellprofiler_screen
from napari_cellae.cli import main
from napari_cellae.core.config import TrainConfig
from napari_cellae.core.model_load import load_model
from napari_cellae.export.explorer import read_explorer_hdf
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.pipeline.cells import run_encode_cells, write_cells
from napari_cellae.pipeline.encode_chunks import encode_chunks
from napari_cellae.pipeline.open_files import close_open_files
from napari_cellae.pipeline.runs import RunResult, run_train
from napari_cellae.pipeline.steps import encode_crops
from napari_cellae.pipeline.streaming import encode_stream

ARCH = "c4.3r_p2_d16.0s"
PRESETS = ("classic", "recommended", "demo")
FLAVOURS = ("cellcognition", "cellprofiler", "no_labels")
# Features of other batch compositions differ in the last bits (oneDNN's kernels); the
# elongation of a near point-like response map (cells at the image corner) magnifies a
# batch of one cell's to ~1e-4. A cell in the wrong row or scaled otherwise is off by 0.1+.
CLOSE = {"rtol": 1e-5, "atol": 1e-3}
MAPPING = (
    "Position\tWell\tSite\tRow\tColumn\tGene Symbol\tsiRNA ID\tGroup\n"
    "0001\tA01\t0001\tA\t1\tscrambled\ts001\tneg\n"
    "0002\tA02\t0001\tA\t2\tscrambled\ts001\tneg\n"
    "0003\tB01\t0001\tB\t1\tPLK1\ts123\ttarget\n"
)


def _cellcognition(path, labels=True):
    """Three wells, three frames of 7 cells; the corner cell is the same crop in every frame."""
    positions = [
        synthetic_position(w, "0001", n_per_frame=7, seed=i)
        for i, w in enumerate(("A01", "A02", "B01"))
    ]
    for position in positions:
        position.labels = position.labels if labels else None
    return write_cellh5(
        path,
        positions,
        channel_names=["rfp"],
        object_channels={"primary__primary": 0},
        class_labels={"primary__primary": CLASS_LABELS},
        flavour="cellcognition",
        split_files=True,
    )


def _cellprofiler(path):
    return write_cellprofiler_screen(path, ("A01", "A02", "B01"))


@pytest.fixture(autouse=True)
def _closed_files():
    yield
    close_open_files()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """flavour -> (CellH5 file, mapping or None)."""
    folder = tmp_path_factory.mktemp("agreement")
    mapping = folder / "mapping.txt"
    mapping.write_text(MAPPING, encoding="utf-8")
    (folder / "cc").mkdir()
    (folder / "bare").mkdir()
    (folder / "cp").mkdir()
    return {
        "cellcognition": (_cellcognition(folder / "cc" / "_all_positions.ch5"), mapping),
        "no_labels": (_cellcognition(folder / "bare" / "_all_positions.ch5", False), mapping),
        "cellprofiler": (_cellprofiler(folder / "cp" / "screen.ch5"), None),
    }


_TRAINED: dict = {}


def trained_run(files, tmp_path_factory, flavour: str, preset: str) -> tuple[RunResult, object]:
    """(run_train's result, path of its saved model), trained once per module."""
    key = (flavour, preset)
    if key not in _TRAINED:
        ch5, mapping = files[flavour]
        settings = {"crop_size": 16, "epochs": 1, "batch_size": 16, "train_on": "all"}
        config = TrainConfig.from_preset(preset, architecture=ARCH, device="cpu", **settings)
        out = tmp_path_factory.mktemp("models") / f"{flavour}_{preset}.pt"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _TRAINED[key] = (run_train(ch5, config, mapping, out=out), out)
    return _TRAINED[key]


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def assert_same_explorer(a, b, **close) -> None:
    x, y = read_explorer_hdf(a), read_explorer_hdf(b)
    np.testing.assert_array_equal(x.bbox, y.bbox)
    np.testing.assert_array_equal(x.gallery, y.gallery)
    np.testing.assert_allclose(x.features, y.features, **(close or {"rtol": 1e-6, "atol": 1e-6}))
    assert x.feature_names == y.feature_names
    np.testing.assert_array_equal(x.feature_groups, y.feature_groups)


def assert_same_cells(explorer, obs: pd.DataFrame, crops) -> None:
    """The Explorer rows, the .h5ad's cells and the crops are the same cells in one order."""
    box = explorer.bbox
    assert box["label"].tolist() == obs["label_id"].tolist() == crops.label_id.tolist()
    assert box["x"].tolist() == obs["x"].round().astype(int).tolist()
    assert box["y"].tolist() == obs["y"].round().astype(int).tolist()
    assert box["x"].tolist() == crops.center_x.tolist()
    assert obs["frame"].tolist() == crops.time_idx.tolist()
    files = [f.decode() for f in box["file"]]
    assert files == obs["position"].astype(str).tolist()
    treatments = [t.decode() for t in box["treatment"]]
    assert treatments == obs["condition"].astype(str).tolist()


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_output_of_a_trained_model_holds_the_same_cells_and_numbers(
    files, tmp_path_factory, tmp_path, flavour, preset
):
    result, model_path = trained_run(files, tmp_path_factory, flavour, preset)
    ch5, mapping = files[flavour]
    in_memory = encode_crops(result.trained, result.crops)
    loaded = load_model(model_path)
    assert loaded.config == result.trained.config
    np.testing.assert_array_equal(encode_crops(loaded, result.crops), in_memory)  # bit for bit

    hdf, cells = tmp_path / "f.hdf", tmp_path / "cells.h5ad"
    _quiet(encode_stream, [ch5], loaded, hdf, mapping)
    _quiet(run_encode_cells, ch5, loaded, cells, mapping, embedding="pca")
    explorer, adata = read_explorer_hdf(hdf), ad.read_h5ad(cells)
    np.testing.assert_allclose(explorer.features, in_memory, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(adata.X, in_memory, rtol=1e-6, atol=1e-6)
    assert [n.split("-", 1)[1] for n in explorer.feature_names] == list(adata.var_names)
    assert_same_cells(explorer, adata.obs, result.crops)
    if "class" in adata.obs:  # the classifier's classes, where the file has them
        assert adata.obs["class_index"].tolist() == result.crops.class_idx.tolist()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_tiny_batches_and_chunks_encode_as_one_batch(files, tmp_path_factory, tmp_path, flavour):
    result, model_path = trained_run(files, tmp_path_factory, flavour, "recommended")
    ch5, mapping = files[flavour]
    loaded = load_model(model_path)
    whole = tmp_path / "whole.hdf"
    _quiet(encode_stream, [ch5], loaded, whole, mapping)
    # 1 cell; 5: chunk boundaries inside positions of 21 (or 6) cells, and across them
    for batch in (1, 5):
        out = tmp_path / f"b{batch}.hdf"
        _quiet(encode_stream, [ch5], loaded, out, mapping, batch_size=batch)
        assert_same_explorer(whole, out, **CLOSE)
    expected = read_explorer_hdf(whole).features
    for chunk in (4, len(result.crops) - 1):
        *_, (done, features) = _quiet(list, encode_chunks(loaded, result.crops, chunk=chunk))
        assert done == len(result.crops)
        np.testing.assert_allclose(features, expected, **CLOSE)


def test_a_dask_cluster_in_process_writes_the_serial_outputs(files, tmp_path_factory, tmp_path):
    pytest.importorskip("distributed")
    from napari_cellae.pipeline.distributed import cluster_runner, dask_client

    _, model_path = trained_run(files, tmp_path_factory, "cellcognition", "recommended")
    ch5, mapping = files["cellcognition"]
    loaded = load_model(model_path)
    _quiet(encode_stream, [ch5], loaded, tmp_path / "serial.hdf", mapping)
    serial = _quiet(run_encode_cells, ch5, loaded, tmp_path / "s.h5ad", mapping, embedding="pca")
    with dask_client(2, processes=False) as client:
        runner = cluster_runner(client, window=2)
        _quiet(encode_stream, [ch5], loaded, tmp_path / "dask.hdf", mapping, runner=runner)
        on_dask = _quiet(
            run_encode_cells,
            ch5,
            loaded,
            tmp_path / "d.h5ad",
            mapping,
            embedding="pca",
            runner=runner,
        )
    assert_same_explorer(tmp_path / "serial.hdf", tmp_path / "dask.hdf")
    a, b = ad.read_h5ad(serial.anndata_path), ad.read_h5ad(on_dask.anndata_path)
    assert list(a.obs_names) == list(b.obs_names)
    np.testing.assert_allclose(a.X, b.X, rtol=1e-6, atol=1e-6)
    for column in ("novel", "cluster", "condition", "control", "position"):
        assert a.obs[column].tolist() == b.obs[column].tolist(), column
    np.testing.assert_allclose(a.obs["novelty"], b.obs["novelty"], rtol=1e-5, atol=1e-5)


def _nudged(features: np.ndarray, row: int, towards: float) -> np.ndarray:
    """``features`` with one row moved by one float32 step, as another batch may give it."""
    out = features.copy()
    out[row] = np.nextafter(out[row], np.float32(towards))
    return out


def test_novel_flags_do_not_hang_on_the_last_bit_of_identical_cells(files, tmp_path_factory):
    # The corner cell is one crop in all three frames: three control cells with one score,
    # where the 80th percentile of 42 control scores falls. Encoded in other batches (the
    # widget's chunks, cellae encode's batch size), one of them came out one float32 step
    # higher, above the bar: the widget counted 13 novel cells where the file said 12.
    from napari_cellae._ui.findings import find

    result, _ = trained_run(files, tmp_path_factory, "cellcognition", "recommended")
    features = encode_crops(result.trained, result.crops)
    corner = np.flatnonzero((result.crops.center_y == 2) & (result.crops.position_index == 0))
    assert len(corner) == 3
    np.testing.assert_array_equal(features[corner[0]], features[corner[2]])

    def novel(x: np.ndarray) -> np.ndarray:
        run = RunResult(result.trained, result.crops, result.mapping, features=x)
        return _quiet(find, run).obs["novel"].to_numpy()

    flags = novel(features)
    for row in corner:
        for towards in (np.inf, -np.inf):
            np.testing.assert_array_equal(novel(_nudged(features, row, towards)), flags)


def test_the_widgets_chunks_the_cells_file_and_the_hit_table_flag_the_same_cells(
    files, tmp_path_factory, tmp_path
):
    from napari_cellae._ui.findings import find

    result, model_path = trained_run(files, tmp_path_factory, "cellcognition", "recommended")
    ch5, mapping = files["cellcognition"]
    *_, (_, chunked) = _quiet(list, encode_chunks(result.trained, result.crops, chunk=5))
    widget = _quiet(find, RunResult(result.trained, result.crops, result.mapping, chunked))
    cells = tmp_path / "cells.h5ad"
    _quiet(run_encode_cells, ch5, load_model(model_path), cells, mapping, embedding="pca")
    obs = ad.read_h5ad(cells).obs
    assert widget.obs["novel"].tolist() == obs["novel"].tolist()
    # the widget's Save cells: the same table as the cells file, column by column
    saved = tmp_path / "widget.h5ad"
    run = RunResult(result.trained, result.crops, result.mapping, chunked)
    write_cells(saved, run, widget.obs, widget.discovery, {}, [ch5], widget.class_colours)
    mine = ad.read_h5ad(saved)
    assert list(mine.obs_names) == list(obs.index)
    assert list(mine.obs.columns) == list(obs.columns)
    for column in obs.columns:
        if obs[column].dtype.kind == "f":
            np.testing.assert_allclose(mine.obs[column], obs[column], rtol=1e-5, atol=1e-5)
        else:
            assert mine.obs[column].astype(str).tolist() == obs[column].astype(str).tolist()
    for by in ("position", "condition"):
        table = tmp_path / f"hits_{by}.csv"
        assert main(["hits", str(cells), "--out", str(table), "--by", by, "-q"]) == 0
        again = tmp_path / f"again_{by}.csv"  # scored again from X: the same table
        assert main(["hits", str(cells), "--out", str(again), "--by", by, "--novelty", "knn"]) == 0
        stored, scored = pd.read_csv(table), pd.read_csv(again)
        pd.testing.assert_frame_equal(stored, scored, rtol=1e-5)
        mine = widget.hits[by].reset_index(drop=True)
        assert mine[by].astype(str).tolist() == stored[by].astype(str).tolist()
        assert mine["n_novel"].tolist() == stored["n_novel"].tolist()
        assert mine["n_cells"].tolist() == stored["n_cells"].tolist()


def test_a_score_one_rounding_step_above_the_bar_is_at_it():
    from napari_cellae.core.novel_bar import above_bar, novel_bar

    scores = np.array([1.0, 2.0, 3.0, 3.0, 3.0, 4.0, 9.0], np.float32)
    controls = np.array([True] * 6 + [False])
    threshold, novel = novel_bar(scores.astype(np.float64), controls, 50)
    assert threshold == 3.0 and novel.tolist() == [False] * 5 + [True, True]
    up = scores.copy()
    up[4] = np.nextafter(up[4], np.float32(np.inf))  # the same cell, encoded in another batch
    assert novel_bar(up.astype(np.float64), controls, 50)[1].tolist() == novel.tolist()
    assert above_bar(np.array([3.001, -2.0]), 3.0).tolist() == [True, False]


def test_cellae_demo_writes_what_cellae_encode_writes_with_its_model(files, tmp_path, monkeypatch):
    # 'cellae demo' encodes the crops it trained on with the model in memory; 'cellae
    # encode' crops the file again and loads the model the demo saved.
    from napari_cellae.demo import screen

    ch5, mapping = files["cellcognition"]
    monkeypatch.setattr(screen, "demo_paths", lambda *a, **k: (ch5, mapping))
    out = tmp_path / "demo"
    tiny = ["--architecture", ARCH, "--crop-size", "16", "--epochs", "1", "--batch-size", "16"]
    assert _quiet(main, ["demo", "--out", str(out), *tiny, "-q"]) == 0
    again = tmp_path / "again.hdf"
    model = ["--model", str(out / "model.pt"), "--mapping", str(mapping), "--batch-size", "5"]
    assert _quiet(main, ["encode", str(ch5), *model, "--out", str(again), "-q"]) == 0
    assert_same_explorer(out / "features.hdf", again, **CLOSE)


def test_several_plates_in_one_run_are_each_plates_cells(files, tmp_path_factory, tmp_path):
    # Two plates of one plate name in two folders and a third: the .hdf, the .h5ad and the
    # plates encoded one by one hold the same cells, named alike, with the same numbers.
    _, model_path = trained_run(files, tmp_path_factory, "cellcognition", "recommended")
    mapping = files["cellcognition"][1]
    plates = []
    for folder, name, seed in (("x", "plate1", 0), ("y", "plate1", 10), ("z", "plate2", 20)):
        positions = [
            synthetic_position(w, "0001", plate=name, n_per_frame=4, seed=seed + i)
            for i, w in enumerate(("A01", "A02", "B01"))
        ]
        (tmp_path / folder).mkdir()
        ch5 = write_cellh5(
            tmp_path / folder / "a.ch5",
            positions,
            channel_names=["rfp"],
            object_channels={"primary__primary": 0},
            class_labels={"primary__primary": CLASS_LABELS},
        )
        plates.append(ch5)
    loaded = load_model(model_path)
    _quiet(encode_stream, plates, loaded, tmp_path / "all.hdf", mapping)
    _quiet(run_encode_cells, plates, loaded, tmp_path / "all.h5ad", mapping, embedding="pca")
    explorer, adata = read_explorer_hdf(tmp_path / "all.hdf"), ad.read_h5ad(tmp_path / "all.h5ad")
    alone = []
    for i, plate in enumerate(plates):
        _quiet(encode_stream, [plate], loaded, tmp_path / f"{i}.hdf", mapping)
        alone.append(read_explorer_hdf(tmp_path / f"{i}.hdf").features)
    np.testing.assert_allclose(explorer.features, np.concatenate(alone), **CLOSE)
    np.testing.assert_allclose(adata.X, explorer.features, rtol=1e-6, atol=1e-6)
    obs = adata.obs
    files_ = [f.decode() for f in explorer.bbox["file"]]
    assert files_ == [f"{p}/{q}" for p, q in zip(obs["plate"], obs["position"], strict=True)]
    assert len(set(obs["plate"])) == 3  # the two plate1s told apart
    assert explorer.bbox["label"].tolist() == obs["label_id"].tolist()
    treatments = [t.decode() for t in explorer.bbox["treatment"]]
    assert treatments == obs["condition"].astype(str).tolist()


@pytest.mark.parametrize("preset", ["classic", "recommended"])
def test_cellae_train_then_encode_gives_the_in_memory_runs_features(files, tmp_path, preset):
    # 'cellae train' cuts only the cells it draws (30 of 63 here); run_train cuts them all.
    # The models, and what 'cellae encode' writes with the saved one, are the same.
    ch5, mapping = files["cellcognition"]
    tiny = {"crop_size": 16, "epochs": 2, "batch_size": 8, "samples": 30}
    config = TrainConfig.from_preset(preset, architecture=ARCH, device="cpu", **tiny)
    result = _quiet(run_train, ch5, config, mapping)
    model, hdf = tmp_path / "model.pt", tmp_path / "f.hdf"
    options = [f"--{k.replace('_', '-')}={v}" for k, v in tiny.items()]
    train = ["train", str(ch5), "--mapping", str(mapping), "--preset", preset, *options]
    assert _quiet(main, [*train, "--architecture", ARCH, "--out", str(model), "-q"]) == 0
    encode = ["encode", str(ch5), "--model", str(model), "--mapping", str(mapping)]
    assert _quiet(main, [*encode, "--out", str(hdf), "-q"]) == 0
    np.testing.assert_allclose(
        read_explorer_hdf(hdf).features,
        encode_crops(result.trained, result.crops),
        rtol=1e-6,
        atol=1e-6,
    )
