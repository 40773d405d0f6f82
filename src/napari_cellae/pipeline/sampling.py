"""Crop only the cells that training uses, so a whole screen trains in bounded memory.

Training learns from at most ``TrainConfig.samples`` cells (50,000 by default), drawn at
random from the candidates (all cells, or the control positions'). Cropping every cell of a
screen first held all of them in memory: a million 40 px uint16 crops are 3.2 GB, 10 GB at
72 px. Here the same cells are drawn from the object counts alone and only they are cut,
position by position: memory holds the drawn cells, and the time is that of cutting them.
They are exactly the cells, in the same order, that
:func:`~napari_cellae.pipeline.steps.select_training` draws from all crops, so the trained
model is the same. Several plates (:func:`plate_training_crops`) share one draw over all
their cells.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.io.cellh5 import CellH5

if TYPE_CHECKING:
    from napari_cellae.core.config import TrainConfig
    from napari_cellae.core.crops import CropSet
    from napari_cellae.io.cellh5 import PositionKey
    from napari_cellae.io.mapping import PositionMapping

__all__ = ["concat_crops", "draw_training", "plate_training_crops", "sampled_training_crops"]


def draw_training(candidates: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """The cells training learns from: every candidate, or a seeded random ``samples`` of
    them (sorted) when there are more (``samples`` 0: no limit). The one draw of both
    :func:`~napari_cellae.pipeline.steps.select_training` and :func:`sampled_training_crops`,
    so that both pick the same cells."""
    if samples and len(candidates) > samples:
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(candidates, size=samples, replace=False))
    return candidates


def _candidate_rows(counts: list[int], candidate: list[bool]) -> np.ndarray:
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
    idx = _candidate_rows(counts, candidate)
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
    from napari_cellae.core.crops import collect_crops

    counted = [(key, cellh5.object_count(key, object_name)) for key in cellh5.positions]
    positions, counts = [key for key, n in counted if n], [n for _, n in counted if n]
    for key in positions:
        _check_box(cellh5, key, config.crop_size)
    candidate = _candidates(positions, mapping, config)
    if not any(candidate):
        return None
    drawn = _drawn_rows(counts, candidate, config.samples, config.seed)
    if drawn is None:
        return None
    parts = []
    for key, rows in zip(positions, _rows_of_positions(drawn, counts), strict=True):
        if len(rows):  # one position at a time: its drawn cells, masks and label windows
            size, mask = config.crop_size, config.mask
            parts.append(collect_crops(cellh5, object_name, size, channels, [key], mask, [rows]))
    return concat_crops(parts, positions), int(sum(counts))


def _check_box(cellh5: CellH5, key: PositionKey, size: int) -> None:
    """Raise if a position's images are smaller than the crop box.

    Cutting says so too, but only for the positions drawn: a plate of smaller images
    passed or failed by the luck of the draw (and of the seed).
    """
    height, width = cellh5.image_shape(key)[-2:]
    if size > height or size > width:
        raise ValueError(
            f"{cellh5.path}, position {key.label}: crop size {size} px is larger than the "
            f"image ({height} x {width} px, height x width)"
        )


def _warn_empty(plates: list[Path], with_objects: set[Path], object_name: str) -> None:
    """Name the plates without objects: training went on without them, and the summary
    counted the plates that gave cells, as though the others had not been given."""
    empty = [str(plate) for plate in plates if plate not in with_objects]
    if empty:
        shown = ", ".join(empty[:4]) + (" ..." if len(empty) > 4 else "")
        warnings.warn(
            f"{len(empty)} of the {len(plates)} plates hold no '{object_name}' objects in any "
            f"position, so none of their cells is trained on (segmentation failed?): {shown}",
            stacklevel=3,
        )


def _warn_bit_depths(dtypes: dict[np.dtype, Path]) -> None:
    """Warn when plates store pixels of different types (uint8 and uint16) for one scale.

    One intensity scale for all cells is set by the brightest: an 8-bit plate's cells
    (0-255) beside a 16-bit plate's (up to 65535) reach the network nearly black. Not an
    error: a 16-bit file may hold 8-bit values.
    """
    if len(dtypes) > 1:
        kinds = ", ".join(f"{np.dtype(t).name} ({plate})" for t, plate in dtypes.items())
        warnings.warn(
            f"the plates store different pixel types: {kinds}; one intensity scale for all "
            "cells ('intensity: screen') is set by the brightest, so cells of the fewer bits "
            "look nearly black to the network. Train with '--intensity cell' (each cell "
            "scaled by its own range), or on plates of one bit depth",
            stacklevel=3,
        )


def _candidates(
    positions: list[PositionKey], mapping: PositionMapping | None, config: TrainConfig
) -> list[bool]:
    """Whether training may draw each position's cells: all, or the mapping's controls."""
    if config.train_on == "all" or mapping is None:
        return [True] * len(positions)
    return [(i := mapping.lookup(key)) is not None and i.is_control for key in positions]


def _rows_of_positions(drawn: np.ndarray, counts: list[int]) -> list[np.ndarray]:
    """The drawn global indices split into each position's rows."""
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return [
        drawn[(drawn >= starts[i]) & (drawn < starts[i + 1])] - starts[i]
        for i in range(len(counts))
    ]


