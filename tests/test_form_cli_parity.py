"""The widget's form and the ``cellae`` command line set up the same jobs alike.

Every TrainConfig field and discovery option is enumerated, so that a field added to one
front end only, or a box whose range or decimals refuse what ``cellae train`` accepts,
fails here.
"""

from __future__ import annotations

from dataclasses import fields
from types import SimpleNamespace

import pytest

from napari_cellae._ui.form import CROP_FIELDS, TRAINING_FIELDS, FileInfo, ParameterForm
from napari_cellae.cli.parser import build_parser, config_from_args
from napari_cellae.core.config import PRESETS, TrainConfig, field_info

#: fields the widget leaves at the default preset's value (no box): the command line's only
FORM_LESS = {
    "seed",
    "device",
    "held_out_fraction",
    "augment",
    "revive",
    "decorrelation",
    "readout",
    "orientations",
    "morphology",
}
FORM_FIELDS = ("crop_size", *CROP_FIELDS, *TRAINING_FIELDS)
#: a network small enough for every box's least size (the default needs 20 px)
TINY = "c4.3r_d8.0s"


@pytest.fixture
def form(qtbot) -> ParameterForm:
    widget = ParameterForm()
    qtbot.addWidget(widget)
    return widget


def _subparser(name: str):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return parser, sub.choices[name]


def _train(*options: str) -> TrainConfig:
    parser, _ = _subparser("train")
    return config_from_args(parser.parse_args(["train", "f.ch5", *options]))


def test_every_field_is_an_option_and_a_box_or_listed_as_form_less():
    names = {f.name for f in fields(TrainConfig)}
    assert len(FORM_FIELDS) == len(set(FORM_FIELDS))
    assert set(FORM_FIELDS) | FORM_LESS == names and not set(FORM_FIELDS) & FORM_LESS
    _, train = _subparser("train")
    options = {a.dest: a for a in train._actions}
    for name in names:
        info = field_info(name)
        action = options[name]  # every field is a cellae train option
        assert "--" + name.replace("_", "-") in action.option_strings
        assert action.help.replace("%%", "%").startswith(info["help"])  # one help text
        if info["choices"]:
            assert list(action.choices) == [v for v, _ in info["choices"]]


def test_the_form_s_defaults_are_cellae_train_s(form):
    assert form.config() == _train() == TrainConfig.from_preset()
    parser, _ = _subparser("train")
    assert form.control_token() == parser.parse_args(["train", "f.ch5"]).control_token
    for name in FORM_FIELDS:
        widget = getattr(form, name)
        assert widget.label == field_info(name)["label"]
        if field_info(name)["choices"]:  # the box offers exactly the option's choices
            assert set(widget.choices) == {v for v, _ in field_info(name)["choices"]}


def _accepts(name: str, value: float) -> bool:
    base = {"architecture": TINY, "crop_size": 40, "input_size": 0}
    if name == "crop_size":
        base["input_size"] = 8  # the network sees 8 px whatever the box
    try:
        TrainConfig(**{**base, name: value})
    except ValueError:
        return False
    return True


#: bounds the config leaves open, where a box needs one (no learning rate is too large)
OPEN = {("learning_rate", "max")}


def test_the_boxes_accept_exactly_what_cellae_train_accepts(form):
    # The boxes stopped at 256 px, 1000 epochs or batches, 10 cells, 0.9 corruption, all
    # of which cellae train takes; the learning rate's least, 0.001, showed as 0.00 (two
    # decimals) and was refused on Train, and 0.005 became 0.01.
    for name in FORM_FIELDS:
        if field_info(name)["type"] not in (int, float):
            continue
        box = getattr(form, name)
        floats = field_info(name)["type"] is float
        unit = 10 ** -box.native.decimals() if floats else 1
        lo, hi = box.min, box.max
        assert _accepts(name, lo) and _accepts(name, hi), name
        assert not _accepts(name, lo - unit), f"{name}: the config takes below {lo}"
        if (name, "max") not in OPEN:
            assert not _accepts(name, round(hi + unit, 10)), f"{name}: config takes above {hi}"
    form.learning_rate.value = 0.005  # half the help's least good value
    assert form.learning_rate.value == 0.005 and form.config().learning_rate == 0.005
    assert form.learning_rate.min > 0


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_value_shows_exactly(form, preset):
    # The widget has no preset box (its defaults are the default preset's); every preset's
    # value of a field with a box is one the box holds exactly (no rounding, no clamping).
    settings = PRESETS[preset].settings
    for name in FORM_FIELDS:
        if name in settings:
            getattr(form, name).value = settings[name]
    wanted = TrainConfig.from_preset(preset)
    got = form.config()
    for name in FORM_FIELDS:
        if name in settings:
            assert getattr(got, name) == getattr(wanted, name), (preset, name)


