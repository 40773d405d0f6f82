"""Glue of the whole run: CellH5 file -> crops -> training crops -> model -> features -> .hdf.

Shared by the ``cellae`` command and the napari widget so both behave the same. Every
step is a small function; long steps accept a callback (or are generators) and never
print. Errors a user can cause are ``ValueError`` (``CellH5Error`` is one) whose message
names the file and what is wrong.

Typical use::

    with open_cellh5(path) as ch5:
        mapping = load_mapping(mapping_path, ch5)
        obj = resolve_object(ch5, None)
        channels = resolve_channels(ch5, obj, None)
        crops = collect(ch5, obj, config.crop_size, channels)
        trainer = make_trainer(crops, mapping, config)
        for report in trainer.run():
            ...
        trained = trainer.result()
        features = encode_crops(trained, crops)
        write_features(out, crops, features, mapping, trained)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.io.cellh5 import CellH5, CellH5Error

if TYPE_CHECKING:
    from napari_cellae.core.crops import CropSet
    from napari_cellae.core.training import EpochReport, TrainConfig, TrainedModel, Trainer
    from napari_cellae.io.mapping import PositionMapping

__all__ = [
    "EncodeResult",
    "TrainResult",
    "check_model_fits",
    "collect",
    "encode_crops",
    "load_mapping",
    "make_trainer",
    "open_cellh5",
    "resolve_channels",
    "resolve_object",
    "run_encode",
    "run_train",
    "select_training",
    "write_features",
]


def open_cellh5(path: str | os.PathLike) -> CellH5:
    """Open a CellH5 file read-only (use as a context manager).

    Raises
    ------
    CellH5Error
        Naming the file, if it is missing or not a valid CellH5 file.
    """
    return CellH5(path)


def load_mapping(
    path: str | os.PathLike | None, cellh5: CellH5, control_token: str = "neg"
) -> PositionMapping | None:
    """Read a position mapping and check it belongs to ``cellh5``.

    Parameters
    ----------
    path : path-like or None
        Mapping file; None means "no mapping" (every position is its own condition).
    cellh5 : CellH5
        The screen the mapping must describe.
    control_token : str
        Value of the ``Group`` column that marks negative controls.

    Returns
    -------
    PositionMapping or None

    Raises
    ------
    ValueError
        If the file cannot be read, or names positions that ``cellh5`` does not hold
        (usually the mapping of another plate).
    """
    if path is None:
        return None
    from napari_cellae.io.mapping import read_mapping

    mapping = read_mapping(path, control_token=control_token)
    mapping.check(cellh5.positions, cellh5.path)
    return mapping


def resolve_object(cellh5: CellH5, name: str | None) -> str:
    """The object type to crop around: ``name`` if the file has it, else the default.

    Raises
    ------
    CellH5Error
        If ``name`` is not an object of the file (lists the available ones).
    """
    if name is None:
        return cellh5.default_object
    if name not in cellh5.object_names:
        known = ", ".join(cellh5.object_names) or "none"
        raise CellH5Error(f"{cellh5.path}: has no object '{name}' (objects in this file: {known})")
    return name


def resolve_channels(
    cellh5: CellH5, object_name: str, channels: Sequence[str | int] | None
) -> list[int]:
    """Raw channel indices from names or indices; default: the object's own channel.

    Parameters
    ----------
    cellh5 : CellH5
    object_name : str
    channels : sequence of str or int, or None
        Channel names (as in the file) or indices (``"0"`` works too).

    Returns
    -------
    list of int

    Raises
    ------
    CellH5Error
        If a channel is not in the file (lists the available ones).
    """
    if not channels:
        return [cellh5.object_channel(object_name)]
    by_name = {c.name: c.index for c in cellh5.channels}
    out: list[int] = []
    for spec in channels:
        text = str(spec)
        if text in by_name:
            index = by_name[text]
        elif text.lstrip("-").isdigit() and 0 <= int(text) < len(cellh5.channels):
            index = int(text)
        else:
            known = ", ".join(f"{c.index}={c.name}" for c in cellh5.channels)
            raise CellH5Error(f"{cellh5.path}: has no channel '{text}' (channels: {known})")
        if index in out:
            raise ValueError(f"channel '{text}' is given twice")
        out.append(index)
    return out


def collect(
    cellh5: CellH5,
    object_name: str,
    size: int,
    channels: list[int],
    positions: list | None = None,
) -> CropSet:
    """Crop a ``size`` x ``size`` window around every object (all positions and frames).

    Raises
    ------
    ValueError
        If the crop is larger than the images or the file holds no objects.
    """
    from napari_cellae.core.crops import collect_crops

    crops = collect_crops(cellh5, object_name, size, channels=channels, positions=positions)
    if len(crops) == 0:
        raise CellH5Error(f"{cellh5.path}: no '{object_name}' objects found in any position")
    return crops


def select_training(
    crops: CropSet, mapping: PositionMapping | None, train_on: str, samples: int, seed: int = 0
) -> np.ndarray:
    """Indices of the crops to train on: controls (or all), at most ``samples`` of them.

    A random (seeded) subset is drawn when there are more candidates than ``samples``,
    so every position contributes in proportion to its cell count.

    Returns
    -------
    ndarray of int64, sorted
    """
    from napari_cellae.core.training import training_indices

    idx = np.asarray(training_indices(crops, mapping, train_on), dtype=np.int64)
    if len(idx) == 0:
        raise ValueError(f"{crops.source}: no cells to train on (train_on={train_on!r})")
    if samples and len(idx) > samples:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(idx, size=samples, replace=False))
    return idx


def make_trainer(crops: CropSet, mapping: PositionMapping | None, config: TrainConfig) -> Trainer:
    """Build a :class:`~napari_cellae.core.training.Trainer` on the training crops of ``crops``.

    Iterate ``trainer.run()`` for epoch reports; ``trainer.stop()`` ends early.

    Raises
    ------
    ValueError
        If the architecture does not fit the crop size or there is nothing to train on.
    """
    from napari_cellae.core.architecture import check_architecture
    from napari_cellae.core.training import Trainer

    check_architecture(config.architecture, config.crop_size)
    if crops.crops.shape[-1] != config.crop_size:
        raise ValueError(
            f"crops are {crops.crops.shape[-1]} px but the configuration asks for "
            f"{config.crop_size} px"
        )
    idx = select_training(crops, mapping, config.train_on, config.samples, config.seed)
    trainer = Trainer(
        config,
        np.ascontiguousarray(crops.crops[idx]),
        channel_names=list(crops.channel_names),
        object_name=crops.object_name,
        source_indices=idx,  # which crops were used, for reports and the widget
    )
    return trainer


def check_model_fits(
    trained: TrainedModel, cellh5: CellH5, model_path=None
) -> tuple[str, list[int]]:
    """Object and channel indices of ``cellh5`` that a trained model should be applied to.

    Returns
    -------
    (str, list of int)

    Raises
    ------
    ValueError
        If the file lacks the model's object or channels, or its images are smaller than
        the model's crop size.
    """
    where = f"model {model_path}" if model_path else "the model"
    if trained.object_name not in cellh5.object_names:
        known = ", ".join(cellh5.object_names) or "none"
        raise ValueError(
            f"{cellh5.path}: {where} was trained on objects '{trained.object_name}', "
            f"which this file does not have (objects: {known})"
        )
    by_name = {c.name: c.index for c in cellh5.channels}
    missing = [name for name in trained.channel_names if name not in by_name]
    if missing:
        known = ", ".join(by_name)
        raise ValueError(
            f"{cellh5.path}: {where} was trained on channel(s) {', '.join(missing)}, "
            f"which this file does not have (channels: {known})"
        )
    channels = [by_name[name] for name in trained.channel_names]
    size = trained.config.crop_size
    for key in cellh5.positions:
        _, _, _, h, w = cellh5.image_shape(key)
        if size > h or size > w:
            raise ValueError(
                f"{cellh5.path}: {where} uses {size} px crops but position {key.label} "
                f"images are only {h}x{w} px"
            )
    return trained.object_name, channels


def encode_crops(
    trained: TrainedModel,
    crops: CropSet,
    batch_size: int = 512,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Learned features of every crop, float32 (N, F), CellH5 order."""
    from napari_cellae.core.features import encode

    trained.check_compatible(crops.crops.shape[-1], crops.crops.shape[1])
    return encode(trained, crops.crops, batch_size=batch_size, progress=progress)


