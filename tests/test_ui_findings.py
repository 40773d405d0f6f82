"""Findings of a run for the widget: novelty, hit lists, the cells of a hit row, classes."""

from __future__ import annotations

import numpy as np

from napari_cellae._ui.findings import find, row_key
from napari_cellae.io.cellh5_writer import write_cellh5
from ui_helpers import fake_run


def test_hits_by_position_and_condition(cellcognition_file, mapping_file):
    result = fake_run(cellcognition_file, mapping_file)
    findings = find(result)
    crops = result.crops
    assert findings.discovery.novelty is not None
    assert "one well" in findings.discovery.note  # one control well: said, not hidden
    assert set(findings.hits) == {"position", "condition"}
    by_position = findings.hits["position"]
    # B02 (PLK1) holds the shifted cells: the strongest hit, the control well is not
    top = by_position.iloc[0]
    assert top["rank"] == 1 and top["position"] == "B02_0001" and not top["is_control"]
    assert findings.hits["condition"].iloc[0]["condition"] == "PLK1"
    for column in ("novelty", "novel", "cluster", "condition", "control"):
        assert column in findings.obs

    key = row_key(top, "position")
    assert key == "plate1/B02_0001"
    cells = findings.cells_of("position", [key])
    np.testing.assert_array_equal(cells, np.flatnonzero(crops.position_index == 1))
    both = findings.cells_of("condition", ["PLK1", "scrambled"])
    np.testing.assert_array_equal(both, np.arange(len(crops)))
    assert len(findings.cells_of("position", ["nowhere"])) == 0

    # most novel first
    top_cells = findings.most_novel(np.arange(len(crops)), 5)
    scores = findings.scores
    assert len(top_cells) == 5
    assert np.all(np.diff(scores[top_cells]) <= 0)
    assert scores[top_cells[0]] == scores.max()


def test_without_controls_a_note_and_no_hits(cellcognition_file):
    findings = find(fake_run(cellcognition_file))
    assert findings.discovery.novelty is None and findings.hits == {}
    assert "novelty needs negative-control cells" in findings.discovery.note
    assert "novelty" not in findings.obs and findings.scores is None
    np.testing.assert_array_equal(findings.most_novel(np.arange(10), 3), [0, 1, 2])


def test_class_names_follow_the_class_table_rows(tmp_path):
    from conftest import synthetic_position

    # labels 1 and 2 (not 0 and 1): a cell's class_idx is the row of the class table
    labels = [(1, "interphase", "#00ff00"), (2, "mitotic", "#ff0000")]
    path = write_cellh5(
        tmp_path / "classes.ch5",
        [synthetic_position("A01", "0001", seed=1)],
        channel_names=["rfp"],
        object_channels={"primary__primary": 0},
        class_labels={"primary__primary": labels},
    )
    result = fake_run(path)
    findings = find(result)
    expected = np.array(["interphase", "mitotic"])[result.crops.class_idx]
    np.testing.assert_array_equal(findings.obs["class"].astype(str), expected)
    assert findings.class_colours == {"interphase": "#00ff00", "mitotic": "#ff0000"}


def test_the_widget_finds_what_cellae_encode_and_hits_write(tmp_path):
    # One screen, one model: the widget's encode job and findings against the command
    # line's .h5ad and hit table (features, novelty, novel cells, groups, every hit column).
    import anndata as ad
    import pandas as pd

    from cli_helpers import TINY
    from conftest import CLASS_LABELS, synthetic_position
    from napari_cellae.cli import main
    from napari_cellae.core.model_load import load_model
    from napari_cellae.pipeline import jobs

    wells = [("A01", 250.0, "neg"), ("A02", 250.0, "neg"), ("A03", 250.0, "neg")]
    wells += [("B01", 60.0, "target"), ("B02", 120.0, "target")]
    ch5 = write_cellh5(
        tmp_path / "screen.ch5",
        [
            synthetic_position(w, "0001", peak=p, n_per_frame=8, seed=i)
            for i, (w, p, _) in enumerate(wells)
        ],
        channel_names=["rfp"],
        object_channels={"primary__primary": 0},
        class_labels={"primary__primary": CLASS_LABELS},
    )
    mapping = tmp_path / "mapping.txt"
    mapping.write_text(
        "Position\tWell\tSite\tRow\tColumn\tGene Symbol\tsiRNA ID\tGroup\n"
        + "".join(
            f"{i}\t{w}\t0001\t{w[0]}\t{w[1:]}\tc{w}\ts{i}\t{g}\n"
            for i, (w, _, g) in enumerate(wells)
        ),
        encoding="utf-8",
    )
    model, cells, hits = tmp_path / "m.pt", tmp_path / "cells.h5ad", tmp_path / "hits.csv"
    common = ["--mapping", str(mapping), "-q"]
    assert main(["train", str(ch5), *common, *TINY, "--out", str(model)]) == 0
    encode = ["encode", str(ch5), "--model", str(model), *common, "--embedding", "pca"]
    assert main([*encode, "--out", str(cells)]) == 0
    assert main(["hits", str(cells), "--out", str(hits), "-q"]) == 0
    job = jobs.encode_job(ch5, load_model(model), mapping, model)
    try:
        while True:
            next(job)
    except StopIteration as stop:
        result = stop.value
    adata, table = ad.read_h5ad(cells), pd.read_csv(hits)
    np.testing.assert_allclose(result.features, adata.X, rtol=1e-5, atol=1e-6)
    findings = find(result)
    obs = findings.obs
    assert obs.index.tolist() == adata.obs_names.tolist()
    np.testing.assert_allclose(obs["novelty"], adata.obs["novelty"], rtol=1e-4, atol=1e-5)
    for column in ("novel", "cluster", "control", "condition"):
        assert obs[column].astype(str).tolist() == adata.obs[column].astype(str).tolist(), column
    widget = findings.hits["position"]
    assert widget["position"].tolist() == table["position"].tolist()
    for column in (
        "rank",
        "n_cells",
        "n_novel",
        "robust_z",
        "p_value",
        "q_value",
        "median_novelty",
    ):
        np.testing.assert_allclose(widget[column], table[column], rtol=1e-4, err_msg=column)


def test_most_novel_ranks_cells_without_signal_last(cellcognition_file, mapping_file):
    # A blank crop (no_signal) scores as very novel, but is never novel and not counted in
    # the hit list: it led the gallery of "the most novel cells" of its hit-table row.
    result = fake_run(cellcognition_file, mapping_file)
    scores = find(result).scores
    blank = int(np.argmax(scores))
    result.crops.blank = np.zeros(len(result.crops), bool)
    result.crops.blank[blank] = True
    findings = find(result)
    assert findings.scores[blank] == findings.scores.max()  # still the highest score
    everyone = np.arange(len(result.crops))
    top = findings.most_novel(everyone, 5)
    assert blank not in top
    with_signal = np.delete(everyone, blank)
    np.testing.assert_array_equal(top, with_signal[np.argsort(-findings.scores[with_signal])][:5])
    # still shown when a row has no other cells to show
    pair = findings.most_novel(np.array([blank, top[0]]), 2)
    np.testing.assert_array_equal(pair, [top[0], blank])
