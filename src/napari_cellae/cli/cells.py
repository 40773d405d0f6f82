"""``cellae encode ... --out cells.h5ad`` and ``cellae hits``: the phenotype-discovery commands.

Their options are in :mod:`napari_cellae.cli.discovery_options`; the commands are
dispatched by :mod:`napari_cellae.cli.commands`. No torch import at module
level, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import warnings
from pathlib import Path

import numpy as np

from napari_cellae.cli.discovery_options import EMBEDDINGS, NU
from napari_cellae.cli.output import note
from napari_cellae.cli.run_args import encode_args, input_paths
from napari_cellae.cli.usage import UsageError, check_novelty_args
from napari_cellae.core.novelty import NOVEL_PERCENTILE, NOVELTY_NEIGHBOURS

__all__ = [
    "EXPLORER_SUFFIX",
    "cmd_hits",
    "encode_cells",
    "output_kind",
]

EXPLORER_SUFFIX = ".hdf"
_H5AD = ".h5ad"


def output_kind(args: argparse.Namespace) -> str:
    """What ``cellae encode`` writes: ``"explorer"`` for ``.hdf``, ``"anndata"`` for ``.h5ad``.

    An output that is one of the inputs is refused first (that message says more than one
    about the suffix); ``--gallery`` needs the ``.h5ad``.

    Raises
    ------
    UsageError
        Naming the file and the two suffixes understood (a bad command line, status 2).
    """
    from napari_cellae.pipeline.steps import check_outputs

    out = Path(args.out)
    inputs = [*input_paths(args), args.mapping, args.model]
    suffix = out.suffix.lower()
    check_outputs([(out, "AnnData file" if suffix == _H5AD else "features file")], inputs)
    if suffix not in (EXPLORER_SUFFIX, _H5AD):
        raise UsageError(
            "--out",
            f"cannot tell what to write to {out}: end the name in .hdf for CellCognition "
            "Explorer features or in .h5ad for an AnnData file of cells (scanpy, cellae hits)",
        )
    if suffix == EXPLORER_SUFFIX and getattr(args, "gallery", None) is not None:
        problem = "needs --out CELLS.h5ad (the novelty and phenotype groups are stored there)"
        raise UsageError("--gallery", f"{problem}, not the Explorer file {out}")
    if unused := _h5ad_only(args) if suffix == EXPLORER_SUFFIX else []:  # they were, unsaid
        note(
            f"{', '.join(unused)} ignored: novelty, phenotype groups and the 2-D map are "
            f"written to --out CELLS.h5ad, not to the Explorer file {out}"
        )
    return "explorer" if suffix == EXPLORER_SUFFIX else "anndata"


def _h5ad_only(args: argparse.Namespace) -> list[str]:
    """The options of ``cellae encode`` given other values than their defaults that only
    an ``.h5ad`` output uses."""
    given = [
        ("--novelty", getattr(args, "novelty", "knn"), "knn"),
        ("--novelty-percentile", getattr(args, "novelty_percentile", None), NOVEL_PERCENTILE),
        ("--neighbours", getattr(args, "neighbours", None), NOVELTY_NEIGHBOURS),
        ("--nu", getattr(args, "nu", None), NU),
        ("--groups", getattr(args, "groups", None), None),
        ("--embedding", getattr(args, "embedding", None), EMBEDDINGS[0]),
        ("--seed", getattr(args, "seed", None), 0),
    ]
    return [name for name, value, default in given if value is not None and value != default]


def _scoring(args: argparse.Namespace) -> tuple[str, int, float]:
    """--novelty, --neighbours and --nu, their defaults where not given."""
    k = NOVELTY_NEIGHBOURS if args.neighbours is None else args.neighbours
    return args.novelty or "knn", k, NU if args.nu is None else args.nu


def _rescoring(args: argparse.Namespace) -> list[str]:
    """The scoring options given to cellae hits: each makes it score the cells again."""
    given = [("--novelty", args.novelty), ("--neighbours", args.neighbours), ("--nu", args.nu)]
    return [f"{name} {value}" for name, value in given if value is not None]


def _stored_seed(uns: dict, source: Path) -> int:
    """The seed ``cellae encode`` scored the file's novelty with (``uns``), or 0."""
    from napari_cellae.core.config_checks import seed_problem

    try:
        seed = uns["cellae"]["discovery"]["options"]["seed"]
    except (KeyError, TypeError, IndexError):
        return 0  # not written by cellae encode, or without novelty settings
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed_problem(seed):
        note(f"the seed stored in {source} (uns) is not usable ({seed!r}): using 0")
        return 0
    return int(seed)


