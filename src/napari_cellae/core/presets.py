"""Named sets of training settings: the original module's, the demo's, and the measured best."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from napari_cellae.core.architecture import DEFAULT_ARCHITECTURE

__all__ = ["DEFAULT_PRESET", "PRESETS", "Preset"]


@dataclass(frozen=True)
class Preset:
    """A named set of settings.

    Attributes
    ----------
    description : str
        One line saying where the settings come from and when to use them.
    settings : mapping
        Values of :class:`TrainConfig` fields; fields not named keep their defaults.
    """

    description: str
    settings: Mapping[str, Any]


PRESETS: dict[str, Preset] = {
    "classic": Preset(
        "the settings of CellCognition Explorer's original Deep Learning Module",
        MappingProxyType(
            {
                "crop_size": 40,
                "architecture": DEFAULT_ARCHITECTURE,
                "optimizer": "adagrad",
                "learning_rate": 0.05,
                "momentum": 0.9,
                "batch_size": 128,
                "corruption": 0.0,
                "epochs": 64,
                "train_on": "controls",
                "revive": False,
                "decorrelation": 0.0,
                "mask": "none",
                "intensity": "screen",
                "readout": "code",
                "orientations": 1,
                "morphology": False,
            }
        ),
    ),
    # Measured with benchmarks/bench_quality.py on the 15-phenotype benchmark screen
    # (docs/quality.md): hiding all but the cell, scaling each cell by its own intensity
    # range and reading pooled filter responses averaged over 8 orientations are the large
    # gains; training on all cells rather than the controls measured best; 5 to 60 epochs
    # give the same features, 30 is the middle. The "shape" readout (size and elongation of
    # every filter's response beside its mean and max) added about 2 points of LR F1 and
    # novelty AUROC and 4.5 of 5-NN accuracy over "pooled", trained or not; reviving
    # silent filters is what lifts trained novelty above random weights (+2 to +3 points).
    # "relative" (means per unit of the crop's light) added 0.8-1.3 points of novelty on all
    # three screens, F1 and 5-NN level. Keeping the filters apart ("decorrelation" 0.01)
    # added 0.9 points of F1 and 0.5 of 5-NN on average over five lab trainings, novelty level.
    "recommended": Preset(
        "the settings that measured best on the benchmark screens (`cellae train`'s default)",
        MappingProxyType(
            {
                "crop_size": 40,
                "architecture": DEFAULT_ARCHITECTURE,
                "optimizer": "adagrad",
                "learning_rate": 0.05,
                "momentum": 0.9,
                "batch_size": 128,
                "corruption": 0.0,
                "epochs": 30,
                "train_on": "all",
                "revive": True,
                "decorrelation": 0.01,
                "mask": "cell",
                "intensity": "cell",
                "readout": "relative",
                "orientations": 8,
                "morphology": True,
            }
        ),
    ),
    # The bundled demo screen (2556 nuclei of about 24 px) in under two minutes on two CPU
    # cores (bench_demo.py): a 32 px box and no 256-unit dense layer train faster at equal
    # separation; minibatch 32 on all cells; 40 epochs (75 gave 5-NN 95.7 % in 1.6x the
    # time).
    "demo": Preset(
        "what `cellae demo` uses: small network, many small batches, all cells, 40 epochs",
        MappingProxyType(
            {
                "crop_size": 32,
                "architecture": "c16.5r_p2_c32.3r_p2_d32.0s",
                "optimizer": "adagrad",
                "learning_rate": 0.05,
                "momentum": 0.9,
                "batch_size": 32,
                "corruption": 0.0,
                "epochs": 40,
                "train_on": "all",
                "revive": True,
                "decorrelation": 0.01,
                "mask": "cell",
                "intensity": "cell",
                "readout": "relative",
                "orientations": 8,
                "morphology": True,
            }
        ),
    ),
}

DEFAULT_PRESET = "recommended"
