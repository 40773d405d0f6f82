"""The novelty bar drawn again at another percentile, without scoring the cells again.

The widget's *Novel above* box (:mod:`napari_cellae._ui.novelty_controls`) moves the bar
of a run's findings as ``cellae hits --novelty-percentile`` moves a file's: through the
stored scores (:func:`~napari_cellae.core.novel_bar.novel_bar`); the novel cells are then
grouped again. No Qt.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.core.control_references import few_controls_note
from napari_cellae.core.novel_bar import novel_bar
from napari_cellae.core.novelty import Novelty
from napari_cellae.pipeline.cell_flags import without_signal
from napari_cellae.pipeline.cell_ids import cell_keys, held_out_ids
from napari_cellae.pipeline.discovery import grouped

if TYPE_CHECKING:
    import pandas as pd

    from napari_cellae.pipeline.discovery import Discovery

__all__ = ["rethreshold"]


def rethreshold(
    features: np.ndarray, obs: pd.DataFrame, found: Discovery, percentile: float
) -> Discovery:
    """``found`` with the novelty bar drawn again at ``percentile`` and the novel cells
    grouped again, without scoring the cells again.

    The bar goes through the stored (float32) scores as ``cellae hits
    --novelty-percentile`` draws it through a file's
    (:func:`~napari_cellae.core.novel_bar.novel_bar`), so the result is what
    :func:`~napari_cellae.pipeline.discovery.discover` gives with that percentile: the
    same flags, groups, options and notes.

    Parameters
    ----------
    features : ndarray (N, F)
        The features ``found`` was scored on (for the groups).
    obs : pandas.DataFrame
        The cell table ``found`` was scored with.
    found : Discovery
    percentile : float
        0 to 100.

    Returns
    -------
    Discovery
        ``found`` itself, with the new percentile in its options, where it has no novelty.

    Raises
    ------
    ValueError
        If ``percentile`` is outside 0..100.
    """
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in 0..100, got {percentile}")
    options = replace(found.options, percentile=float(percentile))
    if found.novelty is None:
        return replace(found, options=options)
    no_signal = without_signal(obs)
    controls = np.asarray(obs["control"], bool) & ~no_signal
    scores = found.novelty.scores
    threshold, novel = novel_bar(np.asarray(scores).astype(np.float64), controls, percentile)
    novelty = Novelty(scores, threshold, novel & ~no_signal)
    # the one note that names the bar: the few-controls warning of the scoring
    before, after = (
        few_controls_note(int(controls.sum()), p) for p in (found.options.percentile, percentile)
    )
    notes = [after if text == before else text for text in found.novelty_notes]
    wells, _ = held_out_ids(obs, controls)
    plates = obs["plate"].astype(str).to_numpy() if "plate" in obs else None
    return grouped(features, novelty, controls, options, notes, plates, wells, cell_keys(obs))
