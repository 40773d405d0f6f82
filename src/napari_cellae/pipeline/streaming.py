"""Encode whole screens in bounded memory: one position at a time, appended to the output.

``cellae encode`` runs here. The inputs (CellH5 files, CellH5 folders, folders of plates) are
planned into one task per position with objects; each task crops its position, encodes it
and returns the rows; the rows are appended to the Explorer ``.hdf`` in task order
(:class:`~napari_cellae.export.explorer_stream.ExplorerWriter`). Only a few positions are in
memory at once, never all crops. Tasks run here in turn or on a Dask cluster (:mod:`~.distributed`).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from napari_cellae.core.listing import first_few
from napari_cellae.io.cellh5 import CellH5, CellH5Error, PositionKey
from napari_cellae.io.locate import input_files
from napari_cellae.io.mapping_fit import check_fit
from napari_cellae.pipeline.crop_notes import CropNotes, named
from napari_cellae.pipeline.encode_tasks import EncodedPosition, PositionTask
from napari_cellae.pipeline.open_files import close_open_files
from napari_cellae.pipeline.plates import plate_files, warn_empty, warn_unmapped, warn_unused_plates
from napari_cellae.pipeline.steps import check_model_fits, check_outputs, load_mapping

if TYPE_CHECKING:
    from napari_cellae.core.model_file import TrainedModel
    from napari_cellae.io.mapping import PositionMapping

__all__ = [
    "EncodePlan",
    "EncodedPosition",
    "PositionTask",
    "StreamResult",
    "close_open_files",
    "encode_position",
    "encode_serial",
    "encode_stream",
    "encoded_positions",
    "plan_encode",
]


@dataclass
class EncodePlan:
    """Everything decided before any crop is read.

    Attributes
    ----------
    tasks : list of PositionTask
        Positions with objects, in output order (inputs as given, positions in file order).
    plates : list of Path
        The CellH5 files.
    mapping : PositionMapping or None
    inputs : list of Path
        Every input file (plates with their linked files, mapping, model); no output may
        replace one.
    """

    tasks: list[PositionTask]
    plates: list[Path]
    mapping: PositionMapping | None
    inputs: list[Path]

    def distinct_positions(self) -> list[PositionKey]:
        """Every task's position, its plate renamed where files share a plate name
        (:func:`~napari_cellae.pipeline.plates.distinct_keys`)."""
        from napari_cellae.pipeline.plates import distinct_keys

        sources = [task.source for task in self.tasks]
        return distinct_keys(self.plates, sources, [task.position for task in self.tasks])

    @property
    def n_cells(self) -> int:
        """Cells in all tasks."""
        return sum(t.n_cells for t in self.tasks)


@dataclass
class StreamResult:
    """What a streaming encode wrote.

    Attributes
    ----------
    path : Path
        The Explorer ``.hdf`` file.
    n_cells, n_positions, n_features : int
    n_plates : int
        Plates that gave cells (the position files of one plate count once).
    seconds : float
        Wall time of the encoding (planning included).
    """

    path: Path
    n_cells: int
    n_positions: int
    n_plates: int
    n_features: int
    seconds: float


def plan_encode(
    paths: Sequence[str | os.PathLike],
    trained: TrainedModel,
    out: str | os.PathLike,
    mapping_path: str | os.PathLike | None = None,
    control_token: str = "neg",
    model_path: str | os.PathLike | None = None,
    thumbnails: bool = True,
    what: str = "features file",
) -> EncodePlan:
    """Check inputs and output, and list the positions to encode (reads no pixels).

    Parameters
    ----------
    paths : sequence of path-like
        CellH5 files or folders (see :func:`~napari_cellae.pipeline.plates.plate_files`).
    trained : TrainedModel
    out : path-like
        The output, checked against every input file before any work.
    mapping_path : path-like, optional
        One mapping for every plate; each must hold what its rows (and plate-less ones) name.
    control_token : str
    model_path : path-like, optional
        Default: where ``trained`` was loaded from.
    thumbnails : bool
        Whether the tasks return thumbnails (:attr:`PositionTask.thumbnails`).
    what : str
        What ``out`` is, for the output check ("features file", "AnnData file").

    Returns
    -------
    EncodePlan

    Raises
    ------
    ValueError
        Naming the file and problem (a plate lacks the model's object or channels or is
        smaller than the crops, the mapping does not fit, the output is an input, no objects).
    """
    plates = plate_files(paths)
    model_path = model_path if model_path is not None else trained.path
    inputs = [Path(p) for p in paths] + [f for p in plates for f in input_files(p)]
    inputs += [Path(p) for p in (mapping_path, model_path) if p is not None]
    check_outputs([(out, what)], inputs)
    tasks: list[PositionTask] = []
    mapping, held = None, []  # held: every position of every plate, with objects or not
    for plate in plates:
        with CellH5(plate) as ch5:
            if mapping is None:  # read once, checked against every plate; warned below
                mapping = load_mapping(mapping_path, ch5, control_token, warn=False)
            else:
                check_fit(mapping, ch5.positions, ch5.path)
            held += ch5.positions
            obj, channels = check_model_fits(trained, ch5, model_path)
            before = len(tasks)
            box = trained.config.crop_size  # cut at the cell size, then resampled
            for key in ch5.positions:
                if n := ch5.object_count(key, obj):
                    task = (len(tasks), plate, key, obj, tuple(channels), box, n, thumbnails)
                    tasks.append(PositionTask(*task))
            if len(tasks) == before and len(plates) > 1:  # alone, it is the error below
                warnings.warn(f"{plate}: no '{obj}' objects in any position; skipped", stacklevel=2)
    warn_unused_plates(mapping, [task.position for task in tasks])
    warn_unmapped(mapping, held, plates[0] if len(plates) == 1 else None)
    warn_empty(mapping, held, [task.position for task in tasks])
    if not tasks:
        shown = first_few([str(p) for p in plates], 3)
        raise CellH5Error(f"{shown}: no '{trained.object_name}' objects found in any position")
    return EncodePlan(tasks=tasks, plates=plates, mapping=mapping, inputs=inputs)


def encode_position(
    task: PositionTask, trained: TrainedModel, batch_size: int = 512
) -> EncodedPosition:
    """Crop and encode the objects of one position (runs wherever the task is sent).

    Parameters
    ----------
    task : PositionTask
    trained : TrainedModel
    batch_size : int
        Cells encoded at once.

    Returns
    -------
    EncodedPosition
        Thumbnails instead of raw crops (or no pixels), so results travel small; its
        ``scale`` counts its pixels on the model's scale, for the run to judge.

    Raises
    ------
    ValueError
        Naming the file and position (missing, damaged, changed since planning).
    """
    from napari_cellae.core.features import encode
    from napari_cellae.core.scale_check import ScaleCheck
    from napari_cellae.pipeline.position_batches import crop_task, encoded_task

    crops = crop_task(task, trained)
    scale = ScaleCheck(trained.normalisation)  # judged with the run's other positions
    learned = encode(trained, crops.crops, batch_size=batch_size, scale_check=scale)
    return encoded_task(task, crops, learned, trained, scale)


def encode_serial(
    tasks: Iterable[PositionTask], trained: TrainedModel, batch_size: int = 512
) -> Iterator[EncodedPosition]:
    """Encode tasks one after the other in this process, lazily: the cells of small
    positions together, in full batches (:mod:`~napari_cellae.pipeline.position_batches`)."""
    from napari_cellae.pipeline.position_batches import encode_batched

    try:
        yield from encode_batched(tasks, trained, batch_size)
    finally:
        close_open_files()


def encoded_positions(
    plan: EncodePlan,
    trained: TrainedModel,
    batch_size: int = 512,
    progress: Callable[[int, int], None] | None = None,
    runner: Callable[[list[PositionTask], TrainedModel, int], Iterator[EncodedPosition]]
    | None = None,
) -> Iterator[EncodedPosition]:
    """Run a plan's tasks and yield each position's cells in task order.

    Shared by the Explorer ``.hdf`` (:func:`encode_stream`) and the AnnData output
    (:func:`~napari_cellae.pipeline.cells.run_encode_cells`). Warnings raised on workers are
    shown once each; after the last position, how the run's pixels sit on the model's
    intensity scale (all positions' :class:`~napari_cellae.core.scale_check.ScaleCheck`
    summed: one judgement, however the run was split) and what the run's crops call for
    (:class:`~napari_cellae.pipeline.crop_notes.CropNotes`: positions without label images,
    cells cut off by the model's box or clipped at the camera's maximum, ...).
    """
    from napari_cellae.core.scale_check import ScaleCheck

    total = len(plan.tasks)
    if progress is not None:
        progress(0, total)
    notes, shown, keys = CropNotes(), set(), plan.distinct_positions()
    scale = ScaleCheck(trained.normalisation)
    results = (runner or encode_serial)(plan.tasks, trained, batch_size)
    try:
        for done, encoded in enumerate(results, start=1):
            if encoded.task.index != done - 1:
                raise RuntimeError(f"task {encoded.task.index} came back as number {done}")
            for text in encoded.warned:
                if text not in shown:  # once per run, not once per worker or position
                    shown.add(text)
                    warnings.warn(text, UserWarning, stacklevel=2)
            if encoded.scale is not None:
                scale.merge(encoded.scale)
            notes.add(named(encoded.crops, keys[encoded.task.index]))  # plate1/C03_1
            yield encoded
            if progress is not None:
                progress(done, total)
    finally:
        if (close := getattr(results, "close", None)) is not None:
            close()
    scale.warn(trained.channel_names)
    source = plan.plates[0] if len(plan.plates) == 1 else None  # else positions of plates
    notes.warn(trained.object_name, plan.tasks[0].crop_size, source)


def encode_stream(
    paths: Sequence[str | os.PathLike],
    trained: TrainedModel,
    out: str | os.PathLike,
    mapping_path: str | os.PathLike | None = None,
    control_token: str = "neg",
    batch_size: int = 512,
    progress: Callable[[int, int], None] | None = None,
    model_path: str | os.PathLike | None = None,
    runner: Callable[[list[PositionTask], TrainedModel, int], Iterator[EncodedPosition]]
    | None = None,
) -> StreamResult:
    """Encode every object of the inputs and append them to an Explorer ``.hdf`` file.

    Parameters
    ----------
    paths : sequence of path-like
        CellH5 files or folders (see :func:`~napari_cellae.pipeline.plates.plate_files`).
    trained : TrainedModel
    out : path-like
        Written under a temporary name, renamed when complete: an error or Ctrl-C leaves
        nothing at ``out``.
    mapping_path : path-like, optional
    control_token : str
    batch_size : int
    progress : callable, optional
        ``progress(done, total)`` over positions.
    model_path : path-like, optional
    runner : callable, optional
        ``runner(tasks, trained, batch_size)`` yields one :class:`EncodedPosition` per task
        in task order; default: here, one after the other. See
        :func:`napari_cellae.pipeline.distributed.cluster_runner` for Dask.

    Returns
    -------
    StreamResult

    Warns
    -----
    UserWarning
        As :func:`encoded_positions`.

    Raises
    ------
    ValueError
        Naming the file and problem.
    """
    from napari_cellae.core.features import cell_feature_names
    from napari_cellae.export.explorer_stream import ExplorerWriter
    from napari_cellae.io.centres import position_labels

    t0 = time.perf_counter()
    plan = plan_encode(paths, trained, out, mapping_path, control_token, model_path)
    names, norm = cell_feature_names(trained), trained.normalisation
    writer = ExplorerWriter(out, plan.mapping, normalisation=norm, inputs=plan.inputs, names=names)
    labels, cells = position_labels(plan.distinct_positions()), 0  # plate1/C03_01 if several
    with writer:
        for encoded in encoded_positions(plan, trained, batch_size, progress, runner):
            writer.append(encoded.crops, encoded.features, [labels[encoded.task.index]])
            cells += len(encoded.crops)
    return StreamResult(
        path=writer.path,
        n_cells=cells,
        n_positions=len(plan.tasks),
        n_plates=len({key.plate for key in plan.distinct_positions()}),
        n_features=int(writer.n_features or 0),
        seconds=time.perf_counter() - t0,
    )
