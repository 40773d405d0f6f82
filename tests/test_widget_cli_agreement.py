"""End to end: the dock widget and the ``cellae`` command give the same results.

One small screen with negative controls, one tiny network, one seed. The widget trains
(the form's settings), saves its features (``.hdf``), cells (``.h5ad``) and model; the
command line trains (``cellae train`` with the same settings), encodes to both files and
ranks hits (``cellae hits``). Compared: the weights, every cell's features, the novelty
scores and flags, the phenotype groups, the hit table (order, shares, p and q) and the
contents of every file (timestamps and version strings aside). Then each side's model is
applied by the other: the widget's by ``cellae encode``, the command's by Load model.

The 2-D map compared is the PCA (``cellae encode --embedding pca``): UMAP's first run
compiles for ~20 s; the widget's UMAP (made in a process of its own) equals the ``.h5ad``'s
for the same features (tests/test_ui_results.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from napari_cellae._widget import DeepLearningWidget
from napari_cellae.cli import main
from ui_helpers import TIMEOUT_MS, four_well_screen, run_job, use_pca

ARCH = "c4.3r_d8.0s"
#: the form's boxes and the same ``cellae train`` options
#: (crops of 24 px resampled to 16; training draws 30 of the 42 control cells: the draw is
#: part of what must agree)
SETTINGS = {
    "crop_size": 24,
    "input_size": 16,
    "architecture": ARCH,
    "epochs": 2,
    "samples": 30,
    "batch_size": 16,
    "train_on": "controls",
}
# Bit-equal here; within a tolerance, as thread counts (the widget leaves a core to the GUI)
# and batches (the widget encodes the file in chunks, cellae encode position by position)
# may change the last bits elsewhere. A cell drawn otherwise moves the weights by 1e-2.
CLOSE = {"rtol": 1e-5, "atol": 1e-6}
#: names of attributes and datasets that say when or by which version a file was written
#: (both sides run this version: the .h5ad's JSON copy of uns, which holds it, is compared)
VOLATILE = {"version", "created", "date", "software"}


pytestmark = pytest.mark.filterwarnings(
    "ignore:training draws only:UserWarning", "ignore:.*objects are small for:UserWarning"
)


@pytest.fixture(scope="module")
def screen(tmp_path_factory) -> tuple[Path, Path]:
    """Four wells, two negative controls and two treated (:func:`four_well_screen`), as a
    master file linking one file per position: all are inputs."""
    return four_well_screen(tmp_path_factory.mktemp("screen"), split_files=True)


def _cli(*argv: str) -> None:
    assert main([*argv, "--quiet"]) == 0, argv


def _options() -> list[str]:
    return [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]


@pytest.fixture(scope="module")
def cli(screen, tmp_path_factory) -> dict[str, Path]:
    """``cellae train``, ``cellae encode`` (.hdf and .h5ad) and ``cellae hits``."""
    ch5, mapping = screen
    out = tmp_path_factory.mktemp("cli")
    paths = {
        "model": out / "model.pt",
        "hdf": out / "features.hdf",
        "h5ad": out / "cells.h5ad",
        "position": out / "hits_position.csv",
        "condition": out / "hits_condition.csv",
    }
    _cli("train", str(ch5), "--mapping", str(mapping), *_options(), "--out", str(paths["model"]))
    for kind in ("hdf", "h5ad"):
        embedding = ["--embedding", "pca"] if kind == "h5ad" else []
        _cli(
            "encode",
            str(ch5),
            "--model",
            str(paths["model"]),
            "--mapping",
            str(mapping),
            *embedding,
            "--out",
            str(paths[kind]),
        )
    for by in ("position", "condition"):
        _cli("hits", str(paths["h5ad"]), "--by", by, "--out", str(paths[by]))
    return paths


# -- comparing files ------------------------------------------------------------------------------
def _volatile(name: str) -> bool:
    return name.lower() in VOLATILE


def _equal(a, b, where: str) -> None:
    """``a`` and ``b`` (HDF5 values: arrays, arrays of objects, scalars) hold the same."""
    a, b = np.asarray(a), np.asarray(b)
    assert (a.shape, a.dtype) == (b.shape, b.dtype), (
        f"{where}: {a.dtype}{a.shape}, {b.dtype}{b.shape}"
    )
    if a.dtype.kind == "O":  # strings of variable length, references, nested arrays
        for i, (x, y) in enumerate(zip(a.ravel(), b.ravel(), strict=True)):
            _equal(x, y, f"{where}[{i}]")
    elif a.dtype.names:  # a table of fields
        for name in a.dtype.names:
            _equal(a[name], b[name], f"{where}.{name}")
    elif a.dtype.kind == "V":
        assert a.tobytes() == b.tobytes(), where
    elif a.dtype.kind == "f":
        np.testing.assert_allclose(a, b, **CLOSE, err_msg=where)
    else:
        np.testing.assert_array_equal(a, b, err_msg=where)


def _hdf5_contents(path: Path) -> dict[str, object]:
    """Every dataset's values and every attribute of an HDF5 file, by path, those that
    say when or by which version it was written left out."""
    out: dict[str, object] = {}
    with h5py.File(path, "r") as f:

        def visit(name: str, item) -> None:
            if _volatile(name.rsplit("/", 1)[-1]):
                return
            if isinstance(item, h5py.Dataset):
                out[name] = item[()]
            for key, value in item.attrs.items():
                if not _volatile(key):
                    out[f"{name}@{key}"] = value

        for key, value in f.attrs.items():
            if not _volatile(key):
                out[f"@{key}"] = value
        f.visititems(visit)
    return out


def _same_hdf5(widget_file: Path, cli_file: Path, skip: tuple[str, ...] = ()) -> None:
    ours, theirs = _hdf5_contents(widget_file), _hdf5_contents(cli_file)
    ours = {k: v for k, v in ours.items() if not k.startswith(skip)}
    theirs = {k: v for k, v in theirs.items() if not k.startswith(skip)}
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        _equal(ours[key], theirs[key], f"{widget_file.name}:{key}")


def _model(path: Path) -> tuple[dict, dict]:
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    meta["config"] = json.loads(meta["config"])
    return meta, {k: v.numpy() for k, v in payload["state_dict"].items()}


# -- the widget -----------------------------------------------------------------------------------
def _saved(qtbot, worker) -> None:
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()


def _dock(make_napari_viewer, screen) -> DeepLearningWidget:
    ch5, mapping = screen
    widget = DeepLearningWidget(make_napari_viewer())
    widget.form.file.value = ch5
    widget.form.mapping.value = mapping
    use_pca(widget)  # cellae encode --embedding pca: UMAP takes ~20 s to compile
    for name, value in SETTINGS.items():
        getattr(widget.form, name).value = value
    return widget


def _same_hits(findings, cli: dict[str, Path]) -> None:
    """The widget's hit tables are those of ``cellae hits``: rows, order, shares, p, q."""
    assert findings.hits.keys() == {"position", "condition"}
    for by, table in findings.hits.items():
        written = pd.read_csv(cli[by], dtype={by: str})
        assert list(table[by].astype(str)) == list(written[by]), by
        for column in written.columns:
            if pd.api.types.is_numeric_dtype(written[column]):
                # the CSV holds 6 significant digits (float_format="%.6g")
                np.testing.assert_allclose(
                    table[column].astype(float), written[column], rtol=1e-5, err_msg=column
                )
            else:
                assert list(table[column].astype(str)) == list(written[column].astype(str))


