"""The ``cellae`` command line, with the training options generated from ``TrainConfig``.

Every field of :class:`~napari_cellae.core.config.TrainConfig` becomes one option:
``--crop-size`` for ``crop_size`` (plus the aliases its metadata lists, e.g. ``--size``),
typed, with its choices and its help text. Defaults come from a preset (``--preset``), and
options given on the command line override the preset's values; nothing here repeats a
default. No torch is imported, so ``--help`` and ``cellae info`` start fast.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from napari_cellae.cli.discovery_options import add_discovery_options, add_hits_parser
from napari_cellae.cli.output import PROG
from napari_cellae.cli.run_args import OnePath, path_value
from napari_cellae.cli.scale import add_cluster_options
from napari_cellae.cli.usage import MAX_SCREEN_CELLS, CommandParser, setting_error
from napari_cellae.core.config import DEFAULT_PRESET, PRESETS, TrainConfig, field_info
from napari_cellae.core.config_checks import SettingError

__all__ = ["add_training_options", "build_parser", "config_from_args", "explicit_settings"]

_RAW = argparse.RawDescriptionHelpFormatter
# Where the cell size's help starts saying how cellae train fits the box to the cells.
_FITTED = " Not given (nor the network input):"


def _escape(text: str) -> str:
    return text.replace("%", "%%")  # argparse formats help with %-placeholders


def add_training_options(
    parser: argparse.ArgumentParser, preset: str, fits_box: bool = True
) -> None:
    """Add ``--preset``, the crop options and one option per ``TrainConfig`` field.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    preset : str
        The preset whose values are the defaults (a key of ``PRESETS``).
    fits_box : bool
        Whether the command fits the crop box to the file's cells when no cell size is
        given (``cellae train``); ``cellae demo`` never does, and its help says so.

    Notes
    -----
    Field options default to ``argparse.SUPPRESS``: only the options a user gives appear
    in the namespace (see :func:`explicit_settings`), and :func:`config_from_args` lays
    them over the chosen preset.
    """
    defaults = TrainConfig.from_preset(preset).to_dict()
    presets = "; ".join(f"'{name}': {p.description}" for name, p in PRESETS.items())
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=preset,
        help=_escape(
            f"Start from a named set of settings ({presets}); the options below override "
            f"its values. (default: {preset})"
        ),
    )
    g = parser.add_argument_group("what to crop")
    g.add_argument(
        "--object",
        dest="object_name",
        metavar="OBJ",
        default=None,
        help="Segmented object type to crop around, e.g. primary__primary (CellCognition) "
        "or Nuclei (CellProfiler). Default: the file's main object.",
    )
    g.add_argument(
        "--channel",
        action="append",
        metavar="CH",
        default=None,
        help="Image channel (name or number) to learn from; repeat for several channels. "
        "A name wins over a number (with channels named '1' and '2', 1 is the one named '1', "
        "with a warning). Default: the channel the objects were segmented in.",
    )
    groups = {"what to crop": g}
    for f in fields(TrainConfig):
        info = field_info(f.name)
        group = groups.get(info["group"])
        if group is None:
            group = groups[info["group"]] = parser.add_argument_group(info["group"])
        shown = defaults[f.name]
        if isinstance(shown, bool):
            shown = "on" if shown else "off"
        text = info["help"]
        if f.name == "crop_size" and not fits_box:  # it said the box is fitted to the cells
            text = (
                text.split(_FITTED, 1)[0]
                + " cellae demo crops with the box given, or the preset's: it never fits the "
                "box to the cells."
            )
        kwargs: dict = {
            "dest": f.name,
            "default": argparse.SUPPRESS,
            "help": _escape(f"{text} (default: {shown})"),
        }
        if info["type"] is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = info["type"]
            if info["choices"]:
                kwargs["choices"] = [value for value, _ in info["choices"]]
            elif info["metavar"]:
                kwargs["metavar"] = info["metavar"]
        group.add_argument("--" + f.name.replace("_", "-"), *info["aliases"], **kwargs)


def explicit_settings(args: argparse.Namespace) -> dict:
    """The ``TrainConfig`` fields given on the command line, by field name."""
    names = {f.name for f in fields(TrainConfig)}
    return {name: value for name, value in vars(args).items() if name in names}


def config_from_args(args: argparse.Namespace, **overrides: object) -> TrainConfig:
    """The training configuration of parsed options: the preset, then the options given.

    Parameters
    ----------
    args : argparse.Namespace
        From a parser with :func:`add_training_options`.
    **overrides
        Settings decided by the command itself (they win over everything).

    Returns
    -------
    TrainConfig

    Raises
    ------
    UsageError
        A ``ValueError`` naming the option of the first invalid setting
        (``argument --epochs: must be 1..100000, got 0``).
    """
    given = explicit_settings(args)
    try:
        return TrainConfig.from_preset(args.preset, **{**given, **overrides})
    except SettingError as exc:  # said as 'epochs must be ...': name the option to change
        raise setting_error(exc, given) from None


def _add_mapping_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mapping",
        action=OnePath,
        type=path_value,
        metavar="M",
        default=None,
        help="Position mapping (tab-separated CellCognition table: Well, Site, Gene Symbol, "
        "Group, optionally Plate for plates of different layouts; or two columns, position "
        "and condition) giving each position its treatment and marking negative controls.",
    )
    parser.add_argument(
        "--control-token",
        default="neg",
        metavar="TEXT",
        help="Negative controls are the rows whose Group starts with TEXT, in any case "
        "('neg. control' too); in a two-column mapping, the conditions that start with it. "
        "(default: %(default)s)",
    )


def _add_inputs(parser: argparse.ArgumentParser, what: str) -> None:
    """``FILE.ch5 [MORE ...]``: one CellH5 file, or several plates (files and folders)."""
    parser.add_argument("file", type=path_value, metavar="FILE.ch5")
    parser.add_argument(
        "more",
        type=path_value,
        nargs="*",
        default=[],  # else argparse (Python < 3.13) lists MORE as a required argument
        metavar="MORE",
        help="more CellH5 files or folders (a folder of plates: one plate per sub-folder or "
        f".ch5 file); {what}",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cellae`` (exposed for documentation and tests).

    Returns
    -------
    argparse.ArgumentParser
    """
    from napari_cellae import __version__

    parser = CommandParser(  # its subcommands' parsers are CommandParsers too
        prog=PROG,
        description="Learn single-cell features from pixels with denoising convolutional "
        "autoencoders (the Deep Learning Module of CellCognition Explorer).",
        epilog="'cellae COMMAND --help' says what a command does and lists its options. Exit "
        "status: 0 done, 1 the run failed (the message names the file or the problem), 2 a "
        "bad command line (nothing was written), 130 interrupted (Ctrl-C).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars, only the summary"
    )
    # info, make-demo, make-screen and hits show no progress bars: their -q said it hid them.
    still = argparse.ArgumentParser(add_help=False)
    still.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no effect (this command shows no progress bars); accepted as by every command",
    )

    p = sub.add_parser(
        "info",
        parents=[still],
        help="summarise a CellH5 file",
        description="Show plates, positions (plate/well_site where the file holds several "
        "plates), channels (type and shape), frames, and object types with their counts per "
        "position and sizes (or why the file has none) of a CellH5 file.",
    )
    p.add_argument("file", type=path_value, metavar="FILE.ch5")

    p = sub.add_parser(
        "make-demo",
        parents=[still],
        help="write the synthetic demo screen",
        description="Write the synthetic demo screen (a CellH5 file with true phenotypes and "
        "its position mapping) into OUT_DIR.",
    )
    p.add_argument("out_dir", type=path_value, metavar="OUT_DIR")
    p.add_argument("--seed", type=int, default=0, help="seed of the screen (default: 0)")

    p = sub.add_parser(
        "make-screen",
        parents=[still],
        help="write the harder 15-phenotype benchmark screen",
        description="Write the synthetic 12-bit benchmark screen (32 wells, 15 MitoCheck-like "
        "phenotypes, crowding, brightness and illumination varying between wells "
        "independently of the phenotype; true classes and label images stored) and its "
        "position mapping into OUT_DIR. benchmarks/bench_quality.py measures features on it.",
    )
    p.add_argument("out_dir", type=path_value, metavar="OUT_DIR")
    p.add_argument("--seed", type=int, default=0, help="seed of the screen (default: 0)")
    p.add_argument(
        "--cells",
        type=int,
        default=5000,
        metavar="N",
        help=f"about how many cells, 100-{MAX_SCREEN_CELLS} (drawn in memory, about 18 kB and "
        "2-3 ms a cell; at --zoom Z above 1, Z squared times that, and at most "
        f"{MAX_SCREEN_CELLS}/Z^2 cells) (default: 5000)",
    )
    p.add_argument(
        "--zoom",
        type=float,
        default=1.0,
        metavar="Z",
        help="magnification, 0.25-4: the same cells Z times as large in pixels, to check "
        "features at another cell size (default: 1, nuclei about 18-30 px across)",
    )
    p.add_argument(
        "--light",
        type=float,
        default=1.0,
        metavar="L",
        help="exposure, 0.05-4: L times the cells' light over the same background and "
        "camera noise; below 1 noisier images (as in dim live-cell imaging), above 1 "
        "saturated bright cells (default: 1)",
    )
    p.add_argument(
        "--segmentation",
        choices=("drawn", "pieces", "joined"),
        default="drawn",
        help="objects as an analysis might cut them: one per cell (drawn), every connected "
        "piece its own (pieces: a grape's lobes, apoptotic bodies, daughters apart) or "
        "touching cells joined too (joined); each has its cell's phenotype (default: drawn)",
    )

    p = sub.add_parser(
        "train",
        parents=[common],
        help="train an autoencoder on the cells of a CellH5 file (or several plates)",
        description="Crop the cells of a CellH5 file (or of several plates), train a denoising\n"
        "convolutional autoencoder on all of them (or, with --train-on controls, on the\n"
        "negative controls only; at most --samples cells, drawn over all plates) and save it.",
        formatter_class=_RAW,
    )
    _add_inputs(p, "training draws its cells from all of them, cutting only those")
    _add_mapping_options(p)
    add_training_options(p, DEFAULT_PRESET)
    p.add_argument(
        "--out", type=path_value, default=Path("model.pt"), help="model file (default: model.pt)"
    )

    p = sub.add_parser(
        "encode",
        parents=[common],
        help="compute learned features of every cell -> Explorer .hdf or AnnData .h5ad",
        description="Encode every cell of a CellH5 file with a trained model (its crop size, "
        "object and channels) and write a CellCognition Explorer .hdf file, or an AnnData "
        ".h5ad file of cells with novelty against the negative controls, phenotype groups "
        "of the novel cells and a 2-D map (for scanpy and 'cellae hits').",
    )
    _add_inputs(p, "all go into one output, position by position in bounded memory")
    p.add_argument(
        "--model",
        action=OnePath,
        type=path_value,
        required=True,
        help="model file from 'cellae train'",
    )
    _add_mapping_options(p)
    p.add_argument(
        "--out",
        type=path_value,
        default=Path("features.hdf"),
        help="output file: .hdf for CellCognition Explorer, .h5ad for AnnData "
        "(default: features.hdf)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=512,
        metavar="N",
        help="cells encoded at once (default: 512)",
    )
    add_cluster_options(p)
    add_discovery_options(p)

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="train and encode the bundled demo screen",
        description="Train on the bundled synthetic demo screen and write DIR/model.pt,\n"
        "DIR/features.hdf and DIR/embedding.png. Defaults (the 'demo' preset) are chosen\n"
        "to finish within about two minutes on two CPU cores.",
        formatter_class=_RAW,
    )
    p.add_argument("--out", type=path_value, required=True, metavar="DIR", help="output folder")
    add_training_options(p, "demo", fits_box=False)
    add_hits_parser(sub, still)
    return parser
