"""What a run says about its cells once they are cropped.

Positions without label images (their cells segmented from the crops instead), objects
whose label is not in the label image, labels shared by several objects, cells cut off by
(or small in) the crop box, cells clipped at the camera's maximum, and cells whose crops
hold no signal. An in-memory run says
it for its crops (:func:`warn_crops`); a streamed one gathers it position by position and
says it once at the end (:class:`CropNotes`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.core.blank import warn_blank
from napari_cellae.core.masking import warn_shared_labels, warn_unlabelled, warn_unmatched
from napari_cellae.core.resample import cut_off, known_extents, larger_sides, warn_extents
from napari_cellae.core.saturation import clipped_counts, warn_clipped_counts

if TYPE_CHECKING:
    from napari_cellae.core.crops import CropSet
    from napari_cellae.io.cellh5 import PositionKey

__all__ = ["CropNotes", "named", "warn_crops"]

_SIZE_SAMPLE = 256  # cells per position whose size is checked against the box


def warn_crops(
    crops: CropSet,
    object_name: str,
    source: object,
    with_plates: bool | None = None,
    image_side: int | None = None,
) -> None:
    """Warn about the crops of a run (see the module's docstring).

    Parameters
    ----------
    crops : CropSet
        As cut, before any resampling.
    object_name : str
    source : path-like or None
        The file, named at the start of each message.
    with_plates : bool, optional
        Name positions with their plates (several plates); default: when ``source`` is None.
    image_side : int, optional
        The images' shorter side, which bounds the cell size advised for cut-off cells;
        default: read from ``crops.source`` where that is a file.
    """
    notes = CropNotes(
        sample=None, image_side=image_side
    )  # every cell's size: the crops are all in memory
    notes.add(crops)
    drawn_from = _file_sizes(crops, object_name)
    if drawn_from is not None:  # said of the file's objects: judged on them too
        notes.sizes = drawn_from
    notes.warn(object_name, crops.box, source, with_plates)


def _file_sizes(crops: CropSet, object_name: str) -> Counter[int] | None:
    """The sizes of a fair sample of the file's objects where ``crops`` are fewer than it
    holds (the cells training draws, ``samples``); None where they are all of them, or
    the crops' source is no file (several plates) or cannot be read now.

    The crop box warning speaks of the file's objects: judged on one drawn cell, it said
    '100 % are larger than the 16 px box, about 24 px would hold 95 %' of the demo's
    nuclei, 93 % and 40 px of all of them.
    """
    from napari_cellae.io.cellh5 import CellH5
    from napari_cellae.pipeline.cell_size import measured_extents

    source = Path(crops.source)
    if not source.is_file():
        return None
    try:
        with CellH5(source) as ch5:
            if sum(ch5.object_count(key, object_name) for key in ch5.positions) <= len(crops):
                return None
            extent = measured_extents(ch5, object_name)  # up to 24 positions, spread
    except (OSError, ValueError):  # moved or changed since it was cropped
        return None
    sides = [] if extent is None else extent.tolist()  # None: no bounding boxes stored
    return Counter(sides)


def named(crops: CropSet, key: PositionKey) -> CropSet:
    """One position's crops under ``key``, their notes (positions without label images,
    ...) too: a position of several plates under its name in the run, which tells plates
    named alike apart (:func:`~napari_cellae.pipeline.plates.distinct_keys`)."""

    def new(old: PositionKey) -> PositionKey:
        return key if old in crops.positions else old

    return replace(
        crops,
        positions=[new(p) for p in crops.positions],
        unlabelled_positions=[new(p) for p in crops.unlabelled_positions],
        unmatched_positions=[(new(p), n) for p, n in crops.unmatched_positions],
        shared_label_positions=[(new(p), n) for p, n in crops.shared_label_positions],
    )


@dataclass
class CropNotes:
    """:func:`warn_crops`'s notes gathered from the crops of one position after another.

    Per cell, nothing is kept: the cells' sizes as counts of each size (of at most
    ``sample`` cells per position), the clipped cells as counts of each full scale. A
    whole screen's notes stay a few kilobytes (one position's bounding boxes kept per
    position held every cell's, 24 bytes a cell with the clipped values).
    """

    sample: int | None = _SIZE_SAMPLE  # cells per position whose size is counted (None: all)
    unlabelled: list = field(default_factory=list)
    unmatched: list = field(default_factory=list)
    shared: list = field(default_factory=list)
    sizes: Counter[int] = field(default_factory=Counter)  # larger bbox side -> cells, see sample
    clipped: Counter[int] = field(default_factory=Counter)  # full scale -> cells clipped there
    blank: list[tuple[PositionKey, int, int]] = field(default_factory=list)  # blank, cells
    cells: int = 0
    image_side: int | None = None  # the images' shorter side (None: read from the sources)
    sources: set[Path] = field(default_factory=set)  # the files the crops came from

    def add(self, crops: CropSet) -> None:
        """Take note of one position's crops."""
        self.unlabelled += crops.unlabelled_positions
        self.unmatched += crops.unmatched_positions
        self.shared += crops.shared_label_positions
        sides, counts = np.unique(larger_sides(crops.bbox[: self.sample]), return_counts=True)
        self.sizes.update(dict(zip(sides.tolist(), counts.tolist(), strict=True)))
        self.clipped.update(clipped_counts(crops.clipped_at))
        self.cells += len(crops)
        if Path(crops.source).is_file():  # not the folder standing for several plates
            self.sources.add(Path(crops.source))
        for p in np.unique(crops.position_index[crops.blank]):
            rows = crops.position_index == p
            self.blank.append((crops.positions[p], int(crops.blank[rows].sum()), int(rows.sum())))

    def warn(
        self, object_name: str, box: int, source: object, with_plates: bool | None = None
    ) -> None:
        """Warn once for every position noted.

        Parameters
        ----------
        object_name : str
        box : int
            The crop box the cells were cut with.
        source : path-like or None
            The file, or None for several (the positions name their plates).
        with_plates : bool, optional
            Name positions with their plates; default: when ``source`` is None.
        """
        warn_unlabelled(self.unlabelled, object_name, source, with_plates)
        warn_unmatched(self.unmatched, object_name, source, with_plates)
        warn_shared_labels(self.shared, object_name, source, with_plates)
        extent = np.fromiter(self.sizes.elements(), np.int64)  # every counted cell's side
        extent = known_extents(extent)
        side = self.image_side
        if side is None and cut_off(extent, box) is not None:  # read where advice needs it
            side = _shorter_side(self.sources)
        warn_extents(extent, box, object_name, source, side)
        warn_clipped_counts(self.clipped, self.cells, source)
        warn_blank(self.blank, self.cells, object_name, source, with_plates)


def _shorter_side(paths: set[Path]) -> int | None:
    """The shorter image side over every position of ``paths`` (None: no file, or one
    that cannot be read now: the advice then goes without the bound)."""
    from napari_cellae.io.cellh5 import CellH5
    from napari_cellae.pipeline.cell_size import shorter_side

    sides = []
    for path in paths:
        try:
            with CellH5(path) as ch5:
                sides.append(shorter_side(ch5))
        except (OSError, ValueError):  # moved or changed since it was cropped
            return None
    return min(sides, default=None)
