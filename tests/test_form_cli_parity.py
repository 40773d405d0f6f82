"""The widget's form and the ``cellae`` command line set up the same jobs alike.

Every TrainConfig field and discovery option is enumerated, so that a field added to one
front end only, or a box whose range or decimals refuse what ``cellae train`` (or
``cellae encode``'s novelty options) accepts, fails here; a discovery option without a box
is listed with the reason (CLI_ONLY). The Preset box is ``--preset``: every preset, alone
and with options, and the settings without a box it decides.
"""

from __future__ import annotations

from dataclasses import fields
from types import SimpleNamespace

import pytest

from napari_cellae._ui.form import (
    BOX_FIELDS,
    CROP_FIELDS,
    PRESET_ONLY,
    TRAINING_FIELDS,
    FileInfo,
    ParameterForm,
    read_file_info,
)
from napari_cellae._ui.preset_choice import FROM_MODEL
from napari_cellae.cli.parser import build_parser, config_from_args
from napari_cellae.core.config import DEFAULT_PRESET, PRESETS, TrainConfig, field_info

#: fields without a box that the Preset box decides (the chosen preset's, or a loaded model's)
BY_PRESET = {"revive", "decorrelation", "readout", "orientations", "morphology"}
#: fields no preset sets and that have no box: the command line's only; the widget keeps
#: their defaults, except after Load model, whose values it keeps for the next Train
FORM_LESS = {"seed", "device", "held_out_fraction", "augment"}
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


def _args(*options: str):
    parser, _ = _subparser("train")
    return parser.parse_args(["train", "f.ch5", *options])


def _train(*options: str) -> TrainConfig:
    return config_from_args(_args(*options))


def test_every_field_is_an_option_and_a_box_or_listed_as_form_less():
    names = {f.name for f in fields(TrainConfig)}
    assert FORM_FIELDS == BOX_FIELDS and len(FORM_FIELDS) == len(set(FORM_FIELDS))
    assert set(PRESET_ONLY) == BY_PRESET
    assert set(FORM_FIELDS) | BY_PRESET | FORM_LESS == names
    assert not set(FORM_FIELDS) & (BY_PRESET | FORM_LESS) and not BY_PRESET & FORM_LESS
    # every field a preset sets is a box or decided by the Preset box; none of FORM_LESS is
    for preset in PRESETS.values():
        assert set(preset.settings) <= set(FORM_FIELDS) | BY_PRESET
        assert not set(preset.settings) & FORM_LESS
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
    assert form.preset.value == DEFAULT_PRESET and set(form.preset.choices) == set(PRESETS)
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
        if floats:  # every value of three decimals that cellae train takes, held exactly
            for value in (v / 1000 for v in range(1001)):
                if _accepts(name, value) and value <= box.max:
                    box.value = value
                    assert box.value == value, (name, value)
            assert box.max >= 0.999 or (name, "max") in OPEN, name
    form.learning_rate.value = 0.005  # half the help's least good value
    assert form.learning_rate.value == 0.005 and form.config().learning_rate == 0.005
    assert form.learning_rate.min > 0


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_the_preset_box_is_cellae_train_preset(form, preset, mapping_file):
    # The widget had no preset box: the original module's settings (classic: code readout,
    # one orientation, no outline, no reviving) could not be had from it at all.
    form.preset.value = preset
    assert form.preset.tooltip.lower().startswith(PRESETS[preset].description.lower())
    wanted = _train("--preset", preset)
    for name in FORM_FIELDS:  # every box shows the preset's value, exactly
        if name != "train_on":  # without a mapping: all cells, see below
            assert getattr(form, name).value == getattr(wanted, name), (preset, name)
    # without a mapping cellae train trains on all cells (commands.py), as the form does
    assert form.config() == config_from_args(_args("--preset", preset), train_on="all")
    form.mapping.value = mapping_file
    assert form.config() == wanted
    # boxes changed afterwards keep the preset's settings without a box
    options = []
    for name, value in CHOSEN.items():
        getattr(form, name).value = value
        options += ["--" + name.replace("_", "-"), str(value)]
    assert form.preset.value == preset
    assert form.config() == _train("--preset", preset, *options)


