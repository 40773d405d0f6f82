"""A trained autoencoder and its file: weights plus everything needed to encode the same way.

The file is one torch file holding a dict ``{"format", "version", "config" (a JSON string:
training settings, normalisation, channels, object), "state_dict"}``; it loads with
``torch.load(path, weights_only=True)``, so opening a model never runs pickled code. See
``docs/formats.md``; reading it back is :func:`napari_cellae.core.model_load.load_model`'s.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_cellae.core.config import TrainConfig
from napari_cellae.core.model import ConvAutoencoder
from napari_cellae.core.model_checks import check_shape
from napari_cellae.core.normalisation import Normalisation
from napari_cellae.io.atomic import atomic_output, check_output

__all__ = [
    "EVAL_BATCH",
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "TrainedModel",
    "check_replaceable",
    "save_model",
]

MODEL_FORMAT = "napari-cellae-model"
# 2: masking and feature readout settings; 3: the "shape" readout; 4: the "relative"
# readout or a network input size; 5: outline measurements. A file is written with the
# lowest version that can apply it, so older napari-cellae still read the others.
MODEL_VERSION = 5

# Crops per forward pass where no gradients are needed: larger batches are cheaper.
EVAL_BATCH = 512


@dataclass
class TrainedModel:
    """A trained autoencoder with everything needed to encode new crops the same way.

    Attributes
    ----------
    model : ConvAutoencoder
        In eval mode.
    config : TrainConfig
        The settings it was trained with.
    normalisation : Normalisation
        The training scaling; encoding must use it.
    channel_names : list of str
    object_name : str
    path : Path or None
        The file it was loaded from / saved to (for messages).
    """

    model: ConvAutoencoder
    config: TrainConfig
    normalisation: Normalisation
    channel_names: list[str] = field(default_factory=list)
    object_name: str = ""
    path: Path | None = None

    @property
    def n_channels(self) -> int:
        """Number of input channels."""
        return self.model.in_channels

    def _name(self) -> str:
        return f"model {self.path}" if self.path is not None else "the model"

    def check_compatible(self, crop_size: int, n_channels: int) -> None:
        """Raise ValueError if crops of this size / channel count cannot be encoded.

        Parameters
        ----------
        crop_size : int
        n_channels : int
        """
        if int(crop_size) != self.model.crop_size or int(n_channels) != self.n_channels:
            raise ValueError(
                f"{self._name()} was trained on {self.model.crop_size} px crops with "
                f"{self.n_channels} channel(s), but the data has {crop_size} px crops with "
                f"{n_channels} channel(s); use the model's crop size and channels or train anew"
            )

    def reconstruct(self, crops: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
        """Reconstruct crops (N, C, S, S) of the stored dtype.

        Parameters
        ----------
        crops : ndarray (N, C, S, S)
        batch_size : int
            Crops per forward pass.

        Returns
        -------
        ndarray of float32 (N, C, S, S)
            Reconstructions in [0, 1] (compare with ``normalisation.apply(crops)``).
        """
        crops = np.asarray(crops)
        if crops.ndim != 4:
            raise ValueError(f"expected crops of shape (N, C, S, S), got {crops.shape}")
        self.check_compatible(crops.shape[-1], crops.shape[1])
        device = next(self.model.parameters()).device
        out = np.empty(crops.shape, dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(crops), batch_size):
                    chunk = torch.from_numpy(
                        np.ascontiguousarray(crops[start : start + batch_size])
                    )
                    x = self.normalisation.apply(chunk.to(device))
                    out[start : start + len(chunk)] = self.model(x).float().cpu().numpy()
        finally:
            self.model.train(was_training)
        return out

    def metadata(self) -> dict[str, Any]:
        """JSON-able description stored beside the weights."""
        return {
            "config": self.config.to_dict(),
            "normalisation": self.normalisation.to_dict(),
            "channel_names": list(self.channel_names),
            "object_name": self.object_name,
            "in_channels": self.n_channels,
            "crop_size": self.model.crop_size,
            "architecture": self.model.architecture,
            "n_features": self.model.n_features,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model file; see :func:`save_model`."""
        return save_model(self, path)


def save_model(
    trained: TrainedModel,
    path: str | os.PathLike,
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Write weights and metadata to one model file (temporary name, then rename).

    Parameters
    ----------
    trained : TrainedModel
    path : path-like
        The model file.
    inputs : iterable of path-like, optional
        The run's input files; writing over one of them is refused.

    Returns
    -------
    Path
        The written file (also stored as ``trained.path``).

    Raises
    ------
    ValueError
        Naming the path: it is an input or a folder, its folder is missing, writing
        failed, or the model's parts disagree (as load_model would refuse the file).
    """
    path = check_output(path, inputs, "model")
    check_replaceable(path)
    try:  # load_model's own check: a file it would call damaged is not written
        check_shape(
            trained.config,
            trained.normalisation,
            trained.channel_names,
            trained.model.crop_size,
            trained.n_channels,
        )
    except ValueError as exc:
        raise ValueError(
            f"{path}: not written: the model disagrees with itself ({exc}), so it could not "
            "be loaded again"
        ) from None
    meta = trained.metadata()
    config = trained.config
    if not config.input_size:  # unknown to older readers; absent means 0
        del meta["config"]["input_size"]
    if not config.morphology:  # likewise; absent from a file before version 5 means off
        del meta["config"]["morphology"]
    # How it was trained, not how it is applied: kept beside "config", whose fields older
    # napari-cellae read one by one (an unknown one would make them refuse the file).
    meta["training"] = {"decorrelation": meta["config"].pop("decorrelation")}
    newest = config.readout == "relative" or config.input_size
    version = 5 if config.morphology else 4 if newest else 3 if config.readout == "shape" else 2
    payload = {
        "format": MODEL_FORMAT,
        "version": version,
        "config": json.dumps(meta, sort_keys=True),
        # Plain contiguous CPU tensors: portable whatever device/memory format trained it.
        "state_dict": {
            k: v.detach().to("cpu").contiguous().clone()
            for k, v in trained.model.state_dict().items()
        },
    }
    with atomic_output(path) as tmp, open(tmp, "wb") as stream:
        try:
            # Through a stream: given a path, torch names the archive's folder after the
            # temporary file, so two runs of one seed wrote different bytes.
            torch.save(payload, stream)
        except RuntimeError as exc:  # torch's file writer fails so (a full disk): name path
            raise OSError(" ".join(str(exc).split())) from exc
    trained.path = path
    return path


def check_replaceable(path: str | os.PathLike) -> None:
    """Refuse to write a model over a file that holds something else.

    A model is written under any name the user gives, so ``--out features.hdf`` (a slip
    for the encoding's output) would replace a features file. A file that exists, is not
    empty and is no ``torch.save`` archive (a zip file) is kept.

    Raises
    ------
    ValueError
        Naming the file and what it seems to be.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0 or zipfile.is_zipfile(path):
        return
    from napari_cellae.io.file_kinds import is_hdf5

    kind = (
        "an HDF5 file (a CellH5, .h5ad or Explorer .hdf file?)"
        if is_hdf5(path)
        else "not a napari-cellae model"
    )
    raise ValueError(
        f"refusing to replace {path} with a model: it is {kind}; choose another name for the "
        "model, or remove the file first"
    )
