"""``cellae encode ... --out cells.h5ad`` and ``cellae hits``, end to end on a tiny screen."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from cli_helpers import TINY, one_line_error, usage_error
from conftest import CLASS_LABELS, synthetic_position
from napari_cellae.cli import main
from napari_cellae.core.features import cell_feature_names
from napari_cellae.core.model_load import load_model
from napari_cellae.core.morphology import MORPHOLOGY_NAMES
from napari_cellae.io.cellh5_writer import write_cellh5

# Four control wells of bright nuclei; two knock-downs whose nuclei are dim (a phenotype
# any features see).
WELLS = [
    ("A01", 250.0, "scrambled", "neg"),
    ("A02", 250.0, "scrambled", "neg"),
    ("A03", 250.0, "scrambled", "neg"),
    ("A04", 250.0, "scrambled", "neg"),
    ("B01", 60.0, "PLK1", "target"),
    ("B02", 60.0, "KIF11", "target"),
]


def _screen_file(path, extra=()):
    """The six wells of WELLS (24 cells each) and ``extra`` positions, written to ``path``."""
    positions = [
        synthetic_position(well, "0001", peak=peak, n_per_frame=8, seed=i)
        for i, (well, peak, _, _) in enumerate(WELLS)
    ]
    return write_cellh5(
        path,
        [*positions, *extra],
        channel_names=["rfp"],
        object_channels={"primary__primary": 0},
        class_labels={"primary__primary": CLASS_LABELS},
    )


@pytest.fixture(scope="module")
def screen(tmp_path_factory):
    """(CellH5 file, mapping file, trained model) of a 6-well screen, 24 cells per well."""
    folder = tmp_path_factory.mktemp("screen")
    ch5 = _screen_file(folder / "screen.ch5")
    mapping = folder / "mapping.txt"
    rows = [
        f"{i}\t{w}\t0001\t{w[0]}\t{w[1:]}\t{c}\ts{i}\t{g}" for i, (w, _, c, g) in enumerate(WELLS)
    ]
    header = "Position\tWell\tSite\tRow\tColumn\tGene Symbol\tsiRNA ID\tGroup"
    mapping.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    model = folder / "model.pt"
    assert (
        main(["train", str(ch5), "--mapping", str(mapping), *TINY, "--out", str(model), "-q"]) == 0
    )
    return ch5, mapping, model


def _encode(screen, out, *extra: str) -> int:
    ch5, mapping, model = screen
    return main(
        [
            "encode",
            str(ch5),
            "--model",
            str(model),
            "--mapping",
            str(mapping),
            "--out",
            str(out),
            "-q",
            *extra,
        ]
    )


def test_a_gallery_that_cannot_be_written_says_the_cells_file_was(
    screen, tmp_path, capsys, monkeypatch
):
    # On a full disk the run failed naming the picture only; the .h5ad it had already
    # written looked like a leftover of the failure.
    import napari_cellae.export.gallery as gallery_module

    def full_disk(path, *args, **kwargs):
        raise ValueError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(gallery_module, "write_gallery", full_disk)
    out, gallery = tmp_path / "cells.h5ad", tmp_path / "groups.png"
    assert _encode(screen, out, "--gallery", str(gallery)) == 1
    one_line_error(
        capsys.readouterr().err,
        f"cannot write {gallery}: No space left on device",
        f"(the cells file {out} was written)",
    )
    assert ad.read_h5ad(out).shape[0] == 6 * 24


def test_a_position_without_cells_is_named(screen, tmp_path, capsys):
    # A well whose cells all died (or were never segmented) had no row in the cells file
    # nor in its hit list, without a word: the strongest hit of a screen could go unseen.
    _, _, model = screen
    dead = synthetic_position("B03", "0001", n_per_frame=1)
    dead.objects = {}
    ch5 = _screen_file(tmp_path / "screen.ch5", [dead])
    wells = [*WELLS, ("B03", 0.0, "TOXIC1", "target")]
    rows = [f"{w}_0001\t{c}" for w, _, c, g in wells if g != "neg"]
    rows += [f"{w}_0001\tneg. control" for w, _, c, g in wells if g == "neg"]
    mapping = tmp_path / "mapping.txt"
    mapping.write_text("Position\tCondition\n" + "\n".join(rows) + "\n", encoding="utf-8")
    for out in (tmp_path / "cells.h5ad", tmp_path / "features.hdf"):
        with pytest.warns(UserWarning, match="1 position.s. hold no cells") as caught:
            assert _encode((ch5, mapping, model), out) == 0
        said = " ".join(str(w.message) for w in caught)
        assert "B03_0001 (TOXIC1)" in said and "cells all died may be a strong hit" in said


def test_encode_writes_cells_h5ad_with_novelty_groups_and_maps(screen, tmp_path, capsys):
    out, gallery = tmp_path / "cells.h5ad", tmp_path / "groups.png"
    assert _encode(screen, out, "--gallery", str(gallery)) == 0
    printed = capsys.readouterr().out
    assert f"Cells written to {out}" in printed and f"Gallery written to {gallery}" in printed
    assert "Novel: " in printed and "phenotype group(s)" in printed
    adata = ad.read_h5ad(out)
    assert adata.shape[0] == 6 * 24 and adata.X.dtype == np.float32
    for column in (
        "plate",
        "well",
        "site",
        "position",
        "object_index",
        "label_id",
        "frame",
        "x",
        "y",
        "condition",
        "group",
        "control",
        "class",
        "novelty",
        "novel",
        "cluster",
    ):
        assert column in adata.obs, column
    trained = load_model(screen[2])
    assert adata.var_names.tolist() == cell_feature_names(trained)
    # per-cell scaling keeps the brightness; the outline measurements come last
    assert adata.var_names[-6] == "brightness_rfp"
    assert adata.var_names[-5:].tolist() == list(MORPHOLOGY_NAMES)
    # the same columns in the Explorer file, named by layer there too
    assert adata.var["explorer_name"].tolist() == [f"ch1-{n}" for n in cell_feature_names(trained)]
    assert set(adata.obsm) == {"X_umap", "X_pca"}  # UMAP is the default map
    assert np.all(np.isfinite(adata.obsm["X_umap"]))
    info = adata.uns["cellae"]
    assert info["model"]["config"]["crop_size"] == 16 and info["cellh5"] == str(screen[0])
    assert str(screen[1]) in list(info["sources"]) and str(screen[2]) in list(info["sources"])
    assert info["discovery"]["options"]["percentile"] == 80
    obs = adata.obs
    dim = obs["condition"].isin(["PLK1", "KIF11"])
    assert obs.loc[dim, "novel"].mean() > 0.9 and obs.loc[obs["control"], "novel"].mean() < 0.25
    # Groups are made of the novel cells only (the dim ones, once brightness is one feature
    # among the pooled filters and no longer the whole picture).
    assert (obs.loc[~obs["novel"], "cluster"] == 0).all()
    assert (obs.loc[obs["novel"], "cluster"] > 0).all()
    assert gallery.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hits_rank_the_knock_downs_first(screen, tmp_path, capsys, monkeypatch):
    cells = tmp_path / "cells.h5ad"
    assert _encode(screen, cells, "--embedding", "pca") == 0
    assert "X_umap" not in ad.read_h5ad(cells).obsm
    monkeypatch.chdir(tmp_path)  # without --out: hits.csv here, as train writes model.pt
    out = tmp_path / "hits.csv"
    assert main(["hits", str(cells)]) == 0
    printed = capsys.readouterr().out
    assert "Hit table written to hits.csv" in printed
    assert "6 positions ranked; q below 0.05: 2 of 2 treated, 0 of 4 controls" in printed
    table = pd.read_csv(out)
    for column in (
        "rank",
        "position",
        "well",
        "condition",
        "n_cells",
        "novel_fraction",
        "enrichment",
        "robust_z",
        "p_value",
        "q_value",
        "is_control",
    ):
        assert column in table, column
    assert set(table["well"][:2]) == {"B01", "B02"} and table["rank"].iloc[0] == 1
    assert (table["novel_fraction"][:2] > 0.9).all() and (table["robust_z"][:2] > 3).all()
    # the knock-downs are hits, no control well is one (of 8 cells a frame: the p-values
    # of 3 frames count the cells of one; 4 control wells of 8 cells cannot rule out that
    # wells differ widely, so no q is far below 0.05)
    assert (table["q_value"][:2] < 0.05).all()
    assert (table.loc[table["is_control"], "q_value"] > 0.05).all()
    assert table["n_cells"].sum() == 144 and table["is_control"].sum() == 4
    by_condition = tmp_path / "conditions.csv"
    assert main(["hits", str(cells), "--out", str(by_condition), "--by", "condition", "-q"]) == 0
    conditions = pd.read_csv(by_condition)
    assert len(conditions) == 3 and set(conditions["condition"][:2]) == {"PLK1", "KIF11"}
    assert conditions.set_index("condition").loc["scrambled", "n_cells"] == 96
    # Re-thresholding at a higher percentile never makes more cells novel.
    strict = tmp_path / "strict.csv"
    args = ["hits", str(cells), "--out", str(strict), "--novelty-percentile", "100"]
    assert main(args) == 0
    assert pd.read_csv(strict)["n_novel"].sum() <= table["n_novel"].sum()


def test_hits_on_a_foreign_h5ad_names_the_missing_columns(tmp_path, capsys):
    foreign = tmp_path / "atlas.h5ad"
    obs = pd.DataFrame({"cell_type": ["T", "B"]}, index=["c1", "c2"])
    ad.AnnData(np.zeros((2, 3), np.float32), obs=obs).write_h5ad(foreign)
    out = tmp_path / "hits.csv"
    assert main(["hits", str(foreign), "--out", str(out)]) == 1
    one_line_error(capsys.readouterr().err, "atlas.h5ad", "position, well, condition, control")
    assert not out.exists()


def test_hits_refuses_to_overwrite_its_input(screen, tmp_path, capsys):
    cells = tmp_path / "cells.h5ad"
    assert _encode(screen, cells, "--embedding", "pca") == 0
    before = cells.read_bytes()
    assert main(["hits", str(cells), "--out", str(cells)]) == 1
    one_line_error(capsys.readouterr().err, "refusing to write the hit table", str(cells))
    assert cells.read_bytes() == before
    # nor a file of another kind: a slip of --out put the hits where the mapping was
    mapping = tmp_path / "mapping.csv"
    mapping.write_bytes(screen[1].read_bytes())
    assert main(["hits", str(cells), "--out", str(mapping)]) == 1
    one_line_error(capsys.readouterr().err, f"refusing to replace {mapping} with the hit table")
    assert mapping.read_bytes() == screen[1].read_bytes()
    assert main(["hits", str(tmp_path / "none.h5ad"), "--out", str(tmp_path / "h.csv")]) == 1
    one_line_error(capsys.readouterr().err, "none.h5ad", "no such file")


def test_encode_refuses_unknown_suffixes_and_a_gallery_without_h5ad(screen, tmp_path, capsys):
    # Bad command lines, said as the others are (status 2, 'argument --out: ...'); they
    # exited 1 as 'cellae: error: ...' like a damaged file.
    for name in ("features.csv", "features"):
        assert _encode(screen, tmp_path / name) == 2
        usage_error(capsys.readouterr().err, "encode", "argument --out: ", name, ".hdf", ".h5ad")
    assert _encode(screen, tmp_path / "f.hdf", "--gallery", str(tmp_path / "g.png")) == 2
    usage_error(capsys.readouterr().err, "encode", "argument --gallery: needs --out CELLS.h5ad")
    # The gallery was saved as PNG whatever its name: PNG bytes in g.svg, after the encoding.
    for name in ("g.svg", "g"):
        assert _encode(screen, tmp_path / "c.h5ad", "--gallery", str(tmp_path / name)) == 2
        usage_error(
            capsys.readouterr().err,
            "encode",
            "argument --gallery: ",
            name,
            "a PNG picture; end its name in .png",
        )
    assert list(tmp_path.iterdir()) == []


def test_hits_refuses_an_out_that_is_no_csv_as_a_usage_error(tmp_path, capsys):
    # Checked before the cell table is read: a missing table is not what is said.
    for name in ("hits.h5ad", "hits"):
        out = tmp_path / name
        assert main(["hits", str(tmp_path / "none.h5ad"), "--out", str(out)]) == 2
        usage_error(
            capsys.readouterr().err, "hits", "argument --out: ", name, "end its name in .csv"
        )
        assert not out.exists()


def test_without_controls_the_h5ad_has_no_novelty_and_says_why(screen, tmp_path, capsys):
    ch5, _, model = screen
    out = tmp_path / "cells.h5ad"
    args = ["encode", str(ch5), "--model", str(model), "--out", str(out), "--embedding", "pca"]
    assert main([*args, "-q"]) == 0
    err = capsys.readouterr().err
    assert "novelty needs negative-control cells" in err and "without the novelty" in err
    obs = ad.read_h5ad(out).obs
    assert not {"novelty", "novel", "cluster"} & set(obs.columns)
    gallery = tmp_path / "g.png"
    assert main([*args, "--gallery", str(gallery), "-q"]) == 1
    one_line_error(capsys.readouterr().err, "g.png", "novelty needs negative controls")
    assert not gallery.exists()


def test_a_mapping_without_controls_gets_its_hint_from_encode(screen, tmp_path, capsys):
    # DMSO controls in a two-column mapping, no --control-token: encode said only "give a
    # mapping whose Group column marks the controls", where train and the widget give the
    # mapping's hint (the token, and the conditions the rows hold).
    ch5, _, model = screen
    mapping = tmp_path / "two.txt"
    rows = [f"{w}\t{'DMSO' if g == 'neg' else c}" for w, _, c, g in WELLS]
    mapping.write_text("Position\tCondition\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "cells.h5ad"
    args = ["encode", str(ch5), "--model", str(model), "--mapping", str(mapping)]
    assert main([*args, "--out", str(out), "--embedding", "pca", "-q"]) == 0
    err = capsys.readouterr().err
    assert f"novelty needs negative-control cells, and {mapping}: no condition" in err
    assert "control token 'neg' (its conditions: 'DMSO', 'PLK1', 'KIF11')" in err
    assert "(--control-token; the widget's 'Controls')" in err and "without the novelty" in err


def test_svm_novelty_and_fixed_groups(screen, tmp_path, capsys):
    out = tmp_path / "cells.h5ad"
    assert (
        _encode(
            screen, out, "--novelty", "svm", "--nu", "0.1", "--groups", "2", "--embedding", "pca"
        )
        == 0
    )
    obs = ad.read_h5ad(out).obs
    assert set(obs["cluster"]) <= {0, 1, 2} and obs["cluster"].max() == 2
    assert obs.loc[obs["condition"].isin(["PLK1", "KIF11"]), "novel"].mean() > 0.9


def test_hits_refuses_a_blank_control_token(tmp_path, capsys):
    # Without a control column, controls are the groups starting with the token: "" would
    # make every cell a control.
    table = tmp_path / "cells.h5ad"
    obs = pd.DataFrame(
        {
            "position": ["A01", "A01", "B02", "B02"],
            "well": ["A01", "A01", "B02", "B02"],
            "condition": ["scrambled", "scrambled", "KIF11", "KIF11"],
            "group": ["neg", "neg", "target", "target"],
            "novelty": [0.1, 0.2, 3.0, 4.0],
        },
        index=["c1", "c2", "c3", "c4"],
    )
    ad.AnnData(np.zeros((4, 3), np.float32), obs=obs).write_h5ad(table)
    out = tmp_path / "hits.csv"
    assert main(["hits", str(table), "--out", str(out), "--control-token", " "]) == 1
    one_line_error(capsys.readouterr().err, "cells.h5ad", "the control token is empty")
    assert not out.exists()


def _cells_file(tmp_path, x=None, **columns):
    """A hand-made cells .h5ad: two control cells in A01, two knock-down cells in B02."""
    obs = {
        "position": ["A01", "A01", "B02", "B02"],
        "well": ["A01", "A01", "B02", "B02"],
        "condition": ["scrambled", "scrambled", "KIF11", "KIF11"],
        "control": [True, True, False, False],
        "novelty": [0.1, 0.2, 3.0, 4.0],
    }
    obs.update(columns)
    obs = {name: values for name, values in obs.items() if values is not None}
    path = tmp_path / "cells.h5ad"
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32) if x is None else x
    ad.AnnData(x, obs=pd.DataFrame(obs, index=["c1", "c2", "c3", "c4"])).write_h5ad(path)
    return path


def _hits_error(path, capsys, *needles):
    out = path.parent / "hits.csv"
    assert main(["hits", str(path), "--out", str(out)]) == 1
    one_line_error(capsys.readouterr().err, str(path), *needles)
    assert not out.exists()


@pytest.mark.parametrize(
    ("columns", "found"),
    [
        (
            {"control": ["True", "True", "False", "False"]},
            "found 'True', 'False' (4 cell(s), as text)",
        ),
        ({"control": [1.0, np.nan, 0.0, 0.0]}, "found nan (1 cell(s))"),
        (
            {"novelty": None, "novel": ["no", "no", "yes", "no"]},
            "found 'no', 'yes' (4 cell(s), as text)",
        ),
    ],
)
def test_hits_refuse_yes_no_columns_that_are_not_true_or_false(tmp_path, capsys, columns, found):
    # numpy takes the text 'False' and NaN for True: every cell became a control (or novel)
    # and the hit table was written without a word.
    column = "novel" if "novel" in columns else "control"
    _hits_error(
        _cells_file(tmp_path, **columns),
        capsys,
        f"column {column} must be True or False (or 1 or 0) for every cell",
        found,
    )


def test_hits_take_0_and_1_for_the_control_flags(tmp_path, capsys):
    path = _cells_file(tmp_path, control=[1, 1, 0, 0])
    assert main(["hits", str(path), "--out", str(tmp_path / "hits.csv"), "-q"]) == 0
    table = pd.read_csv(tmp_path / "hits.csv")
    assert table.set_index("position")["is_control"].to_dict() == {"A01": True, "B02": False}


@pytest.mark.parametrize(
    ("columns", "problem"),
    [
        ({"novelty": [0.1, np.nan, 3.0, np.nan]}, "2 cell(s) have a NaN or infinite novelty score"),
        ({"novelty": [0.1, 0.2, np.inf, 4.0]}, "(first: cell c3)"),
        (
            {"novel": [False, False, True, True], "novelty": [0.1, np.nan, 3.0, 4.0]},
            "first: cell c2",
        ),
        (
            {"novelty": ["low", "low", "high", "high"]},
            "column novelty must hold numbers, found 'low'",
        ),
        ({"well": ["A01", None, "B02", "B02"]}, "column well is missing for 1 cell(s), e.g. 'c2'"),
    ],
)
def test_hits_refuse_cells_with_bad_scores_or_names(tmp_path, capsys, columns, problem):
    # A NaN score made the controls' percentile NaN: no cell was novel, and the hit table was
    # written ranking nothing; text, and a missing well, failed without naming the file.
    _hits_error(_cells_file(tmp_path, **columns), capsys, problem)


def test_hits_on_a_file_without_cells(tmp_path, capsys):
    path = tmp_path / "cells.h5ad"
    columns = {c: pd.Series([], dtype=str) for c in ("position", "well", "condition")}
    columns |= {"control": pd.Series([], dtype=bool), "novelty": pd.Series([], dtype=float)}
    obs = pd.DataFrame(columns, index=pd.Index([], dtype=str))
    ad.AnnData(np.zeros((0, 3), np.float32), obs=obs).write_h5ad(path)
    # It said that no cell is a negative control.
    _hits_error(path, capsys, "the cell table holds no cells")


def test_hits_from_the_features_of_a_foreign_file(tmp_path, capsys):
    import scipy.sparse

    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    # scanpy often saves X sparse: numpy made it a 0-d array ('features () do not match').
    sparse = _cells_file(tmp_path, x=scipy.sparse.csr_matrix(x), novelty=None)
    assert main(["hits", str(sparse), "--out", str(tmp_path / "hits.csv"), "-q"]) == 0
    assert pd.read_csv(tmp_path / "hits.csv")["n_cells"].tolist() == [2, 2]
    (tmp_path / "hits.csv").unlink()
    x[1, 2] = np.nan
    _hits_error(_cells_file(tmp_path, x=x, novelty=None), capsys, "features contain NaN")
    # One control cell: discover() gives no novelty, which ended in an AssertionError.
    one = _cells_file(tmp_path, novelty=None, control=[True, False, False, False])
    _hits_error(one, capsys, "only one cell is a negative control")


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        (["--novelty-percentile", "nan"], "--novelty-percentile: must be 0..100, got nan"),
        (["--novelty-percentile", "101"], "--novelty-percentile: must be 0..100, got 101.0"),
        (["--neighbours", "0"], "--neighbours: must be 1..50000 (the most control cells"),
        # 1e23 went through scoring and failed writing the .h5ad ('Object dtype ... has no
        # native HDF5 equivalent ... key 'k'')
        (["--neighbours", str(10**23)], "--neighbours: must be 1..50000"),
        (["--novelty", "svm", "--nu", "nan"], "--nu: must be above 0 and below 1, got nan"),
        # At 1 scikit-learn's one-class SVM fails ('dual coefficients ... not finite').
        (["--novelty", "svm", "--nu", "1"], "--nu: must be above 0 and below 1, got 1.0"),
        (["--seed", "-1"], "--seed: must be 0..4294967295, got -1"),
        # The grouping said 'the number of phenotype groups must be >= 1', naming no option.
        (["--groups", "0"], "--groups: must be at least 1, got 0"),
    ],
)
def test_encode_refuses_bad_novelty_options_before_encoding(
    screen, tmp_path, capsys, option, problem
):
    # They failed after every cell was encoded, as 'need k >= 1 and 0 < nu <= 1' or in
    # scikit-learn's words for the seed, below a note that scoring had begun.
    out = tmp_path / "cells.h5ad"
    assert _encode(screen, out, *option) == 2
    usage_error(capsys.readouterr().err, "encode", f"argument {problem}")
    assert list(tmp_path.iterdir()) == []
    if option[0] in ("--seed", "--groups"):  # cellae hits has neither
        return
    cells = _cells_file(tmp_path)
    assert main(["hits", str(cells), "--out", str(tmp_path / "hits.csv"), *option]) == 2
    usage_error(capsys.readouterr().err, "hits", f"argument {problem}")


@pytest.mark.parametrize("spelling", ["cells.h5ad", "sub/../cells.h5ad", "link.h5ad"])
def test_encode_refuses_a_gallery_written_over_the_cells_file(screen, tmp_path, capsys, spelling):
    # The gallery (or the cells) was replaced by the other, both reported as written.
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.h5ad").symlink_to(tmp_path / "cells.h5ad")
    out = tmp_path / "cells.h5ad"
    assert _encode(screen, out, "--gallery", str(tmp_path / spelling)) == 1
    one_line_error(
        capsys.readouterr().err,
        f"cannot write the gallery to {tmp_path / spelling}",
        f"it is where the AnnData file goes ({out})",
    )
    assert not out.exists()


def test_hits_name_the_plate_when_two_plates_share_a_well(tmp_path, capsys):
    # The knock-down well B02 on two plates: the summary line tells the two rows apart.
    path = _cells_file(
        tmp_path,
        plate=["P1", "P2", "P1", "P2"],
        position=["A01", "A01", "B02", "B02"],
        control=[True, True, False, False],
    )
    assert main(["hits", str(path), "--out", str(tmp_path / "hits.csv")]) == 0
    out = capsys.readouterr().out
    assert "strongest: P1/B02 (100% novel), P2/B02 (100% novel)" in out


def test_a_well_imaged_blank_is_left_out_of_novelty_and_hits(screen, tmp_path, capsys):
    # Images never written read as one value: such a well's cells all looked novel, and it
    # topped the hit list as a perfect hit, its warning aside.
    import h5py

    _, mapping, model = screen
    ch5 = _screen_file(tmp_path / "screen.ch5")
    with h5py.File(ch5, "a") as f:  # the second knock-down's images never written
        f["sample/0/plate/plate1/experiment/B02/position/0001/image/channel"][...] = 0
    cells, hits = tmp_path / "cells.h5ad", tmp_path / "hits.csv"
    with pytest.warns(UserWarning, match=r"B02_0001 \(24 of 24\)\. .* hit lists leave them out"):
        assert _encode((ch5, mapping, model), cells) == 0
    assert " of 120 cells with signal (score above" in capsys.readouterr().out
    obs = ad.read_h5ad(cells).obs
    blank = obs["well"] == "B02"
    assert obs["no_signal"].tolist() == blank.tolist()
    assert not obs.loc[blank, "novel"].any() and obs.loc[obs["well"] == "B01", "novel"].mean() > 0.9
    assert main(["hits", str(cells), "--out", str(hits)]) == 0
    said = capsys.readouterr()
    assert "24 cells without signal left out (column no_signal" in said.err
    assert "B02_0001" in said.err and "5 positions ranked" in said.out
    assert " of 120 cells with signal\n" in said.out
    table = pd.read_csv(hits)
    assert "B02" not in set(table["well"]) and table["well"].iloc[0] == "B01"


def test_hits_score_again_when_a_scoring_option_is_given(tmp_path, capsys):
    # 'cellae hits cells.h5ad --novelty svm' ranked the file's stored knn novelty, saying
    # only 'novel: as stored in the file': --novelty, --neighbours and --nu were ignored.
    rng = np.random.default_rng(3)
    wells = np.repeat(["A01", "A02", "A03", "B01"], 10)
    obs = pd.DataFrame(
        {
            "position": wells,
            "well": wells,
            "condition": np.where(wells == "B01", "KIF11", "scrambled"),
            "control": wells != "B01",
            "novelty": np.where(wells == "B01", 5.0, rng.uniform(0, 1, 40)),
            "novel": wells == "B01",  # as stored: every knock-down cell novel
        },
        index=[f"c{i}" for i in range(40)],
    )
    cells = tmp_path / "cells.h5ad"
    ad.AnnData(rng.normal(size=(40, 4)).astype(np.float32), obs=obs).write_h5ad(cells)
    out = tmp_path / "hits.csv"

    def b01_novel(*options: str) -> tuple[int, str]:
        assert main(["hits", str(cells), "--out", str(out), *options]) == 0
        table = pd.read_csv(out).set_index("well")
        return int(table.loc["B01", "n_novel"]), capsys.readouterr().out

    n, printed = b01_novel()
    assert n == 10 and "novel: as stored in the file" in printed
    for options, how in [
        (["--novelty", "svm"], "svm"),
        (["--neighbours", "3"], "knn"),
        (["--novelty", "knn"], "knn"),
    ]:
        n, printed = b01_novel(*options)
        # The features hold no phenotype: scored again, B01 is as novel as a control well.
        assert n < 6, options
        assert f"novel: computed from the features ({how}, 80th percentile)" in printed
    # An option of the other scoring changed nothing: said, not silently dropped.
    assert main(["hits", str(cells), "--out", str(out), "--nu", "0.2"]) == 0
    said = capsys.readouterr()
    assert "--nu ignored: the scoring is --novelty knn, which does not use it" in said.err
    assert (
        main(["hits", str(cells), "--out", str(out), "--novelty", "svm", "--neighbours", "3"]) == 0
    )
    assert "--neighbours ignored: the scoring is --novelty svm" in capsys.readouterr().err
    assert main(["hits", str(cells), "--out", str(out), "--novelty", "svm", "--nu", "0.2"]) == 0
    assert "ignored" not in capsys.readouterr().err
    # Without features there is nothing to score again: said, not ignored.
    ad.AnnData(np.zeros((40, 0), np.float32), obs=obs).write_h5ad(cells)
    assert main(["hits", str(cells), "--out", str(out), "--novelty", "svm"]) == 1
    one_line_error(
        capsys.readouterr().err, "--novelty svm asks to score novelty again", "no features (X)"
    )


def test_encode_into_an_explorer_file_names_the_h5ad_options_it_ignores(screen, tmp_path, capsys):
    # '--novelty svm --groups 3 --out f.hdf' wrote features alone without a word.
    out = tmp_path / "f.hdf"
    assert _encode(screen, out, "--novelty", "svm", "--groups", "3", "--seed", "4") == 0
    err = capsys.readouterr().err
    assert (
        "cellae: note: --novelty, --groups, --seed ignored: novelty, phenotype groups and the "
        f"2-D map are written to --out CELLS.h5ad, not to the Explorer file {out}"
    ) in err
    assert out.exists()
    assert _encode(screen, out, "--novelty", "knn", "--embedding", "umap") == 0  # defaults
    assert "ignored" not in capsys.readouterr().err


def test_hits_notes_a_control_token_the_file_does_not_need(tmp_path, capsys):
    # A file with a 'control' column marks its controls: the token was dropped unsaid.
    cells = _cells_file(tmp_path)
    out = tmp_path / "hits.csv"
    assert main(["hits", str(cells), "--out", str(out), "--control-token", "ctrl"]) == 0
    assert f"--control-token ignored: {cells} marks its controls (column control)" in (
        capsys.readouterr().err
    )
    grouped = _cells_file(tmp_path, control=None, group=["CTRL", "ctrl 2", "x", "y"])
    assert main(["hits", str(grouped), "--out", str(out), "--control-token", "ctrl"]) == 0
    assert "--control-token ignored" not in capsys.readouterr().err
    assert list(pd.read_csv(out).query("is_control")["well"]) == ["A01"]


def test_hits_score_again_with_the_seed_the_file_was_scored_with(
    screen, tmp_path, capsys, monkeypatch
):
    # 'cellae hits' re-scored novelty with seed 0, whatever 'cellae encode --seed' stored:
    # beyond 50,000 control cells (here 12: 96 control cells are sampled) its sample of
    # controls was another, and so were the novel cells.
    import napari_cellae.core.novelty as novelty

    monkeypatch.setattr(novelty, "_MAX_REFERENCE", 12)
    cells = tmp_path / "cells.h5ad"
    assert _encode(screen, cells, "--embedding", "pca", "--seed", "7") == 0
    stored = ad.read_h5ad(cells)
    assert stored.uns["cellae"]["discovery"]["options"]["seed"] == 7
    out = tmp_path / "hits.csv"
    assert main(["hits", str(cells), "--out", str(out), "--novelty", "knn", "-q"]) == 0
    assert "computed from the features (knn" in capsys.readouterr().out
    again = pd.read_csv(out).set_index("position")["n_novel"]
    as_stored = stored.obs.groupby("position", observed=True)["novel"].sum()
    assert again.sort_index().tolist() == as_stored.sort_index().tolist()


def test_the_explorer_file_the_cells_file_and_the_hit_table_agree(screen, tmp_path, capsys):
    # The same cells in the same order with the same features in the .hdf and the .h5ad
    # (encoded in other batch sizes), and the hit table's counts those of the .h5ad's cells.
    from napari_cellae.export.explorer import read_explorer_hdf

    hdf, cells, hits = tmp_path / "f.hdf", tmp_path / "cells.h5ad", tmp_path / "hits.csv"
    assert _encode(screen, hdf, "--batch-size", "7") == 0
    assert _encode(screen, cells, "--embedding", "pca") == 0
    printed = capsys.readouterr().out
    explorer, adata = read_explorer_hdf(hdf), ad.read_h5ad(cells)
    obs = adata.obs
    np.testing.assert_allclose(explorer.features, adata.X, rtol=1e-5, atol=1e-6)
    box = explorer.bbox
    assert box["label"].tolist() == obs["label_id"].tolist()
    assert box["x"].tolist() == obs["x"].round().astype(int).tolist()
    assert box["y"].tolist() == obs["y"].round().astype(int).tolist()
    assert [f.decode() for f in box["file"]] == obs["position"].astype(str).tolist()
    assert [t.decode() for t in box["treatment"]] == obs["condition"].astype(str).tolist()
    assert f"Novel: {int(obs['novel'].sum())} of {len(obs)} cells with signal" in printed
    assert main(["hits", str(cells), "--out", str(hits), "-q"]) == 0
    table = pd.read_csv(hits).set_index("position").sort_index()
    by_position = obs.groupby("position", observed=True)
    assert table["n_cells"].tolist() == by_position.size().sort_index().tolist()
    assert table["n_novel"].tolist() == by_position["novel"].sum().sort_index().tolist()
    medians = by_position["novelty"].median().sort_index().to_numpy(np.float64)
    np.testing.assert_allclose(table["median_novelty"], medians, rtol=1e-5)
    assert table["is_control"].tolist() == by_position["control"].all().sort_index().tolist()
