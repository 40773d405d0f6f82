"""The hit list's grouping (pipeline/hits.hit_list): each distinct value made text once.

Every cell's position, well, condition and plate were made text and stripped, cell by cell:
a million cells took 0.6 GB and seconds for what a few hundred distinct values decide. The
grouping must stay what the per-cell texts gave.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_cellae.pipeline.hits import hit_list


def _per_cell(obs: pd.DataFrame, novel: np.ndarray, by: str) -> list[tuple]:
    """The rows the per-cell texts gave: (cells, novel cells, then each text column listed)."""
    text = {c: obs[c].astype(str).str.strip() for c in obs if c != "control"}
    key = text["condition"] if by == "condition" else text["position"]
    if by == "position" and "plate" in text:
        key = text["plate"] + "/" + key
    names = [c for c in ("plate", "position", "well", "condition") if c in text]
    rows = []
    for _, cells in pd.Series(range(len(obs))).groupby(key.to_numpy(), sort=False):
        cells = cells.to_numpy()
        listed = [",".join(dict.fromkeys(text[c].iloc[cells])) for c in names]
        rows.append((len(cells), int(novel[cells].sum()), *listed))
    return sorted(rows)


def _tricky(n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    position = rng.choice(["A01_1", "A01_1 ", " A02_1", "a/b", "b"], n)
    well = np.array([p.strip()[:3] for p in position], dtype=object)
    condition = rng.choice(["DMSO", "DMSO ", "KIF11", " KIF11", "PLK1"], n).astype(object)
    condition[:3] = [1, 1.0, True]  # alike to factorize, three texts to the per-cell way
    plate = rng.choice(["p1", "p1/a", "p2"], n)  # p1 + a/b and p1/a + b read alike: one row
    return pd.DataFrame(
        {
            "plate": pd.Categorical(plate, categories=["p1", "p1/a", "p2", "unused"]),
            "position": pd.Categorical(position),
            "well": well,
            "condition": condition,
            "control": np.isin(condition, ["DMSO", "DMSO "]),
        }
    )


@pytest.mark.parametrize("by", ["position", "condition"])
@pytest.mark.parametrize("plates", [True, False])
def test_groups_are_those_of_the_per_cell_texts(by, plates) -> None:
    obs = _tricky()
    if not plates:
        obs = obs.drop(columns="plate")
    novel = np.random.default_rng(1).random(len(obs)) < 0.3
    table = hit_list(obs, novel, by)
    names = [c for c in ("plate", "position", "well", "condition") if c in obs]
    got = sorted(
        (int(r["n_cells"]), int(r["n_novel"]), *(r[c] for c in names))
        for r in table.to_dict("records")
    )
    assert got == _per_cell(obs, novel, by)


def test_each_distinct_value_is_made_text_once() -> None:
    class Name:
        made = 0

        def __init__(self, text: str) -> None:
            self.text = text

        def __str__(self) -> str:
            Name.made += 1
            return self.text

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Name) and other.text == self.text

        def __hash__(self) -> int:
            return hash(self.text)

    names = [Name("KIF11"), Name("DMSO ")]
    obs = pd.DataFrame(
        {
            "position": [f"A0{i % 4}" for i in range(2000)],
            "well": [f"A0{i % 4}" for i in range(2000)],
            "condition": [names[i % 4 == 0] for i in range(2000)],
            "control": [i % 4 == 0 for i in range(2000)],
        }
    )
    table = hit_list(obs, np.arange(2000) % 3 == 0, "condition")
    assert sorted(table["condition"]) == ["DMSO", "KIF11"]
    assert Name.made <= 10  # per distinct value, not per cell (2,000)


def test_a_condition_that_is_a_control_in_some_positions_only_is_warned_about() -> None:
    import warnings

    # 'scr' marked neg on plate pa, but target in pb's B02 (a typo in the Group column): by
    # condition its cells made one treated row, and the hit list printed '0 of 0 controls'
    # without saying why (found by the option sweep).
    obs = pd.DataFrame(
        {
            "plate": ["pa", "pa", "pb", "pb", "pa", "pb"],
            "position": ["A01", "A01", "A01", "B02", "B01", "B01"],
            "well": ["A01", "A01", "A01", "B02", "B01", "B01"],
            "condition": ["scr", "scr", "scr", "scr", "PLK1", "PLK1"],
            "control": [True, True, True, False, False, False],
        }
    )
    novel = np.array([False, False, True, True, True, True])
    with pytest.warns(UserWarning, match=r"condition\(s\) scr \(not in pb/B02\) mark negative"):
        table = hit_list(obs, novel, "condition")
    assert not table["is_control"].any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hit_list(obs, novel, "position")  # each position is one or the other
        obs.loc[3, "control"] = True
        hit_list(obs, novel, "condition")


def _wells(counts: list[tuple[int, int]], frames: list[int]) -> tuple[pd.DataFrame, np.ndarray]:
    """A cell table of one position per well, (novel, cells) each, every cell listed once
    per frame of its position (``frames``), as ``cellae encode`` writes a time-lapse;
    the first two wells are controls."""
    rows, novel = [], []
    for w, ((k, n), n_frames) in enumerate(zip(counts, frames, strict=True)):
        for t in range(n_frames):
            for i in range(n):
                well = f"A{w + 1:02d}"
                rows.append((well + "_1", well, "neg" if w < 2 else "KIF11", w < 2, t + 3))
                novel.append(i < k)
    obs = pd.DataFrame(rows, columns=["position", "well", "condition", "control", "frame"])
    return obs, np.array(novel)


@pytest.mark.parametrize("by", ["position", "condition"])
def test_a_time_lapse_counts_the_cells_of_a_frame_for_p_and_z(by) -> None:
    # Each cell is a row in every frame. Counted as cells, 40 frames made a well of 50
    # cells 2,000 cells: p 1e-25 for 15 novel of 50 where it is 0.07, and the robust z's
    # floor 40 times too small. A position imaged in fewer frames (20) counts its cells
    # the same; frames need not start at 0.
    counts = [(10, 50), (10, 50), (15, 50)]
    one, novel_one = _wells(counts, [1, 1, 1])
    many, novel_many = _wells(counts, [40, 20, 40])
    single, table = hit_list(one, novel_one, by), hit_list(many, novel_many, by)
    for column in ("p_value", "q_value", "robust_z", "novel_fraction"):
        np.testing.assert_allclose(table[column], single[column], err_msg=column)
    assert table["n_cells"].sum() == 50 * 100  # rows over all frames, as listed
    treated = table[table["condition"] == "KIF11"]
    assert 0.01 < float(treated["p_value"].iloc[0]) < 0.2
    # a table without frames counts every row as a cell, as before
    np.testing.assert_allclose(
        hit_list(many.drop(columns="frame"), novel_many, by)["n_cells"], table["n_cells"]
    )


def _scored_design(control_wells: list[tuple[str, str]]) -> tuple[pd.DataFrame, np.ndarray]:
    """30 cells in each of the control wells (plate, well) and in two treated wells of P1
    and P2, with 4 random features."""
    wells = [(p, w, True) for p, w in control_wells] + [
        ("P1", "B01", False),
        ("P2", "B01", False),
    ]
    rows = [
        {"plate": p, "well": w, "position": f"{w}_1", "condition": "neg" if c else w, "control": c}
        for p, w, c in wells
        for _ in range(30)
    ]
    return pd.DataFrame(rows), np.random.default_rng(0).normal(size=(len(rows), 4))


@pytest.mark.parametrize(
    ("control_wells", "said"),
    [
        ([("P1", "A01")], "come from one well"),
        ([("P1", "A01"), ("P1", "A02")], "plate P2 holds control cells of fewer than two"),
    ],
)
def test_novelty_computed_for_the_hit_list_says_what_scoring_warned(control_wells, said) -> None:
    # discover() keeps the scoring's warnings as its note: novelty computed from the
    # features for 'cellae hits' dropped them, and a lone control well (whose cells are
    # scored against their well-mates, so that most other cells are novel) went unsaid.
    from napari_cellae.pipeline.hits import novel_cells

    obs, features = _scored_design(control_wells)
    with pytest.warns(UserWarning, match=said):
        novel_cells(obs, features, source="cells.h5ad")


def test_frames_of_a_position_split_over_two_plates_count_its_cells_twice() -> None:
    # As the README says: plates named alike in two files are told apart by their file, so
    # a position whose frames lie in both is two positions, each counting a frame's cells.
    one, novel = _wells([(10, 50), (10, 50), (15, 50)], [4, 4, 4])
    split = one.assign(plate=np.where(one["frame"] < 5, "p1 (a.ch5)", "p1 (b.ch5)"))
    whole = hit_list(one.assign(plate="p1"), novel, "condition").set_index("condition")
    halves = hit_list(split, novel, "condition").set_index("condition")
    for table in (whole, halves):
        assert table.loc["KIF11", "novel_fraction"] == 0.3
    assert halves.loc["KIF11", "p_value"] < whole.loc["KIF11", "p_value"] / 2
    twice = hit_list(pd.concat([one.assign(plate="p1")] * 2), np.r_[novel, novel], "condition")
    assert twice.set_index("condition").loc["KIF11", "p_value"] == pytest.approx(
        halves.loc["KIF11", "p_value"], rel=1e-9
    )
