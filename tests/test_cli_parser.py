"""The ``cellae`` command line generated from TrainConfig (napari_cellae.cli.parser)."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from napari_cellae.cli import main
from napari_cellae.cli.parser import (
    add_training_options,
    build_parser,
    config_from_args,
    explicit_settings,
)
from napari_cellae.core.config import PARAMETER_GUIDE, TrainConfig, field_info


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_cli_defaults_are_the_config_and_the_demo_preset():
    assert config_from_args(_parse("train", "x.ch5")) == TrainConfig()
    assert config_from_args(_parse("demo", "--out", "d")) == TrainConfig.from_preset("demo")
    assert explicit_settings(_parse("train", "x.ch5")) == {}


def test_every_config_field_is_an_option():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    flags = {flag for action in train._actions for flag in action.option_strings}
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in flags, f.name
        assert set(field_info(f.name)["aliases"]) <= flags, f.name


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["--size", "16"], "crop_size", 16),
        (["--crop-size", "16"], "crop_size", 16),
        (["--lr", "0.01"], "learning_rate", 0.01),
        (["--learning-rate", "0.01"], "learning_rate", 0.01),
        (["--held-out", "0.1"], "held_out_fraction", 0.1),
        (["--held-out-fraction", "0.1"], "held_out_fraction", 0.1),
        (["--augment"], "augment", True),
        (["--no-augment"], "augment", False),
        (["--train-on", "all"], "train_on", "all"),
        (["--batch-size", "64"], "batch_size", 64),
        (["--optimizer", "nesterov"], "optimizer", "nesterov"),
        (["--device", "cpu"], "device", "cpu"),
    ],
)
def test_old_and_new_option_names(argv, field, value):
    args = _parse("train", "x.ch5", *argv)
    assert explicit_settings(args) == {field: value}
    assert getattr(config_from_args(args), field) == value


def test_preset_then_options_then_command_overrides():
    args = _parse("train", "x.ch5", "--preset", "demo", "--epochs", "3")
    config = config_from_args(args, seed=5)
    assert (config.crop_size, config.epochs, config.seed) == (32, 3, 5)
    with pytest.raises(ValueError, match=r"epochs must be 1\.\.100000"):
        config_from_args(_parse("train", "x.ch5", "--epochs", "0"))


def test_bad_values_are_usage_errors(capsys):
    assert main(["train", "x.ch5", "--optimizer", "adam"]) == 2
    assert "invalid choice: 'adam'" in capsys.readouterr().err
    assert main(["train", "x.ch5", "--epochs", "many"]) == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_help_shows_the_guide_and_the_command_defaults(capsys):
    for command, preset in (("train", TrainConfig()), ("demo", TrainConfig.from_preset("demo"))):
        assert main([command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        for name, guide in PARAMETER_GUIDE.items():
            assert " ".join(guide.split()) in text, (command, name)
        assert f"(default: {preset.epochs})" in text
        assert f"(default: {preset.architecture})" in text
        assert "--crop-size PX, --size PX" in text
        assert "--preset {classic,recommended,demo}" in text


def test_other_tools_can_reuse_the_training_options():
    parser = argparse.ArgumentParser()
    add_training_options(parser, "demo")
    args = parser.parse_args(["--object", "Nuclei", "--channel", "DNA", "--epochs", "2"])
    assert args.object_name == "Nuclei" and args.channel == ["DNA"]
    assert config_from_args(args) == TrainConfig.from_preset("demo", epochs=2)


@pytest.mark.parametrize("command", [["train"], ["encode", "--model", "m.pt"]])
def test_missing_input_names_only_the_required_file(command, capsys):
    # A '*' positional without a default is 'required' to argparse (before Python 3.13):
    # 'the following arguments are required: FILE.ch5, MORE' told users MORE was needed.
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "required: FILE.ch5" in err
    assert "MORE" not in err.splitlines()[-1]
    assert _parse(*command, "a.ch5").more == []
