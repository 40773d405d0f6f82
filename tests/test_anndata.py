"""AnnData and gallery export (napari_cellae.export.anndata, .gallery, pipeline.cells)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_cellae.export.anndata import build_anndata, read_cells, write_anndata
from napari_cellae.export.gallery import group_caption, write_gallery
from napari_cellae.io.atomic import temporary_name


def _obs(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "well": pd.Categorical(["A01", "B01"] * (n // 2)),
            "control": [True, False] * (n // 2),
            "novelty": np.linspace(0, 1, n, dtype=np.float32),
        },
        index=[f"cell{i}" for i in range(n)],
    )


def _adata(n: int = 6, f: int = 3):
    x = np.arange(n * f, dtype=np.float64).reshape(n, f)
    uns = {"model": {"epochs": 2, "device": None, "channels": ["rfp"]}, "source": "a.ch5"}
    maps = {"X_umap": np.ones((n, 2)), "X_pca": np.zeros((n, 2))}
    names = [f"code_{i}" for i in range(f)]
    explorer = [f"ch1-deep_learning_feature_{i}" for i in range(f)]
    return build_anndata(x, _obs(n), names, maps, uns, explorer)


def test_build_anndata_layout() -> None:
    adata = _adata()
    assert adata.X.dtype == np.float32 and adata.shape == (6, 3)
    assert adata.var_names.tolist() == ["code_0", "code_1", "code_2"]
    assert adata.var["explorer_name"].tolist()[0] == "ch1-deep_learning_feature_0"
    assert adata.obsm["X_umap"].shape == (6, 2) and adata.obsm["X_pca"].dtype == np.float32
    # h5ad has no None: the key is left out of uns["cellae"], the JSON copy keeps it.
    assert "device" not in adata.uns["cellae"]["model"]
    assert '"device": null' in adata.uns["cellae_json"]


def test_build_anndata_rejects_mismatches() -> None:
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="do not match the cell table"):
        build_anndata(x, _obs(6), ["a", "b"])
    with pytest.raises(ValueError, match="unique feature names"):
        build_anndata(x, _obs(4), ["a", "a"])
    with pytest.raises(ValueError, match=r"obsm\['X_umap'\]"):
        build_anndata(x, _obs(4), ["a", "b"], {"X_umap": np.zeros((3, 2))})


def test_write_and_read_back(tmp_path) -> None:
    path = write_anndata(tmp_path / "cells.h5ad", _adata())
    assert not temporary_name(path).exists()
    back = read_cells(path)
    np.testing.assert_array_equal(back.X, _adata().X)
    assert back.obs["well"].tolist()[:2] == ["A01", "B01"]
    assert back.obs["control"].dtype == bool
    assert back.uns["cellae"]["model"]["epochs"] == 2
    assert list(back.uns["cellae"]["model"]["channels"]) == ["rfp"]


def test_read_cells_without_features_reads_the_table_alone(tmp_path) -> None:
    path = write_anndata(tmp_path / "cells.h5ad", _adata())
    table = read_cells(path, features=False)
    assert table.X is None and table.n_vars == _adata().n_vars
    pd.testing.assert_frame_equal(table.obs, read_cells(path).obs)
    assert table.var_names.tolist() == _adata().var_names.tolist()
    assert table.uns["cellae"]["model"]["epochs"] == 2
    import h5py

    h5py.File(path, "a").close()  # closed again: a file still open read-only refuses this


def test_write_refuses_inputs_and_other_suffixes(tmp_path) -> None:
    source = tmp_path / "screen.h5ad"
    source.write_bytes(b"x")
    with pytest.raises(ValueError, match="refusing to write the AnnData file"):
        write_anndata(source, _adata(), inputs=[source])
    assert source.read_bytes() == b"x"
    with pytest.raises(ValueError, match=r"cells\.csv.*must end in \.h5ad"):
        write_anndata(tmp_path / "cells.csv", _adata())
    assert not (tmp_path / "cells.csv").exists()


def test_read_cells_names_the_file(tmp_path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        read_cells(tmp_path / "missing.h5ad")
    with pytest.raises(ValueError, match="is a folder"):
        read_cells(tmp_path)
    junk = tmp_path / "junk.h5ad"
    junk.write_bytes(bytes(range(256)))
    with pytest.raises(ValueError, match=r"junk\.h5ad: not a readable AnnData"):
        read_cells(junk)


def test_read_cells_names_text_files_and_models(tmp_path) -> None:
    # A mapping given to cellae hits read "not a readable AnnData .h5ad file (OSError: Unable
    # to synchronously open file (file signature not found))".
    import zipfile

    mapping = tmp_path / "plate_mapping.txt"
    mapping.write_text("Position\tWell\tSite\tGene Symbol\tGroup\nA01_01\tA01\t1\tx\tneg\n")
    with pytest.raises(ValueError) as info:
        read_cells(mapping)
    message = str(info.value)
    assert "but a position-mapping text file" in message
    assert "'cellae encode' (--mapping)" in message and "cells.h5ad" in message
    assert "signature" not in message
    text = tmp_path / "notes.txt"
    text.write_text("plate 1 was imaged twice\n")
    with pytest.raises(ValueError, match=r"notes\.txt: not an AnnData \.h5ad file but a text"):
        read_cells(text)
    model = tmp_path / "model.pt"  # a torch.save archive: a folder with data.pkl in it
    with zipfile.ZipFile(model, "w") as archive:
        archive.writestr("model/data.pkl", b"")
    with pytest.raises(ValueError, match="but a napari-cellae model"):
        read_cells(model)


def test_gallery_png(tmp_path) -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 4000, (20, 2, 12, 12)).astype(np.uint16)
    rows = {1: np.array([0, 1, 2]), 2: np.array([5])}
    captions = {1: group_caption(1, 3, ["PLK1", "PLK1", "neg"]), 2: "group 2"}
    assert captions[1] == "group 1: 3 cells (PLK1 67%, neg 33%)"
    path = write_gallery(tmp_path / "g.png", crops, rows, captions, title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no phenotype groups"):
        write_gallery(tmp_path / "h.png", crops, {}, {})
    with pytest.raises(ValueError, match="group 1 has no cells or bad indices"):
        write_gallery(tmp_path / "h.png", crops, {1: np.array([20])}, {})
    with pytest.raises(ValueError, match="refusing to write the gallery"):
        write_gallery(path, crops, rows, captions, inputs=[path])
    assert not (tmp_path / "h.png").exists()


def test_class_names_are_keyed_by_class_table_row() -> None:
    from types import SimpleNamespace

    from napari_cellae.pipeline.cells import class_names

    table = [SimpleNamespace(label=1, name="interphase"), SimpleNamespace(label=2, name="mitosis")]
    ch5 = SimpleNamespace(class_labels=lambda obj: table)
    assert class_names(ch5, "primary__primary") == {0: "interphase", 1: "mitosis"}
    assert class_names(SimpleNamespace(class_labels=lambda obj: None), "x") is None


def test_conditions_and_classes_carry_napari_colours_for_scanpy(tmp_path) -> None:
    # scanpy colours a categorical column from uns["<column>_colors"], one colour per
    # category in the categories' order; without them it used tab10, so the file showed
    # green and red conditions and classes where napari shows the colour-blind-safe palette.
    from napari_cellae.export.palette import PALETTE

    n = 6
    obs = _obs(n)
    # categories sorted, cells in another order: napari colours by first appearance
    obs["condition"] = pd.Categorical(
        ["siB", "siB", "ctrl", "ctrl", "siA", "siA"], categories=["ctrl", "siA", "siB"]
    )
    obs["class"] = pd.Categorical(["mitotic", "", "interphase", "odd", "odd", ""])
    given = {"class": {"mitotic": "#FF0000", "interphase": "#00ff00", "odd": "red-ish"}}
    adata = build_anndata(np.zeros((n, 2)), obs, ["a", "b"], colours=given)
    assert list(adata.uns["condition_colors"]) == [PALETTE[1], PALETTE[2], PALETTE[0]]
    # the file's own class colours; the others as napari: the palette by first appearance
    assert list(adata.obs["class"].cat.categories) == ["", "interphase", "mitotic", "odd"]
    assert list(adata.uns["class_colors"]) == [PALETTE[1], "#00ff00", "#FF0000", PALETTE[3]]
    back = read_cells(write_anndata(tmp_path / "c.h5ad", adata))
    assert list(back.uns["condition_colors"]) == list(adata.uns["condition_colors"])
    # subsetting drops unused categories and their colours together
    part = back[back.obs["condition"] != "siA"].copy()
    assert list(part.uns["condition_colors"]) == [PALETTE[1], PALETTE[0]]
