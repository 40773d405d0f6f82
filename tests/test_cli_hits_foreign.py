"""``cellae hits`` on ``.h5ad`` files made by other tools (scanpy / anndata users)."""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

from cli_helpers import one_line_error, usage_error
from napari_cellae.cli import main


def _cells(tmp_path, **columns):
    """Six cells: three controls in A01/A02, three knock-down cells in B01/B02."""
    obs = {
        "position": ["A01", "A01", "A02", "B01", "B01", "B02"],
        "well": ["A01", "A01", "A02", "B01", "B01", "B02"],
        "condition": ["scrambled"] * 3 + ["KIF11"] * 3,
        "control": [True] * 3 + [False] * 3,
        "novelty": [0.1, 0.2, 0.3, 3.0, 4.0, 5.0],
    }
    obs.update(columns)
    obs = {name: values for name, values in obs.items() if values is not None}
    path = tmp_path / "cells.h5ad"
    index = [f"c{i}" for i in range(1, 7)]
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    ad.AnnData(x, obs=pd.DataFrame(obs, index=index)).write_h5ad(path)
    return path


def _refused(path, capsys, *needles):
    out = path.parent / "hits.csv"
    before = path.read_bytes()
    assert main(["hits", str(path), "--out", str(out)]) == 1
    one_line_error(capsys.readouterr().err, str(path), *needles)
    assert not out.exists()
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("columns", "where"),
    [
        ({"control": [True] * 6}, "(column control)"),
        # A control token that every group starts with: "negative" and "neg_selection".
        (
            {"control": None, "group": ["negative"] * 3 + ["neg_selection"] * 3},
            "(every group starts with 'neg')",
        ),
    ],
)
def test_hits_refuse_a_file_where_every_cell_is_a_control(tmp_path, capsys, columns, where):
    # The hit table was written listing only control wells, "Hits: 3 positions ranked" and
    # no hit, without a word that the controls were misread.
    _refused(_cells(tmp_path, **columns), capsys, "every cell is a negative control", where)


@pytest.mark.parametrize("column", ["position", "well"])
@pytest.mark.parametrize("blank", ["", "  "])
def test_hits_refuse_a_blank_position_or_well(tmp_path, capsys, column, blank):
    # anndata cannot save None in a text column, so a missing name is often saved blank:
    # it became a position of its own, named "" (an empty cell of the CSV).
    values = ["A01", "A01", "A02", blank, "B01", "B02"]
    _refused(
        _cells(tmp_path, **{column: values}),
        capsys,
        f"column {column} is missing for 1 cell(s), e.g. 'c4'",
    )


def test_hits_name_the_novelty_score_that_is_no_number(tmp_path, capsys):
    # The message quoted the first cell's score, a number ('found 0.1').
    scores = ["0.1", "0.2", "0.3", "high", "4.0", "5.0"]
    _refused(
        _cells(tmp_path, novelty=scores),
        capsys,
        "column novelty must hold numbers, found 'high' (cell c4, 1 cell(s))",
    )


@pytest.mark.parametrize(
    ("groups", "kind"),
    [
        (["definition", "sample"], "not an AnnData .h5ad file but a CellH5 file"),
        (["data"], "not an AnnData .h5ad file but a CellCognition Explorer .hdf file"),
        (["x"], "not an AnnData .h5ad file but an HDF5 file of other data (top level: x)"),
    ],
)
def test_hits_say_what_an_hdf5_file_that_is_no_anndata_is(tmp_path, capsys, groups, kind):
    # It said "AnnData.__init__() got an unexpected keyword argument 'definition'".
    path = tmp_path / "cells.h5ad"
    with h5py.File(path, "w") as h5:
        for name in groups:
            h5.create_group(name)
    _refused(path, capsys, kind)
    assert "unexpected keyword" not in capsys.readouterr().err


def test_hits_keep_blank_groups_as_plain_wells(tmp_path, capsys):
    # cellae encode writes the group of a position the mapping does not list as "".
    path = _cells(tmp_path, control=None, group=["neg"] * 3 + [""] * 3)
    assert main(["hits", str(path), "--out", str(tmp_path / "hits.csv"), "-q"]) == 0
    table = pd.read_csv(tmp_path / "hits.csv").set_index("position")
    assert table["is_control"].to_dict() == {"B01": False, "B02": False, "A01": True, "A02": True}


def test_hits_refuse_stored_scores_with_a_single_control_cell(tmp_path, capsys):
    # The bar was that one cell's score: every cell above it novel, without a word (the
    # scores computed from X were already refused so).
    one = _cells(tmp_path, control=[True] + [False] * 5)
    _refused(one, capsys, "only one cell is a negative control", "needs at least two")
    # stored flags need no bar: they are ranked as they are
    flags = _cells(tmp_path, control=[True] + [False] * 5, novelty=None, novel=[False] * 6)
    assert main(["hits", str(flags), "--out", str(tmp_path / "hits.csv"), "-q"]) == 0


@pytest.mark.parametrize("name", ["hits.h5ad", "hits.txt", "hits"])
def test_hits_write_only_a_csv_name(tmp_path, capsys, name):
    # hits.h5ad was written with CSV text, a file that then looked like a cells file
    cells = _cells(tmp_path)
    out = tmp_path / name
    assert main(["hits", str(cells), "--out", str(out)]) == 2  # a bad command line
    usage_error(
        capsys.readouterr().err, "hits", "argument --out: ", str(out), "end its name in .csv"
    )
    assert not out.exists()
    assert main(["hits", str(cells), "--out", str(tmp_path / "HITS.CSV"), "-q"]) == 0


