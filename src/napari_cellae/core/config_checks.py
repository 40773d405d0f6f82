"""Checks of a :class:`~napari_cellae.core.config.TrainConfig`: every field in its range."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from napari_cellae.core.architecture import check_architecture, parse_architecture

__all__ = [
    "MAX_SAMPLES",
    "MAX_SEED",
    "SettingError",
    "check_settings",
    "recorded_seed",
    "seed_problem",
]

# One limit for every seed (training, encoding's novelty and maps, the demo screens):
# scikit-learn takes 32-bit seeds (torch 64-bit, numpy any), so train accepted up to
# 2**63 - 1 where encode refused beyond 2**32 - 1.
MAX_SEED = 2**32 - 1
MAX_SAMPLES = 1_000_000_000


class SettingError(ValueError):
    """An invalid training setting, said as ``invalid training setting: PROBLEM``.

    Attributes
    ----------
    fields : tuple of str
        The settings involved, the one to change first (``("momentum", "optimizer")``);
        front ends name their own spelling of them (the command line its options).
    problem : str
        What is wrong and what is allowed, starting with the first field's name where the
        problem is that field's alone (``"epochs must be 1..100000, got 0"``).
    """

    def __init__(self, fields: tuple[str, ...], problem: str) -> None:
        super().__init__(f"invalid training setting: {problem}")
        self.fields = fields
        self.problem = problem


def check_settings(settings: Mapping[str, Any], choices: Mapping[str, Sequence[Any]]) -> None:
    """Check the fields of a :class:`~napari_cellae.core.config.TrainConfig`, each in its
    range.

    Parameters
    ----------
    settings : Mapping[str, Any]
        Every field's value, by field name.
    choices : Mapping[str, Sequence]
        The allowed values of the fields that take one of a few (their ``choices``).

    Raises
    ------
    SettingError
        A ``ValueError`` naming the first invalid field and its allowed range.
    """

    def need(ok: bool, what: str, *others: str) -> None:
        if not ok:  # the field is the message's first word; ``others`` are also involved
            raise SettingError((what.split(" ", 1)[0], *others), what)

    for name in ("crop_size", "input_size", "batch_size", "epochs", "samples", "seed"):
        value = settings[name]
        need(
            isinstance(value, int | np.integer) and not isinstance(value, bool),
            f"{name} must be an integer, got {value!r}",
        )
    for name in ("learning_rate", "momentum", "corruption", "held_out_fraction", "decorrelation"):
        value = settings[name]
        need(
            isinstance(value, int | float | np.floating) and not isinstance(value, bool),
            f"{name} must be a number, got {value!r}",
        )
    for name in ("optimizer", "train_on", "mask", "intensity", "readout", "orientations"):
        allowed, value = list(choices[name]), settings[name]
        need(  # True and 1.0 equal 1: a model file's orientations 'true' was taken for 1
            value in allowed and not isinstance(value, bool | float),
            f"{name} must be {' or '.join(map(repr, allowed))}, got {value!r}",
        )
    need(
        4 <= settings["crop_size"] <= 1024,
        f"crop_size must be 4..1024 px, got {settings['crop_size']}",
    )
    need(
        settings["input_size"] == 0 or 4 <= settings["input_size"] <= 1024,
        f"input_size must be 0 (the cell size) or 4..1024 px, got {settings['input_size']}",
    )
    need(
        math.isfinite(settings["learning_rate"]) and settings["learning_rate"] > 0,
        f"learning_rate must be a finite number above 0, got {settings['learning_rate']}",
    )
    need(
        0 <= settings["momentum"] < 1,
        f"momentum must be at least 0 and below 1, got {settings['momentum']}",
    )
    need(  # torch refused it mid-run as 'Nesterov momentum requires a momentum and ...'
        settings["optimizer"] != "nesterov" or settings["momentum"] > 0,
        "momentum must be above 0 with optimizer 'nesterov' (0.9 works well), got 0",
        "optimizer",
    )
    need(
        1 <= settings["batch_size"] <= 100_000,
        f"batch_size must be 1..100000, got {settings['batch_size']}",
    )
    need(
        0 <= settings["corruption"] < 1,
        f"corruption must be at least 0 and below 1, got {settings['corruption']}",
    )
    need(
        0 <= settings["decorrelation"] <= 1,
        f"decorrelation must be 0..1, got {settings['decorrelation']}",
    )
    need(1 <= settings["epochs"] <= 100_000, f"epochs must be 1..100000, got {settings['epochs']}")
    # Beyond int64 the .h5ad's record of the settings could not be written, after encoding
    # the whole screen; a billion cells' crops would not fit in memory anyway.
    need(
        1 <= settings["samples"] <= MAX_SAMPLES,
        f"samples must be 1..{MAX_SAMPLES}, got {settings['samples']}",
    )
    problem = seed_problem(settings["seed"])
    need(problem is None, f"seed {problem}")
    need(  # 'cudajunk' or 'cuda:-1' passed and failed in torch ('Invalid device string')
        isinstance(settings["device"], str)
        and (
            settings["device"] in ("auto", "cpu")
            or bool(re.fullmatch(r"cuda(:[0-9]+)?", settings["device"]))
        ),
        f"device must be 'auto', 'cpu' or 'cuda[:N]', got {settings['device']!r}",
    )
    for name in ("augment", "revive", "morphology"):
        value = settings[name]
        need(isinstance(value, bool | np.bool_), f"{name} must be true or false, got {value!r}")
    need(
        0 <= settings["held_out_fraction"] <= 0.9,
        f"held_out_fraction must be 0..0.9, got {settings['held_out_fraction']}",
    )
    # The edge of the crops the network sees (TrainConfig.network_size).
    network_size = settings["input_size"] or settings["crop_size"]
    try:
        parse_architecture(settings["architecture"])
    except ValueError as exc:
        raise SettingError(("architecture",), str(exc)) from None
    try:
        check_architecture(settings["architecture"], network_size)
    except ValueError as exc:
        # The network is built for the input size when one is set, not for the cell size.
        size = "input_size" if settings["input_size"] else "crop_size"
        what = f"input_size {settings['input_size']} px, the network's input: " * bool(
            settings["input_size"]
        )
        raise SettingError((size, "architecture"), f"{what}{exc}") from None


def seed_problem(seed: int) -> str | None:
    """What is wrong with a seed, said alike by every command; None when it is valid.

    Parameters
    ----------
    seed : int

    Returns
    -------
    str or None
        ``"must be 0..4294967295, got -1"``: the largest seed every library involved
        takes (scikit-learn's 32-bit one).
    """
    return None if 0 <= seed <= MAX_SEED else f"must be 0..{MAX_SEED}, got {seed}"


def recorded_seed(settings: Mapping[str, object]) -> dict[str, int]:
    """The seed of a model file's settings, loadable: seeds up to 2**63 - 1 were accepted
    before :data:`MAX_SEED`, and their models still load (the seed's low 32 bits kept;
    training is over). Empty where the seed needs no change."""
    seed = settings.get("seed")
    if isinstance(seed, int) and MAX_SEED < seed < 2**63:
        return {"seed": seed & MAX_SEED}
    return {}
