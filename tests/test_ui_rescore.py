"""The results tab's novelty boxes: the findings made again without encoding again.

The boxes are the options of ``cellae encode`` / ``cellae hits`` a biologist changes
(``--novelty-percentile``, ``--neighbours``, ``--novelty``, ``--nu``). Changed after a run,
the hit table, colours and Save AnnData follow, as those commands give them.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_cellae._ui import rescoring
from napari_cellae._ui.cell_table import cell_table
from napari_cellae._ui.findings import find, row_key
from napari_cellae._ui.novelty_controls import NO_CONTROLS, NO_RUN
from napari_cellae._ui.runner import Outcome
from napari_cellae._widget import DeepLearningWidget
from napari_cellae.cli import main
from napari_cellae.io.centres import position_labels
from napari_cellae.pipeline.discovery import DiscoveryOptions
from ui_helpers import (
    TIMEOUT_MS,
    fake_run,
    four_well_screen,
    run_job,
    use_pca,
    wait_background,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:training draws only:UserWarning", "ignore:.*objects are small for:UserWarning"
)

TINY = {"crop_size": 24, "input_size": 16, "architecture": "c4.3r_d8.0s", "epochs": 2}


@pytest.fixture(scope="module")
def screen(tmp_path_factory) -> tuple[Path, Path]:
    """Four wells, two negative controls and two treated (:func:`four_well_screen`)."""
    return four_well_screen(tmp_path_factory.mktemp("screen"))


def _show_fake(widget, mapping: bool = True):
    """Show a run of synthetic features on the demo screen (no training)."""
    result = fake_run(widget.form.file_path(), widget.form.mapping_path() if mapping else None)
    findings = find(result)
    table = cell_table(result, position_labels(result.crops.positions), findings)
    widget._on_returned(Outcome(result, table, findings))
    return result


def _shown_hits(widget, by: str) -> list[str]:
    widget.panel.hits.by.setCurrentText(by)
    return widget.panel.hits.keys()


def _saved(qtbot, widget, path: Path) -> Path:
    worker = widget.save_anndata(path, start=False)
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    return path


def _rescored(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.results.rescoring.busy, timeout=TIMEOUT_MS)
    wait_background(qtbot, widget)


def test_the_boxes_wait_for_a_run_with_controls(make_napari_viewer, qtbot):
    widget = DeepLearningWidget(make_napari_viewer())  # the demo screen and its mapping
    use_pca(widget)
    boxes = widget.panel.novelty
    assert not boxes.percentile.isEnabled() and boxes.toolTip() == NO_RUN
    assert boxes.options() == DiscoveryOptions()  # cellae encode's defaults
    _show_fake(widget)
    assert boxes.percentile.isEnabled() and boxes.method.isEnabled() and not boxes.toolTip()
    # without negative controls there is nothing to re-score against
    _show_fake(widget, mapping=False)
    assert not boxes.percentile.isEnabled() and not boxes.neighbours.isEnabled()
    assert boxes.toolTip() == NO_CONTROLS
    widget.results.clear()  # a Stop while the features were computed
    assert not boxes.percentile.isEnabled() and boxes.toolTip() == NO_RUN


def test_nu_is_shown_for_the_svm_only(make_napari_viewer, qtbot):
    widget = DeepLearningWidget(make_napari_viewer())
    boxes = widget.panel.novelty
    assert not boxes.neighbours.isHidden() and boxes.nu.isHidden()
    boxes.method.setCurrentIndex(boxes.method.findData("svm"))
    assert boxes.neighbours.isHidden() and not boxes.nu.isHidden()
    assert boxes.options().method == "svm"


def test_a_change_during_a_rescoring_is_done_after_it(make_napari_viewer, qtbot, monkeypatch):
    # The newest settings win: the re-scoring running when the boxes change again is
    # dropped, never shown, and one with the boxes' settings follows it.
    widget = DeepLearningWidget(make_napari_viewer())
    use_pca(widget)
    result = _show_fake(widget)
    boxes, results = widget.panel.novelty, widget.results
    release, calls = threading.Event(), []
    real = rescoring.refind

    def held(run, findings, options):
        calls.append(options)
        if len(calls) == 1:
            assert release.wait(60)  # until the boxes changed twice more
        return real(run, findings, options)

    monkeypatch.setattr(rescoring, "refind", held)
    shown = []
    refresh = results.refresh_findings
    monkeypatch.setattr(
        results, "refresh_findings", lambda: (shown.append(results.findings), refresh())
    )
    boxes.percentile.setValue(95.0)
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=TIMEOUT_MS)
    assert results.rescoring.busy and boxes.state.text()
    boxes.neighbours.setValue(5)
    boxes.percentile.setValue(90.0)
    assert len(calls) == 1  # one at a time
    release.set()
    qtbot.waitUntil(lambda: len(calls) == 2 and not results.rescoring.busy, timeout=TIMEOUT_MS)
    wait_background(qtbot, widget)
    wanted = DiscoveryOptions(k=5, percentile=90.0)
    assert calls == [DiscoveryOptions(percentile=95.0), wanted]
    assert [f.discovery.options for f in shown] == [wanted]  # the 95 one was never shown
    expected = find(result, wanted)
    assert results.findings.discovery.summary() == expected.discovery.summary()
    for by in ("position", "condition"):
        rows = expected.hits[by].to_dict("records")
        assert _shown_hits(widget, by) == [row_key(row, by) for row in rows]
    np.testing.assert_array_equal(results.table.features["novel"], expected.obs["novel"])
    assert boxes.state.isHidden()


def test_the_embedding_follows_the_new_findings(make_napari_viewer, qtbot):
    widget = DeepLearningWidget(make_napari_viewer())
    use_pca(widget)
    _show_fake(widget)
    panel, results = widget.panel, widget.results
    panel.colour_by.setCurrentText("phenotype group")
    before = results.table.colourings["phenotype group"].labels
    novel_before = int(results.findings.discovery.novelty.novel.sum())
    panel.novelty.percentile.setValue(99.0)
    _rescored(qtbot, widget)
    table, layer = results.table, results.view.layer
    novel = results.findings.discovery.novelty.novel
    assert 0 < novel.sum() < novel_before  # fewer novel cells above a higher bar
    np.testing.assert_array_equal(layer.features["novel"], novel)
    np.testing.assert_array_equal(layer.features["cluster"], results.findings.obs["cluster"])
    np.testing.assert_allclose(layer.face_color, table.colourings["phenotype group"].colours())
    assert table.colourings["phenotype group"].labels != before
    threshold = results.findings.discovery.novelty.threshold
    assert table.colourings["novelty"].note == f"novel above {threshold:.3g}"
    assert "99th percentile" in widget.status.text()


def _hits_csv(h5ad: Path, out: Path, *options: str) -> dict[str, pd.DataFrame]:
    tables = {}
    for by in ("position", "condition"):
        path = out.with_name(f"{out.stem}_{by}.csv")
        assert main(["hits", str(h5ad), "--by", by, "--out", str(path), *options, "-q"]) == 0
        tables[by] = pd.read_csv(path, dtype={by: str})
    return tables


def _same_as_cli(widget, tables: dict[str, pd.DataFrame]) -> None:
    """The hit tables shown and kept are those ``cellae hits`` wrote."""
    findings = widget.results.findings
    for by, written in tables.items():
        assert _shown_hits(widget, by) == [row_key(row, by) for row in written.to_dict("records")]
        ours = findings.hits[by]
        for column in ("n_cells", "n_novel", "novel_fraction", "p_value", "q_value"):
            np.testing.assert_allclose(ours[column], written[column], rtol=1e-5, err_msg=column)


def _encode_options(*flags: str) -> dict:
    """The discovery options ``cellae encode`` records with ``flags`` (as an ``.h5ad``
    holds them: anndata leaves out None, the groups chosen from the data)."""
    from napari_cellae.cli.cells import _options
    from napari_cellae.cli.parser import build_parser

    args = build_parser().parse_args(["encode", "f.ch5", "--model", "m", "--out", "c.h5ad", *flags])
    options = asdict(_options(args, args.novelty_percentile))
    return {name: value for name, value in options.items() if value is not None}


def test_the_boxes_give_cellae_hits_and_encode_s_results(
    make_napari_viewer, qtbot, errors, screen, tmp_path
):
    import anndata as ad

    ch5, mapping = screen
    widget = DeepLearningWidget(make_napari_viewer())
    widget.form.file.value, widget.form.mapping.value = ch5, mapping
    use_pca(widget)
    for name, value in TINY.items():
        getattr(widget.form, name).value = value
    run_job(qtbot, widget, widget.start_training)
    wait_background(qtbot, widget)
    assert not errors, errors
    first = _saved(qtbot, widget, tmp_path / "default.h5ad")  # as after the run: 80th
    boxes = widget.panel.novelty

    # the 95th percentile: the bar drawn again, as cellae hits does through the file
    boxes.percentile.setValue(95.0)
    _rescored(qtbot, widget)
    _same_as_cli(widget, _hits_csv(first, tmp_path / "p95", "--novelty-percentile", "95"))
    saved = ad.read_h5ad(_saved(qtbot, widget, tmp_path / "p95.h5ad"))
    recorded = saved.uns["cellae"]["discovery"]
    assert recorded["options"] == _encode_options("--novelty-percentile", "95")
    assert recorded["options"]["percentile"] == 95.0
    assert recorded["threshold"] == widget.results.findings.discovery.novelty.threshold

    # 5 neighbours: every cell scored again, as cellae hits scores the file's features
    boxes.percentile.setValue(80.0)
    boxes.neighbours.setValue(5)
    _rescored(qtbot, widget)
    _same_as_cli(widget, _hits_csv(first, tmp_path / "k5", "--neighbours", "5"))
    model = widget.save_model(tmp_path / "model.pt")
    mine = ad.read_h5ad(_saved(qtbot, widget, tmp_path / "k5.h5ad"))
    # and as cellae encode with --neighbours 5 writes the cells
    cli = tmp_path / "cli_k5.h5ad"
    encode = ["encode", str(ch5), "--model", str(model), "--mapping", str(mapping)]
    assert main([*encode, "--embedding", "pca", "--neighbours", "5", "--out", str(cli), "-q"]) == 0
    theirs = ad.read_h5ad(cli)
    assert mine.uns["cellae"]["discovery"] == theirs.uns["cellae"]["discovery"]
    assert mine.uns["cellae"]["discovery"]["options"] == _encode_options("--neighbours", "5")
    for column in ("novelty", "novel", "cluster"):
        np.testing.assert_allclose(mine.obs[column], theirs.obs[column], rtol=1e-5)

    # the next run scores with the boxes' settings, which they keep showing
    run_job(qtbot, widget, widget.start_training)
    wait_background(qtbot, widget)
    assert widget.results.findings.discovery.options == DiscoveryOptions(k=5)
    assert boxes.neighbours.value() == 5 and boxes.neighbours.isEnabled()
    assert not errors, errors


def test_a_failed_rescoring_is_said_and_the_boxes_show_the_table_s_settings(
    make_napari_viewer, qtbot, errors, monkeypatch
):
    widget = DeepLearningWidget(make_napari_viewer())
    use_pca(widget)
    _show_fake(widget)
    before = widget.results.findings

    def broken(run, findings, options):
        raise ValueError("no memory left for the scores")

    monkeypatch.setattr(rescoring, "refind", broken)
    boxes = widget.panel.novelty
    boxes.neighbours.setValue(3)
    _rescored(qtbot, widget)
    assert errors == ["no memory left for the scores"]
    assert "Failed: no memory left" in widget.status.text()
    assert widget.results.findings is before  # the table shown stays, and says so
    assert boxes.options() == before.discovery.options and boxes.state.isHidden()
    assert boxes.neighbours.isEnabled()


def test_save_anndata_waits_for_the_rescoring_the_boxes_asked(
    make_napari_viewer, qtbot, errors, monkeypatch, tmp_path
):
    # Saved while the re-scoring ran, the file held the table before it (the 80th
    # percentile) though the boxes said 95 and the status line promised their results.
    widget = DeepLearningWidget(make_napari_viewer())
    use_pca(widget)
    _show_fake(widget)
    release, calls = threading.Event(), []
    real = rescoring.refind

    def held(run, findings, options):
        calls.append(options)
        assert release.wait(60)
        return real(run, findings, options)

    monkeypatch.setattr(rescoring, "refind", held)
    widget.panel.novelty.percentile.setValue(95.0)
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=TIMEOUT_MS)
    try:
        assert widget.save_anndata(tmp_path / "early.h5ad", start=False) is None
    finally:
        release.set()
    assert len(errors) == 1 and "re-scoring" in errors[0].lower(), errors
    assert not (tmp_path / "early.h5ad").exists()
    _rescored(qtbot, widget)
    assert widget.results.findings.discovery.options.percentile == 95.0
    # then it saves (a fake run has no model to write, so the worker is not started)
    assert widget.save_anndata(tmp_path / "p95.h5ad", start=False) is not None