def _same_shown_hits(widget, cli: dict[str, Path]) -> None:
    """The hit table the dock shows holds the rows of ``cellae hits``, in its order, with
    its shares, p and q (the values the table sorts by; the text is rounded)."""
    from qtpy.QtCore import Qt

    from napari_cellae._ui.findings import row_key
    from napari_cellae._ui.hit_table import _HEADERS

    shown = widget.panel.hits
    names = {header: name for name, header in _HEADERS.items()}
    for by in ("position", "condition"):
        shown.by.setCurrentText(by)
        written = pd.read_csv(cli[by], dtype={by: str})
        assert shown.keys() == [row_key(row, by) for row in written.to_dict("records")], by
        table = shown.table
        for j in range(table.columnCount()):
            header = table.horizontalHeaderItem(j).text()
            column = names.get(header, header)
            values = [table.item(i, j).data(Qt.ItemDataRole.UserRole) for i in range(len(written))]
            if column in ("novel_fraction", "p_value", "q_value", "enrichment", "robust_z"):
                np.testing.assert_allclose(values, written[column], rtol=1e-5, err_msg=column)
            elif column in ("rank", "n_cells", "n_novel"):
                assert values == list(written[column].astype(float)), column


def _same_cells(adata, cli_adata) -> None:
    """Features, cell table (novelty, novel, phenotype group) and maps."""
    np.testing.assert_allclose(adata.X, cli_adata.X, **CLOSE)
    pd.testing.assert_frame_equal(adata.obs, cli_adata.obs)
    assert adata.obsm.keys() == cli_adata.obsm.keys() == {"X_pca"}
    np.testing.assert_allclose(adata.obsm["X_pca"], cli_adata.obsm["X_pca"], **CLOSE)