def test_choosing_a_preset_fits_its_box_to_the_cells_as_cellae_train(form, large_cells_file):
    # cellae train --preset demo fits the demo's 32 px box to the file's cells; the form
    # fitted the default preset's 40 px box whatever the preset.
    from napari_cellae.pipeline.cell_size import fit_to_cells

    form.file.value = large_cells_file
    form.show_file(read_file_info(large_cells_file))
    for preset in ("demo", "classic", "demo"):
        form.crop_size.value = 60  # the user's box: a preset chosen fits its own again
        form.preset.value = preset
        fitted, _ = fit_to_cells(large_cells_file, TrainConfig.from_preset(preset))
        shown = form.config()
        assert (shown.crop_size, shown.input_size) == (fitted.crop_size, fitted.input_size)
        assert shown.input_size == PRESETS[preset].settings["crop_size"]


def test_a_loaded_model_shows_its_preset_or_its_own_settings(form):
    # Load model showed the model's cell size, network and masking but left the boxes'
    # training settings and the settings without a box at the form's: Train after it
    # trained otherwise than the model was.
    for preset in PRESETS:
        model = _train("--preset", preset, "--epochs", "7", "--train-on", "all")
        form.preset.value = "classic" if preset != "classic" else DEFAULT_PRESET
        form.show_model(SimpleNamespace(config=model, object_name="", channel_names=[]))
        assert form.preset.value == preset and FROM_MODEL not in form.preset.choices
        assert form.config() == model
    # settings no preset has: the model's own, under a choice of their own
    own = _train("--preset", "classic", "--readout", "pooled", "--batch-size", "64")
    form.show_model(SimpleNamespace(config=own, object_name="", channel_names=[]))
    assert form.preset.value == FROM_MODEL and "match no preset" in form.preset.tooltip
    assert form.config() == TrainConfig(**{**own.to_dict(), "train_on": "all"})
    form.epochs.value = 3  # a box changed keeps the model's settings without a box
    assert form.config().readout == "pooled" and form.preset.value == FROM_MODEL
    form.preset.value = "classic"  # a preset chosen: the model's choice goes
    assert FROM_MODEL not in form.preset.choices
    assert form.config() == config_from_args(_args("--preset", "classic"), train_on="all")


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


#: the discovery options of cellae encode / cellae hits, by DiscoveryOptions field
DISCOVERY_OPTIONS = {
    "method": "novelty",
    "k": "neighbours",
    "nu": "nu",
    "percentile": "novelty_percentile",
    "groups": "groups",
    "seed": "seed",
}
#: the results tab's novelty boxes (NoveltyControls attribute), by DiscoveryOptions field
NOVELTY_BOXES = {"method": "method", "k": "neighbours", "nu": "nu", "percentile": "percentile"}
#: discovery options of the command line only, and why the widget has no box for them
CLI_ONLY = {
    "groups": "chosen from the data in both (best silhouette, 2 to 12); a fixed count is "
    "for scripted comparisons of screens, and the widget's legend names the groups found",
    "seed": "0 in both: the widget's groups, sample of controls and SVM stay reproducible; "
    "the command line varies it to check that findings do not hang on it",
}
#: per_group: the gallery's typical cells per group, fixed in both (no option)
FIXED = {"per_group"}


@pytest.fixture
def boxes(qtbot):
    from napari_cellae._ui.novelty_controls import NoveltyControls

    widget = NoveltyControls()
    qtbot.addWidget(widget)
    return widget


def test_the_widget_s_discovery_is_cellae_encode_s(boxes):
    # The widget scores with its novelty boxes' options (DiscoveryOptions() until changed)
    # and maps with DEFAULT_EMBEDDING; cellae encode's defaults must be the same.
    from napari_cellae._ui.results_panel import MAPS
    from napari_cellae.cli.cells import _options
    from napari_cellae.core.features import DEFAULT_EMBEDDING
    from napari_cellae.pipeline.discovery import DiscoveryOptions

    parser, encode = _subparser("encode")
    args = parser.parse_args(["encode", "f.ch5", "--model", "m.pt", "--out", "c.h5ad"])
    assert _options(args, args.novelty_percentile) == DiscoveryOptions() == boxes.options()
    assert args.embedding == DEFAULT_EMBEDDING
    options = {a.dest: a for a in encode._actions}
    assert {m for _, m in MAPS} == set(options["embedding"].choices)
    names = {f.name for f in fields(DiscoveryOptions)}
    assert set(DISCOVERY_OPTIONS) | FIXED == names and not set(DISCOVERY_OPTIONS) & FIXED
    for name, dest in DISCOVERY_OPTIONS.items():  # every option reaches a field
        assert dest in options, name


