"""The ``cellae`` command: learn single-cell features from CellH5 files without a GUI.

Subcommands::

    cellae info FILE.ch5                      what is in a CellH5 file
    cellae make-demo OUT_DIR                  write the synthetic demo screen
    cellae train FILE.ch5 --mapping M ...     train an autoencoder, save model.pt
    cellae encode FILE.ch5 --model model.pt   features of every cell -> Explorer .hdf
    cellae demo --out DIR                     all of it on the bundled demo screen

Errors a user can cause print one line ``cellae: error: ...`` and exit with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.core.guide import PARAMETER_GUIDE

if TYPE_CHECKING:
    from napari_cellae.core.training import EpochReport, TrainConfig
    from napari_cellae.io.cellh5 import CellH5

__all__ = ["build_parser", "describe_cellh5", "main", "plot_embedding"]

PROG = "cellae"

# Defaults of TrainConfig (kept here so `cellae info` and `--help` need not import torch;
# tests check they agree with napari_cellae.core.training.TrainConfig).
TRAIN_DEFAULTS = {
    "size": 40,
    "architecture": "c16.5r_p2_c32.3r_p2_d256.1r_d64.0s",
    "optimizer": "adagrad",
    "lr": 0.05,
    "momentum": 0.9,
    "batch_size": 128,
    "corruption": 0.0,
    "epochs": 64,
    "samples": 50000,
    "train_on": "controls",
    "seed": 0,
    "device": "auto",
    "held_out": 0.2,
    "augment": False,
}

# The bundled demo is small (2556 nuclei, 1311 in control wells) and must finish in under two
# minutes on two CPU cores. Measured with benchmarks/bench_quality.py and bench_demo.py:
# - lr 0.05 (the original default) trains fine with the Lasagne-style Adagrad;
# - 32 px instead of 40: the demo's nuclei are about 24 px across (enlarged ones ~32), and the
#   smaller box trains ~1.6x faster with equal or better phenotype separation;
# - no 256-unit dense layer (c16.5r_p2_c32.3r_p2_d32.0s): epochs are ~1.3x cheaper, so more
#   fit in the budget (original architecture and crop size, 30 epochs: 5-NN 84 %; these
#   settings, 100 epochs: 87 %; 40 px with this architecture, 30 epochs: 85 %);
# - minibatch 32 instead of 128, 150 epochs: the features separate phenotypes better the
#   better the network fits, and the fit is bounded by the number of weight updates
#   (Adagrad's steps shrink with every update). 5-NN accuracy / held-out error: batch 64,
#   100 epochs 87.2 % / 0.0038; batch 64, 200 epochs 88.3 % / 0.0031; batch 32, 150
#   epochs 88.7 % / 0.0027 (a 32-component PCA reconstructs to 0.0027 and scores
#   86.3-87.9 %). About 100 s on two cores;
# - corruption stays 0 as in the original (0.1-0.2 fitted worse and did not separate better).
DEMO_DEFAULTS = {
    **TRAIN_DEFAULTS,
    "size": 32,
    "architecture": "c16.5r_p2_c32.3r_p2_d32.0s",
    "epochs": 150,
    "batch_size": 32,
}


class UserError(Exception):
    """A problem the user can fix; printed as one line without traceback."""


# ----------------------------------------------------------------------------- parser


def _guide(field: str) -> str:
    """An option's help: the shared guidance, argparse-escaped, with its default."""
    return PARAMETER_GUIDE[field].replace("%", "%%") + " (default: %(default)s)"


