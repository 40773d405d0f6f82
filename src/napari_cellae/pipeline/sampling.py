"""Crop only the cells that training uses, so a whole screen trains in bounded memory.

Training learns from at most ``TrainConfig.samples`` cells (50,000 by default), drawn at
random from the candidates (all cells, or the control positions'). Cropping every cell of a
screen first held all of them in memory: a million 40 px uint16 crops are 3.2 GB, 10 GB at
72 px. Here the same cells are drawn from the object counts alone and only they are cut,
position by position: memory holds the drawn cells, and the time is that of cutting them.
They are exactly the cells, in the same order, that
:func:`~napari_cellae.pipeline.steps.select_training` draws from all crops, so the trained
model is the same. Several plates (:mod:`napari_cellae.pipeline.plate_training`) share one
draw over all their cells.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_cellae.core.config import TrainConfig
    from napari_cellae.core.crops import CropSet
    from napari_cellae.io.cellh5 import CellH5, PositionKey
    from napari_cellae.io.mapping import PositionMapping

__all__ = [
    "FEW_SAMPLES",
    "candidate_positions",
    "candidate_rows",
    "concat_crops",
    "draw_training",
    "rows_of_positions",
    "sampled_training_crops",
]


# Fewer training cells than this, of more in the file, draw a warning (a mistyped --samples).
FEW_SAMPLES = 100


def draw_training(candidates: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """The cells training learns from: every candidate, or a seeded random ``samples`` of
    them (sorted) when there are more (``samples`` 0: no limit). The one draw of both
    :func:`~napari_cellae.pipeline.steps.select_training` and :func:`sampled_training_crops`,
    so that both pick the same cells."""
    if samples and len(candidates) > samples:
        if samples < FEW_SAMPLES:  # '--samples 1' for 10000: trained on one cell unnoticed
            warnings.warn(
                f"training draws only {samples} of the {len(candidates)} cells it could "
                "learn from: a network that sees so few cells learns little that holds for "
                "the others, so its features barely separate them; let it draw "
                + (f"at least {FEW_SAMPLES}" if len(candidates) > FEW_SAMPLES else "them all")
                + " (--samples; 'Training cells' in the widget)",
                stacklevel=2,
            )
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(candidates, size=samples, replace=False))
    return candidates


def candidate_rows(counts: list[int], candidate: list[bool]) -> np.ndarray:
    """Global indices (positions in order, rows within) of the candidate positions' cells."""
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return np.concatenate(
        [np.arange(starts[i], starts[i + 1]) for i, c in enumerate(candidate) if c]
        or [np.zeros(0, np.int64)]
    ).astype(np.int64)


def _drawn_rows(
    counts: list[int], candidate: list[bool], samples: int, seed: int
) -> np.ndarray | None:
    """Global indices that training draws; None when it uses every candidate cell (nothing
    to leave out)."""
    idx = candidate_rows(counts, candidate)
    drawn = draw_training(idx, samples, seed)
    return None if len(drawn) == len(idx) else drawn


def concat_crops(parts: list[CropSet], positions: list[PositionKey]) -> CropSet:
    """One CropSet of the crops of several (each one position's), indexed by ``positions``.

    Parameters
    ----------
    parts : list of CropSet
        Non-empty; each holds the crops of one position of ``positions``, alike otherwise.
    positions : list of PositionKey
        The positions ``position_index`` refers to.

    Returns
    -------
    CropSet
    """
    first = parts[0]
    where = {key: i for i, key in enumerate(positions)}
    per_crop = {
        name: np.concatenate([getattr(part, name) for part in parts]) for name in first._PER_CROP
    }
    per_crop["position_index"] = np.concatenate(
        [
            np.full(len(part), where[part.positions[0]], np.int32)
            for part in parts  # each part indexes its single position as 0
        ]
    )
    return replace(
        first,
        crops=np.concatenate([part.crops for part in parts]),
        positions=list(positions),
        unlabelled_positions=[p for part in parts for p in part.unlabelled_positions],
        unmatched_positions=[p for part in parts for p in part.unmatched_positions],
        shared_label_positions=[p for part in parts for p in part.shared_label_positions],
        **per_crop,
    )


def sampled_training_crops(
    cellh5: CellH5,
    object_name: str,
    channels: list[int],
    mapping: PositionMapping | None,
    config: TrainConfig,
) -> tuple[CropSet, int] | None:
    """The crops of the cells training draws, cut one position at a time.

    Parameters
    ----------
    cellh5 : CellH5
    object_name : str
    channels : list of int
    mapping : PositionMapping or None
    config : TrainConfig
        Its crop size, mask, ``train_on``, ``samples`` and ``seed``.

    Returns
    -------
    (CropSet, int) or None
        The drawn cells' crops (as cut, before any resampling) and the number of cells in
        the file; None when training uses every candidate cell, or when no position is a
        control (cropping everything then gives the usual error).

    Raises
    ------
    ValueError
        If a position's images are smaller than the crop box, or its table is shorter
        than its object count said (a changed file).
    """
    from napari_cellae.core.crops import check_box, collect_crops

    counted = [(key, cellh5.object_count(key, object_name)) for key in cellh5.positions]
    positions, counts = [key for key, n in counted if n], [n for _, n in counted if n]
    for key in positions:
        check_box(cellh5, key, config.crop_size)
    candidate = candidate_positions(positions, mapping, config)
    if not any(candidate):
        return None
    drawn = _drawn_rows(counts, candidate, config.samples, config.seed)
    if drawn is None:
        return None
    parts = []
    for key, rows in zip(positions, rows_of_positions(drawn, counts), strict=True):
        if len(rows):  # one position at a time: its drawn cells, masks and label windows
            size, mask = config.crop_size, config.mask
            parts.append(collect_crops(cellh5, object_name, size, channels, [key], mask, [rows]))
    return concat_crops(parts, positions), int(sum(counts))


def candidate_positions(
    positions: list[PositionKey], mapping: PositionMapping | None, config: TrainConfig
) -> list[bool]:
    """Whether training may draw each position's cells: all, or the mapping's controls."""
    if config.train_on == "all" or mapping is None:
        return [True] * len(positions)
    return [(i := mapping.lookup(key)) is not None and i.is_control for key in positions]


def rows_of_positions(drawn: np.ndarray, counts: list[int]) -> list[np.ndarray]:
    """The drawn global indices split into each position's rows (in the order drawn).

    One sort and a binary search of the positions' starts: comparing every drawn index
    with every position took 0.9 s for 50,000 drawn of 30,720 positions (20 plates of 384
    wells x 4 sites), and grew with both.
    """
    drawn = np.asarray(drawn, np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    order = np.argsort(drawn, kind="stable")
    cuts = np.searchsorted(drawn[order], starts)
    return [drawn[np.sort(order[cuts[i] : cuts[i + 1]])] - starts[i] for i in range(len(counts))]