def test_a_widget_run_agrees_with_cellae_train_and_encode(
    make_napari_viewer, qtbot, errors, screen, cli, tmp_path
):
    import anndata as ad

    from napari_cellae.core.model_load import load_model
    from napari_cellae.export.explorer import read_explorer_hdf

    ch5, mapping = screen
    widget = _dock(make_napari_viewer, screen)
    run_job(qtbot, widget, widget.start_training)
    assert not errors, errors
    result, findings = widget.result, widget.results.findings

    # the model: settings and weights (training drew the same 30 control cells)
    cli_model = load_model(cli["model"])
    assert result.trained.config == cli_model.config
    ours = result.trained.model.state_dict()
    for key, value in cli_model.model.state_dict().items():
        np.testing.assert_allclose(ours[key].numpy(), value.numpy(), **CLOSE, err_msg=key)

    # saved by the widget: model, Explorer file, AnnData
    out = {
        "model": widget.save_model(tmp_path / "model.pt"),
        "hdf": tmp_path / "features.hdf",
        "h5ad": tmp_path / "cells.h5ad",
    }
    _saved(qtbot, widget.save_features(out["hdf"], start=False))
    _saved(qtbot, widget.save_anndata(out["h5ad"], start=False))
    assert not errors, errors
    meta, weights = _model(out["model"])
    cli_meta, cli_weights = _model(cli["model"])
    assert meta == cli_meta
    assert weights.keys() == cli_weights.keys()
    for key in weights:
        np.testing.assert_allclose(weights[key], cli_weights[key], **CLOSE, err_msg=key)

    # every cell's features: in memory and in both Explorer files
    theirs = read_explorer_hdf(cli["hdf"])
    np.testing.assert_allclose(result.features, theirs.features, **CLOSE)
    _same_hdf5(out["hdf"], cli["hdf"])

    # novelty, novel cells, phenotype groups, the PCA map: the .h5ad files
    adata, cli_adata = ad.read_h5ad(out["h5ad"]), ad.read_h5ad(cli["h5ad"])
    _same_cells(adata, cli_adata)
    np.testing.assert_allclose(result.embedding, cli_adata.obsm["X_pca"], **CLOSE)  # shown
    np.testing.assert_allclose(findings.scores, cli_adata.obs["novelty"], **CLOSE)
    assert cli_adata.obs["novel"].any() and cli_adata.obs["cluster"].nunique() > 1
    # Intended: cellae encode applied a model file, the widget trained it in this run. So
    # the widget's file records the training (losses, cells) and has no model among its
    # inputs; each names the model file it was saved to.
    ours, theirs = adata.uns["cellae"], cli_adata.uns["cellae"]
    assert ours["model_file"] == str(out["model"]) and theirs["model_file"] == str(cli["model"])
    assert ours["training"]["trained_in_this_run"] and not theirs["training"]["trained_in_this_run"]
    assert ours["training"]["n_trained"] + ours["training"]["n_held_out"] == 30
    assert list(ours["sources"]) == [s for s in theirs["sources"] if s != str(cli["model"])]
    different = ("uns/cellae/training", "uns/cellae/model_file", "uns/cellae/sources")
    _same_hdf5(out["h5ad"], cli["h5ad"], skip=(*different, "uns/cellae_json"))

    # the hit tables: the widget's and cellae hits'
    _same_hits(findings, cli)
    _same_shown_hits(widget, cli)

    # the widget's model applied by cellae encode
    again = tmp_path / "again.hdf"
    _cli(
        "encode",
        str(ch5),
        "--model",
        str(out["model"]),
        "--mapping",
        str(mapping),
        "--out",
        str(again),
    )
    np.testing.assert_allclose(read_explorer_hdf(again).features, result.features, **CLOSE)
    _same_hdf5(again, out["hdf"])


