"""Encode a screen into an AnnData file of cells: features, novelty, groups, 2-D maps.

:func:`run_encode_cells` is ``cellae encode ... --out cells.h5ad``: the same steps as
:func:`napari_cellae.pipeline.runs.run_encode`, then phenotype discovery
(:mod:`napari_cellae.pipeline.discovery`), the 2-D maps, the ``.h5ad`` and optionally a
gallery PNG of the phenotype groups. :func:`write_cells` saves a run the widget already
holds (its "Save AnnData").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae.core.features import DEFAULT_EMBEDDING, EMBEDDING_METHODS, embed_2d
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.locate import input_files
from napari_cellae.pipeline.discovery import (
    Discovery,
    DiscoveryOptions,
    cell_table,
    discover,
    with_discovery,
)
from napari_cellae.pipeline.results import RunResult
from napari_cellae.pipeline.runs import encoded_result
from napari_cellae.pipeline.steps import (
    check_model_fits,
    check_outputs,
    crops_for,
    load_mapping,
)

if TYPE_CHECKING:
    import anndata
    import pandas as pd

    from napari_cellae.core.model_file import TrainedModel

__all__ = [
    "CellsResult",
    "cells_anndata",
    "class_names",
    "embeddings",
    "run_encode_cells",
    "write_cells",
]


@dataclass
class CellsResult:
    """What :func:`run_encode_cells` produced.

    Attributes
    ----------
    result : RunResult
        Model, crops, mapping and features (``embedding``: the 2-D map asked for).
    obs : pandas.DataFrame
        The cell table with the discovery columns (where there are controls).
    discovery : Discovery
    embeddings : dict of str to ndarray
        ``{"X_umap": ..., "X_pca": ...}`` as stored in ``obsm``.
    anndata_path, gallery_path : Path or None
        Files written.
    notes : list of str
        Things the user should know (no controls, too few novel cells for a gallery).
    """

    result: RunResult
    obs: pd.DataFrame
    discovery: Discovery
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    anndata_path: Path | None = None
    gallery_path: Path | None = None
    notes: list[str] = field(default_factory=list)


def class_names(cellh5: CellH5, object_name: str) -> dict[int, str] | None:
    """Names of the classifier classes a CellH5 file stores for an object type, if any.

    Keyed by the row of the class table: that is what a cell's ``label_idx`` (its
    ``class_idx``) counts, whatever label values the classifier used.
    """
    labels = cellh5.class_labels(object_name)
    return {i: str(c.name) for i, c in enumerate(labels)} if labels else None


def embeddings(
    features: np.ndarray, method: str = DEFAULT_EMBEDDING, seed: int = 0
) -> dict[str, np.ndarray]:
    """The 2-D maps for ``obsm``: always ``X_pca`` (cheap), plus ``X_umap`` for "umap"."""
    if method not in EMBEDDING_METHODS:
        raise ValueError(
            f"unknown embedding method {method!r}; choose {' or '.join(EMBEDDING_METHODS)}"
        )
    maps = {"X_pca": embed_2d(features, "pca", seed)}
    if method == "umap":
        maps["X_umap"] = embed_2d(features, "umap", seed)
    return maps


def _feature_names(trained: TrainedModel, n: int) -> tuple[list[str], list[str]]:
    """var names by layer, and the Explorer .hdf names of the same columns."""
    from napari_cellae.core.features import feature_names as source_names
    from napari_cellae.export.explorer import feature_names

    explorer = feature_names(n)
    names = source_names(trained)
    return (names, explorer) if len(names) == n else (explorer, explorer)


def _training_summary(result: RunResult) -> dict[str, Any]:
    reports = result.reports
    if not reports:
        return {"trained_in_this_run": False}
    last = reports[-1]
    return {
        "trained_in_this_run": True,
        "n_trained": int(result.n_trained),
        "n_held_out": int(result.n_held_out),
        "epochs": int(last.epoch),
        "planned_epochs": int(last.epochs),
        "stopped": bool(result.stopped),
        "train_loss": [float(r.train_loss) for r in reports],
        "held_out_loss": [float(r.held_out_loss) for r in reports],
    }


def cells_anndata(
    result: RunResult,
    obs: pd.DataFrame,
    discovery: Discovery | None = None,
    maps: dict[str, np.ndarray] | None = None,
    sources: Iterable[str | os.PathLike | None] = (),
) -> anndata.AnnData:
    """The AnnData object of a run (see :mod:`napari_cellae.export.anndata` for the layout).

    Parameters
    ----------
    result : RunResult
        With ``features``.
    obs : pandas.DataFrame
        The cell table (with discovery columns, :func:`with_discovery`).
    discovery : Discovery, optional
        Its settings and outcome go to ``uns``.
    maps : dict of str to ndarray, optional
        ``obsm`` entries (:func:`embeddings`).
    sources : iterable of path-like
        Input files, recorded in ``uns``.
    """
    from napari_cellae import __version__
    from napari_cellae.export.anndata import build_anndata

    if result.features is None:
        raise ValueError("there are no features to save yet: encode the cells first")
    trained = result.trained
    var_names, explorer = _feature_names(trained, result.features.shape[1])
    uns: dict[str, Any] = {
        "version": __version__,
        "model": trained.metadata(),
        "model_file": str(result.model_path or trained.path or ""),
        "training": _training_summary(result),
        "sources": [str(s) for s in sources if s is not None],
        "cellh5": str(result.crops.source),
        "mapping": str(result.mapping.path) if result.mapping is not None else "",
    }
    if discovery is not None:
        uns["discovery"] = discovery.summary()
    return build_anndata(result.features, obs, var_names, maps, uns, explorer)


def write_cells(
    path: str | os.PathLike,
    result: RunResult,
    obs: pd.DataFrame,
    discovery: Discovery | None = None,
    maps: dict[str, np.ndarray] | None = None,
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Write a run's cells to an ``.h5ad`` file (atomically; an input is refused)."""
    from napari_cellae.export.anndata import write_anndata

    inputs = list(inputs)
    adata = cells_anndata(result, obs, discovery, maps, inputs)
    return write_anndata(path, adata, inputs)