def _options(args: argparse.Namespace, percentile: float | None, seed: int | None = None):
    from napari_cellae.pipeline.discovery import DiscoveryOptions

    method, k, nu = _scoring(args)
    check_novelty_args(args, k, nu)
    unused = {"knn": ("--nu", nu != NU), "svm": ("--neighbours", k != NOVELTY_NEIGHBOURS)}[method]
    if unused[1]:  # '--nu 0.2' with knn scoring changed nothing, unsaid
        note(f"{unused[0]} ignored: the scoring is --novelty {method}, which does not use it")
    return DiscoveryOptions(
        method=method,
        k=k,
        nu=nu,
        percentile=NOVEL_PERCENTILE if percentile is None else percentile,
        groups=getattr(args, "groups", None),
        seed=getattr(args, "seed", 0) if seed is None else seed,
    )


def encode_cells(args: argparse.Namespace) -> int:
    """``cellae encode FILE [MORE ...] --model M [--mapping MAP] --out cells.h5ad``.

    Streamed position by position like the Explorer file (also with ``--workers`` or
    ``--scheduler``), then scored, grouped and mapped in memory (features, not crops).
    """
    from napari_cellae.cli.scale import PositionBar, check_encode_options, position_runner
    from napari_cellae.core.model_load import load_model
    from napari_cellae.pipeline.cells import run_encode_cells
    from napari_cellae.pipeline.steps import check_outputs

    options = _options(args, args.novelty_percentile)
    inputs = input_paths(args)
    outputs = [(args.out, "AnnData file")]
    if args.gallery is not None:
        outputs.append((args.gallery, "gallery"))
    check_outputs(outputs, [*inputs, args.mapping, args.model])
    if args.gallery is not None and args.gallery.suffix.lower() != ".png":
        # It is always saved as PNG: g.svg or g.pdf held PNG bytes under the wrong name.
        problem = f"the gallery is a PNG picture; end its name in .png, not {args.gallery}"
        raise UsageError("--gallery", problem)
    check_encode_options(args)
    trained = load_model(args.model)
    with contextlib.ExitStack() as stack:
        runner = position_runner(args, stack)
        bar = stack.enter_context(PositionBar(args.quiet))

        def step(text: str) -> None:
            bar.close()  # encoding is done: the notes go below the finished bar
            note(text)

        done = run_encode_cells(
            inputs,
            trained,
            args.out,
            progress=bar,
            options=options,
            embedding=args.embedding,
            gallery=args.gallery,
            on_step=None if args.quiet else step,
            runner=runner,
            **encode_args(args),
        )
    result, found = done.result, done.discovery
    plates = len({key.plate for key in result.crops.positions})
    on_plates = f" on {plates} plates" if plates > 1 else ""
    print(
        f"Encoded {len(result.crops)} cells of {len(result.crops.positions)} position(s)"
        f"{on_plates} into {result.features.shape[1]} features each"
    )
    for text in done.notes:
        note(text, "warning" if found.novelty is None else "note")
    if found.novelty is not None:
        novelty = found.novelty
        from napari_cellae.pipeline.cell_flags import without_signal

        scored = int((~without_signal(done.obs)).sum())  # the others are never novel
        print(
            f"Novel: {int(novelty.novel.sum())} of {scored} cells with signal "
            f"(score above {novelty.threshold:.3g}, the controls' "
            f"{options.percentile:g}th percentile, {options.method}); "
            f"{found.n_groups} phenotype group(s)"
        )
    print(f"Cells written to {done.anndata_path}")
    if done.gallery_path is not None:
        print(f"Gallery written to {done.gallery_path}")
    return 0