def test_input_size_0_is_as_cut_in_both(form):
    form.crop_size.value, form.input_size.value = 48, 0
    cli = _train("--crop-size", "48", "--input-size", "0")
    assert form.config() == cli and cli.network_size == 48
    assert form.input_size.native.text() == "as cut"


def test_a_model_of_cellae_train_shows_exactly_whatever_the_boxes(form):
    # A model trained with --crop-size 300 (or on larger images than the file shown) made
    # Load model fail: the box refused the value ("outside of the allowed range").
    for crop, size, arch in ((300, 0, TrainConfig().architecture), (96, 512, TINY)):
        config = _train("--crop-size", str(crop), "--input-size", str(size), "--architecture", arch)
        form.show_model(SimpleNamespace(config=config, object_name="", channel_names=[]))
        shown = form.config()
        assert (shown.crop_size, shown.input_size, shown.architecture) == (crop, size, arch)
    form.show_file(FileInfo(["Nuclei"], "Nuclei", [("DNA", 0)], {}, 64, {}))  # 64 px images
    config = TrainConfig(crop_size=80)
    form.show_model(SimpleNamespace(config=config, object_name="Nuclei", channel_names=["DNA"]))
    assert form.config().crop_size == 80


def test_the_widget_s_discovery_is_cellae_encode_s():
    # The widget scores with DiscoveryOptions() and maps with DEFAULT_EMBEDDING; cellae
    # encode's defaults must be the same.
    from napari_cellae._ui.results_panel import MAPS
    from napari_cellae.cli.cells import _options
    from napari_cellae.core.features import DEFAULT_EMBEDDING
    from napari_cellae.pipeline.discovery import DiscoveryOptions

    parser, encode = _subparser("encode")
    args = parser.parse_args(["encode", "f.ch5", "--model", "m.pt", "--out", "c.h5ad"])
    assert _options(args, args.novelty_percentile) == DiscoveryOptions()
    assert args.embedding == DEFAULT_EMBEDDING
    options = {a.dest: a for a in encode._actions}
    assert {m for _, m in MAPS} == set(options["embedding"].choices)
    reached = {"method": "novelty", "k": "neighbours", "nu": "nu", "groups": "groups"}
    reached |= {"percentile": "novelty_percentile", "seed": "seed"}
    for f in fields(DiscoveryOptions):  # per_group: the gallery's, fixed in both
        assert f.name == "per_group" or reached[f.name] in options, f.name


def test_a_loaded_model_shows_how_it_cuts_its_cells(form):
    # Load model of a `cellae train --preset classic` model left Hide and Brightness at the
    # form's 'all but the cell' and 'per cell', while its features are cut with neither.
    classic = _train("--preset", "classic")
    form.show_model(SimpleNamespace(config=classic, object_name="", channel_names=[]))
    shown = form.config()
    for name in ("crop_size", "input_size", "architecture", *CROP_FIELDS):
        assert getattr(shown, name) == getattr(classic, name), name


#: a choice other than the default for every box (the model file records these alike)
CHOSEN = {
    "crop_size": 48,
    "input_size": 32,
    "mask": "none",
    "intensity": "screen",
    "train_on": "controls",
    "optimizer": "nesterov",
    "learning_rate": 0.0075,
    "momentum": 0.85,
    "batch_size": 64,
    "corruption": 0.15,
    "epochs": 5,
    "samples": 1234,
    "architecture": TINY,
}


def test_the_same_choices_record_the_same_settings(form):
    import json

    assert set(CHOSEN) == set(FORM_FIELDS)
    options = []
    for name, value in CHOSEN.items():
        getattr(form, name).value = value
        options += ["--" + name.replace("_", "-"), str(value)]
    widget, cli = form.config(), _train(*options)
    assert widget == cli
    assert all(getattr(cli, name) != getattr(TrainConfig(), name) for name in CHOSEN)
    # what a model file and a .h5ad record (config.to_dict() as JSON): same values, same types
    assert json.dumps(widget.to_dict()) == json.dumps(cli.to_dict())