def write_features(
    path: str | os.PathLike,
    crops: CropSet,
    features: np.ndarray,
    mapping: PositionMapping | None,
    trained: TrainedModel | None = None,
) -> Path:
    """Write the CellCognition Explorer ``.hdf`` (thumbnails scaled like the model's input)."""
    from napari_cellae.export.explorer import write_explorer_hdf

    norm = trained.normalisation if trained is not None else None
    return write_explorer_hdf(path, crops, features, mapping, normalisation=norm)


@dataclass
class TrainResult:
    """What :func:`run_train` produced."""

    trained: TrainedModel
    reports: list[EpochReport] = field(default_factory=list)
    crops: CropSet | None = None
    mapping: PositionMapping | None = None
    n_training: int = 0
    model_path: Path | None = None
    interrupted: bool = False


@dataclass
class EncodeResult:
    """What :func:`run_encode` produced."""

    features: np.ndarray
    crops: CropSet
    path: Path


def run_train(
    cellh5_path: str | os.PathLike,
    config: TrainConfig,
    mapping_path: str | os.PathLike | None = None,
    object_name: str | None = None,
    channels: Sequence[str | int] | None = None,
    out: str | os.PathLike | None = None,
    control_token: str = "neg",
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_trainer: Callable[[Trainer], None] | None = None,
    keep_on_interrupt: bool = False,
) -> TrainResult:
    """Open a file, crop every object, train an autoencoder and optionally save it.

    Parameters
    ----------
    cellh5_path : path-like
    config : TrainConfig
    mapping_path : path-like, optional
        Needed for ``train_on="controls"``.
    object_name : str, optional
        Default: the file's default object.
    channels : sequence of str or int, optional
        Default: the object's segmentation channel.
    out : path-like, optional
        Save the model here.
    control_token : str
        ``Group`` value of negative controls in the mapping.
    on_epoch : callable, optional
        Called with every :class:`~napari_cellae.core.training.EpochReport`.
    on_trainer : callable, optional
        Called with the trainer before training starts (e.g. to keep it for ``stop()``).
    keep_on_interrupt : bool
        On Ctrl-C (KeyboardInterrupt) keep the model of the finished epochs and return it
        with ``interrupted=True`` instead of raising.

    Returns
    -------
    TrainResult
        The model, all epoch reports and the crops (for encoding right away).

    Raises
    ------
    ValueError
        User errors (file, mapping, options). ``TrainingDiverged`` if the loss explodes.
    """
    with open_cellh5(cellh5_path) as ch5:
        mapping = load_mapping(mapping_path, ch5, control_token)
        obj = resolve_object(ch5, object_name)
        chans = resolve_channels(ch5, obj, channels)
        crops = collect(ch5, obj, config.crop_size, chans)
    trainer = make_trainer(crops, mapping, config)
    if on_trainer is not None:
        on_trainer(trainer)
    reports = []
    interrupted = False
    try:
        for report in trainer.run():
            reports.append(report)
            if on_epoch is not None:
                on_epoch(report)
    except KeyboardInterrupt:
        if not keep_on_interrupt:
            raise
        interrupted = True
    n_training = len(trainer.source_indices)
    result = TrainResult(trainer.result(), reports, crops, mapping, n_training)
    result.interrupted = interrupted
    if out is not None:
        result.model_path = save_model(result.trained, out)
    return result


def save_model(trained: TrainedModel, path: str | os.PathLike) -> Path:
    """Save a model, turning file-system errors into a ValueError naming the path."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder, expected a file name")
    if not path.parent.is_dir():
        raise ValueError(f"cannot write {path}: folder {path.parent} does not exist")
    try:
        trained.save(path)
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def run_encode(
    cellh5_path: str | os.PathLike,
    trained: TrainedModel,
    out: str | os.PathLike,
    mapping_path: str | os.PathLike | None = None,
    control_token: str = "neg",
    batch_size: int = 512,
    progress: Callable[[int, int], None] | None = None,
    model_path: str | os.PathLike | None = None,
) -> EncodeResult:
    """Encode every object of a file with a trained model and write the Explorer ``.hdf``.

    The model's crop size, object and channels are used; an error says if they do not
    fit the file.
    """
    with open_cellh5(cellh5_path) as ch5:
        mapping = load_mapping(mapping_path, ch5, control_token)
        obj, chans = check_model_fits(trained, ch5, model_path)
        crops = collect(ch5, obj, trained.config.crop_size, chans)
    features = encode_crops(trained, crops, batch_size=batch_size, progress=progress)
    path = write_features(out, crops, features, mapping, trained)
    return EncodeResult(features, crops, path)
