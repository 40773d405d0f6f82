"""Encode the positions of a screen in full batches, however few cells each position holds.

Encoding one position per model call made a screen of small positions pay a call's fixed
costs (the model's channels_last copy, one round of torch's thread pool per layer on a
batch of a few dozen cells) for every position: 200 positions of 20 cells encoded at half
the rate of 2 positions of 2,000 (``benchmarks/bench_positions.py``). Here the
cells of consecutive positions are queued and encoded ``batch_size`` at a time; a position
is given back, in task order, once all its cells are encoded. A position of ``batch_size``
cells or more is encoded on its own, as before (its crops are not copied). Held at once:
fewer than ``batch_size`` queued cells besides the positions they belong to.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.io.cellh5 import CellH5Error
from napari_cellae.pipeline.encode_tasks import EncodedPosition, PositionTask
from napari_cellae.pipeline.open_files import open_cellh5

if TYPE_CHECKING:
    from napari_cellae.core.crops import CropSet
    from napari_cellae.core.model_file import TrainedModel
    from napari_cellae.core.scale_check import ScaleCheck

__all__ = ["crop_task", "encode_batched", "encoded_task"]


def crop_task(task: PositionTask, trained: TrainedModel) -> CropSet:
    """The cells of one task, cut as in training and resampled to the network's input.

    Raises
    ------
    ValueError
        Naming the file and position (missing, damaged, changed since planning).
    """
    from napari_cellae.core.crops import collect_crops
    from napari_cellae.core.resample import to_network_size

    crops = collect_crops(
        open_cellh5(task.source),
        task.object_name,
        task.crop_size,
        list(task.channels),
        positions=[task.position],
        mask=getattr(trained.config, "mask", "none"),  # hide neighbours as in training
    )
    if len(crops) != task.n_cells:
        raise CellH5Error(
            f"{task.where}: holds {len(crops)} objects, {task.n_cells} when the run started; "
            "was the file changed during the run?"
        )
    to_network_size(crops, trained.model.crop_size)  # as in training: crops_for
    return crops


def encoded_task(
    task: PositionTask,
    crops: CropSet,
    learned: np.ndarray,
    trained: TrainedModel,
    scale: ScaleCheck | None = None,
) -> EncodedPosition:
    """A task's result from its crops and learned features: outline measurements appended,
    the crops made thumbnails (or dropped: identities only); ``scale``: what the pixels
    encoded for it counted on the model's scale (:class:`EncodedPosition`)."""
    from napari_cellae.core.features import with_outline
    from napari_cellae.export.explorer import to_uint8

    features = with_outline(trained, learned, crops.morphology)
    if task.thumbnails:
        crops.crops = to_uint8(crops.crops, trained.normalisation)
    else:  # identities only
        crops.crops = np.empty((len(crops), crops.crops.shape[1], 0, 0), np.uint8)
    return EncodedPosition(task, crops, features, scale=scale)


@dataclass
class _Waiting:
    """A position cut, some of whose cells are still queued."""

    task: PositionTask
    crops: CropSet
    parts: list[np.ndarray] = field(default_factory=list)  # learned features so far
    done: int = 0


def encode_batched(
    tasks: Iterable[PositionTask], trained: TrainedModel, batch_size: int = 512
) -> Iterator[EncodedPosition]:
    """Encode tasks in this process, in task order, their cells in full batches.

    Parameters
    ----------
    tasks : iterable of PositionTask
    trained : TrainedModel
    batch_size : int
        Cells encoded at once.

    Yields
    ------
    EncodedPosition
        One per task, in task order, as soon as its cells are encoded; its ``scale``
        counts the pixels encoded since the one before (the run judges their sum once).
    """
    from napari_cellae.core.features import encode
    from napari_cellae.core.scale_check import ScaleCheck

    waiting: deque[_Waiting] = deque()
    queued: list[np.ndarray] = []  # crops not yet encoded, in task order
    n_queued = 0
    scale = ScaleCheck(trained.normalisation)  # since the last position given back

    def learn(cells: np.ndarray) -> np.ndarray:  # one line: its warnings are said once
        return encode(trained, cells, batch_size=batch_size, scale_check=scale)

    def done(task: PositionTask, crops: CropSet, learned: np.ndarray) -> EncodedPosition:
        nonlocal scale
        counted, scale = scale, ScaleCheck(trained.normalisation)
        return encoded_task(task, crops, learned, trained, counted)

    def run(n: int) -> Iterator[EncodedPosition]:
        """Encode the first ``n`` queued cells; give back the positions now complete."""
        nonlocal queued, n_queued
        if n:
            cells = np.concatenate(queued) if len(queued) > 1 else queued[0]
            learned = learn(cells[:n])
            rest = cells[n:]
            queued = [np.ascontiguousarray(rest)] if len(rest) else []  # a copy: frees cells
            n_queued -= n
            used = 0
            for entry in waiting:
                if used == n:
                    break
                take = min(len(entry.crops) - entry.done, n - used)
                if take:
                    entry.parts.append(learned[used : used + take])
                    entry.done += take
                    used += take
        while waiting and waiting[0].done == len(waiting[0].crops):
            entry = waiting.popleft()
            parts = entry.parts
            if not parts:  # no cells: features of none, as wide as the others
                learned = learn(entry.crops.crops)
            else:
                learned = np.concatenate(parts) if len(parts) > 1 else parts[0]
            yield done(entry.task, entry.crops, learned)

    for task in tasks:
        crops = crop_task(task, trained)
        other_kind = bool(queued) and queued[0].dtype != crops.crops.dtype  # plates of other bits
        if len(crops) >= batch_size or other_kind:
            yield from run(n_queued)  # the queue first, in task order
        if len(crops) >= batch_size:  # alone, as it always was
            learned = learn(crops.crops)
            yield done(task, crops, learned)
            continue
        waiting.append(_Waiting(task, crops))
        queued.append(crops.crops)
        n_queued += len(crops)
        if n_queued >= batch_size:
            yield from run(n_queued - n_queued % batch_size)
    yield from run(n_queued)
