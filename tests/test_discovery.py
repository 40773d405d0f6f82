"""Phenotype discovery (napari_cellae.pipeline.discovery, .hits): cell table, novelty,
phenotype groups and hit lists."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from napari_cellae.io.cellh5 import CellH5
from napari_cellae.pipeline.discovery import (
    DiscoveryOptions,
    cell_table,
    discover,
    phenotype_groups,
    with_discovery,
)
from napari_cellae.pipeline.hits import hit_list, novel_cells
from napari_cellae.pipeline.steps import collect, load_mapping


def _screen(seed: int = 0):
    """Cell table and features: 4 control wells, a hit well with two new phenotypes (half
    its cells shifted one way, half another), and a well like the controls."""
    rng = np.random.default_rng(seed)
    wells = ["A01", "A02", "A03", "A04", "B01", "B02"]
    conditions = ["neg", "neg", "neg", "neg", "PLK1", "GENE2"]
    at = np.repeat(np.arange(6), 40)
    x = rng.normal(size=(240, 6))
    hit = at == 4
    x[hit & (np.arange(240) % 2 == 0), 0] += 6.0
    x[hit & (np.arange(240) % 2 == 1), 1] -= 6.0
    obs = pd.DataFrame(
        {
            "plate": "P1",
            "well": np.array(wells)[at],
            "position": [f"{wells[i]}_1" for i in at],
            "condition": np.array(conditions)[at],
            "group": np.where(at < 4, "neg", "target"),
            "control": at < 4,
        }
    )
    return x, obs, hit


def test_cell_table_from_a_cellh5_file(cellcognition_file, mapping_file) -> None:
    with CellH5(cellcognition_file) as ch5:
        mapping = load_mapping(mapping_file, ch5)
        crops = collect(ch5, "primary__primary", 16, [0])
    obs = cell_table(crops, mapping, {0: "interphase", 1: "mitotic"})
    assert len(obs) == len(crops) == 30
    assert list(obs.columns[:13]) == [
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
        "no_signal",
    ]
    assert obs.index.is_unique and obs.index[0] == "plate1/A01_0001/0"
    a01 = obs["well"] == "A01"
    assert obs.loc[a01, "condition"].eq("scrambled").all() and obs.loc[a01, "control"].all()
    assert obs.loc[~a01, "condition"].eq("PLK1").all() and not obs.loc[~a01, "control"].any()
    assert obs["group"].astype(str).tolist().count("neg") == 15
    np.testing.assert_array_equal(obs["x"], crops.center_x)
    np.testing.assert_array_equal(obs["frame"], crops.time_idx)
    assert obs["no_signal"].dtype == bool and not obs["no_signal"].any()
    assert set(obs["class"]) == {"interphase", "mitotic"}
    np.testing.assert_array_equal(obs["class_index"], crops.class_idx)
    # Without a mapping every position is its own condition and nothing is a control.
    bare = cell_table(crops)
    assert set(bare["condition"]) == {"A01_0001", "B02_0001"} and not bare["control"].any()
    # Of several plates, an unmapped position is named with its plate: a hit list by
    # condition pooled two plates' A01_0001 into one row.
    crops.positions = [crops.positions[0], replace(crops.positions[0], plate="plate2")]
    plates = cell_table(crops)
    assert set(plates["condition"]) == {"plate1/A01_0001", "plate2/A01_0001"}


def test_discover_finds_the_hit_cells_and_their_two_phenotypes() -> None:
    x, obs, hit = _screen()
    found = discover(x, obs, DiscoveryOptions(percentile=95))
    assert found.novelty is not None and found.note is None
    assert found.novelty.novel[hit].mean() > 0.9
    assert found.novelty.novel[obs["control"]].mean() < 0.08
    # One group per shift direction (the few stray novel control cells form their own);
    # cells that are not novel are in group 0.
    assert found.n_groups >= 2 and set(found.typical) == set(range(1, found.n_groups + 1))
    groups = found.clusters[hit & found.novelty.novel]
    even = (np.arange(240) % 2 == 0)[hit & found.novelty.novel]
    assert len(set(groups[even])) == 1 and len(set(groups[~even])) == 1
    assert set(groups[even]) != set(groups[~even])
    strays = found.clusters[found.novelty.novel & ~hit]
    assert not set(strays) & set(groups)  # no stray control cell joins a hit phenotype
    assert np.all(found.clusters[~found.novelty.novel] == 0)
    for group, rows in found.typical.items():
        assert len(rows) == 8 and np.all(found.clusters[rows] == group)
    table = with_discovery(obs, found)
    assert {"novelty", "novel", "cluster"} <= set(table.columns)
    assert "novelty" not in obs  # a copy
    summary = found.summary()
    assert summary["n_groups"] == found.n_groups and summary["options"]["method"] == "knn"


def test_one_control_well_of_several_sites_is_held_out_by_site() -> None:
    # Each site is an image of its own (another offset: focus, background), and in a
    # time-lapse its cells return frame after frame. Held out cell by cell, a control cell
    # found its own image's cells, the controls scored low, and half of a well like them
    # was called novel.
    rng = np.random.default_rng(2)
    site = np.repeat(np.arange(8), 50)  # sites 0-3: the control well; 4-7: a null well
    x = rng.normal(size=(400, 6)) + rng.normal(size=(8, 6))[site]
    obs = pd.DataFrame(
        {
            "plate": "P1",
            "well": np.where(site < 4, "A01", "B01"),
            "site": site % 4 + 1,
            "position": [f"{'A01' if s < 4 else 'B01'}_{s % 4 + 1}" for s in site],
            "condition": np.where(site < 4, "neg", "GENE"),
            "control": site < 4,
        }
    )
    found = discover(x, obs, DiscoveryOptions())
    assert 0.1 < found.novelty.novel[site >= 4].mean() < 0.3
    assert "scored against those of the well's other sites" in found.note
    # without sites there is nothing to hold out but the cell itself: as before, warned
    alone = discover(x, obs.drop(columns="site"), DiscoveryOptions())
    assert alone.novelty.novel[site >= 4].mean() > 0.45
    assert "against the other control cells of that well" in alone.note


def test_discover_scores_each_plate_on_its_own_controls() -> None:
    # A second plate imaged otherwise (every feature shifted by 3 and stretched): on one
    # scale its control wells would look like hits; each plate on its own controls, the
    # hit wells of both plates rank first.
    x, obs, _ = _screen()
    y, other, _ = _screen(seed=1)
    other["plate"] = "P2"
    cells = pd.concat([obs, other], ignore_index=True)
    features = np.r_[x, y * 1.5 + 3.0]
    found = discover(features, cells)
    table = with_discovery(cells, found)
    novel = table.groupby(["plate", "well"])["novel"].mean()
    assert novel.loc[("P1", "B01")] > 0.9 and novel.loc[("P2", "B01")] > 0.9
    assert novel.drop([("P1", "B01"), ("P2", "B01")]).max() < 0.5
    # Each hit phenotype is one group across the plates, not one group per plate.
    hit = table["novel"].to_numpy() & (table["well"] == "B01").to_numpy()
    even = np.r_[np.arange(240), np.arange(240)] % 2 == 0
    for side in (even, ~even):
        assert len(set(found.clusters[hit & side])) == 1
    single = discover(features, cells.assign(plate="P1"))  # one plate: one scale
    p2_controls = (cells["plate"] == "P2") & cells["control"]
    assert single.novelty.novel[p2_controls].mean() > found.novelty.novel[p2_controls].mean() + 0.15


def test_the_same_cells_in_another_order_get_the_same_novelty() -> None:
    # Non-control cells are scored without one control well, dealt by the cell's name:
    # dealt by row order, two plates given the other way round (or positions listed anew)
    # moved cells' scores by up to 4 and wells' novel shares by up to 5 points.
    x, obs, _ = _screen()
    y, other, _ = _screen(seed=1)
    other["plate"] = "P2"
    cells = pd.concat([obs, other], ignore_index=True)
    names = zip(cells.plate, cells.well, strict=True)
    cells.index = [f"{p}/{w}_1/{i}" for i, (p, w) in enumerate(names)]
    features = np.r_[x, y * 1.5 + 3.0]
    found = discover(features, cells)
    order = np.random.default_rng(3).permutation(len(cells))
    shuffled = discover(features[order], cells.iloc[order])
    np.testing.assert_array_equal(shuffled.novelty.scores, found.novelty.scores[order])
    np.testing.assert_array_equal(shuffled.novelty.novel, found.novelty.novel[order])
    np.testing.assert_array_equal(shuffled.clusters, found.clusters[order])  # the same groups
    typical = {g: sorted(cells.index[rows]) for g, rows in found.typical.items()}
    assert {g: sorted(cells.index[order][rows]) for g, rows in shuffled.typical.items()} == typical
    swapped = np.r_[np.arange(240, 480), np.arange(240)]  # plate P2 first
    plates_swapped = discover(features[swapped], cells.iloc[swapped])
    np.testing.assert_array_equal(plates_swapped.novelty.scores, found.novelty.scores[swapped])


def test_discover_without_controls_says_novelty_needs_them(tmp_path) -> None:
    x, obs, _ = _screen()
    obs["control"] = False
    found = discover(x, obs)
    assert found.novelty is None and found.n_groups == 0 and not found.clusters.any()
    assert "novelty needs negative-control cells" in found.note
    assert with_discovery(obs, found) is obs  # no novelty columns at all
    # a mapping that marks no control: its own hint (the widget's findings, cellae encode)
    from napari_cellae.io.mapping import read_mapping

    two = tmp_path / "two.txt"
    two.write_text("A01\tDMSO\nA02\tPLK1\n", encoding="utf-8")
    hinted = discover(x, obs, mapping=read_mapping(two)).note
    assert f"and {two}: no condition in the mapping starts with the control token 'neg'" in hinted
    # the mapping marks controls, but they hold one cell: not "give a mapping that marks them"
    obs.loc[obs.index[0], "control"] = True
    one = discover(x, obs)
    assert one.novelty is None and "the control positions hold only one" in one.note
    assert "Group column marks" not in one.note
    with pytest.raises(ValueError, match="do not match"):
        discover(x[:10], obs)
    with pytest.raises(ValueError, match="unknown novelty method 'lof'"):
        DiscoveryOptions(method="lof")


def test_svm_novelty_and_a_fixed_number_of_groups() -> None:
    x, obs, hit = _screen(seed=1)
    found = discover(x, obs, DiscoveryOptions(method="svm", groups=3, per_group=4))
    assert found.novelty.novel[hit].mean() > 0.9
    assert found.n_groups == 3 and all(len(r) == 4 for r in found.typical.values())
    sizes = [int((found.clusters == g).sum()) for g in (1, 2, 3)]
    assert sizes == sorted(sizes, reverse=True)  # group 1 is the largest


def test_phenotype_groups_edge_cases() -> None:
    x, obs, _ = _screen()
    controls = obs["control"].to_numpy()
    none = np.zeros(len(x), bool)
    clusters, typical = phenotype_groups(x, none, controls)
    assert not clusters.any() and typical == {}
    few = none.copy()
    few[[200, 201, 202]] = True
    clusters, typical = phenotype_groups(x, few, controls)
    assert list(typical) == [1] and set(clusters[few]) == {1}  # too few cells to split
    with pytest.raises(ValueError, match="cannot form 5 phenotype groups from 3 novel"):
        phenotype_groups(x, few, controls, n_groups=5)


def test_hit_list_by_position_and_condition() -> None:
    x, obs, _ = _screen()
    found = discover(x, obs)
    novel, scores = found.novelty.novel, found.novelty.scores
    table = hit_list(obs, novel, "position", scores)
    assert table.columns[:5].tolist() == ["rank", "plate", "position", "well", "condition"]
    assert {"n_cells", "novel_fraction", "enrichment", "robust_z", "median_novelty"} <= set(
        table.columns
    )
    top = table.iloc[0]
    assert (top["position"], top["well"], top["condition"], top["rank"]) == (
        "B01_1",
        "B01",
        "PLK1",
        1,
    )
    # Enrichment over the controls, of whom the default 80th percentile makes 20 % novel.
    assert top["novel_fraction"] > 0.9 and top["robust_z"] > 5 and top["enrichment"] > 4
    assert table["n_cells"].sum() == 240 and table["is_control"].sum() == 4
    by_condition = hit_list(obs, novel, "condition", scores)
    assert by_condition["condition"].tolist()[0] == "PLK1"
    neg = by_condition.set_index("condition").loc["neg"]
    assert neg["well"] == "A01,A02,A03,A04" and neg["n_cells"] == 160 and neg["is_control"]
    with pytest.raises(ValueError, match="unknown hit unit"):
        hit_list(obs, novel, "plate")


def test_novel_cells_from_flags_scores_or_features() -> None:
    x, obs, hit = _screen()
    found = discover(x, obs)
    stored = with_discovery(obs, found)
    novel, _, how = novel_cells(stored)
    np.testing.assert_array_equal(novel, found.novelty.novel)
    assert "as stored" in how
    # Re-thresholding the stored scores: fewer novel cells at a higher percentile.
    strict, _, how = novel_cells(stored, percentile=99.5)
    assert strict.sum() < novel.sum() and "99.5th percentile" in how
    # No novelty columns: computed from the features; the control flag from "group".
    bare = obs.drop(columns="control")
    computed, scores, how = novel_cells(bare, features=x)
    assert computed[hit].mean() > 0.9 and scores is not None and "computed" in how
    # Views of the features are scored apart, as discover() does for the outline columns.
    views = [np.arange(x.shape[1] - 1), np.array([x.shape[1] - 1])]
    apart, apart_scores, _ = novel_cells(bare, features=x, views=views)
    expected = discover(x, obs, views=views).novelty
    np.testing.assert_array_equal(apart, expected.novel)
    np.testing.assert_allclose(apart_scores, expected.scores, rtol=1e-6)
    assert not np.allclose(apart_scores, scores)
    # Flags without scores: a new percentile has nothing to cut, so it is refused.
    flags_only = stored.drop(columns="novelty")
    assert novel_cells(flags_only)[1] is None
    with pytest.raises(ValueError, match=r"^cells\.h5ad: holds which cells are novel .* novelty"):
        novel_cells(flags_only, percentile=90.0, source="cells.h5ad")


def test_novel_cells_names_what_a_foreign_table_lacks() -> None:
    foreign = pd.DataFrame({"cell_type": ["T", "B"], "leiden": ["0", "1"]})
    with pytest.raises(ValueError) as info:
        novel_cells(foreign, source="atlas.h5ad")
    message = str(info.value)
    assert message.startswith("atlas.h5ad: cellae hits needs the cell column(s) position, well")
    assert "condition, control, novel (or novelty" in message and "cell_type, leiden" in message
    x, obs, _ = _screen()
    obs["control"] = False
    with pytest.raises(
        ValueError, match=r"no cell is a negative control .*encode with --mapping, whose Group"
    ):
        novel_cells(obs, features=x)


def test_hit_lists_refuse_cells_without_a_position_or_condition() -> None:
    # A missing condition became the text "nan": a hit-table row of its own, unnamed.
    x, obs, _ = _screen()
    found = discover(x, obs)
    for column in ("condition", "position"):
        holey = obs.copy()
        holey.loc[holey.index[7], column] = None
        with pytest.raises(ValueError, match=rf"^cells\.h5ad: column {column} is missing for 1"):
            hit_list(holey, found.novelty.novel, "condition", source="cells.h5ad")


def _with_blank_wells(x: np.ndarray, obs: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """The screen with a treated well B02 and half of control well A01 imaged blank: their
    features all alike and far from every cell, as crops of a single value give."""
    x, obs = x.copy(), obs.copy()
    blank = (obs["well"] == "B02").to_numpy() | (np.arange(len(obs)) < 20)
    x[blank] = 25.0
    obs["no_signal"] = blank
    return x, obs


def test_cells_without_signal_are_neither_reference_nor_novel_nor_counted() -> None:
    # A well whose images were never written topped the hit list as a perfect hit, and
    # blank control cells stretched the controls' spread and percentile.
    x, obs, hit = _screen()
    x, obs = _with_blank_wells(x, obs)
    found = discover(x, obs, DiscoveryOptions(percentile=95))
    blank = obs["no_signal"].to_numpy()
    assert not found.novelty.novel[blank].any() and not found.clusters[blank].any()
    assert found.novelty.novel[hit].mean() > 0.9
    assert found.novelty.novel[obs["control"] & ~blank].mean() < 0.08
    table = hit_list(obs, found.novelty.novel, "position", found.novelty.scores)
    assert "B02_1" not in set(table["position"])  # all its cells are without signal
    assert table["position"].iloc[0] == "B01_1"
    assert table.set_index("position").loc["A01_1", "n_cells"] == 20  # of 40
    # Re-thresholded from the stored scores, or from stored flags: the same cells left out.
    stored = with_discovery(obs, found)
    stored.loc[blank, "novel"] = True  # as a foreign tool might have flagged them
    for percentile in (None, 95):
        novel, _, _ = novel_cells(stored, percentile=percentile)
        assert not novel[blank].any() and novel[hit].mean() > 0.9


def test_controls_without_signal_leave_no_reference() -> None:
    x, obs, _ = _screen()
    obs["no_signal"] = obs["control"].to_numpy() & (np.arange(len(obs)) != 3)
    found = discover(x, obs)
    assert found.novelty is None
    assert found.note.startswith("novelty needs negative-control cells, and only 1 of the 160")
    scored = obs.assign(novelty=x[:, 0])
    with pytest.raises(ValueError, match=r"^t\.h5ad: 1 of the 160 negative-control cells have"):
        novel_cells(scored, percentile=80, source="t.h5ad")
    with pytest.raises(ValueError, match="column no_signal must be True or False"):
        novel_cells(obs.assign(no_signal="no"), features=x)