def plate_training_crops(
    plates: list[Path],
    config: TrainConfig,
    mapping_path: str | os.PathLike | None = None,
    object_name: str | None = None,
    channels: Sequence[str | int] | None = None,
    control_token: str = "neg",
) -> tuple[CropSet, PositionMapping | None, int]:
    """The crops of the cells training draws from several plates, one position at a time.

    One seeded draw of at most ``config.samples`` cells over every plate's candidates, so
    each plate contributes in proportion to its cells; only the drawn cells are cut, and
    memory holds them, not the screen.

    Parameters
    ----------
    plates : list of Path
        CellH5 files (:func:`~napari_cellae.pipeline.plates.plate_files`).
    config : TrainConfig
    mapping_path : path-like, optional
        One mapping for every plate; each plate must hold the positions it names.
    object_name : str, optional
        Default: the first plate's default object; every plate must have it.
    channels : sequence of str or int, optional
        As in the first plate (default: the object's channel); every plate must have the
        same channel names, in any order.
    control_token : str

    Returns
    -------
    (CropSet, PositionMapping or None, int)
        The drawn cells' crops at the network's size (plates named alike in different
        files renamed, as :func:`~napari_cellae.pipeline.plate_cells.distinct_keys` does),
        the mapping, and the number of cells in all plates.

    Raises
    ------
    ValueError
        Naming the plate: the mapping does not fit it, it lacks the object or a channel,
        its images are smaller than the crop box; or no plate has objects, or the mapping
        marks no position with objects a control.
    """
    from napari_cellae.core.crops import collect_crops
    from napari_cellae.core.resample import to_network_size
    from napari_cellae.pipeline.plate_cells import distinct_keys
    from napari_cellae.pipeline.steps import (
        load_mapping,
        resolve_channels,
        resolve_object,
        warn_crops,
    )

    mapping, names = None, channels
    channels_of: dict[Path, list[int]] = {}
    sources: list[Path] = []
    positions: list[PositionKey] = []
    counts: list[int] = []
    dtypes: dict[np.dtype, Path] = {}  # each pixel type and the first plate storing it
    for plate in plates:
        with CellH5(plate) as ch5:
            if not channels_of:  # the first plate sets the mapping, object and channels
                mapping = load_mapping(mapping_path, ch5, control_token)
                object_name = resolve_object(ch5, object_name)
                first = resolve_channels(ch5, object_name, channels)
                name_of = {c.index: c.name for c in ch5.channels}
                names = [name_of[i] for i in first]
            elif mapping is not None:
                mapping.check(ch5.positions, ch5.path)
            resolve_object(ch5, object_name)  # every plate must have the same object ...
            channels_of[plate] = resolve_channels(ch5, object_name, names)  # ... and channels
            for key in ch5.positions:
                if n := ch5.object_count(key, object_name):
                    _check_box(ch5, key, config.crop_size)
                    dtypes.setdefault(ch5.dtype(key), plate)
                    sources.append(plate)
                    positions.append(key)
                    counts.append(n)
    where = f"{len(plates)} plates ({plates[0]}, ...)"
    if not positions:
        raise ValueError(f"{where}: no '{object_name}' objects found in any position")
    _warn_empty(plates, set(sources), object_name)
    if config.intensity == "screen":
        _warn_bit_depths(dtypes)
    candidate = _candidates(positions, mapping, config)
    if not any(candidate):
        raise ValueError(
            f"{mapping.path}: no control position among the {len(positions)} positions "
            f"with objects in {where}; mark controls in the mapping (Group column) or train "
            "on all positions"
        )
    drawn = draw_training(_candidate_rows(counts, candidate), config.samples, config.seed)
    keys = distinct_keys(plates, sources, positions)
    rows_of = _rows_of_positions(drawn, counts)
    parts = []
    for plate in plates:
        with CellH5(plate) as ch5:
            for i in (i for i, source in enumerate(sources) if source == plate):
                if len(rows_of[i]):
                    part = collect_crops(
                        ch5,
                        object_name,
                        config.crop_size,
                        channels_of[plate],
                        [positions[i]],
                        config.mask,
                        [rows_of[i]],
                    )
                    parts.append(replace(part, positions=[keys[i]]))
    crops = concat_crops(parts, keys)
    crops = replace(crops, source=Path(os.path.commonpath([str(p) for p in plates])))
    warn_crops(crops, object_name, where)
    return to_network_size(crops, config.network_size), mapping, int(sum(counts))
