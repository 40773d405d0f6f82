"""The one training configuration: every default, its range and its help text (no torch).

:class:`TrainConfig` is what the ``cellae`` command's options, the widget's form and the
saved model files all describe. Each field carries, in its ``metadata``, a plain-language
help text (``cellae train --help`` and the widget's tooltips show it), a short UI label,
allowed choices where there are any, and how the command line spells it. The defaults come
from a named preset in :data:`PRESETS` (:data:`DEFAULT_PRESET`), so changing them or adding
a better-measured set of settings is a change of data, not of code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from types import MappingProxyType
from typing import Any, get_type_hints

from napari_cellae.core.config_checks import check_settings, recorded_seed
from napari_cellae.core.presets import DEFAULT_PRESET, PRESETS, Preset

__all__ = [
    "COLLAPSE_ADVICE",
    "DEFAULT_PRESET",
    "PARAMETER_GUIDE",
    "PRESETS",
    "Preset",
    "TrainConfig",
    "field_info",
]

COLLAPSE_ADVICE = (
    "the network gives the same reconstruction for every cell: it stopped learning "
    "(its units died), so its features will not separate cells. Train again with a lower "
    "learning rate (e.g. a third of it) or another seed."
)


# Defaults of the fields no preset sets.
_COMMON: dict[str, Any] = {
    "samples": 50000,
    "train_on": "controls",
    "seed": 0,
    "device": "auto",
    "held_out_fraction": 0.2,
    "augment": False,
    "input_size": 0,
}
_DEFAULTS = {**_COMMON, **PRESETS[DEFAULT_PRESET].settings}


def _option(
    name: str,
    help: str,
    label: str,
    group: str,
    *,
    aliases: tuple[str, ...] = (),
    metavar: str | None = None,
    choices: tuple[tuple[str, str], ...] = (),
) -> Any:
    """A dataclass field with its default and the texts front ends show for it.

    ``choices`` are ``(value, label)`` pairs; ``aliases`` are extra command-line spellings
    beside ``--name-with-dashes``.
    """
    meta = dict(help=help, label=label, group=group, aliases=aliases, metavar=metavar)
    meta["choices"] = choices
    return field(default=_DEFAULTS[name], metadata=MappingProxyType(meta))


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored with the model).

    Every field's meaning is in its help text: ``field_info(name)["help"]`` or
    :data:`PARAMETER_GUIDE`. Values are checked on creation; a bad one raises a
    ``ValueError`` naming the field and the allowed range.
    """

    crop_size: int = _option(
        "crop_size",
        "Cell size: edge of the square box (in pixels) cut around every cell centre. "
        "It should hold one whole cell with a little margin of background; too small cuts "
        "cells off, too large includes neighbours and trains slower. Not given (nor the "
        "network input): the preset's box, or, when the file's bounding boxes show that it "
        "would cut off more than 5 % of the cells, a box that holds them, resampled to the "
        "preset's size.",
        "Cell size (px)",
        "what to crop",
        aliases=("--size", "--cell-size"),
        metavar="PX",
    )
    input_size: int = _option(
        "input_size",
        "Network input (advanced): every crop is resampled from the cell size to this many "
        "pixels before the network sees it, so cells imaged larger or smaller than the "
        "20-30 px the default network is made for are seen at its scale (and large cells "
        "train as fast as 40 px ones). 0: crops as cut, at the cell size.",
        "Network input (px)",
        "network",
        metavar="PX",
    )
    architecture: str = _option(
        "architecture",
        "Layers of the autoencoder (advanced). 'c16.5r' = 16 filters of 5x5 pixels, 'p2' = "
        "halve the image (pooling), 'd256.1r' = 256 units after 10% dropout; the size of the "
        "last dense layer is the number of features per cell. Keep the default unless you "
        "have a reason.",
        "Network",
        "network",
        metavar="TEXT",
    )
    optimizer: str = _option(
        "optimizer",
        "How the weights are updated: AdaGrad adapts its step size by itself and needs "
        "little tuning; Nesterov momentum can be faster but is more sensitive to the "
        "learning rate.",
        "Optimizer",
        "network",
        choices=(("adagrad", "AdaGrad"), ("nesterov", "Nesterov momentum")),
    )
    learning_rate: float = _option(
        "learning_rate",
        "Size of each learning step. 0.01-0.1 is a good range. Lower it (e.g. halve it) if "
        "the loss jumps up and down or becomes NaN, or if every reconstruction looks the "
        "same; raise it if the loss falls very slowly.",
        "Learning rate",
        "network",
        aliases=("--lr",),
        metavar="RATE",
    )
    momentum: float = _option(
        "momentum",
        "Only for Nesterov momentum: how much of the previous step carries over (0-1). 0.9 "
        "works well; lower it if training is unstable.",
        "Momentum",
        "network",
    )
    batch_size: int = _option(
        "batch_size",
        "Minibatch: cells looked at before each weight update. 32-256 is typical; smaller "
        "makes more (noisier) updates per epoch, larger is smoother and faster per cell.",
        "Cells per batch",
        "network",
        metavar="N",
    )
    corruption: float = _option(
        "corruption",
        "Fraction of pixels blanked at random in each training image (denoising). 0-0.3 "
        "makes the features robust to noise and small artefacts; 0 trains a plain "
        "autoencoder.",
        "Corruption",
        "network",
        metavar="FRACTION",
    )
    epochs: int = _option(
        "epochs",
        "How often every training cell is shown to the network. 20-60 is typical: the "
        "features change little between 5 and 60 epochs; more fits the reconstructions "
        "better but takes longer. Watch the held-out loss: once it stops falling, more "
        "epochs do not help.",
        "Epochs",
        "training",
        metavar="N",
    )
    samples: int = _option(
        "samples",
        "At most this many cells (drawn at random) are used for training. More cells cover "
        "more of the natural variation; fewer train faster.",
        "Training cells",
        "training",
        metavar="N",
    )
    train_on: str = _option(
        "train_on",
        "'controls': learn only from negative-control positions (marked in the position "
        "mapping), so the features describe normal cell-to-cell variation and unusual "
        "phenotypes stand out; 'all': learn from every cell.",
        "Train on",
        "training",
        choices=(("controls", "control wells"), ("all", "all cells")),
    )
    seed: int = _option(
        "seed",
        "Random seed; the same seed and data give the same model.",
        "Seed",
        "training",
    )
    device: str = _option(
        "device",
        "Where to compute: auto (a GPU if there is one), cpu, or cuda (cuda:N for GPU N).",
        "Device",
        "training",
    )
    held_out_fraction: float = _option(
        "held_out_fraction",
        "Fraction of the training cells kept aside to check the model on cells it did not "
        "learn from (the held-out loss).",
        "Held-out fraction",
        "training",
        aliases=("--held-out",),
        metavar="FRACTION",
    )
    augment: bool = _option(
        "augment",
        "Show each training cell turned by a random multiple of 90 degrees and possibly "
        "mirrored. Cells have no preferred orientation, so this gives the network more "
        "examples at no cost; the cells you analyse are never turned. Useful when there are "
        "few training cells (the held-out loss rises while the training loss still falls).",
        "Rotate and mirror",
        "training",
    )

    revive: bool = _option(
        "revive",
        "After every epoch, give new random weights to convolution filters that respond "
        "to none of a sample of training cells. A filter that starts or falls silent never "
        "learns again, and its features are noise that blurs the distances between cells "
        "(novelty, neighbours). Off in the original module's settings.",
        "Revive silent filters",
        "training",
    )

    decorrelation: float = _option(
        "decorrelation",
        "After every training step, turn each convolution's filters a little away from one "
        "another (a soft orthogonality penalty; this is its step size). Training otherwise "
        "lets several filters learn the same pattern, and their features then repeat one "
        "another. 0 turns it off (the original module); 0.003-0.05 measured alike.",
        "Keep filters apart",
        "training",
        metavar="STRENGTH",
    )

    mask: str = _option(
        "mask",
        "What of the crop the network sees. 'neighbours': other cells in the box are "
        "painted as background, so crowded and sparse wells look alike; 'cell': only the "
        "cell and a thin rim; 'none': the box as it is. Uses the file's label images "
        "(segmentation); without them each crop is segmented by a threshold around its "
        "cell's centre.",
        "Hide",
        "what to crop",
        choices=(("neighbours", "neighbours"), ("cell", "all but the cell"), ("none", "nothing")),
    )
    intensity: str = _option(
        "intensity",
        "How pixel values are scaled. 'cell': every crop by its own background and "
        "brightest pixels, so a cell looks the same in a dim or bright well and under "
        "uneven illumination (features describe shape and texture); 'screen': one scale "
        "for all cells, so brightness differences between cells count.",
        "Brightness",
        "what to crop",
        choices=(("cell", "per cell"), ("screen", "whole screen")),
    )
    readout: str = _option(
        "readout",
        "Which activations become a cell's features. 'relative': 'shape' with each "
        "filter's mean response divided by the crop's mean intensity (kept as one feature), "
        "so it says how much of the pattern the cell's light holds rather than repeating "
        "the cell's size and brightness in every filter. 'shape': all of 'pooled' plus, per "
        "filter, its size (how spread out its response over the cell is) and elongation "
        "(how far from round that response is: 0 round, towards 1 a line), so that a large "
        "dim cell and a small bright one, or a round and an elongated one, differ; "
        "'pooled': the code plus how strongly each filter responds anywhere in the cell "
        "(mean and maximum), which describes texture and shape far better than the code; "
        "'code': the last dense layer only, as in the original module.",
        "Features",
        "features",
        choices=(
            ("relative", "shape, means relative to the cell's light"),
            ("shape", "pooled + size and elongation"),
            ("pooled", "code + pooled filters"),
            ("code", "code only"),
        ),
    )
    orientations: int = _option(
        "orientations",
        "Average each cell's features over this many orientations of its crop (1, 4 or "
        "8): a turned or mirrored cell then gets the same features. 8 costs 8 times the "
        "encoding time, which is still far below the training time.",
        "Orientations",
        "features",
        choices=((8, "8 (turns and mirrors)"), (4, "4 (turns)"), (1, "1 (as is)")),
    )

    morphology: bool = _option(
        "morphology",
        "Add five measurements of the cell's outline, taken from its mask, to the learned "
        "features (area, major and minor axis, eccentricity, solidity), and score novelty "
        "on them and on the learned features apart, adding the two scores: a cell whose "
        "outline alone is unusual (two nuclei, lobes, a notch) then stands out, where one "
        "distance over hundreds of learned features weighs it little. Needs masking: with "
        "mask 'none' there is no outline and this does nothing.",
        "Outline measurements",
        "features",
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; raise ValueError naming the field and the allowed range."""
        check_settings({f.name: getattr(self, f.name) for f in fields(self)}, _CHOICES)

    @property
    def measures_outline(self) -> bool:
        """Whether features end with the outline measurements (``morphology`` and a mask)."""
        return bool(self.morphology) and self.mask != "none"

    @property
    def network_size(self) -> int:
        """Edge in pixels of the crops the network sees: ``input_size``, else the cell size."""
        return self.input_size or self.crop_size

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Build from :meth:`to_dict` output (a model file's record); missing keys take
        defaults, unknown keys fail.

        Raises
        ------
        ValueError
            Naming unknown keys, or the first invalid value.
        """
        return cls._known({**d, **recorded_seed(d)})

    @classmethod
    def _known(cls, d: Mapping[str, Any]) -> TrainConfig:
        """``cls(**d)``, naming the keys that are no field first."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def from_preset(cls, name: str = DEFAULT_PRESET, **overrides: Any) -> TrainConfig:
        """A configuration with a preset's settings, then ``overrides`` on top.

        Parameters
        ----------
        name : str
            A key of :data:`PRESETS`.
        **overrides
            Field values that replace the preset's.

        Returns
        -------
        TrainConfig

        Raises
        ------
        ValueError
            For an unknown preset (listing the known ones), unknown fields or bad values.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
        return cls._known({**PRESETS[name].settings, **overrides})


def field_info(name: str) -> Mapping[str, Any]:
    """What front ends show for a :class:`TrainConfig` field.

    Parameters
    ----------
    name : str
        Field name, e.g. ``"crop_size"``.

    Returns
    -------
    mapping
        ``help`` (plain-language guidance), ``label`` (short UI name), ``group``,
        ``choices`` (``(value, label)`` pairs, empty if free), ``aliases`` (extra
        command-line spellings) and ``metavar``; plus ``default`` and ``type`` (the
        Python type of the value).

    Raises
    ------
    KeyError
        If there is no such field.
    """
    for f in fields(TrainConfig):
        if f.name == name:
            return {**f.metadata, "default": f.default, "type": _field_types()[name]}
    raise KeyError(f"TrainConfig has no field {name!r}")


_field_types = cache(lambda: get_type_hints(TrainConfig))  # once: ~0.4 ms a call
# Field name -> the values it allows (its choices; empty where any value in range is).
_CHOICES = {f.name: [v for v, _ in f.metadata["choices"]] for f in fields(TrainConfig)}

# Field name -> help text: the guidance both `cellae train --help` and the widget show.
PARAMETER_GUIDE: dict[str, str] = {f.name: f.metadata["help"] for f in fields(TrainConfig)}