def _add_training_options(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """Training options shared by ``train`` and ``demo`` (with different defaults)."""
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
        "Default: the channel the objects were segmented in.",
    )
    g.add_argument(
        "--size",
        type=int,
        default=defaults["size"],
        metavar="PX",
        help=_guide("crop_size"),
    )

    g = parser.add_argument_group("network")
    g.add_argument(
        "--architecture",
        default=defaults["architecture"],
        metavar="TEXT",
        help=_guide("architecture"),
    )
    g.add_argument(
        "--optimizer",
        choices=["adagrad", "nesterov"],
        default=defaults["optimizer"],
        help=_guide("optimizer"),
    )
    g.add_argument(
        "--lr",
        "--learning-rate",
        dest="lr",
        type=float,
        default=defaults["lr"],
        metavar="RATE",
        help=_guide("learning_rate"),
    )
    g.add_argument(
        "--momentum",
        type=float,
        default=defaults["momentum"],
        help=_guide("momentum"),
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=defaults["batch_size"],
        metavar="N",
        help=_guide("batch_size"),
    )
    g.add_argument(
        "--corruption",
        type=float,
        default=defaults["corruption"],
        metavar="FRACTION",
        help=_guide("corruption"),
    )

    g = parser.add_argument_group("training")
    g.add_argument(
        "--epochs",
        type=int,
        default=defaults["epochs"],
        metavar="N",
        help=_guide("epochs"),
    )
    g.add_argument(
        "--samples",
        type=int,
        default=defaults["samples"],
        metavar="N",
        help=_guide("samples"),
    )
    g.add_argument(
        "--train-on",
        choices=["controls", "all"],
        default=defaults["train_on"],
        help=_guide("train_on"),
    )
    g.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=defaults["augment"],
        help=_guide("augment"),
    )
    g.add_argument(
        "--held-out",
        type=float,
        default=defaults["held_out"],
        metavar="FRACTION",
        help=_guide("held_out_fraction"),
    )
    g.add_argument(
        "--seed",
        type=int,
        default=defaults["seed"],
        help=_guide("seed"),
    )
    g.add_argument(
        "--device",
        default=defaults["device"],
        help=_guide("device"),
    )


