"""Reading model files (:func:`load_model`): a file written by
:func:`~napari_cellae.core.model_file.save_model`, of any version, checked and made a
:class:`~napari_cellae.core.model_file.TrainedModel` again.

Apart from the writing, because a version 1 file is announced with the features it gives
per cell (:func:`~napari_cellae.core.features.cell_feature_names`), which build on the
trained model.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from napari_cellae.core.config import TrainConfig
from napari_cellae.core.features import cell_feature_names
from napari_cellae.core.model import ConvAutoencoder
from napari_cellae.core.model_checks import (
    check_network,
    check_shape,
    check_stored,
    check_weights,
    stored_names,
    whole_count,
)
from napari_cellae.core.model_file import MODEL_FORMAT, MODEL_VERSION, TrainedModel
from napari_cellae.core.normalisation import Normalisation
from napari_cellae.core.presets import PRESETS

__all__ = ["load_model"]

# Settings version 1 files predate: applied as the original module's (the classic preset)
_SINCE_VERSION_2 = ("mask", "intensity", "readout", "orientations")


def load_model(path: str | os.PathLike) -> TrainedModel:
    """Load a model written by :func:`save_model` (weights-only unpickling).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    TrainedModel
        On CPU, in eval mode.

    Raises
    ------
    ValueError
        Naming the file, if it is missing, not a napari-cellae model, or damaged: settings,
        scale or weights that are invalid or disagree with each other.
    """
    from napari_cellae.io.file_kinds import file_kind, model_problem

    path = Path(path)
    problem = model_problem(path)
    if problem is not None:
        raise ValueError(problem)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if isinstance(exc, RuntimeError) and file_kind(path) == "model":  # miniz: damaged
            raise ValueError(
                f"{path}: damaged napari-cellae model file: torch cannot read its archive "
                f"({str(exc).split('. ')[0]}); copy it again or train anew"
            ) from None
        raise ValueError(
            f"{path} is not a napari-cellae model file (cannot be read by torch.load: "
            f"{type(exc).__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not a napari-cellae model file (no '{MODEL_FORMAT}' marker)")
    version = payload.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        # Version 0 or True read as a version-1 file; '5' was called newer than 5.
        raise ValueError(
            f"{path}: damaged napari-cellae model file: version {version!r} is not a "
            f"model file version (1..{MODEL_VERSION})"
        )
    if version > MODEL_VERSION:
        raise ValueError(
            f"{path}: model file version {version!r} is newer than this napari-cellae "
            f"(reads up to {MODEL_VERSION}); update napari-cellae"
        )
    try:
        meta = json.loads(payload["config"])
        settings = dict(meta["config"])
        training = meta.get("training", {})  # absent before decorrelation: trained without
        settings.setdefault("decorrelation", dict(training).get("decorrelation", 0.0))
        if version < 5:  # made before the outline measurements, and applied without them
            settings.setdefault("morphology", False)
        # Absent from files made before these settings (today's defaults would misreport
        # them): trained without revival, scaled as the stored normalisation says.
        settings.setdefault("revive", False)
        normalisation = Normalisation.from_dict(meta["normalisation"])
        settings.setdefault("intensity", "cell" if normalisation.per_cell else "screen")
        if version < 2:
            # Version 1 files predate masking and the pooled readout: they were made and
            # must be applied like the original module.
            for name in _SINCE_VERSION_2:
                settings.setdefault(name, PRESETS["classic"].settings[name])
        config = TrainConfig.from_dict(settings)
        channel_names, object_name = stored_names(meta)
        size, n_channels = whole_count(meta, "crop_size"), whole_count(meta, "in_channels")
        check_shape(config, normalisation, channel_names, size, n_channels)
        model = ConvAutoencoder(config.architecture, size, n_channels)
        check_stored(payload["state_dict"])
        check_network(meta, model, payload["state_dict"])
        model.load_state_dict(payload["state_dict"], strict=True)
        check_weights(model)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        # One line: torch lists every mismatched weight on a line of its own.
        problem = " ".join(str(exc).split())
        if isinstance(exc, KeyError):  # its message was the bare name: "...: 'normalisation'"
            problem = f"no {problem} entry"
        raise ValueError(f"{path}: damaged napari-cellae model file: {problem}") from None
    model.eval()
    trained = TrainedModel(model, config, normalisation, channel_names, object_name, path)
    if version < 2:  # the readout was no setting then: 3a59f01 to b2c0569 encoded pooled
        warnings.warn(
            f"{path}: a version 1 model file, applied {_version_1_features(trained)}; earlier "
            "napari-cellae may have given it other features (pooled filter responses, crops "
            "at the image border), so encode every plate again before comparing them, or "
            "train a new model",
            stacklevel=2,
        )
    return trained


def _version_1_features(trained: TrainedModel) -> str:
    """How a version 1 model is applied, with the features per cell that encoding gives:
    a hand-edited file may hold newer settings (a pooled readout, per-cell scaling, an
    outline), whose features outnumber the network's code."""
    n = len(cell_feature_names(trained))
    classic = PRESETS["classic"].settings
    newer = [
        f"{name} {getattr(trained.config, name)!r}"
        for name in _SINCE_VERSION_2
        if getattr(trained.config, name) != classic[name]
    ]
    if not newer:
        return f"as the original module (its {n} code features per cell)"
    return f"with the newer settings it holds ({n} features per cell: {', '.join(newer)})"
