"""``cellae encode`` over whole screens (streaming, Dask) and ``cellae train`` under torchrun.

Called from :mod:`napari_cellae.cli.commands`; the work is done in
:mod:`napari_cellae.pipeline.streaming`, :mod:`napari_cellae.pipeline.distributed` and
:mod:`napari_cellae.pipeline.torchrun`.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import TYPE_CHECKING

from napari_cellae.cli.output import EpochBar, _Bar, note, training_summary
from napari_cellae.cli.run_args import encode_args, input_paths, train_args
from napari_cellae.cli.usage import UsageError

if TYPE_CHECKING:
    from napari_cellae.core.config import TrainConfig
    from napari_cellae.core.ddp import TorchrunEnv

# Local Dask workers beyond this many per usable core are refused: never faster, and each
# process holds its own torch.
_WORKERS_PER_CORE = 4

__all__ = [
    "PositionBar",
    "add_cluster_options",
    "check_encode_options",
    "encode_command",
    "position_runner",
    "train_torchrun",
]


class PositionBar(_Bar):
    """Progress over positions for a ``(done, total)`` callback."""

    def __init__(self, quiet: bool) -> None:
        super().__init__(quiet, total=0, unit="position", desc="encoding")

    def __call__(self, done: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
            self.bar.refresh()
        self.bar.update(done - self.bar.n)


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """``--workers N`` and ``--scheduler ADDRESS`` of ``cellae encode`` (one or the other)."""
    g = parser.add_argument_group("on a Dask cluster (pip install 'napari-cellae[cluster]')")
    where = g.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        default=None,
        help="Encode on a local Dask cluster of N worker processes (one position per task). "
        "Default: encode here, one position after the other.",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="Encode on a running Dask cluster, e.g. tcp://10.0.0.5:8786 (dask-jobqueue, "
        "dask-kubernetes, 'dask scheduler'); its workers must see the files at the same paths.",
    )


def check_encode_options(args: argparse.Namespace) -> None:
    """Refuse ``--workers`` or ``--batch-size`` below 1 before any work (a batch size of 0
    failed at the first position, on Dask after starting the cluster, as 'batch_size'), and
    local workers far beyond this machine's cores; note when they outnumber the cores."""
    from napari_cellae.core.cores import usable_cores

    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        raise UsageError("--workers", f"must be at least 1, got {workers}")
    cores = usable_cores()
    if workers is not None and workers > cores:
        # Each local worker is a process that loads torch (a few hundred MB); encoding is
        # compute-bound, so more workers than cores only share them.
        what = f"{workers} starts {workers} local processes where {cores} core(s) may be used"
        if workers > _WORKERS_PER_CORE * cores:
            raise UsageError(
                "--workers",
                f"{what}; give at most {cores}, or run workers on other machines and give "
                "--scheduler",
            )
        note(f"--workers {what}: they share them, each with its own copy of torch")
    if args.batch_size < 1:
        raise UsageError("--batch-size", f"must be at least 1, got {args.batch_size}")


def position_runner(args: argparse.Namespace, stack: contextlib.ExitStack):
    """Where the positions are encoded: None (here, in turn) or a Dask cluster's runner,
    whose client ``stack`` closes."""
    if getattr(args, "workers", None) is None and getattr(args, "scheduler", None) is None:
        return None
    from napari_cellae.pipeline.distributed import cluster_runner, dask_client

    return cluster_runner(stack.enter_context(dask_client(args.workers, args.scheduler)))


def encode_command(args: argparse.Namespace) -> int:
    """``cellae encode FILE [MORE ...]``: every cell into one Explorer ``.hdf``, streamed.

    Returns
    -------
    int
        Exit status 0; user errors raise ``ValueError``.
    """
    from napari_cellae.core.model_load import load_model
    from napari_cellae.pipeline.steps import check_outputs
    from napari_cellae.pipeline.streaming import encode_stream

    inputs = input_paths(args)
    check_outputs([(args.out, "features file")], [*inputs, args.mapping, args.model])
    check_encode_options(args)
    trained = load_model(args.model)
    with contextlib.ExitStack() as stack:
        runner = position_runner(args, stack)
        bar = stack.enter_context(PositionBar(args.quiet))
        result = encode_stream(
            inputs,
            trained,
            args.out,
            progress=bar,
            runner=runner,
            **encode_args(args),
        )
    plates = f" on {result.n_plates} plate(s)" if result.n_plates > 1 else ""
    print(
        f"Encoded {result.n_cells} cells of {result.n_positions} position(s){plates} into "
        f"{result.n_features} features each; {result.seconds:.1f} s "
        f"({result.n_cells / max(result.seconds, 1e-9):.0f} cells/s)"
    )
    print(f"Features written to {result.path}")
    return 0


def train_torchrun(
    args: argparse.Namespace, config: TrainConfig, env: TorchrunEnv, started: float
) -> int:
    """``torchrun ... -m napari_cellae train``: this rank's part; rank 0 saves and prints.

    Returns
    -------
    int
        Exit status 0; user errors raise ``ValueError``.
    """
    from napari_cellae.core.config import COLLAPSE_ADVICE
    from napari_cellae.pipeline.torchrun import run_train_torchrun

    with EpochBar(config.epochs, args.quiet or not env.is_main) as bar:
        result = run_train_torchrun(
            input_paths(args),
            config,
            env,
            args.mapping,
            out=args.out,
            on_epoch=bar,
            **train_args(args),
        )
    if env.is_main:
        if result.reports and result.reports[-1].collapsed:
            note(COLLAPSE_ADVICE, "warning")
        print(
            f"{training_summary(result)}; {time.perf_counter() - started:.1f} s on "
            f"{env.world_size} process(es) (torchrun)"
        )
        print(f"Model saved to {result.model_path}")
    return 0