def run_encode_cells(
    cellh5_path: str | os.PathLike,
    trained: TrainedModel,
    out: str | os.PathLike,
    mapping_path: str | os.PathLike | None = None,
    control_token: str = "neg",
    batch_size: int = 512,
    progress: Callable[[int, int], None] | None = None,
    model_path: str | os.PathLike | None = None,
    options: DiscoveryOptions | None = None,
    embedding: str = DEFAULT_EMBEDDING,
    gallery: str | os.PathLike | None = None,
    on_step: Callable[[str], None] | None = None,
) -> CellsResult:
    """Encode every cell, find novel cells and phenotype groups, write ``out`` (.h5ad).

    Parameters
    ----------
    cellh5_path, trained, out, mapping_path, control_token, batch_size, progress, model_path
        As for :func:`napari_cellae.pipeline.runs.run_encode`; ``out`` ends in ``.h5ad``.
    options : DiscoveryOptions, optional
        Novelty method, percentile and groups.
    embedding : {"umap", "pca"}
        The 2-D map: ``obsm["X_umap"]`` for "umap"; ``obsm["X_pca"]`` always.
    gallery : path-like, optional
        Also draw a PNG of typical crops per phenotype group (needs control cells).
    on_step : callable, optional
        Called with a short text as each step after encoding starts.

    Returns
    -------
    CellsResult

    Raises
    ------
    ValueError
        User errors, before any work where possible: outputs that are inputs or have the
        wrong suffix, a gallery without control cells, a mapping of another plate.
    """
    from napari_cellae.export.anndata import H5AD_SUFFIX

    step = on_step or (lambda _text: None)
    options = options or DiscoveryOptions()
    if embedding not in EMBEDDING_METHODS:
        raise ValueError(f"unknown embedding method {embedding!r}")
    model_path = model_path if model_path is not None else trained.path
    inputs = [cellh5_path, mapping_path, model_path]
    outputs = [(out, "AnnData file")] + ([(gallery, "gallery")] if gallery is not None else [])
    check_outputs(outputs, inputs)
    if Path(out).suffix.lower() != H5AD_SUFFIX:
        raise ValueError(f"cannot write {out} as AnnData: the file name must end in .h5ad")
    with CellH5(cellh5_path) as ch5:
        mapping = load_mapping(mapping_path, ch5, control_token)
        obj, chans = check_model_fits(trained, ch5, model_path)
        if gallery is not None and not any(
            (info := mapping.lookup(p)) is not None and info.is_control
            for p in (ch5.positions if mapping is not None else [])
        ):
            raise ValueError(
                f"cannot draw the gallery {gallery}: phenotype groups are groups of novel "
                "cells, and novelty needs negative controls; give --mapping with a Group "
                "column marking them"
            )
        crops = crops_for(ch5, obj, chans, trained.config)
        names = class_names(ch5, obj)
    result = encoded_result(trained, crops, mapping, model_path, batch_size, progress)
    features = result.features
    step("scoring novelty against the negative controls")
    obs = cell_table(crops, mapping, names)
    found = discover(features, obs, options)
    obs = with_discovery(obs, found)
    notes = [found.note] if found.note else []
    step(f"2-D map ({embedding})")
    maps = embeddings(features, embedding, options.seed)
    result.embedding = maps["X_umap" if embedding == "umap" else "X_pca"]
    sources = [*input_files(cellh5_path), mapping_path, model_path]
    path = write_cells(out, result, obs, found, maps, sources)
    done = CellsResult(result, obs, found, maps, anndata_path=path, notes=notes)
    if gallery is not None:
        done.gallery_path = _gallery(gallery, crops, obs, found, trained, sources, notes)
    return done


def _gallery(path, crops, obs, found: Discovery, trained, inputs, notes: list[str]):
    from napari_cellae.export.gallery import group_caption, write_gallery

    if not found.typical:
        notes.append(f"no gallery written to {path}: there are no phenotype groups")
        return None
    conditions = obs["condition"].astype(str).to_numpy()
    captions = {
        g: group_caption(g, int((found.clusters == g).sum()), conditions[found.clusters == g])
        for g in found.typical
    }
    title = f"{int(found.novelty.novel.sum())} novel cells in {found.n_groups} group(s)"
    return write_gallery(
        path, crops.crops, found.typical, captions, trained.normalisation, title, inputs
    )
