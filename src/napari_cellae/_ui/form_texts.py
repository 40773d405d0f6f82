"""Texts of the dock widget's form: the inputs' tooltips and what the cell size was set to.

No Qt.
"""

from __future__ import annotations

from napari_cellae.core.config import field_info
from napari_cellae.core.resample import largest_box

__all__ = ["TIPS", "size_tip"]

#: tooltips of the form's inputs that are no TrainConfig field
TIPS = {
    "file": "The CellH5 file (.ch5) written by CellCognition or CellProfiler's "
    "ExportToCellH5: images plus the segmented cells.",
    "object": "Which segmented objects to learn from, e.g. nuclei (primary) or whole "
    "cells (secondary).",
    "channel": "The fluorescence channel whose pixels the network learns from.",
    "mapping": "Optional table that says which treatment is in which well and which wells "
    "are negative controls (CellCognition position mapping). Without it every cell is "
    "trained on and the embedding is coloured by position.",
    "controls": "Negative controls are the mapping's rows whose Group starts with this "
    "text, in any case ('neg' finds 'neg. control' too); in a two-column mapping, the "
    "conditions that start with it (e.g. DMSO). Novelty and hits are measured against them.",
}


def size_tip(box: int | None, network: int, side: int) -> str:
    """The cell size's tooltip: its help, and why the form set ``box`` for this file.

    Parameters
    ----------
    box : int or None
        The box fitted to the file's cells; None where the network's box suits them.
    network : int
        The box the network is made for (the preset's cell size).
    side : int
        The images' shorter side in pixels.
    """
    if box is None:
        return field_info("crop_size")["help"]
    if box < network:
        why = f"its images ({side} px shorter side) are smaller than {network} px"
    elif box >= largest_box(side):
        why = f"{network} px would cut off its cells; {box} px is the largest its images allow"
    else:
        why = f"{network} px would cut off its cells (their bounding boxes); {box} px holds"
        why += " 95 % of them"
    fitted = f" Set for this file: {why}, resampled to {network} px for the network."
    return field_info("crop_size")["help"] + fitted
