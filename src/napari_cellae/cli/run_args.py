"""The run parameters that several ``cellae`` commands take from their parsed options."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from napari_cellae.core.config import TrainConfig

__all__ = [
    "OnePath",
    "encode_args",
    "ignored_settings",
    "input_paths",
    "note_unused_token",
    "path_value",
    "train_args",
]


def path_value(text: str) -> Path:
    """A path option's value (argparse ``type``); an empty one is refused: ``Path("")`` is
    ".", so ``cellae demo --out ""`` wrote into, and over, the working folder's files."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}")
    return Path(text)


class OnePath(argparse.Action):
    """A path option that may be given once (``--mapping``, ``--model``): ``--mapping a.txt
    --mapping b.txt`` used b.txt alone, unsaid, where a user of several plates may have
    meant one mapping for each."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        """Keep ``values``; refuse a second, different one."""
        given = getattr(namespace, self.dest, None)
        if given is not None and given != values:
            instead = " (one mapping serves several plates: give it a Plate column)"
            parser.error(
                f"argument {option_string}: given twice, {given} and {values}; give one"
                + instead * (self.dest == "mapping")
            )
        setattr(namespace, self.dest, values)


def input_paths(args: argparse.Namespace) -> list[Path]:
    """The CellH5 inputs of a command: ``FILE`` and any ``MORE`` files or folders."""
    return [args.file, *getattr(args, "more", [])]


def encode_args(args: argparse.Namespace) -> dict:
    """Keyword arguments of the encoding runs (``run_encode_cells``, ``encode_stream``)."""
    return {
        "mapping_path": args.mapping,
        "control_token": args.control_token,
        "batch_size": args.batch_size,
        "model_path": args.model,
    }


def train_args(args: argparse.Namespace) -> dict:
    """Keyword arguments of the training runs (``run_train``, ``run_train_torchrun``)."""
    return {
        "object_name": args.object_name,
        "channels": args.channel,
        "control_token": getattr(args, "control_token", "neg"),
    }


def note_unused_token(args: argparse.Namespace) -> None:
    """Say that ``--control-token`` changes nothing without ``--mapping`` (``cellae train``
    and ``encode``): no position is a control then, whatever the token."""
    from napari_cellae.cli.output import note

    if args.mapping is None and args.control_token != "neg":
        note(
            f"--control-token {args.control_token!r} ignored: it marks the negative controls "
            "of a --mapping, and none is given"
        )


def ignored_settings(config: TrainConfig, given: Mapping[str, object]) -> list[str]:
    """Say which of the settings a user gave have no effect beside the others.

    Parameters
    ----------
    config : TrainConfig
        The run's settings (preset and given options together).
    given : Mapping[str, object]
        The settings the user chose, by field name (the command line's options).

    Returns
    -------
    list of str
        One sentence per ignored setting; empty when every given setting counts.
    """
    ignored = []
    if "momentum" in given and config.optimizer != "nesterov":
        ignored.append(
            f"--momentum {config.momentum} is ignored: only Nesterov momentum uses it "
            f"(optimizer '{config.optimizer}'; add --optimizer nesterov to use it)"
        )
    if given.get("morphology") and config.mask == "none":
        ignored.append(
            "--morphology is ignored with --mask none: the outline is measured on the "
            "cell's mask (choose --mask cell or neighbours)"
        )
    return ignored
