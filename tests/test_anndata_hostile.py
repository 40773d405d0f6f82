"""Hostile content in the AnnData ``.h5ad`` file (napari_cellae.export.anndata).

What HDF5 cannot store (NUL, the undecodable bytes of a file name), values strict JSON has no
word for, and files a scverse user joined or changed before ``cellae hits`` reads them.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_cellae.export.anndata import build_anndata, read_cells, write_anndata
from napari_cellae.io.atomic import temporary_name


def _obs(plates: list[str], index: list[str] | None = None) -> pd.DataFrame:
    n = len(plates)
    return pd.DataFrame(
        {
            "plate": pd.Categorical(plates),
            "position": pd.Categorical(["A01_1"] * n),
            "object_index": np.arange(n, dtype=np.int32),
            "control": np.ones(n, bool),
        },
        index=index or [f"{p}/A01_1/{i}" for i, p in enumerate(plates)],
    )


def test_nul_and_undecodable_bytes_are_spelt_out_and_said(tmp_path) -> None:
    # A channel named with a NUL (CellH5 keeps it in a fixed-length text) gave the var name
    # brightness_G\x00FP; a CellH5 file whose name is not UTF-8 ('caf\xe9.ch5', which Python
    # holds as 'caf\udce9.ch5') is one of the sources. h5py refused both at the very end of
    # an encode ("VLEN strings do not support embedded NULLs", "surrogates not allowed"), so
    # the whole run was lost, with a message that named no file.
    source = "/data/caf\udce9.ch5"
    obs = _obs(["p\x00late", "plate"])
    uns = {"sources": [source], "model": {"channel_names": ["G\x00FP"]}}
    with pytest.warns(UserWarning, match=r"NUL characters or bytes that are not UTF-8") as said:
        adata = build_anndata(np.zeros((2, 2)), obs, ["code_0", "brightness_G\x00FP"], None, uns)
    text = str(said[0].message)
    assert "brightness_G\\x00FP" in text and "caf\\xe9.ch5" in text  # said where, as written
    path = write_anndata(tmp_path / "cells.h5ad", adata)
    back = read_cells(path)
    assert back.var_names.tolist() == ["code_0", "brightness_G\\x00FP"]
    assert back.obs["plate"].cat.categories.tolist() == ["p\\x00late", "plate"]
    assert back.obs_names[0] == "p\\x00late/A01_1/0"
    assert list(back.uns["cellae"]["sources"]) == ["/data/caf\\xe9.ch5"]
    assert list(back.uns["cellae"]["model"]["channel_names"]) == ["G\\x00FP"]
    # the JSON copy keeps the exact text: json escapes both
    assert json.loads(back.uns["cellae_json"])["sources"] == [source]


def test_ordinary_text_is_left_alone_without_a_word() -> None:
    names = ["Plätte-😀", "001", "NaN", "True", "x" * 5000, "a/b", " p "]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adata = build_anndata(np.zeros((7, 1)), _obs(names), ["f"], None, {"sources": names})
    assert sorted(adata.obs["plate"].cat.categories) == sorted(names)
    assert list(adata.uns["cellae"]["sources"]) == names


def test_names_alike_once_spelt_out_are_refused() -> None:
    with pytest.raises(ValueError, match="not unique once written"):
        build_anndata(np.zeros((2, 2)), _obs(["a", "b"]), ["f\x00", "f\\x00"])


def test_cellae_json_is_strict_json() -> None:
    # A diverged training's NaN loss was written as the bare word NaN (no JSON parser but
    # Python's reads it); numpy values became the text of their repr ("[1 2]", "True"); a
    # dict with both int and str keys made json.dumps(sort_keys=True) fail the whole write.
    uns = {
        "training": {"train_loss": [0.5, float("nan")], "best": float("inf")},
        "arr": np.array([1, 2]),
        "flag": np.bool_(True),
        "score": np.float32(1.5),
        "classes": {1: "interphase", "2": "mitosis"},
    }
    adata = build_anndata(np.zeros((1, 1)), _obs(["p"]), ["f"], None, uns)
    text = adata.uns["cellae_json"]
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert back["training"] == {"train_loss": [0.5, None], "best": None}
    assert back["arr"] == [1, 2] and back["flag"] is True and back["score"] == 1.5
    assert back["classes"] == {"1": "interphase", "2": "mitosis"}


def test_empty_list_stays_a_list(tmp_path) -> None:
    # [] was stored as {} (an empty group): uns["cellae"]["sources"] of a run without input
    # files read back as a dict, so len() worked but "for s in sources" met no strings and
    # np.asarray(...) made a 0-d object array
    adata = build_anndata(np.zeros((1, 1)), _obs(["p"]), ["f"], None, {"sources": []})
    back = read_cells(write_anndata(tmp_path / "c.h5ad", adata))
    sources = back.uns["cellae"]["sources"]
    assert isinstance(sources, np.ndarray) and sources.shape == (0,)


def test_a_value_anndata_cannot_write_is_named_with_the_file(tmp_path) -> None:
    adata = build_anndata(np.zeros((1, 1)), _obs(["p"]), ["f"])
    adata.uns["picked"] = {1, 2}  # a user's set: anndata has no way to write it
    path = tmp_path / "cells.h5ad"
    with pytest.raises(ValueError, match=r"cannot write .*cells\.h5ad as AnnData: .*'picked'"):
        write_anndata(path, adata)
    assert not path.exists() and not temporary_name(path).exists()


def test_two_runs_joined_with_plates_named_alike_are_said(tmp_path) -> None:
    # ad.concat of two runs of "demo_plate" (index_unique keeps the cell names apart) merged
    # the plate and position categories: cellae hits counted both runs' A01_1 as one well
    import anndata as ad

    one = build_anndata(np.zeros((2, 1)), _obs(["demo_plate"] * 2), ["f"])
    joined = ad.concat({"run1": one, "run2": one}, label="run", index_unique="-")
    path = tmp_path / "joined.h5ad"
    joined.write_h5ad(path)
    with pytest.warns(UserWarning, match=r"4 cells share .*demo_plate/A01_1/0.*named alike"):
        read_cells(path)
    joined.obs["plate"] = joined.obs["run"].astype(str) + "/" + joined.obs["plate"].astype(str)
    joined.write_h5ad(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_cells(path).n_obs == 4


def test_a_device_or_pipe_given_as_the_cells_file_is_said_to_be_one(tmp_path) -> None:
    # 'cellae hits /dev/null' said "/dev/null: no such file".
    fifo = tmp_path / "cells.h5ad"
    os.mkfifo(fifo)
    for path in (fifo, os.devnull):
        with pytest.raises(ValueError) as error:
            read_cells(path)
        assert str(error.value) == f"{path}: is not a regular file; expected an AnnData .h5ad file"


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (  # h5py's words while another program writes the file (it holds HDF5's lock)
            BlockingIOError(
                11,
                "Unable to synchronously open file (unable to lock file, errno = 11, "
                "error message = 'Resource temporarily unavailable')",
            ),
            "the file is locked by a program that is writing it; run again when that "
            "program has finished (or closed the file)",
        ),
        (  # a file system without locks, with HDF5_USE_FILE_LOCKING=TRUE
            OSError(
                38,
                "Unable to synchronously open file (unable to lock file, errno = 38, "
                "error message = 'Function not implemented')",
            ),
            "its file system refuses HDF5's file locks; set the environment variable "
            "HDF5_USE_FILE_LOCKING=FALSE and run again",
        ),
    ],
)
def test_a_cells_file_that_cannot_be_locked_says_why(tmp_path, monkeypatch, raised, said):
    # Both read "not a readable AnnData .h5ad file (BlockingIOError: [Errno 11] ...)".
    import anndata

    path = tmp_path / "cells.h5ad"
    write_anndata(path, build_anndata(np.zeros((2, 1)), _obs(["p", "q"]), ["f"]))

    def refuse(*args, **kwargs):
        raise raised

    monkeypatch.setattr(anndata, "read_h5ad", refuse)
    for features in (True, False):
        with pytest.raises(ValueError) as error:
            read_cells(path, features=features)
        assert str(error.value) == f"{path}: {said}"


def test_an_unreadable_cells_file_is_said_to_be_one(tmp_path, monkeypatch) -> None:
    # chmod 000 (simulated: root reads anything) read as "not a readable AnnData .h5ad file
    # (PermissionError: [Errno 13] Unable to synchronously open file (...))".
    path = tmp_path / "cells.h5ad"
    write_anndata(path, build_anndata(np.zeros((2, 1)), _obs(["p", "q"]), ["f"]))
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != path and real(p, mode))
    path.chmod(0)
    try:
        if real(path, os.R_OK):  # root: HDF5 opens it anyway, so make it refuse as it would
            import anndata

            def refuse(*args, **kwargs):
                raise PermissionError(13, "Unable to synchronously open file")

            monkeypatch.setattr(anndata, "read_h5ad", refuse)
        with pytest.raises(ValueError) as error:
            read_cells(path)
    finally:
        path.chmod(0o644)
    assert str(error.value) == f"{path}: cannot read it (permission denied)"
