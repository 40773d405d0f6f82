"""The steps of a run, in order: CellH5 file -> crops -> training crops -> model -> features.

Shared by the ``cellae`` command and the napari widget (whole runs: :mod:`.runs`). Long
steps take a callback and never print. User errors are ``ValueError`` (``CellH5Error`` too)
naming the file; outputs are checked against the inputs before any work and written through
:mod:`napari_cellae.io.atomic`. Typical use::

    with CellH5(path) as ch5:
        mapping = load_mapping(mapping_path, ch5)
        obj = resolve_object(ch5, None)
        channels = resolve_channels(ch5, obj, None)
        crops = crops_for(ch5, obj, channels, config)
    trainer = make_trainer(crops, mapping, config)
    reports = list(trainer.run())
    write_features(out, crops, encode_crops(trainer.result(), crops), mapping, trainer.result())
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.core.resample import to_network_size
from napari_cellae.io.atomic import check_distinct, check_output
from napari_cellae.io.cellh5 import CellH5, CellH5Error
from napari_cellae.io.locate import input_files
from napari_cellae.io.mapping import PositionMapping, read_mapping
from napari_cellae.io.mapping_fit import check_fit, open_run
from napari_cellae.pipeline.crop_notes import warn_crops
from napari_cellae.pipeline.plates import warn_unmapped
from napari_cellae.pipeline.sampling import draw_training
from napari_cellae.pipeline.selection import channels_named, resolve_channels, resolve_object

if TYPE_CHECKING:
    from napari_cellae.core.config import TrainConfig
    from napari_cellae.core.crops import CropSet
    from napari_cellae.core.model_file import TrainedModel
    from napari_cellae.core.trainer import Trainer

__all__ = [
    "cell_conditions",
    "check_model_fits",
    "check_outputs",
    "collect",
    "crops_for",
    "encode_crops",
    "load_mapping",
    "make_trainer",
    "resolve_channels",
    "resolve_object",
    "select_training",
    "training_indices",
    "write_features",
]


def check_outputs(
    outputs: Iterable[tuple[str | os.PathLike, str]],
    inputs: Iterable[str | os.PathLike | None],
) -> None:
    """Check every output of a run before any work: none is an input, each can be written.

    Parameters
    ----------
    outputs : iterable of (path-like, str)
        Each output file and what it is ("model", "features file", ...).
    inputs : iterable of path-like or None
        The run's inputs, each CellH5 file with the files it links to (``input_files``).

    Raises
    ------
    ValueError
        Naming the output: an input or another output, a folder, or its folder missing or read-only.
    """
    outputs = list(outputs)
    check_distinct(outputs)
    sources = [f for source in inputs if source is not None for f in input_files(source)]
    for path, what in outputs:
        check_output(path, sources, what)


def load_mapping(
    path: str | os.PathLike | None, cellh5: CellH5, control_token: str = "neg", warn: bool = True
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
    warn : bool
        Warn about positions no row maps, and rows of positions ``cellh5`` lacks; False
        where the run checks its other files with
        :func:`~napari_cellae.io.mapping_fit.check_fit` and warns once for all its files
        (:func:`~napari_cellae.pipeline.plates.warn_unmapped`).

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
    mapping = read_mapping(path, control_token=control_token)
    if not warn:  # a run of several files: rows that no file holds are named at its end
        open_run(mapping)
    check_fit(mapping, cellh5.positions, cellh5.path)
    warn_unmapped(mapping if warn else None, cellh5.positions, cellh5.path)
    return mapping


def collect(
    cellh5: CellH5,
    object_name: str,
    crop_size: int,
    channels: list[int],
    positions: list | None = None,
    mask: str = "none",
) -> CropSet:
    """Crop a ``crop_size`` square around every object (all positions and frames).

    ``mask`` hides other objects using the file's label images (see
    :mod:`napari_cellae.core.masking`); a warning names positions without label images,
    which are masked with a threshold segmentation of their crops instead.

    Raises
    ------
    ValueError
        If the crop is larger than the images or the file holds no objects.
    """
    from napari_cellae.core.crops import collect_crops

    crops = collect_crops(
        cellh5, object_name, crop_size, channels=channels, positions=positions, mask=mask
    )
    if len(crops) == 0:
        raise CellH5Error(f"{cellh5.path}: no '{object_name}' objects found in any position")
    warn_crops(crops, object_name, cellh5.path)
    return crops


def crops_for(
    cellh5: CellH5, object_name: str, channels: list[int], config: TrainConfig
) -> CropSet:
    """The crops a model with ``config`` sees: its crop size, masking and input size.

    Training and every way of encoding go through here, so a model is always applied to
    crops made the way it was trained on.
    """
    from napari_cellae.pipeline.crop_memory import check_crop_memory

    check_crop_memory(cellh5, object_name, len(channels), config)
    crops = collect(cellh5, object_name, config.crop_size, channels, mask=config.mask)
    return to_network_size(crops, config.network_size)


def select_training(
    crops: CropSet, mapping: PositionMapping | None, train_on: str, samples: int, seed: int = 0
) -> np.ndarray:
    """Indices of the crops to train on: controls (or all), at most ``samples`` of them.

    Parameters
    ----------
    crops : CropSet
    mapping : PositionMapping or None
    train_on : {"controls", "all"}
        "controls": crops of positions the mapping marks as controls; "all", or no
        mapping: every crop. Crops without signal (``crops.blank``) are left out of what
        is drawn, so training may see fewer than ``samples``.
    samples : int
        A random (seeded) subset is drawn when there are more candidates, so every
        position contributes in proportion to its cell count. 0: no limit.
    seed : int

    Returns
    -------
    ndarray of int64, sorted

    Raises
    ------
    ValueError
        If ``train_on`` is unknown or the mapping marks no position with cells as control.
    """
    if train_on not in ("controls", "all"):
        raise ValueError(f"train_on must be 'controls' or 'all', got {train_on!r}")
    if train_on == "all" or mapping is None:
        idx = np.arange(len(crops), dtype=np.int64)
    else:
        is_control = np.array(
            [(info := mapping.lookup(p)) is not None and info.is_control for p in crops.positions],
            dtype=bool,
        )
        if not is_control.any():
            raise ValueError(
                f"{mapping.path}: no control position among the {len(crops.positions)} "
                f"positions with objects in {crops.source}: {mapping.controls_hint()}, or"
                " train on all positions"
            )
        idx = np.flatnonzero(is_control[crops.position_index]).astype(np.int64)
    if len(idx) == 0:
        raise ValueError(f"{crops.source}: no cells to train on (train_on={train_on!r})")
    # Drawn first, then those without signal left out (a crop of one value teaches nothing
    # of cells): sampled_training_crops cuts the drawn cells alone and can only leave them
    # out afterwards, and both must train on the same cells.
    drawn = draw_training(idx, samples, seed)
    with_signal = drawn[~crops.blank[drawn]]
    if len(with_signal) == 0:
        more = "; draw more cells (samples)" if len(drawn) < len(idx) else ""
        raise ValueError(
            f"{crops.source}: no cell to train on has signal: "
            f"{_one_value_channels(crops, drawn)} (train_on={train_on!r}){more}"
        )
    return with_signal


def _one_value_channels(crops: CropSet, drawn: np.ndarray) -> str:
    """Which channel is of one value in every drawn crop, and that value: with two
    channels, 'a channel of a single value' left the user to guess which."""
    pixels = crops.crops[drawn].reshape(len(drawn), crops.crops.shape[1], -1)
    low, high = pixels.min(axis=2), pixels.max(axis=2)
    said = []
    for c, name in enumerate(crops.channel_names):
        if np.all(low[:, c] == high[:, c]):
            values = np.unique(low[:, c])
            value = f"is {values[0]}" if len(values) == 1 else "has one value"
            said.append(f"channel '{name}' {value} in every pixel of all {len(drawn)} cells")
    if not said:
        return (
            f"each of the {len(drawn)} cells has a channel of a single value, as images never "
            "acquired read"
        )
    if len(said) == len(crops.channel_names):  # leaving it out would leave nothing
        return "; ".join(said) + " (never acquired or written, or saturated): check the images"
    return "; ".join(said) + " (never acquired, or saturated): train without it"


def training_indices(
    crops: CropSet, mapping: PositionMapping | None, config: TrainConfig
) -> tuple[TrainConfig, np.ndarray]:
    """The config to train with and :func:`select_training`'s indices for it.

    Without a mapping there are no known controls: ``train_on="controls"`` becomes "all".
    """
    if mapping is None and config.train_on == "controls":
        config = replace(config, train_on="all")
    return config, select_training(crops, mapping, config.train_on, config.samples, config.seed)


def make_trainer(crops: CropSet, mapping: PositionMapping | None, config: TrainConfig) -> Trainer:
    """A :class:`~napari_cellae.core.trainer.Trainer` on the training crops of ``crops``.

    Without a mapping there are no known controls: training uses every cell and the
    trainer's config says ``train_on="all"`` (it is stored with the model).
    Iterate ``trainer.run()`` for epoch reports; ``trainer.stop()`` ends early.

    Raises
    ------
    ValueError
        If the crops do not fit the configuration or there is nothing to train on.
    """
    from napari_cellae.core.trainer import Trainer

    config, idx = training_indices(crops, mapping, config)
    return Trainer(
        config,
        np.ascontiguousarray(crops.crops[idx]),
        channel_names=list(crops.channel_names),
        object_name=crops.object_name,
        source_indices=idx,  # which crops were used, for reports and the widget
    )


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
        If the model names no channel, the file lacks its object or channels, or the images
        are smaller than its crop size.
    """
    where = f"model {model_path}" if model_path else "the model"
    if trained.object_name not in cellh5.object_names:
        if not cellh5.object_names:  # says why: a plate file whose positions are elsewhere?
            _ = cellh5.default_object
        known = ", ".join(cellh5.object_names) or "none"
        problem = cellh5.object_problem(trained.object_name)  # there, but no table of objects
        raise ValueError(
            f"{cellh5.path}: {where} was trained on objects '{trained.object_name}', "
            f"which this file does not have ({problem or f'objects: {known}'})"
        )
    if not trained.channel_names:  # damaged: nothing to match the images by
        raise ValueError(f"{where} names no image channel, so it fits no file's channels")
    channels = channels_named(cellh5, trained.channel_names, f"{where} was trained on")
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
    """Features of every crop, float32 (N, F), CellH5 order: learned, then the outline's."""
    from napari_cellae.core.features import encode, with_outline

    trained.check_compatible(crops.crops.shape[-1], crops.crops.shape[1])
    features = encode(trained, crops.crops, batch_size=batch_size, progress=progress)
    return with_outline(trained, features, crops.morphology)


