"""The ``cellae`` subcommands and :func:`main`.

Subcommands::

    cellae info FILE.ch5                      what is in a CellH5 file
    cellae make-demo OUT_DIR                  write the synthetic demo screen
    cellae make-screen OUT_DIR                write the harder 15-phenotype benchmark screen
    cellae train FILE.ch5 --mapping M ...     train an autoencoder, save model.pt
    cellae encode FILE.ch5 --model model.pt   features of every cell -> Explorer .hdf
                                              (or cells.h5ad: AnnData with novelty)
    cellae hits CELLS.h5ad --out hits.csv     positions ranked by their novel cells
    cellae demo --out DIR                     all of it on the bundled demo screen

Errors a user can cause print one line: a bad command line (an unknown option, a value of
the wrong type or outside its range) ``cellae COMMAND: error: argument --OPTION: ...`` and
exits with status 2; any other problem ``cellae: error: ...`` with status 1. Options and
outputs are checked against the inputs before any work.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from napari_cellae.cli.failures import after_interrupt, out_of_memory, stdout_closed
from napari_cellae.cli.output import (
    PROG,
    CountBar,
    EpochBar,
    describe_cellh5,
    fail,
    note,
    training_summary,
)
from napari_cellae.cli.parser import build_parser, config_from_args, explicit_settings
from napari_cellae.cli.run_args import (
    ignored_settings,
    input_paths,
    note_unused_token,
    train_args,
)
from napari_cellae.cli.usage import (
    UsageError,
    check_device,
    check_screen_args,
    print_usage_error,
    subcommand_parser,
    unrecognized,
)

if TYPE_CHECKING:
    from napari_cellae.core.config import TrainConfig
    from napari_cellae.core.ddp import TorchrunEnv
    from napari_cellae.pipeline.results import RunResult

__all__ = ["UserError", "main"]


class UserError(Exception):
    """A problem the user can fix; printed as one line without traceback."""


def _output_folder(folder: Path) -> Path:
    """Create an output folder (and its parents); refuse a file in its place."""
    if folder.is_symlink() and not folder.exists():
        target = os.readlink(folder)
        raise UserError(f"cannot write into {folder}: it links to {target}, which does not exist")
    if folder.exists() and not folder.is_dir():
        what = "a file" if folder.is_file() else "a special file (a device, pipe or socket)"
        raise UserError(f"cannot write into {folder}: it is {what}, expected a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create folder {folder}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        from napari_cellae.io.write_failure import read_only_file_system

        # Its mode bits allow writing there: "permission denied" sent users to chmod.
        if read_only_file_system(folder):
            raise UserError(
                f"cannot write into folder {folder}: its file system is mounted read-only; "
                "choose a folder on another disk"
            )
        raise UserError(f"cannot write into folder {folder}: permission denied")
    return folder


def _train(
    args: argparse.Namespace,
    config: TrainConfig,
    file: Path | list[Path],
    mapping_path: Path | None,
    out: Path,
    only_drawn: bool = False,
    keep_on_interrupt: bool = True,
) -> RunResult:
    """Crop, train and save with a progress bar; Ctrl-C stops training and keeps the model
    (``keep_on_interrupt``; else it raises KeyboardInterrupt and saves nothing).
    ``only_drawn``: crop only the cells training uses (``run_train``'s)."""
    from napari_cellae.core.config import COLLAPSE_ADVICE
    from napari_cellae.pipeline.runs import run_train

    _check_cells(file, args)
    with EpochBar(config.epochs, args.quiet) as bar:
        # The weights of the finished epochs are still good after Ctrl-C: keep them rather
        # than lose a long run to an impatient interrupt.
        result = run_train(
            file,
            config,
            mapping_path,
            out=out,
            on_epoch=bar,
            keep_on_interrupt=keep_on_interrupt,
            only_drawn=only_drawn,
            **train_args(args),
        )
    if result.reports and result.reports[-1].collapsed:
        note(COLLAPSE_ADVICE, "warning")
    if result.stopped:
        note(f"interrupted after {len(result.reports)} epoch(s); keeping that model")
    return result


def _check_cells(file: Path | list[Path], args: argparse.Namespace) -> None:
    """Refuse an object or channel a plate lacks before any progress bar: ``cellae demo
    --channel 1`` drew 'training: 0%' above its error. Reads only the plates' layout."""
    from napari_cellae.io.cellh5 import CellH5
    from napari_cellae.pipeline.runs import training_plates
    from napari_cellae.pipeline.selection import plate_channels

    plates = training_plates(file)
    object_name, names = args.object_name, None
    for plate in plates:
        with CellH5(plate) as ch5, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the run says them, once
            object_name, names, _ = plate_channels(ch5, object_name, args.channel, names, plates[0])


def _cmd_info(args: argparse.Namespace) -> int:
    from napari_cellae.io.cellh5 import CellH5

    with CellH5(args.file) as ch5:
        print(describe_cellh5(ch5))
    return 0


def _cmd_make_demo(args: argparse.Namespace) -> int:
    from napari_cellae.demo.screen import make_demo

    check_screen_args(args)
    ch5, mapping = make_demo(_output_folder(args.out_dir), seed=args.seed)
    print(f"Demo screen written:\n  {ch5}\n  {mapping}")
    return 0


def _cmd_make_screen(args: argparse.Namespace) -> int:
    from napari_cellae.demo.benchmark import make_benchmark_screen

    check_screen_args(args)
    folder = _output_folder(args.out_dir)
    ch5, mapping = make_benchmark_screen(
        folder,
        args.seed,
        args.cells,
        zoom=args.zoom,
        light=args.light,
        segmentation=args.segmentation,
    )
    print(f"Benchmark screen written:\n  {ch5}\n  {mapping}")
    return 0


def _note_ignored(config: TrainConfig, args: argparse.Namespace) -> None:
    for text in ignored_settings(config, explicit_settings(args)):
        note(text)


def _cmd_train(args: argparse.Namespace) -> int:
    from napari_cellae.core.ddp import torchrun_env

    env = torchrun_env()  # started by torchrun: one rank of a data-parallel run
    with warnings.catch_warnings():
        if env is not None and not env.is_main:  # every rank reads the same files: rank 0
            warnings.simplefilter("ignore", UserWarning)  # says it once, not once per rank
        return _train_here(args, env)


def _train_here(args: argparse.Namespace, env: TorchrunEnv | None) -> int:
    """``cellae train`` here, or as one rank of torchrun (``env``)."""
    overrides = {}
    # Said only where a mapping would change what is trained on ('classic': the controls).
    untold = args.mapping is None and config_from_args(args).train_on == "controls"
    if args.mapping is None:
        if explicit_settings(args).get("train_on") == "controls":
            raise UsageError(
                "--train-on",
                "controls needs --mapping to know which positions are negative controls "
                "(or leave out --train-on to train on all cells)",
            )
        overrides["train_on"] = "all"
    config = config_from_args(args, **overrides)
    check_device(config.device)
    if not {"crop_size", "input_size"} & explicit_settings(args).keys():
        from napari_cellae.pipeline.cell_size import fit_to_cells
        from napari_cellae.pipeline.runs import training_plates

        plates = training_plates(input_paths(args))
        config, fitted = fit_to_cells(plates, config, args.object_name)
        if fitted and (env is None or env.is_main):
            note(f"{fitted}; give --crop-size to choose the box yourself")
    if env is None or env.is_main:
        _note_ignored(config, args)
        note_unused_token(args)
    if untold and (env is None or env.is_main):
        note(
            "no --mapping given, so training on all cells (with a position mapping the "
            f"'{args.preset}' preset trains on the negative controls only)"
        )
    t0 = time.perf_counter()
    if env is not None:
        from napari_cellae.cli.scale import train_torchrun

        _check_cells(input_paths(args), args)  # before every rank's bar, as below
        return train_torchrun(args, config, env, t0)
    result = _train(args, config, input_paths(args), args.mapping, args.out, only_drawn=True)
    print(f"{training_summary(result)}; {time.perf_counter() - t0:.1f} s")
    print(f"Model saved to {result.model_path}")
    return 130 if result.stopped else 0  # a script's next step must not take it as done


def _cmd_encode(args: argparse.Namespace) -> int:
    from napari_cellae.cli.cells import encode_cells, output_kind

    kind = output_kind(args)
    note_unused_token(args)
    if kind == "anndata":
        return encode_cells(args)  # features, novelty, groups and 2-D maps in one .h5ad
    from napari_cellae.cli.scale import encode_command

    return encode_command(args)  # streamed position by position, here or on Dask


def _cmd_hits(args: argparse.Namespace) -> int:
    from napari_cellae.cli.cells import cmd_hits

    return cmd_hits(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from napari_cellae.core.class_separation import knn_accuracy
    from napari_cellae.core.features import embed_2d
    from napari_cellae.demo.screen import demo_paths
    from napari_cellae.export.plots import plot_embedding
    from napari_cellae.io.locate import input_files
    from napari_cellae.pipeline import steps

    config = config_from_args(args)
    check_device(config.device)
    _note_ignored(config, args)
    out = _output_folder(args.out)
    paths = {"model": out / "model.pt", "features file": out / "features.hdf"}
    paths["plot"] = out / "embedding.png"
    t0 = time.perf_counter()
    ch5_path, mapping_path = demo_paths()
    inputs = [ch5_path, mapping_path]
    steps.check_outputs([(p, what) for what, p in paths.items()], inputs)

    # Ctrl-C stops the whole demo: keeping the model of the finished epochs let it go on to
    # encode, write and plot, and exit 0. Nothing is saved, so the folder's earlier model,
    # features and plot stay one matching set.
    result = _train(args, config, ch5_path, mapping_path, paths["model"], keep_on_interrupt=False)
    crops = result.crops
    with CountBar("encoding", args.quiet) as bar:
        result.features = steps.encode_crops(result.trained, crops, progress=bar)
    inputs = [*input_files(ch5_path), mapping_path]
    result.features_path = steps.write_features(
        paths["features file"], crops, result.features, result.mapping, result.trained, inputs
    )
    result.embedding = embed_2d(result.features)
    from napari_cellae.core.morphology import MORPHOLOGY_NAMES

    outline = len(MORPHOLOGY_NAMES) if result.trained.config.measures_outline else 0
    learned = result.features.shape[1] - outline
    described = f"{learned} learned + {outline} outline" if outline else f"{learned} learned"
    png = plot_embedding(
        paths["plot"],
        result.embedding,
        steps.cell_conditions(crops, result.mapping),
        title=f"napari-cellae demo: {len(crops)} nuclei, {described} features",
        inputs=inputs,
    )

    print(f"Model:      {result.model_path}")
    print(f"Features:   {result.features_path}  (open it in CellCognition Explorer)")
    print(f"Embedding:  {png}")
    print(training_summary(result))
    labelled = crops.class_idx >= 0
    if labelled.any():
        import numpy as np

        acc = knn_accuracy(result.features, crops.class_idx, k=5, folds=5, seed=0)
        n_classes = len(np.unique(crops.class_idx[labelled]))
        print(
            f"5-NN accuracy of the features vs the true phenotype "
            f"({n_classes} classes, 5-fold): {acc:.1%}"
        )
    print(f"Total time: {time.perf_counter() - t0:.1f} s")
    return 0


_COMMANDS = {
    "info": _cmd_info,
    "make-demo": _cmd_make_demo,
    "make-screen": _cmd_make_screen,
    "train": _cmd_train,
    "encode": _cmd_encode,
    "demo": _cmd_demo,
    "hits": _cmd_hits,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cellae`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        Exit status: 0 success, 1 user error (one line on stderr), 2 bad command line,
        130 interrupted.
    """
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(list(argv) if argv is not None else None)
        if extra:  # said by the subcommand, with its options' spellings, not by cellae's
            command = subcommand_parser(parser, args.command)
            command.error(unrecognized(command, extra))
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    from napari_cellae.io.cellh5 import CellH5Error

    try:
        diverged: tuple[type[BaseException], ...] = ()
        if args.command in ("train", "demo"):
            from napari_cellae.core.trainer import TrainingDiverged

            diverged = (TrainingDiverged,)
        try:
            return _COMMANDS[args.command](args)
        except diverged as exc:
            # The trainer says it kept the last good weights: of a model this run never
            # writes ('training diverged: training diverged in epoch 1 ... were kept').
            problem = getattr(exc, "problem", str(exc))
            if not problem.startswith("training diverged"):
                problem = f"training diverged: {problem}"
            return fail(f"{problem}; no model was written")
        except Exception as exc:
            if after_interrupt(exc):
                raise KeyboardInterrupt from None
            memory = out_of_memory(exc)
            if memory is not None:
                raise MemoryError(memory) from None
            raise
    except UsageError as exc:
        return print_usage_error(args.command, exc)
    except (UserError, CellH5Error, ValueError) as exc:
        return fail(str(exc))
    except BrokenPipeError as exc:
        if not stdout_closed():
            return fail(f"cannot access: {exc.strerror or exc}")
        return 128 + 13  # as a tool killed by SIGPIPE: the reader (`| head`) has had enough
    except OSError as exc:
        name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        return fail(f"cannot access{name}: {exc.strerror or exc}")
    except MemoryError as exc:  # a position of millions of cells, or a table declaring them
        where = f"{args.file}: " if getattr(args, "file", None) else ""
        said = str(exc) or "MemoryError"
        if not said.startswith("not enough"):  # numpy's 'Unable to allocate 4.77 GiB ...'
            said = f"not enough memory ({said})"
        return fail(f"{where}{said}")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