def cmd_hits(args: argparse.Namespace) -> int:
    """``cellae hits CELLS.h5ad [--out hits.csv] [--by position|condition]``."""
    from napari_cellae.core.listing import first_few
    from napari_cellae.core.morphology import novelty_views
    from napari_cellae.export.anndata import read_cells
    from napari_cellae.io.atomic import atomic_output, check_output
    from napari_cellae.io.definition import shown_name
    from napari_cellae.pipeline.cell_flags import without_signal
    from napari_cellae.pipeline.hits import hit_list, novel_cells

    check_novelty_args(args, *_scoring(args)[1:])  # before the table is read
    out = check_output(args.out, [args.file], "hit table")
    if out.suffix.lower() != ".csv":  # hits.h5ad held CSV text under another format's name
        raise UsageError("--out", f"{out}: the hit table is CSV text; end its name in .csv")
    # The cell table first, X left on disk: it is read only where novelty must be computed
    # from it (a million cells' features are a gigabyte the stored scores make needless).
    adata = read_cells(args.file, features=False)
    needs_x = "novel" not in adata.obs and "novelty" not in adata.obs
    obs = adata.obs
    if "control" in obs and args.control_token != "neg":  # it was dropped unsaid
        note(f"--control-token ignored: {args.file} marks its controls (column control)")
    rescore = _rescoring(args) if not needs_x else []
    if rescore:  # '--novelty svm' ranked the stored knn scores unsaid
        obs, needs_x = obs.drop(columns=["novel", "novelty"], errors="ignore"), True
    if needs_x and adata.n_vars:
        with warnings.catch_warnings():  # said when the table was read
            warnings.simplefilter("ignore")
            adata = read_cells(args.file)
    if rescore and adata.X is None:  # also with var kept: "needs the column novel" misled
        raise ValueError(
            f"{args.file}: {', '.join(rescore)} asks to score novelty again, but the file "
            "holds no features (X) to score it from; leave it out to rank the stored "
            "novelty (column novel or novelty)"
        )
    novel, scores, how = novel_cells(
        obs,
        features=adata.X if needs_x and adata.n_vars else None,
        percentile=args.novelty_percentile,
        # The seed the file was scored with: its sample of more than 50,000 control cells
        # and the SVM's PCA (0 here re-scored a file encoded with --seed 7 otherwise).
        options=_options(args, args.novelty_percentile, _stored_seed(adata.uns, args.file)),
        control_token=args.control_token,
        source=str(args.file),
        views=novelty_views(adata.var_names) if needs_x else None,
    )
    table = hit_list(obs, novel, args.by, scores, args.control_token, str(args.file))
    no_signal = without_signal(obs, str(args.file))
    if no_signal.any():  # they have no row where a position holds nothing else
        where = sorted(set(obs.loc[no_signal, "position"].astype(str)))  # note() escapes
        note(
            f"{int(no_signal.sum())} cells without signal left out (column no_signal; images "
            f"never acquired?): {first_few(where)}"
        )
    with atomic_output(out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    top = table[~table["is_control"]].head(3)
    plates = "plate" in table and table["plate"].nunique() > 1  # A01 of two plates

    def name(row: dict) -> str:
        return shown_name(f"{row['plate']}/{row[args.by]}" if plates else str(row[args.by]))

    best = ", ".join(f"{name(r)} ({r['novel_fraction']:.0%} novel)" for r in top.to_dict("records"))
    print(f"{how}; {int(novel.sum())} of {int((~no_signal).sum())} cells with signal")
    sure, control = table["q_value"] < 0.05, table["is_control"]
    print(
        f"Hits: {len(table)} {args.by}s ranked; q below 0.05: {int(sure[~control].sum())} "
        f"of {int((~control).sum())} treated, {int(sure[control].sum())} of "
        f"{int(control.sum())} controls" + (f"; strongest: {best}" if best else "")
    )
    print(f"Hit table written to {out}")
    return 0