def _novelty_accepts(name: str, value: float) -> bool:
    """Whether ``cellae encode`` takes ``value`` for the option of field ``name``."""
    from argparse import Namespace

    from napari_cellae.cli.usage import UsageError, check_novelty_args

    given = {"percentile": None, "k": 10, "nu": 0.05, name: value}
    args = Namespace(novelty_percentile=given["percentile"], groups=None, seed=0)
    try:
        check_novelty_args(args, given["k"], given["nu"])
    except UsageError:
        return False
    return True


def test_every_discovery_option_is_a_box_or_said_to_be_the_command_line_s(boxes):
    # The widget scored every run with DiscoveryOptions(): the 95th percentile of the
    # original hit lists, fewer neighbours or the one-class SVM were the command line's.
    from napari_cellae.pipeline.discovery import DiscoveryOptions

    assert set(NOVELTY_BOXES) | set(CLI_ONLY) == set(DISCOVERY_OPTIONS)
    assert not set(NOVELTY_BOXES) & set(CLI_ONLY)
    default = DiscoveryOptions()
    for command in ("encode", "hits"):
        _, sub = _subparser(command)
        options = {a.dest: a for a in sub._actions}
        choices = [boxes.method.itemData(i) for i in range(boxes.method.count())]
        assert choices == list(options["novelty"].choices), command
    _, encode = _subparser("encode")
    options = {a.dest: a for a in encode._actions}
    for name, attribute in NOVELTY_BOXES.items():
        cli_default = options[DISCOVERY_OPTIONS[name]].default
        assert cli_default == getattr(default, name) == getattr(boxes.options(), name), name
        box = getattr(boxes, attribute)
        assert box.toolTip() and "--" in box.toolTip(), name  # names its option
        if name == "method":
            continue
        floats = hasattr(box, "decimals")
        unit = 10 ** -box.decimals() if floats else 1
        lo, hi = box.minimum(), box.maximum()
        assert _novelty_accepts(name, lo) and _novelty_accepts(name, hi), name
        assert not _novelty_accepts(name, round(lo - unit, 10)), f"{name}: cellae takes below"
        assert not _novelty_accepts(name, round(hi + unit, 10)), f"{name}: cellae takes above"
        if floats:  # the values of its decimals between the bounds, held exactly
            for step in range(0, round((hi - lo) / unit) + 1, 7):
                value = round(lo + step * unit, box.decimals())
                box.setValue(value)
                assert box.value() == value and getattr(boxes.options(), name) == value, name


def test_the_boxes_give_cellae_encode_s_options(boxes):
    # What the boxes ask is what cellae encode scores with those flags (and records).
    from napari_cellae.cli.cells import _options

    boxes.percentile.setValue(95.0)
    boxes.neighbours.setValue(5)
    parser, _ = _subparser("encode")
    flags = ["--novelty-percentile", "95", "--neighbours", "5"]
    args = parser.parse_args(["encode", "f.ch5", "--model", "m.pt", "--out", "c.h5ad", *flags])
    assert boxes.options() == _options(args, args.novelty_percentile)
    boxes.method.setCurrentIndex(boxes.method.findData("svm"))
    boxes.nu.setValue(0.2)
    boxes.neighbours.setValue(10)
    svm = ["--novelty", "svm", "--nu", "0.2", "--novelty-percentile", "95"]
    args = parser.parse_args(["encode", "f.ch5", "--model", "m", "--out", "c.h5ad", *svm])
    assert boxes.options() == _options(args, args.novelty_percentile)


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
