"""Whole runs: train on a CellH5 file, or encode one with a trained model.

Each run checks its outputs against its inputs before any work, reports progress through
callbacks, and returns the one result type, :class:`~napari_cellae.pipeline.results.RunResult`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from napari_cellae.core.resample import to_network_size
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.locate import input_files
from napari_cellae.pipeline.crop_notes import warn_crops
from napari_cellae.pipeline.results import RunResult
from napari_cellae.pipeline.steps import (
    check_model_fits,
    check_outputs,
    crops_for,
    encode_crops,
    load_mapping,
    make_trainer,
    resolve_channels,
    resolve_object,
    write_features,
)

if TYPE_CHECKING:
    from napari_cellae.core.config import TrainConfig
    from napari_cellae.core.crops import CropSet
    from napari_cellae.core.model_file import TrainedModel
    from napari_cellae.core.trainer import EpochReport, Trainer
    from napari_cellae.io.mapping import PositionMapping

__all__ = [
    "encoded_result",
    "run_encode",
    "run_train",
    "training_crops",
    "training_inputs",
    "training_plates",
]


def training_crops(
    cellh5_path: str | os.PathLike | Sequence[str | os.PathLike],
    config: TrainConfig,
    mapping_path: str | os.PathLike | None = None,
    object_name: str | None = None,
    channels: Sequence[str | int] | None = None,
    control_token: str = "neg",
    only_drawn: bool = False,
) -> tuple[CropSet, PositionMapping | None, int]:
    """Open a file (or several plates) and its mapping and crop its objects as ``config``
    says.

    The first step of :func:`run_train` and of
    :func:`~napari_cellae.pipeline.torchrun.run_train_torchrun` (parameters as there).
    ``only_drawn``: crop only the cells training draws when it uses at most
    ``config.samples`` of more candidates (:mod:`napari_cellae.pipeline.sampling`); the
    last value returned is then the number of cells in the file, else ``len(crops)``.
    Several plates: always only the drawn cells
    (:func:`~napari_cellae.pipeline.plate_training.plate_training_crops`).
    """
    from napari_cellae.pipeline.plate_training import plate_training_crops
    from napari_cellae.pipeline.sampling import sampled_training_crops

    plates = training_plates(cellh5_path)
    if len(plates) > 1:
        return plate_training_crops(
            plates, config, mapping_path, object_name, channels, control_token
        )
    with CellH5(plates[0]) as ch5:
        mapping = load_mapping(mapping_path, ch5, control_token)
        obj = resolve_object(ch5, object_name)
        chans = resolve_channels(ch5, obj, channels)
        drawn = sampled_training_crops(ch5, obj, chans, mapping, config) if only_drawn else None
        if drawn is None:
            crops = crops_for(ch5, obj, chans, config)
            return crops, mapping, len(crops)
        warn_crops(drawn[0], obj, ch5.path)
    return to_network_size(drawn[0], config.network_size), mapping, drawn[1]


def training_plates(
    cellh5_path: str | os.PathLike | Sequence[str | os.PathLike],
) -> list[Path]:
    """The plates to train on: one CellH5 file or folder, or several (each a file, a plate
    folder or a folder of plates; :func:`~napari_cellae.pipeline.plates.plate_files`), in
    :func:`~napari_cellae.pipeline.plate_training.plate_order`'s order whatever order they
    are given in: the first gives the fitted crop box, the object and the channels."""
    from napari_cellae.pipeline.plate_training import plate_order
    from napari_cellae.pipeline.plates import plate_files

    paths = [cellh5_path] if isinstance(cellh5_path, str | os.PathLike) else list(cellh5_path)
    if not paths:
        raise ValueError("no CellH5 file given to train on")
    return plate_order(plate_files(paths))


def training_inputs(
    cellh5_path: str | os.PathLike | Sequence[str | os.PathLike],
    mapping_path: str | os.PathLike | None,
) -> list[Path]:
    """Every input file of a training run, for the output checks and the model's record."""
    return [f for plate in training_plates(cellh5_path) for f in input_files(plate)] + (
        [Path(mapping_path)] if mapping_path is not None else []
    )


