"""Training crops drawn from several plates at once, in bounded memory.

``cellae train a.ch5 b.ch5`` (or a folder of plates): every plate's positions are counted
from their object tables (no pixels), one seeded draw of at most ``samples`` cells is made
over all of them, so each plate contributes in proportion to its cells, and only the drawn
cells are cut, one position at a time (:mod:`napari_cellae.pipeline.sampling`).

The plates are taken in one order whatever order they are given in (:func:`plate_order`),
so ``cellae train a.ch5 b.ch5`` and ``cellae train b.ch5 a.ch5`` train the same model.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.core.listing import first_few
from napari_cellae.io.atomic import resolved
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.mapping_fit import check_fit
from napari_cellae.pipeline.crop_notes import named, warn_crops
from napari_cellae.pipeline.plates import distinct_keys, warn_unmapped, warn_unused_plates
from napari_cellae.pipeline.sampling import (
    candidate_positions,
    candidate_rows,
    concat_crops,
    draw_training,
    rows_of_positions,
)
from napari_cellae.pipeline.selection import plate_channels
from napari_cellae.pipeline.steps import load_mapping

if TYPE_CHECKING:
    from napari_cellae.core.config import TrainConfig
    from napari_cellae.core.crops import CropSet
    from napari_cellae.io.cellh5 import PositionKey
    from napari_cellae.io.mapping import PositionMapping

__all__ = ["plate_order", "plate_training_crops"]


def plate_order(plates: Sequence[Path]) -> list[Path]:
    """The plates in the order training reads them, whatever order they were given in.

    By the parts of each file's real path (links and ``..`` resolved, so that two spellings
    of one file sort alike), compared as text: the first plate gives the object, the
    channels and the fitted crop box, and the cells are drawn and trained on in this order,
    so the given order changed the model. Plates of one file name in different folders
    come out by their folders; a folder's plates (its sub-folders' and its loose files)
    by their paths too, whatever order
    :func:`~napari_cellae.pipeline.plates.plate_files` listed them in.

    Parameters
    ----------
    plates : sequence of Path
        Distinct CellH5 files (:func:`~napari_cellae.pipeline.plates.plate_files`).

    Returns
    -------
    list of Path
        ``plates`` as given (each path unchanged), reordered.
    """
    return sorted(plates, key=lambda plate: resolved(Path(plate)).parts)


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
        CellH5 files (:func:`~napari_cellae.pipeline.plates.plate_files`), in any order:
        read in :func:`plate_order`'s (the first of it gives the default object and
        channels), positions in each file's order, rows in each position's.
    config : TrainConfig
    mapping_path : path-like, optional
        One mapping for every plate; each must hold what its rows (and plate-less ones) name.
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
        files renamed, as :func:`~napari_cellae.pipeline.plates.distinct_keys` does),
        the mapping, and the number of cells in all plates.

    Raises
    ------
    ValueError
        Naming the plate: the mapping does not fit it, it lacks the object or a channel,
        its images are smaller than the crop box; or no plate has objects, or the mapping
        marks no position with objects a control.
    """
    from napari_cellae.core.crops import check_box, collect_crops
    from napari_cellae.core.resample import to_network_size

    plates = plate_order(plates)  # the model must not depend on the order given
    mapping, names = None, None
    channels_of: dict[Path, list[int]] = {}
    sources: list[Path] = []
    positions: list[PositionKey] = []  # with objects
    held: list[PositionKey] = []  # every position, for warn_unmapped
    counts: list[int] = []
    dtypes: dict[np.dtype, Path] = {}  # each pixel type and the first plate storing it
    image_side: int | None = None
    for plate in plates:
        with CellH5(plate) as ch5:
            if not channels_of:  # the first plate sets the mapping, object and channels
                mapping = load_mapping(mapping_path, ch5, control_token, warn=False)
            elif mapping is not None:
                check_fit(mapping, ch5.positions, ch5.path)
            # every plate must have the same object and channels, by name
            object_name, names, channels_of[plate] = plate_channels(
                ch5, object_name, channels, names, plates[0]
            )
            held += ch5.positions
            for key in ch5.positions:
                if n := ch5.object_count(key, object_name):
                    check_box(ch5, key, config.crop_size)
                    # the largest box any advice may name (the joined crops have no file)
                    side = min(ch5.image_shape(key)[-2:])
                    image_side = side if image_side is None else min(image_side, side)
                    dtypes.setdefault(ch5.dtype(key), plate)
                    sources.append(plate)
                    positions.append(key)
                    counts.append(n)
    where = f"{len(plates)} plates ({plates[0]}, ...)"
    if not positions:
        raise ValueError(f"{where}: no '{object_name}' objects found in any position")
    _warn_empty(plates, set(sources), object_name)
    warn_unused_plates(mapping, positions)
    warn_unmapped(mapping, held)
    if config.intensity == "screen":
        _warn_bit_depths(dtypes)
    candidate = candidate_positions(positions, mapping, config)
    if not any(candidate):
        raise ValueError(
            f"{mapping.path}: no control position among the {len(positions)} positions "
            f"with objects in {where}: {mapping.controls_hint()}, or train on all positions"
        )
    drawn = draw_training(candidate_rows(counts, candidate), config.samples, config.seed)
    keys = distinct_keys(plates, sources, positions)
    rows_of = rows_of_positions(drawn, counts)
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
                    parts.append(named(part, keys[i]))
    crops = concat_crops(parts, keys)
    crops = replace(crops, source=Path(os.path.commonpath([str(p) for p in plates])))
    warn_crops(crops, object_name, where, with_plates=True, image_side=image_side)
    return to_network_size(crops, config.network_size), mapping, int(sum(counts))


def _warn_empty(plates: list[Path], with_objects: set[Path], object_name: str) -> None:
    """Name the plates without objects: training went on without them, and the summary
    counted the plates that gave cells, as though the others had not been given."""
    empty = [str(plate) for plate in plates if plate not in with_objects]
    if empty:
        shown = first_few(empty, 4)
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