def test_a_model_of_cellae_train_loaded_in_the_widget_agrees(
    make_napari_viewer, qtbot, errors, screen, cli, tmp_path
):
    import anndata as ad

    from napari_cellae.core.model_load import load_model
    from napari_cellae.export.explorer import read_explorer_hdf

    widget = _dock(make_napari_viewer, screen)
    run_job(qtbot, widget, lambda start: widget.load_model(cli["model"], start=start))
    assert not errors, errors
    np.testing.assert_allclose(
        widget.result.features, read_explorer_hdf(cli["hdf"]).features, **CLOSE
    )
    out = {"hdf": tmp_path / "features.hdf", "h5ad": tmp_path / "cells.h5ad"}
    _saved(qtbot, widget.save_features(out["hdf"], start=False))
    _saved(qtbot, widget.save_anndata(out["h5ad"], start=False))
    assert not errors, errors
    _same_hdf5(out["hdf"], cli["hdf"])
    # the same run as cellae encode's: every entry, the files read (sources) too
    _same_cells(ad.read_h5ad(out["h5ad"]), ad.read_h5ad(cli["h5ad"]))
    _same_hdf5(out["h5ad"], cli["h5ad"])
    _same_hits(widget.results.findings, cli)
    _same_shown_hits(widget, cli)
    # the loaded model saved again: the same file contents
    resaved = _model(widget.save_model(tmp_path / "resaved.pt"))
    theirs = _model(cli["model"])
    assert resaved[0] == theirs[0] and resaved[1].keys() == theirs[1].keys()
    for key, value in theirs[1].items():
        np.testing.assert_array_equal(resaved[1][key], value, err_msg=key)

    # A model of other settings without a box (seed, held-out share) loaded, Train trains
    # the model's way: the same model again. Its .h5ad lists the files this run read; the
    # model loaded before is none of them.
    ch5, mapping = screen
    seeded = tmp_path / "seeded.pt"
    other = ["--seed", "5", "--held-out-fraction", "0.3"]
    _cli("train", str(ch5), "--mapping", str(mapping), *_options(), *other, "--out", str(seeded))
    run_job(qtbot, widget, lambda start: widget.load_model(seeded, start=start))
    run_job(qtbot, widget, widget.start_training)
    assert not errors, errors
    trained = widget.result.trained.model.state_dict()
    for key, value in load_model(seeded).model.state_dict().items():
        np.testing.assert_allclose(trained[key].numpy(), value.numpy(), **CLOSE, err_msg=key)
    again = tmp_path / "again.h5ad"
    _saved(qtbot, widget.save_anndata(again, start=False))
    theirs = ad.read_h5ad(cli["h5ad"]).uns["cellae"]["sources"]
    sources = ad.read_h5ad(again).uns["cellae"]["sources"]
    assert list(sources) == [s for s in theirs if s != str(cli["model"])]