def test_hits_take_names_apart_only_by_more_than_spaces(tmp_path, capsys):
    # "KIF11 " (typed by hand, or an Excel cell) and "KIF11" were two conditions, each with
    # half the cells; position "B01 " and "B01" two positions.
    path = _cells(
        tmp_path,
        condition=["scrambled"] * 3 + ["KIF11 ", "KIF11", " KIF11"],
        position=["A01", "A01", "A02", "B01 ", "B01", "B02"],
    )
    out = tmp_path / "hits.csv"
    assert main(["hits", str(path), "--out", str(out), "--by", "condition", "-q"]) == 0
    table = pd.read_csv(out)
    assert sorted(table["condition"]) == ["KIF11", "scrambled"]
    assert table.set_index("condition").loc["KIF11", "n_cells"] == 3
    assert main(["hits", str(path), "--out", str(out), "-q"]) == 0
    assert sorted(pd.read_csv(out)["position"]) == ["A01", "A02", "B01", "B02"]


def test_hits_leave_the_features_on_disk_when_the_file_holds_novelty(tmp_path):
    # cellae hits read the whole file, X included (a million cells: 1 GB of features, 2 GB
    # at the peak), to rank wells by the novelty scores that obs already held.
    import tracemalloc

    obs = pd.DataFrame(
        {
            "position": [f"P{i % 8}" for i in range(400)],
            "well": [f"W{i % 8}" for i in range(400)],
            "condition": [f"C{i % 8}" for i in range(400)],
            "control": [i % 8 < 2 for i in range(400)],
            "novelty": np.linspace(0, 1, 400),
        },
        index=[f"c{i}" for i in range(400)],
    )
    path = tmp_path / "cells.h5ad"
    x = np.ones((400, 10_000), np.float32)  # 16 MB, far above the table
    ad.AnnData(x, obs=obs).write_h5ad(path)
    args = ["hits", str(path), "--out", str(tmp_path / "hits.csv"), "-q"]
    assert main(args) == 0  # imports done, so that only the run itself is measured
    tracemalloc.start()
    try:
        assert main(args) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes / 4
    assert len(pd.read_csv(tmp_path / "hits.csv")) == 8
    # Without novelty the features are what it is computed from: read then.
    ad.AnnData(x, obs=obs.drop(columns="novelty")).write_h5ad(path)
    tracemalloc.start()
    try:
        main(args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak >= x.nbytes


def test_a_stored_seed_that_is_no_seed_is_said_and_0_used(tmp_path, capsys):
    from napari_cellae.cli.cells import _stored_seed

    path = tmp_path / "cells.h5ad"
    assert _stored_seed({}, path) == 0  # another tool's file: no cellae settings
    assert _stored_seed({"cellae": {"discovery": {"options": {"seed": 7}}}}, path) == 7
    for bad in ("7", -1, 2**32, True):
        assert _stored_seed({"cellae": {"discovery": {"options": {"seed": bad}}}}, path) == 0
        assert f"the seed stored in {path} (uns) is not usable" in capsys.readouterr().err


def test_hits_say_a_cut_short_cells_file_is_damaged(tmp_path, capsys):
    # It said "not an AnnData .h5ad file but an HDF5 file of other data (top level:
    # nothing)" of a cells file that an interrupted copy had cut short.
    path = _cells(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _refused(path, capsys, "cells.h5ad: the HDF5 file is damaged or cut short")


def test_hits_say_rescoring_needs_x_when_only_x_is_left_out(tmp_path, capsys):
    # A file saved with X left out but its feature names (var) kept: '--novelty svm' said it
    # lacked the column novel, which it has, and listed its columns without it.
    stored = ad.read_h5ad(_cells(tmp_path, novel=[False] * 3 + [True] * 3))
    path = tmp_path / "no_x.h5ad"
    ad.AnnData(obs=stored.obs, var=stored.var).write_h5ad(path)
    out = tmp_path / "hits.csv"
    assert main(["hits", str(path), "--out", str(out), "--novelty", "svm"]) == 1
    err = capsys.readouterr().err
    one_line_error(err, f"{path}: --novelty svm asks to score novelty again", "features (X)")
    assert not out.exists()


def test_hits_show_names_with_control_characters_escaped(tmp_path, capsys):
    # Positions, conditions and cell names come from the file: 'B0\x1b[2J1' cleared the
    # terminal from the summary line, a line break printed a line of its own. The hit
    # table keeps the names as they are.
    hostile = "B0\x1b[2J1"
    path = _cells(
        tmp_path,
        position=["A01", "A01", "A02", hostile, hostile, "B02\nerror: x"],
        no_signal=[False, False, False, False, False, True],
    )
    out = tmp_path / "hits.csv"
    assert main(["hits", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    text = printed.out + printed.err
    assert "strongest: B0\\x1b[2J1 (100% novel)" in text
    assert "B02\\nerror: x" in text  # left out without signal, named
    assert "\x1b" not in text and "\nerror: x" not in text
    assert hostile in set(pd.read_csv(out)["position"])
