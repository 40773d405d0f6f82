"""The training-parameter guidance shared by `cellae --help` and the widget's tooltips."""

from __future__ import annotations

import dataclasses

from napari_cellae.cli import app as cli
from napari_cellae.core.guide import PARAMETER_GUIDE
from napari_cellae.core.training import TrainConfig


def test_every_entry_is_a_config_field() -> None:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(PARAMETER_GUIDE) <= fields
    # every parameter a user sets in the widget or on the command line is explained
    assert {"crop_size", "learning_rate", "batch_size", "corruption", "epochs"} <= set(
        PARAMETER_GUIDE
    )


def test_cli_help_shows_the_guide(capsys) -> None:
    for command in ("train", "demo"):
        try:
            cli.main([command, "--help"])
        except SystemExit:
            pass
        text = " ".join(capsys.readouterr().out.split())
        for field, guide in PARAMETER_GUIDE.items():
            assert " ".join(guide.split()) in text, (command, field)
