"""Checks of a model's parts against one another, shared by saving and loading a model file.

Each raises ValueError saying what disagrees; :func:`~napari_cellae.core.model_load.load_model`
calls the file damaged with it, and :func:`~napari_cellae.core.model_file.save_model` refuses
to write a model that would be so.
"""

from __future__ import annotations

from typing import Any

import torch

from napari_cellae.core.config import TrainConfig
from napari_cellae.core.model import ConvAutoencoder
from napari_cellae.core.normalisation import Normalisation

__all__ = [
    "check_network",
    "check_shape",
    "check_stored",
    "check_weights",
    "stored_names",
    "whole_count",
]


def stored_names(meta: dict[str, Any]) -> tuple[list[str], str]:
    """The stored channel names and object. Anything but text is damage: a string of names
    would split, and str() made None or ["H2B"] names that the data were said to lack."""
    channels, name = meta.get("channel_names", []), meta.get("object_name", "")
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise ValueError(f"channel_names must be a list of names, got {channels!r}")
    if not isinstance(name, str):
        raise ValueError(f"object_name must be a name, got {name!r}")
    return channels, name


def whole_count(meta: dict[str, Any], key: str) -> int:
    """A stored count; int() made 40.7 crops 40 px and raised OverflowError on Infinity."""
    value = meta[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} must be a whole number, got {value!r}")
    return value


def check_shape(
    config: TrainConfig,
    normalisation: Normalisation,
    channel_names: list[str],
    crop_size: int,
    in_channels: int,
) -> None:
    """Refuse a network size, channel count or intensity scaling that disagrees with the
    rest of the model.

    Checked before the network is built: a damaged size allocated gigabytes (or crashed
    there), and a crop size other than the settings' encoded with the wrong box.

    Parameters
    ----------
    config : TrainConfig
    normalisation : Normalisation
    channel_names : list of str
        Empty for a model trained without names.
    crop_size, in_channels : int
        The network's input size and channels.

    Raises
    ------
    ValueError
        Saying what disagrees with what.
    """
    if crop_size != config.network_size:
        raise ValueError(
            f"the network takes {crop_size} px crops, the settings {config.network_size} px"
        )
    if normalisation.n_channels != in_channels:
        raise ValueError(
            f"the intensity scale has {normalisation.n_channels} channel(s), the network"
            f" {in_channels}"
        )
    if normalisation.per_cell != (config.intensity == "cell"):  # it scales by the former
        each = "each cell on its own" if normalisation.per_cell else "one for all cells"
        raise ValueError(f"the settings say intensity {config.intensity!r}, the scale is {each}")
    if channel_names and len(channel_names) != in_channels:  # none: trained without names
        raise ValueError(
            f"it names {len(channel_names)} channel(s), the network takes {in_channels}"
        )


def check_weights(model: ConvAutoencoder) -> None:
    """Refuse weights that are NaN or infinite: they encoded NaN features blamed on the
    data."""
    weights = {n: t for n, t in model.state_dict().items() if t.is_floating_point()}
    # A tensor's sum is NaN or infinite whenever one of its weights is, so finite sums clear
    # the model at a tenth of the cost of torch.isfinite's mask of every weight; where they
    # are not (or finite weights overflow one), the exact check below decides.
    sums = [tensor.sum() for tensor in weights.values()]
    if not sums or bool(torch.stack(sums).isfinite().all()):
        return
    bad = [name for name, tensor in weights.items() if not bool(torch.isfinite(tensor).all())]
    if bad:
        raise ValueError(f"weights {', '.join(bad[:3])} hold NaN or infinite values")


def check_stored(stored: Any) -> None:
    """Refuse weights stored as integers, booleans or complex numbers (save_model writes
    float32): loading cast them to float32 without a word."""
    odd = [
        f"{name} ({value.dtype})"
        for name, value in (stored.items() if isinstance(stored, dict) else ())
        if isinstance(value, torch.Tensor) and not value.is_floating_point()
    ]
    if odd:
        raise ValueError(f"weights {', '.join(odd[:3])} are not floating-point numbers")


def check_network(meta: dict[str, Any], model: ConvAutoencoder, stored: Any) -> None:
    """Refuse weights that do not fit the network the settings build, and a stored
    architecture or feature count that disagrees with it (a hand-edited or mixed-up file).

    torch's own refusal listed every mismatched weight in its words ("copying a param with
    shape torch.Size([8, 1024]) from checkpoint ..."), and the stored description was never
    compared, so a file saying 16 features that gives 8 loaded without a word.

    Parameters
    ----------
    meta : dict
        The file's metadata; ``architecture`` and ``n_features`` are compared where present.
    model : ConvAutoencoder
        The network built from the stored settings, before its weights are loaded.
    stored : dict of str to Tensor
        The file's weights.

    Raises
    ------
    ValueError
        Saying what disagrees with what.
    """
    arch = model.architecture
    expected = model.state_dict()
    if isinstance(stored, dict):
        missing = [name for name in expected if name not in stored]
        extra = [name for name in stored if name not in expected]
        parts = [f"the file lacks {_listed(missing)}"] if missing else []
        parts += (
            [f"the file holds {_listed(extra)}, which that architecture lacks"] if extra else []
        )
        parts += [
            f"{name} is {_shown(value.shape)} in the file, {_shown(expected[name].shape)} for"
            " that architecture"
            for name, value in stored.items()
            if name in expected
            and isinstance(value, torch.Tensor)
            and value.shape != expected[name].shape
        ][:3]
        if parts:
            raise ValueError(
                f"its weights do not fit its settings' architecture {arch!r}: {'; '.join(parts)}"
            )
    said = meta.get("architecture", arch)
    if said != arch:
        raise ValueError(f"it says architecture {said!r}, but its settings and weights {arch!r}")
    said = meta.get("n_features", model.n_features)
    if said != model.n_features:
        raise ValueError(
            f"it says {said!r} features, but its settings and weights (architecture {arch!r})"
            f" give {model.n_features}"
        )


def _listed(names: list[str]) -> str:
    more = f" (and {len(names) - 3} more)" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


def _shown(shape: torch.Size) -> str:
    return " x ".join(map(str, shape)) or "a scalar"