def write_features(
    path: str | os.PathLike,
    crops: CropSet,
    features: np.ndarray,
    mapping: PositionMapping | None,
    trained: TrainedModel | None = None,
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Write the Explorer ``.hdf``; ``inputs`` (the run's input files) are never replaced."""
    from napari_cellae.core.features import cell_feature_names
    from napari_cellae.export.explorer import write_explorer_hdf

    settings: dict = {"inputs": inputs}
    if trained is not None:  # thumbnails scaled like the model's input, columns by layer
        settings.update(normalisation=trained.normalisation, names=cell_feature_names(trained))
    return write_explorer_hdf(path, crops, features, mapping, **settings)


def cell_conditions(crops: CropSet, mapping: PositionMapping | None) -> np.ndarray:
    """The condition of every cell: the mapping's, else its position's label (``plate/``
    first where there are several plates, as the cell table and hit lists name it).

    Returns
    -------
    ndarray of str (N,)
    """
    from napari_cellae.io.centres import position_labels

    # two plates' unmapped A01_1 are two conditions, as in discovery.cell_table: the
    # embedding coloured them as one, and named a cell's condition unlike its hit-list row
    own = position_labels(crops.positions)
    per_position = [
        info.condition if mapping is not None and (info := mapping.lookup(p)) else label
        for p, label in zip(crops.positions, own, strict=True)
    ]
    return np.asarray(per_position, dtype=str)[crops.position_index]
