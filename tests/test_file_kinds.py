"""Telling the files a user may give in the wrong place apart by their content."""

from __future__ import annotations

import zipfile
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
import torch

from napari_cellae.io.file_kinds import file_kind, not_anndata, not_cellh5

MAPPING = "Position\tWell\tSite\tGene Symbol\tGroup\nA01_01\tA01\t1\tscrambled\tneg\n"


def _files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    files["anndata"] = tmp_path / "cells.h5ad"
    ad.AnnData(np.zeros((2, 3), np.float32)).write_h5ad(files["anndata"])
    files["explorer"] = tmp_path / "features.hdf"
    with h5py.File(files["explorer"], "w") as h5:
        h5.create_group("data").create_dataset("features", data=np.zeros(3))
    files["cellh5"] = tmp_path / "screen.ch5"
    with h5py.File(files["cellh5"], "w") as h5:
        h5.create_group("sample")
        h5.create_group("definition")
    files["hdf5"] = tmp_path / "other.h5"
    with h5py.File(files["hdf5"], "w") as h5:
        h5.create_group("x")
    files["model"] = tmp_path / "model.pt"
    torch.save({"state": torch.zeros(2)}, files["model"])
    files["zip"] = tmp_path / "plates.xlsx"
    with zipfile.ZipFile(files["zip"], "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    files["mapping"] = tmp_path / "plate_mapping.txt"
    files["mapping"].write_text(MAPPING)
    files["hits"] = tmp_path / "hits.csv"
    files["hits"].write_text("rank,plate,position,well\n1,p,A01_1,A01\n")
    files["csv"] = tmp_path / "table.csv"
    files["csv"].write_text("cell,area\n1,20\n")
    files["text"] = tmp_path / "notes.ch5"
    files["text"].write_text("plate layout\n")
    return files


def test_file_kinds_by_content(tmp_path: Path) -> None:
    files = _files(tmp_path)
    assert {kind: file_kind(path) for kind, path in files.items()} == {k: k for k in files}
    # A mapping without a header, wells and conditions only, is a mapping too.
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("A01_01\tneg\nA02_01\tKIF11\n")
    assert file_kind(pairs) == "mapping"
    # Prose with a comma in its first line (a README given by mistake) is no CSV table
    prose = tmp_path / "README.md"
    prose.write_text(
        "# Screen notes\n\nImaged on Monday, 10x, H2B channel.\nThe controls are in column 1."
        "\n\nSee the mapping file.\n"
    )
    assert file_kind(prose) == "text"
    binary = tmp_path / "noise.bin"
    binary.write_bytes(bytes(range(256)))
    assert file_kind(binary) is None


@pytest.mark.parametrize(
    ("kind", "fragments"),
    [
        ("anndata", ["is an AnnData file of cells", "give the CellH5 (.ch5) file"]),
        ("explorer", ["is a CellCognition Explorer .hdf file of features", "(.ch5)"]),
        ("model", ["napari-cellae model", "give it with --model"]),
        ("mapping", ["position-mapping text file", "give it with --mapping"]),
        ("csv", ["not an HDF5 file but a CSV text file", "give a CellH5 (.ch5) file"]),
    ],
)
def test_not_cellh5_says_what_the_file_is(tmp_path: Path, kind: str, fragments: list) -> None:
    path = _files(tmp_path)[kind]
    message = not_cellh5(path)
    assert message is not None and message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message
    assert not_cellh5(_files(tmp_path)["cellh5"]) is None


@pytest.mark.parametrize(
    ("kind", "fragments"),
    [
        ("mapping", ["but a position-mapping text file", "'cellae encode' (--mapping)"]),
        ("model", ["but a napari-cellae model", "--out cells.h5ad"]),
        ("cellh5", ["but a CellH5 file", "make the cells file"]),
        ("hdf5", ["an HDF5 file of other data (top level: x)"]),
    ],
)
def test_not_anndata_says_what_the_file_is(tmp_path: Path, kind: str, fragments: list) -> None:
    files = _files(tmp_path)
    message = not_anndata(files[kind])
    assert message is not None and "not an AnnData .h5ad file" in message
    for fragment in fragments:
        assert fragment in message
    assert not_anndata(files["anndata"]) is None


def test_a_hit_table_without_plates_is_no_mapping(tmp_path: Path) -> None:
    # 'cellae hits' on a cells file without a plate column writes rank,position,...: given
    # to 'cellae hits' or as the input, it was called a position-mapping text file, with
    # the advice to give it with --mapping.
    hits = tmp_path / "hits.csv"
    hits.write_text("rank,position,well,condition,n_cells\n1,A01_1,A01,KIF11,20\n")
    assert file_kind(hits) == "hits"
    message = not_anndata(hits)
    assert message is not None and message.startswith(f"{hits}: not an AnnData .h5ad file")
    assert "ranked hits" in message and "give it with --mapping" not in message
    assert "not a CellH5 file; give a CellH5" in (not_cellh5(hits) or "")


def test_an_output_replaces_only_a_file_of_its_own_kind(tmp_path: Path) -> None:
    # 'cellae hits cells.h5ad --out mapping.csv' put a hit table where the screen's mapping
    # was, without a word; an earlier run's output of the same kind is replaced as before.
    from napari_cellae.io.atomic import check_output
    from napari_cellae.io.file_kinds import replace_problem

    files = _files(tmp_path)
    png = tmp_path / "map.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    same = {"hit table": "hits", "AnnData file": "anndata", "features file": "explorer"}
    for what, kind in same.items():
        assert replace_problem(files[kind], what) is None, what
        refused = replace_problem(files["mapping"], what)
        assert refused == (
            f"refusing to replace {files['mapping']} with the {what}: it is a position-mapping"
            " text file (a table of positions and conditions); choose another file name, or"
            " remove that file first"
        )
    assert replace_problem(png, "gallery") is None and replace_problem(png, "plot") is None
    assert "it is a CellH5 file" in replace_problem(files["cellh5"], "plot")
    assert "an HDF5 file of other data" in replace_problem(files["hdf5"], "features file")
    empty = tmp_path / "empty.csv"
    empty.touch()
    assert replace_problem(empty, "hit table") is None
    assert replace_problem(tmp_path / "new.csv", "hit table") is None
    assert replace_problem(files["mapping"], "model") is None  # models: check_replaceable
    with pytest.raises(ValueError, match=r"refusing to replace .*plate_mapping\.txt with the hit"):
        check_output(files["mapping"], [], "hit table")
    assert files["mapping"].read_text() == MAPPING


def test_an_explorer_file_written_by_cellcognition_explorer_is_one(tmp_path: Path) -> None:
    # CellCognition Explorer names its group by the time (/data_20150312-101500) beside
    # /settings and lists it in the attribute training_data: it was "an HDF5 file of other
    # data", and 'cellae encode --out' refused to replace it with a features file.
    from napari_cellae.io.file_kinds import replace_problem

    path = tmp_path / "explorer.hdf"
    with h5py.File(path, "w") as h5:
        h5.attrs["training_data"] = np.array([b"/data_20150312-101500"])
        h5.create_group("data_20150312-101500").create_dataset("features", data=np.zeros(3))
        h5.create_dataset("settings", data="<xml/>")
    assert file_kind(path) == "explorer"
    assert replace_problem(path, "features file") is None
    assert "CellCognition Explorer" in (replace_problem(path, "AnnData file") or "")


def test_an_hdf5_file_that_cannot_be_opened_is_replaced_as_before(tmp_path: Path) -> None:
    # Cut short (an interrupted copy) or locked by a program writing it, an earlier run's
    # features file was refused as "an HDF5 file of other data", which it is not: a file
    # that cannot be read cannot be told, and is written as before.
    from napari_cellae.io.file_kinds import replace_problem

    whole = _files(tmp_path)["explorer"]
    with h5py.File(whole, "a") as h5:
        h5["data"].create_dataset("more", data=np.zeros((2000, 50)))
    cut = tmp_path / "cut.hdf"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert file_kind(cut) == "hdf5"  # the signature is there, the rest is not
    assert replace_problem(cut, "features file") is None
    assert replace_problem(cut, "AnnData file") is None


def test_a_damaged_zip_archive_is_told_without_a_traceback(tmp_path: Path) -> None:
    # The end record of a ZIP archive where its directory is not (a damaged .xlsx, or those
    # four bytes by chance near a file's end): file_kind raised BadZipFile, so an output
    # of that name, or the file given as an input, ended in a traceback.
    import struct

    from napari_cellae.io.file_kinds import replace_problem

    path = tmp_path / "plates.xlsx"
    path.write_bytes(b"x" * 100 + b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 1, 1, 46, 0, 0))
    assert zipfile.is_zipfile(path) and file_kind(path) is None
    assert "it is a file of another kind" in (replace_problem(path, "hit table") or "")
    assert not_cellh5(path) is None and not_anndata(path) is None


def test_a_text_of_comment_lines_only_is_text(tmp_path: Path) -> None:
    # Every line a '#' comment (a mapping template not filled in): file_kind raised
    # IndexError, so writing an output over it or giving it as an input was a traceback.
    from napari_cellae.io.file_kinds import replace_problem

    path = tmp_path / "template.txt"
    path.write_text("# a mapping to fill in\n# Well\tGene Symbol\n")
    assert file_kind(path) == "text"
    assert "it is a text file" in (replace_problem(path, "position mapping") or "")
    assert "not an HDF5 file but a text file" in (not_cellh5(path) or "")