def run_train(
    cellh5_path: str | os.PathLike | Sequence[str | os.PathLike],
    config: TrainConfig,
    mapping_path: str | os.PathLike | None = None,
    object_name: str | None = None,
    channels: Sequence[str | int] | None = None,
    out: str | os.PathLike | None = None,
    control_token: str = "neg",
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_trainer: Callable[[Trainer], None] | None = None,
    keep_on_interrupt: bool = False,
    only_drawn: bool = False,
) -> RunResult:
    """Open a file, crop every object, train an autoencoder and optionally save it.

    Parameters
    ----------
    cellh5_path : path-like or sequence of path-like
        A CellH5 file, or several plates (files, plate folders, folders of plates): one
        draw of training cells over all of them.
    config : TrainConfig
    mapping_path : path-like, optional
        Position mapping (one for every plate); without it every cell is trained on.
    object_name : str, optional
        Default: the file's default object.
    channels : sequence of str or int, optional
        Default: the object's segmentation channel.
    out : path-like, optional
        Save the model here (checked against the inputs before any work).
    control_token : str
        ``Group`` value of negative controls in the mapping.
    on_epoch : callable, optional
        Called with every :class:`~napari_cellae.core.trainer.EpochReport`.
    on_trainer : callable, optional
        Called with the trainer before training starts (e.g. to keep it for ``stop()``).
    keep_on_interrupt : bool
        On Ctrl-C (KeyboardInterrupt) keep the model of the finished epochs and return it
        with ``stopped=True`` instead of raising (raised all the same before the first
        epoch has finished: nothing is saved then).
    only_drawn : bool
        Crop only the cells training uses (bounded memory; the result's ``crops`` then hold
        just those, ``n_cells`` counts the file's). The model is the same.

    Returns
    -------
    RunResult
        The model, the epoch reports, the crops (for encoding right away), the numbers of
        trained and held-out cells.

    Raises
    ------
    ValueError
        User errors (file, mapping, options, output). ``TrainingDiverged`` if the loss
        explodes.
    """
    from napari_cellae.core.model_file import check_replaceable, save_model

    inputs = training_inputs(cellh5_path, mapping_path) if out is not None else []
    if out is not None:  # the plates' files are listed once, for the check and the model
        check_outputs([(out, "model")], inputs)
        check_replaceable(out)  # a model is never written over a file of another kind
    crops, mapping, n_cells = training_crops(
        cellh5_path, config, mapping_path, object_name, channels, control_token, only_drawn
    )
    trainer = make_trainer(crops, mapping, config)
    if on_trainer is not None:
        on_trainer(trainer)
    reports: list[EpochReport] = []
    stopped = False
    try:
        for report in trainer.run():
            reports.append(report)
            stopped = report.stopped
            if on_epoch is not None:
                on_epoch(report)
    except KeyboardInterrupt:
        # Before the first finished epoch there is nothing worth keeping: saving the
        # untrained network would replace a previous model under the same name.
        if not keep_on_interrupt or not reports:
            raise
        stopped = True
    trained = trainer.result()
    model_path = None
    if out is not None:
        model_path = save_model(trained, out, inputs)
    return RunResult(
        trained=trained,
        crops=crops,
        mapping=mapping,
        reports=reports,
        n_cells=n_cells,
        n_trained=trainer.n_train,
        n_held_out=trainer.n_held_out,
        model_path=model_path,
        stopped=stopped,
    )


def run_encode(
    cellh5_path: str | os.PathLike,
    trained: TrainedModel,
    out: str | os.PathLike,
    mapping_path: str | os.PathLike | None = None,
    control_token: str = "neg",
    batch_size: int = 512,
    progress: Callable[[int, int], None] | None = None,
    model_path: str | os.PathLike | None = None,
) -> RunResult:
    """Encode every object of a file with a trained model and write the Explorer ``.hdf``.

    The model's crop size, object and channels are used; an error says if they do not
    fit the file. ``out`` is checked against the inputs (file, mapping, model) first.

    Returns
    -------
    RunResult
        With ``features`` and ``features_path``.
    """
    model_path = model_path if model_path is not None else trained.path
    inputs = [cellh5_path, mapping_path, model_path]
    check_outputs([(out, "features file")], inputs)
    with CellH5(cellh5_path) as ch5:
        mapping = load_mapping(mapping_path, ch5, control_token)
        obj, chans = check_model_fits(trained, ch5, model_path)
        crops = crops_for(ch5, obj, chans, trained.config)
    result = encoded_result(trained, crops, mapping, model_path, batch_size, progress)
    result.features_path = write_features(
        out, crops, result.features, mapping, trained, input_files(cellh5_path)
    )
    return result


def encoded_result(
    trained: TrainedModel,
    crops: CropSet,
    mapping: PositionMapping | None,
    model_path: str | os.PathLike | None,
    batch_size: int = 512,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Encode ``crops`` and return them as the result of an encoding run (nothing written)."""
    features = encode_crops(trained, crops, batch_size=batch_size, progress=progress)
    return RunResult(
        trained=trained,
        crops=crops,
        mapping=mapping,
        features=features,
        model_path=Path(model_path) if model_path is not None else None,
    )