def _add_mapping_options(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--mapping",
        type=Path,
        metavar="M",
        required=required,
        default=None,
        help="Position mapping (tab-separated CellCognition table: Well, Site, Gene Symbol, "
        "Group) giving each position its treatment and marking negative controls.",
    )
    parser.add_argument(
        "--control-token",
        default="neg",
        metavar="TEXT",
        help="Value of the Group column that marks negative controls. (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cellae`` (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Learn single-cell features from pixels with denoising convolutional "
        "autoencoders (the Deep Learning Module of CellCognition Explorer).",
    )
    from napari_cellae import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fmt = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars, only the summary"
    )

    p = sub.add_parser(
        parents=[common],
        name="info",
        help="summarise a CellH5 file",
        description="Show plates, positions, channels (type and shape), object types with "
        "their counts per position, and frames of a CellH5 file.",
    )
    p.add_argument("file", type=Path, metavar="FILE.ch5")

    p = sub.add_parser(
        parents=[common],
        name="make-demo",
        help="write the synthetic demo screen",
        description="Write the synthetic demo screen (a CellH5 file with true phenotypes and "
        "its position mapping) into OUT_DIR.",
    )
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    p.add_argument("--seed", type=int, default=0, help="seed of the screen (default: 0)")

    p = sub.add_parser(
        parents=[common],
        name="train",
        help="train an autoencoder on the cells of a CellH5 file",
        description="Crop every cell of a CellH5 file, train a denoising convolutional\n"
        "autoencoder on the negative controls (or all cells) and save it.",
        formatter_class=fmt,
    )
    p.add_argument("file", type=Path, metavar="FILE.ch5")
    _add_mapping_options(p)
    _add_training_options(p, TRAIN_DEFAULTS)
    p.add_argument(
        "--out", type=Path, default=Path("model.pt"), help="model file (default: model.pt)"
    )

    p = sub.add_parser(
        parents=[common],
        name="encode",
        help="compute learned features of every cell -> CellCognition Explorer .hdf",
        description="Encode every cell of a CellH5 file with a trained model (its crop size, "
        "object and channels) and write a CellCognition Explorer .hdf file.",
    )
    p.add_argument("file", type=Path, metavar="FILE.ch5")
    p.add_argument("--model", type=Path, required=True, help="model file from 'cellae train'")
    _add_mapping_options(p)
    p.add_argument(
        "--out",
        type=Path,
        default=Path("features.hdf"),
        help="output .hdf file (default: features.hdf)",
    )
    p.add_argument(
        "--batch-size", type=int, default=512, help="cells encoded at once (default: 512)"
    )

    p = sub.add_parser(
        parents=[common],
        name="demo",
        help="train and encode the bundled demo screen",
        description="Train on the bundled synthetic demo screen and write DIR/model.pt,\n"
        "DIR/features.hdf and DIR/embedding.png. Defaults are chosen to finish within\n"
        "about two minutes on two CPU cores.",
        formatter_class=fmt,
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    _add_training_options(p, DEMO_DEFAULTS)
    return parser


# ----------------------------------------------------------------------------- helpers


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    from napari_cellae.core.training import TrainConfig

    return TrainConfig(
        crop_size=args.size,
        architecture=args.architecture,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        momentum=args.momentum,
        batch_size=args.batch_size,
        corruption=args.corruption,
        epochs=args.epochs,
        samples=args.samples,
        train_on=args.train_on,
        seed=args.seed,
        device=args.device,
        held_out_fraction=args.held_out,
        augment=args.augment,
    )


def _prepare_output(path: Path, *, folder: bool = False) -> Path:
    """Check an output location is writable before hours of training, not after."""
    target = path if folder else path.parent
    if folder:
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create folder {target}: {exc.strerror or exc}") from None
    elif path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder, expected a file name")
    if not target.is_dir():
        raise UserError(f"cannot write {path}: folder {target} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".cellae-probe-", dir=target)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.4g}"


def describe_cellh5(ch5: CellH5) -> str:
    """A human-readable summary of a CellH5 file (what ``cellae info`` prints)."""
    lines = [f"File: {ch5.path}"]
    plates = list(dict.fromkeys(p.plate for p in ch5.positions))
    lines.append(f"Plates: {len(plates)} ({', '.join(plates)})")
    labels = [p.label for p in ch5.positions]
    lines.append(f"Positions: {len(labels)} ({', '.join(labels)})")

    shapes = {p: ch5.image_shape(p) for p in ch5.positions}
    dtypes = {p: np.dtype(ch5.dtype(p)) for p in ch5.positions}
    first = ch5.positions[0]
    same = len(set(shapes.values())) == 1 and len(set(dtypes.values())) == 1
    lines.append("Channels:")
    for ch in ch5.channels:
        c, t, z, y, x = shapes[first]
        where = "all positions" if same else f"position {first.label}"
        lines.append(
            f"  {ch.index}: {ch.name}  {dtypes[first]}  "
            f"(c, t, z, y, x) = ({c}, {t}, {z}, {y}, {x})  [{where}]"
        )
    if not same:
        for p in ch5.positions[1:]:
            lines.append(f"  position {p.label}: {dtypes[p]} {shapes[p]}")
    frames = sorted({s[1] for s in shapes.values()})
    lines.append(f"Frames: {', '.join(map(str, frames))}")

    names = ch5.object_names
    lines.append(f"Objects: {len(names)}" + (f" (default {ch5.default_object})" if names else ""))
    for name in names:
        channel = ch5.object_channel(name)
        counts = [(p.label, ch5.object_count(p, name)) for p in ch5.positions]
        classes = ch5.class_labels(name)
        extra = f", classes: {', '.join(c.name for c in classes)}" if classes else ""
        lines.append(
            f"  {name}: {sum(n for _, n in counts)} objects, channel {channel} "
            f"({ch5.channels[channel].name}){extra}"
        )
        lines.append("    " + "  ".join(f"{label}: {n}" for label, n in counts))
    return "\n".join(lines)


def plot_embedding(
    path: str | os.PathLike,
    embedding: np.ndarray,
    groups: Sequence[str],
    title: str = "",
) -> Path:
    """Save a scatter plot of a 2-D embedding coloured by group (e.g. condition), with legend.

    Parameters
    ----------
    path : path-like
        PNG file; written to a temporary name and renamed.
    embedding : ndarray, shape (N, 2)
    groups : sequence of str, length N
    title : str

    Returns
    -------
    Path
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    groups = np.asarray([str(g) for g in groups])
    fig = Figure(figsize=(7, 5.5), dpi=100)
    FigureCanvasAgg(fig)  # Agg directly: no pyplot state, works without a display
    ax = fig.add_subplot(1, 1, 1)
    names = list(dict.fromkeys(groups.tolist()))
    palette = [
        "#1f77b4",
        "#d62728",
        "#2ca02c",
        "#ff7f0e",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
        "#17becf",
    ]
    for i, name in enumerate(names):
        sel = groups == name
        ax.scatter(
            embedding[sel, 0],
            embedding[sel, 1],
            s=6,
            alpha=0.6,
            color=palette[i % len(palette)],
            label=f"{name} ({int(sel.sum())})",
            linewidths=0,
        )
    ax.set_xlabel("PC 1 of learned features")
    ax.set_ylabel("PC 2 of learned features")
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize=8, markerscale=2, frameon=False)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ValueError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


class _EpochBar:
    """tqdm bar over epochs showing the losses."""

    def __init__(self, total: int, quiet: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, unit="epoch", desc="training", disable=quiet, leave=True)

    def __call__(self, report: EpochReport) -> None:
        self.bar.set_postfix(
            loss=_fmt(report.train_loss),
            held_out=_fmt(report.held_out_loss),
            cells_s=f"{report.samples_per_second:.0f}",
            refresh=False,
        )
        self.bar.update(1)

    def close(self, clear: bool = False) -> None:
        if clear:
            self.bar.leave = False
        self.bar.close()


class _CountBar:
    """tqdm bar for a (done, total) progress callback."""

    def __init__(self, desc: str, quiet: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=0, unit="cell", desc=desc, disable=quiet, leave=True)

    def __call__(self, done: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self, clear: bool = False) -> None:
        if clear:
            self.bar.leave = False
        self.bar.close()


def _train(args: argparse.Namespace, file: Path, mapping: Path | None, control_token: str):
    """Crop and train with a progress bar; Ctrl-C stops training and keeps the model."""
    from napari_cellae.pipeline import steps as pipeline

    config = _config_from_args(args)
    bar = _EpochBar(config.epochs, args.quiet)
    try:
        # The weights of the finished epochs are still good after Ctrl-C: keep them rather
        # than lose a long run to an impatient interrupt.
        result = pipeline.run_train(
            file,
            config,
            mapping,
            object_name=args.object_name,
            channels=args.channel,
            control_token=control_token,
            on_epoch=bar,
            keep_on_interrupt=True,
        )
    except BaseException:
        bar.close(clear=True)  # the error line should stand alone
        raise
    bar.close()
    if result.reports and result.reports[-1].collapsed:
        from napari_cellae.core.training import COLLAPSE_ADVICE

        print(f"{PROG}: warning: {COLLAPSE_ADVICE}", file=sys.stderr)
    if result.interrupted:
        print(
            f"{PROG}: interrupted after {len(result.reports)} epoch(s); keeping that model",
            file=sys.stderr,
        )
    return result


def _loss_summary(reports: list[EpochReport]) -> str:
    if not reports:
        return "no epochs trained"
    last = reports[-1]
    return (
        f"{last.epoch} epoch(s); final loss {_fmt(last.train_loss)} (training), "
        f"{_fmt(last.held_out_loss)} (held out)"
    )


# ----------------------------------------------------------------------------- commands


def _cmd_info(args: argparse.Namespace) -> int:
    from napari_cellae.io.cellh5 import CellH5

    with CellH5(args.file) as ch5:
        print(describe_cellh5(ch5))
    return 0


def _cmd_make_demo(args: argparse.Namespace) -> int:
    from napari_cellae.demo.screen import make_demo

    _prepare_output(args.out_dir, folder=True)
    ch5, mapping = make_demo(args.out_dir, seed=args.seed)
    print(f"Demo screen written:\n  {ch5}\n  {mapping}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    if args.train_on == "controls" and args.mapping is None:
        raise UserError(
            "--train-on controls needs --mapping to know which positions are negative "
            "controls (or use --train-on all)"
        )
    _prepare_output(args.out)
    from napari_cellae.pipeline import steps as pipeline

    t0 = time.perf_counter()
    result = _train(args, args.file, args.mapping, args.control_token)
    pipeline.save_model(result.trained, args.out)
    print(
        f"Trained on {result.n_training} cells ({len(result.crops)} in the file, "
        f"object {result.crops.object_name}, channel(s) {', '.join(result.crops.channel_names)}"
        f"): {_loss_summary(result.reports)}; {time.perf_counter() - t0:.1f} s"
    )
    print(f"Model saved to {args.out}")
    return 0


def _cmd_encode(args: argparse.Namespace) -> int:
    from napari_cellae.core.training import load_model
    from napari_cellae.pipeline import steps as pipeline

    _prepare_output(args.out)
    trained = load_model(args.model)
    bar = _CountBar("encoding", args.quiet)
    try:
        result = pipeline.run_encode(
            args.file,
            trained,
            args.out,
            mapping_path=args.mapping,
            control_token=args.control_token,
            batch_size=args.batch_size,
            progress=bar,
            model_path=args.model,
        )
    except BaseException:
        bar.close(clear=True)
        raise
    bar.close()
    print(
        f"Encoded {len(result.crops)} cells of {len(result.crops.positions)} position(s) "
        f"into {result.features.shape[1]} features each"
    )
    print(f"Features written to {result.path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from napari_cellae.core.features import embed_2d, knn_accuracy
    from napari_cellae.demo.screen import demo_paths
    from napari_cellae.pipeline import steps as pipeline

    out = _prepare_output(args.out, folder=True)
    t0 = time.perf_counter()
    ch5_path, mapping_path = demo_paths()
    result = _train(args, ch5_path, mapping_path, "neg")
    trained, crops = result.trained, result.crops
    model_path = pipeline.save_model(trained, out / "model.pt")

    bar = _CountBar("encoding", args.quiet)
    try:
        features = pipeline.encode_crops(trained, crops, progress=bar)
    except BaseException:
        bar.close(clear=True)
        raise
    bar.close()
    hdf = pipeline.write_features(out / "features.hdf", crops, features, result.mapping, trained)

    conditions = [
        (info.condition if (info := result.mapping.lookup(p)) is not None else p.label)
        if result.mapping is not None
        else p.label
        for p in crops.positions
    ]
    per_cell = np.asarray(conditions)[crops.position_index]
    png = plot_embedding(
        out / "embedding.png",
        embed_2d(features),
        per_cell,
        title=f"napari-cellae demo: {len(crops)} nuclei, {features.shape[1]} learned features",
    )
    elapsed = time.perf_counter() - t0

    print(f"Model:      {model_path}")
    print(f"Features:   {hdf}  (open it in CellCognition Explorer)")
    print(f"Embedding:  {png}")
    print(
        f"Trained on {result.n_training} {'control ' if args.train_on == 'controls' else ''}"
        f"cells of {len(crops)}: "
        f"{_loss_summary(result.reports)}"
    )
    labelled = crops.class_idx >= 0
    if labelled.any():
        acc = knn_accuracy(features, crops.class_idx, k=5, folds=5, seed=0)
        n_classes = len(np.unique(crops.class_idx[labelled]))
        print(
            f"5-NN accuracy of the learned features vs the true phenotype "
            f"({n_classes} classes, 5-fold): {acc:.1%}"
        )
    print(f"Total time: {elapsed:.1f} s")
    return 0


_COMMANDS = {
    "info": _cmd_info,
    "make-demo": _cmd_make_demo,
    "train": _cmd_train,
    "encode": _cmd_encode,
    "demo": _cmd_demo,
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
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    from napari_cellae.io.cellh5 import CellH5Error

    try:
        diverged: tuple[type[BaseException], ...] = ()
        if args.command in ("train", "demo"):
            from napari_cellae.core.training import TrainingDiverged

            diverged = (TrainingDiverged,)
        try:
            return _COMMANDS[args.command](args)
        except diverged as exc:
            return _fail(f"training diverged: {exc}")
    except (UserError, CellH5Error, ValueError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        return _fail(f"cannot access{name}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
