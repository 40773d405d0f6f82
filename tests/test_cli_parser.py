"""The ``cellae`` command line generated from TrainConfig (napari_cellae.cli.parser)."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from cli_helpers import usage_error
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
        (["--cell-size", "16"], "crop_size", 16),  # the widget's and the help's word
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
    with pytest.raises(ValueError, match=r"argument --epochs: must be 1\.\.100000, got 0"):
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
            if command == "demo" and name == "crop_size":  # demo never fits the box
                guide = guide.split(" Not given (nor the network input)")[0]
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


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        # Said as 'cellae: error: invalid training setting: epochs must be ...' (status 1),
        # naming the field, where a value of the wrong type got argparse's status 2.
        (["--epochs", "0"], "argument --epochs: must be 1..100000, got 0"),
        (["--held-out", "1"], "argument --held-out-fraction: must be 0..0.9, got 1.0"),
        (["--momentum", "1"], "argument --momentum: must be at least 0 and below 1, got 1.0"),
        (["--corruption", "1"], "argument --corruption: must be at least 0 and below 1"),
        # 'learning_rate must be > 0, got inf': inf is above 0
        (["--lr", "1e999"], "argument --learning-rate: must be a finite number above 0, got inf"),
        (["--samples", "0"], "argument --samples: must be 1..1000000000, got 0"),
        (["--crop-size", "18"], "argument --crop-size: crop size 18 px does not fit"),
        (["--architecture", "junk"], "argument --architecture: 'junk': cannot parse layer"),
        (["--optimizer", "nesterov", "--momentum", "0"], "argument --momentum: must be above 0"),
    ],
)
@pytest.mark.parametrize("command", [["train", "missing.ch5"], ["demo", "--out", "d"]])
def test_values_out_of_range_are_usage_errors_naming_the_option(
    command, argv, problem, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert main([*command, *argv]) == 2
    usage_error(capsys.readouterr().err, command[0], problem)
    assert list(tmp_path.iterdir()) == []  # refused before any work


def test_parser_errors_are_one_line_pointing_to_help(capsys):
    # argparse put its usage block (13 lines for train) above the line that mattered.
    assert main(["train", "x.ch5", "--epochs", "1.5"]) == 2
    usage_error(
        capsys.readouterr().err,
        "train",
        "argument --epochs: invalid int value: '1.5' (see 'cellae train --help')",
    )
    assert main(["demo"]) == 2
    usage_error(capsys.readouterr().err, "demo", "the following arguments are required: --out")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["train", "x.ch5", "--epocs", "2"], "--epocs 2; did you mean --epochs?"),
        (["train", "x.ch5", "--learningrate=0.1"], "did you mean --learning-rate?"),
        (["encode", "x.ch5", "--model", "m.pt", "--neighbors", "5"], "did you mean --neighbours?"),
        (["demo", "--out", "d", "--mapping", "m.txt"], "unrecognized arguments: --mapping m.txt ("),
        (["info", "a.ch5", "b.ch5"], "unrecognized arguments: b.ch5 ("),
    ],
)
def test_unknown_options_are_said_by_their_command_with_a_guess(argv, said, capsys):
    # 'cellae: error: unrecognized arguments: --epocs 2' under the usage of cellae itself
    # ('cellae [-h] [--version] COMMAND ...'), and no guess at the option meant.
    assert main(argv) == 2
    usage_error(capsys.readouterr().err, argv[0], said, f"(see 'cellae {argv[0]} --help')")


def test_a_gpu_that_is_not_there_is_refused_before_any_cell_is_cut(capsys, tmp_path, monkeypatch):
    # The trainer said 'device 'cuda' requested but CUDA is not available' only after every
    # crop of the screen was cut, naming no option; here the file does not even exist.
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    missing = str(tmp_path / "missing.ch5")
    assert main(["train", missing, "--device", "cuda"]) == 2
    usage_error(capsys.readouterr().err, "train", "argument --device: cuda: no CUDA GPU")
    assert main(["demo", "--out", str(tmp_path / "d"), "--device", "cuda:0"]) == 2
    usage_error(capsys.readouterr().err, "demo", "give --device cpu, or auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert main(["train", missing, "--device", "cuda:2"]) == 2
    usage_error(capsys.readouterr().err, "train", "this machine has 2 GPU(s), cuda:0..cuda:1")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("command", "bars"),
    [
        (["info", "x.ch5"], False),
        (["make-demo", "d"], False),
        (["make-screen", "d"], False),
        (["hits", "c.h5ad", "--out", "h.csv"], False),
        (["train", "x.ch5"], True),
        (["encode", "x.ch5", "--model", "m.pt"], True),
        (["demo", "--out", "d"], True),
    ],
)
def test_quiet_says_what_it_does_for_each_command(command, bars, capsys):
    # Every command's -q said 'no progress bars, only the summary', also where there are none.
    assert _parse(*command, "-q").quiet
    assert main([command[0], "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert ("-q, --quiet no progress bars, only the summary" in text) == bars
    assert ("-q, --quiet no effect (this command shows no progress bars)" in text) != bars


@pytest.mark.parametrize(
    ("argv", "command", "said"),
    [
        (["trian", "x.ch5"], "", "invalid choice: 'trian' (choose from 'info', "),
        (["trian", "x.ch5"], "", "; did you mean 'train'? (see 'cellae --help')"),
        (["Train", "x.ch5"], "", "; did you mean 'train'?"),
        (["train", "x.ch5", "--preset", "Classic"], "train", "; did you mean 'classic'?"),
        # an option of the command given before it: 'unrecognized arguments: -q' under the
        # usage of cellae itself
        (["-q", "info", "x.ch5"], "info", "-q must come after the command: cellae info -q ..."),
    ],
)
def test_a_misspelt_command_or_choice_gets_a_guess(argv, command, said, capsys):
    assert main(argv) == 2
    usage_error(capsys.readouterr().err, command, said)


def test_no_guess_where_nothing_is_close(capsys):
    assert main(["train", "x.ch5", "--optimizer", "adam"]) == 2
    assert "did you mean" not in capsys.readouterr().err


def test_cellae_help_says_the_exit_statuses(capsys):
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 done, 1 the run failed" in text
    assert "2 a bad command line (nothing was written), 130 interrupted" in text


def test_hits_refuses_bad_novelty_options_before_reading_the_file(tmp_path, capsys):
    # They were checked after the cell table was read: a missing file was said instead.
    out = tmp_path / "hits.csv"
    assert main(["hits", str(tmp_path / "missing.h5ad"), "--out", str(out), "--nu", "3"]) == 2
    usage_error(capsys.readouterr().err, "hits", "argument --nu: must be above 0 and below 1")
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["train", "x.ch5", "--mapping", "a.txt", "--mapping", "b.txt"],
            "argument --mapping: given twice, a.txt and b.txt; give one (one mapping serves "
            "several plates: give it a Plate column)",
        ),
        (
            ["encode", "x.ch5", "--model", "a.pt", "--model", "b.pt"],
            "argument --model: given twice, a.pt and b.pt; give one (see",
        ),
    ],
)
def test_a_mapping_or_model_given_twice_is_refused(argv, said, capsys):
    # The last one was used alone, unsaid: one mapping per plate was never read.
    assert main(argv) == 2
    usage_error(capsys.readouterr().err, argv[0], said)
    same = _parse("encode", "x.ch5", "--model", "a.pt", "--model", "a.pt")
    assert str(same.model) == "a.pt"  # the same file twice is no contradiction


@pytest.mark.parametrize("given", ["--augment=yes", "--no-augment=1"])
def test_a_switch_given_a_value_says_how_to_turn_it_on_or_off(given, capsys):
    # argparse said 'argument --augment/--no-augment: ignored explicit argument 'yes''.
    assert main(["train", "x.ch5", given]) == 2
    usage_error(
        capsys.readouterr().err,
        "train",
        "argument --augment: takes no value; give --augment to turn it on, --no-augment to "
        "turn it off",
    )


def test_the_demos_help_does_not_say_it_fits_the_box_to_the_cells(capsys):
    # 'cellae demo --help' said the box is fitted to the file's cells; demo never fits
    for command, fits in (("demo", False), ("train", True)):
        assert main([command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert ("the file's bounding boxes show" in text) is fits, command
        assert ("it never fits the box to the cells" in text) is not fits, command
    assert "Cell size: edge of the square box" in text  # the rest of the help kept
