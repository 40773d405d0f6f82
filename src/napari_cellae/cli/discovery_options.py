"""The options of ``cellae encode ... --out cells.h5ad`` (novelty, phenotype groups, the
2-D map) and the ``cellae hits`` subcommand, added to the parser by
:mod:`napari_cellae.cli.parser`; the commands themselves are in :mod:`napari_cellae.cli.cells`.
No torch or scikit-learn import, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_cellae.cli.run_args import path_value
from napari_cellae.core.novelty import NOVEL_PERCENTILE, NOVELTY_NEIGHBOURS

__all__ = ["EMBEDDINGS", "NU", "add_discovery_options", "add_hits_parser"]

# Mirrors core.features.DEFAULT_EMBEDDING / EMBEDDING_METHODS without importing scikit-learn.
EMBEDDINGS = ("umap", "pca")
NU = 0.05  # --nu's default, as novelty_scores'


def _novelty_options(group: argparse._ArgumentGroup, percentile_default: float | None) -> None:
    # cellae hits (no percentile default) must tell a given method from the default one:
    # given, it scores the cells again rather than ranking the file's stored novelty.
    stored = percentile_default is None
    when = " when computed" if stored else ""
    shown = f"{NOVEL_PERCENTILE:g}{when}" + (", else as stored" if stored else "")
    group.add_argument(
        "--novelty",
        choices=["knn", "svm"],
        default=None if stored else "knn",
        help="How a cell's novelty is scored against the negative-control cells: 'knn', the "
        "mean distance to its nearest control cells in standardised feature space (a control "
        "cell only against the other control wells; of more than 50,000 control cells, a "
        "seeded sample of 50,000); 'svm', a one-class SVM on the "
        "controls' principal components, as the CellH5 outlier tool did (novelty AUROC 0.75 "
        f"against knn's 0.90 on a benchmark screen). (default: knn{when})",
    )
    group.add_argument(
        "--novelty-percentile",
        type=float,
        default=percentile_default,
        metavar="P",
        help="A cell is novel when its score is above this percentile of the control cells' "
        f"scores: raise it for fewer, surer novel cells; lower bars count wells enriched in "
        f"cells the controls also have (mitotic arrest) more reliably. (default: {shown})",
    )
    group.add_argument(
        "--neighbours",
        type=int,
        default=None if stored else NOVELTY_NEIGHBOURS,
        metavar="K",
        help=f"Control cells averaged by --novelty knn. (default: {NOVELTY_NEIGHBOURS}{when})",
    )
    group.add_argument(
        "--nu",
        type=float,
        default=None if stored else NU,
        help="Share of control cells the one-class SVM may leave outside (--novelty svm). "
        f"(default: {NU:g}{when})",
    )


def add_discovery_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``cellae encode`` that apply to ``--out cells.h5ad``."""
    g = parser.add_argument_group(
        "with --out cells.h5ad: novelty, phenotype groups and the 2-D map",
        "Novelty needs a --mapping whose Group column marks negative controls; without "
        "controls the .h5ad is written without the novelty, novel and cluster columns.",
    )
    _novelty_options(g, NOVEL_PERCENTILE)
    g.add_argument(
        "--groups",
        type=int,
        default=None,
        metavar="K",
        help="Cluster the novel cells into K phenotype groups (k-means); default: chosen "
        "from the data: the best silhouette, but at least sqrt(novel cells / 12), 2 to 12. "
        "Stored as obs['cluster'] (0 = not novel).",
    )
    g.add_argument(
        "--gallery",
        type=path_value,
        default=None,
        metavar="PNG",
        help="Also save a picture of the most typical crops of each phenotype group.",
    )
    g.add_argument(
        "--embedding",
        choices=list(EMBEDDINGS),
        default=EMBEDDINGS[0],
        help="2-D map stored as obsm['X_umap'] (umap, seeded) or only obsm['X_pca'] (pca, "
        "fast; X_pca is always stored). (default: %(default)s)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the map, the groups and novelty's sample of control cells (default: 0)",
    )


def add_hits_parser(sub, common: argparse.ArgumentParser) -> None:
    """The ``cellae hits`` subcommand."""
    p = sub.add_parser(
        "hits",
        parents=[common],
        help="rank positions or conditions by their share of novel cells -> CSV",
        description="Rank the positions (or conditions) of a cells .h5ad file, written by\n"
        "'cellae encode ... --out cells.h5ad', by their share of novel cells. One row each:\n"
        "rank (1 = strongest hit), plate (when the file has one), position, well,\n"
        "condition, n_cells (cells with signal: a crop with a channel of one value, as\n"
        "images never acquired read, is left out of every count; a time-lapse's cells\n"
        "count once per frame), n_novel, novel_fraction, enrichment (over the control\n"
        "cells), robust_z (against the control wells: median and MAD), p_value and\n"
        "q_value (how surely the count of novel cells exceeds the control wells', counting\n"
        "the cells of one frame; q: Benjamini-Hochberg), median_novelty, is_control.\n"
        "Prints how many treated and control rows have q below 0.05, and the three\n"
        "strongest treated rows.\n"
        "The file needs the cell columns position, well, condition and control (or group);\n"
        "novelty comes from its novel/novelty columns, or is computed from X when it has\n"
        "neither or when --novelty, --neighbours or --nu is given.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=path_value, metavar="CELLS.h5ad")
    p.add_argument(
        "--out",
        type=path_value,
        default=Path("hits.csv"),
        metavar="CSV",
        help="hit table to write (default: hits.csv)",
    )
    p.add_argument(
        "--by",
        choices=["position", "condition"],
        default="position",
        help="one row per position or per condition (default: %(default)s)",
    )
    g = p.add_argument_group(
        "novelty (when re-thresholding or computing it; any of --novelty, --neighbours and "
        "--nu scores the cells again from X)"
    )
    _novelty_options(g, None)
    g.add_argument(
        "--control-token",
        default="neg",
        metavar="TEXT",
        help="Without a 'control' column: the cells whose group starts with TEXT, in any "
        "case, are the negative controls. (default: %(default)s)",
    )
