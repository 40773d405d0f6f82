"""The novelty bar drawn again through a run's scores (napari_cellae.pipeline.rethreshold):
what discover() gives at that percentile, without scoring the cells again."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_cellae.pipeline import discovery, rethreshold
from napari_cellae.pipeline.discovery import DiscoveryOptions, discover
from test_discovery import _screen


def _same(ours, theirs) -> None:
    assert ours.options == theirs.options
    np.testing.assert_array_equal(ours.novelty.scores, theirs.novelty.scores)
    assert ours.novelty.threshold == theirs.novelty.threshold
    np.testing.assert_array_equal(ours.novelty.novel, theirs.novelty.novel)
    np.testing.assert_array_equal(ours.clusters, theirs.clusters)
    assert ours.typical.keys() == theirs.typical.keys()
    for group, cells in ours.typical.items():
        np.testing.assert_array_equal(cells, theirs.typical[group])
    assert (ours.note, ours.novelty_notes) == (theirs.note, theirs.novelty_notes)
    assert ours.summary() == theirs.summary()


@pytest.mark.parametrize("percentile", [95.0, 50.0, 99.5, 80.0])
def test_the_bar_drawn_again_is_discover_s_at_that_percentile(percentile, monkeypatch):
    x, obs, _hit = _screen()
    obs["no_signal"] = False
    obs.loc[5, "no_signal"] = obs.loc[200, "no_signal"] = True  # never novel, not a control
    found = discover(x, obs)
    expected = discover(x, obs, DiscoveryOptions(percentile=percentile))
    scored = []
    monkeypatch.setattr(discovery, "novelty_scores", lambda *a, **k: scored.append(a))
    again = rethreshold.rethreshold(x, obs, found, percentile)
    assert not scored  # the cells were not scored again
    _same(again, expected)
    assert again.novelty.scores is found.novelty.scores


def test_the_few_controls_note_names_the_new_bar():
    x, obs, _hit = _screen()
    keep = ~obs["control"].to_numpy() | (np.arange(len(obs)) % 20 == 0)  # 8 control cells
    x, obs = x[keep], obs[keep].reset_index(drop=True)
    found = discover(x, obs, DiscoveryOptions(method="svm"))
    assert "80th percentile" in found.note
    expected = discover(x, obs, DiscoveryOptions(method="svm", percentile=95.0))
    again = rethreshold.rethreshold(x, obs, found, 95.0)
    _same(again, expected)
    assert "95th percentile" in again.note and "80th" not in again.note


def test_without_novelty_only_the_options_change():
    x, obs, _hit = _screen()
    obs["control"] = False
    found = discover(x, obs)
    again = rethreshold.rethreshold(x, obs, found, 95.0)
    assert again.novelty is None and again.note == found.note
    assert again.options == replace(found.options, percentile=95.0)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        rethreshold.rethreshold(x, obs, found, 101.0)
