"""The run parameters that several ``cellae`` commands take from their parsed options."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["encode_args", "input_paths", "train_args"]


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
