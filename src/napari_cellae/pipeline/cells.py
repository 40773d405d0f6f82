"""Encode a screen into an AnnData file of cells: features, novelty, groups, 2-D maps.

:func:`run_encode_cells` is ``cellae encode ... --out cells.h5ad``: the screen is encoded
position by position as for the Explorer file (:mod:`napari_cellae.pipeline.streaming`,
here or on Dask), then phenotype discovery (:mod:`napari_cellae.pipeline.discovery`), the
2-D maps, the ``.h5ad`` and optionally a gallery PNG of the phenotype groups. Memory holds
the features and the cell table, never every crop. :func:`write_cells` saves a run the
widget already holds (its "Save AnnData").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae.core.features import (
    DEFAULT_EMBEDDING,
    EMBEDDING_METHODS,
    cell_feature_names,
    embed_2d,
)
from napari_cellae.core.morphology import novelty_views
from napari_cellae.pipeline.cell_ids import cell_order
from napari_cellae.pipeline.discovery import (
    Discovery,
    DiscoveryOptions,
    cell_table,
    discover,
    with_discovery,
)
from napari_cellae.pipeline.map_features import PlateScaling, map_references
from napari_cellae.pipeline.plate_cells import (
    class_names,
    plate_classes,
    typical_crops,
    unknown_classes,
)
from napari_cellae.pipeline.results import RunResult, run_sources
from napari_cellae.pipeline.sampling import concat_crops
from napari_cellae.pipeline.steps import check_outputs

if TYPE_CHECKING:
    import anndata
    import pandas as pd

    from napari_cellae.core.model_file import TrainedModel
    from napari_cellae.pipeline.streaming import EncodedPosition, PositionTask

__all__ = [
    "CellsResult",
    "cells_anndata",
    "class_names",
    "embeddings",
    "plates_aligned",
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


def embeddings(
    features: np.ndarray,
    method: str = DEFAULT_EMBEDDING,
    seed: int = 0,
    plates: np.ndarray | None = None,
    controls: np.ndarray | None = None,
    wells: np.ndarray | None = None,
    order: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The 2-D maps for ``obsm``: always ``X_pca`` (cheap), plus ``X_umap`` for "umap".

    Of several ``plates`` (one per cell), each plate's features are first centred and
    scaled on the control cells novelty scales it on (its own where they come from two
    ``wells`` or more, else every plate's:
    :func:`~napari_cellae.core.novelty.plate_references`), so that a plate imaged a little
    otherwise does not lie apart in the map. Without two control cells in all, each plate
    on all its own cells.

    ``order`` (:func:`~napari_cellae.pipeline.cell_ids.cell_order`) is the order the maps
    are fitted in; they come back in the cells' own. UMAP's layout, the cells a large map
    is fitted on and the sums of the scaling follow the rows' order: the plates of a run
    given the other way round put every cell elsewhere.
    """
    if method not in EMBEDDING_METHODS:
        raise ValueError(
            f"unknown embedding method {method!r}; choose {' or '.join(EMBEDDING_METHODS)}"
        )
    if order is not None and not np.array_equal(order, np.arange(len(features))):
        inverse = np.empty(len(order), np.intp)
        inverse[order] = np.arange(len(order))

        def ordered(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else np.asarray(values)[order]

        maps = embeddings(features[order], method, seed, *map(ordered, (plates, controls, wells)))
        return {name: xy[inverse] for name, xy in maps.items()}
    if plates is not None and len(np.unique(plates)) > 1:
        features = plates_aligned(features, np.asarray(plates), controls, wells)
    maps = {"X_pca": embed_2d(features, "pca", seed)}
    if method == "umap":
        maps["X_umap"] = embed_2d(features, "umap", seed)
    return maps


def plates_aligned(
    features: np.ndarray,
    plates: np.ndarray,
    controls: np.ndarray | None,
    wells: np.ndarray | None,
) -> np.ndarray:
    """A float32 copy of ``features`` with each plate standardised on the control cells
    novelty scales it on (:func:`napari_cellae.core.novelty.plate_references`; a plate
    without two such cells on its own cells): what the 2-D maps and the phenotype groups
    are made from, in the ``.h5ad`` and the widget alike."""
    return PlateScaling.fit(features, plates, controls, wells).apply(features)


def _feature_names(trained: TrainedModel, n: int) -> tuple[list[str], list[str]]:
    """var names by layer, and the Explorer .hdf names of the same columns."""
    from napari_cellae.export.explorer import feature_names

    names = cell_feature_names(trained)
    explorer = feature_names(n, names)
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
    class_colours: dict[str, str] | None = None,
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
    class_colours : dict of str to str, optional
        The classifier's colour per class name (``uns["class_colors"]``, as napari shows).
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
    colours = {"class": class_colours} if class_colours else None
    return build_anndata(result.features, obs, var_names, maps, uns, explorer, colours)


def write_cells(
    path: str | os.PathLike,
    result: RunResult,
    obs: pd.DataFrame,
    discovery: Discovery | None = None,
    maps: dict[str, np.ndarray] | None = None,
    inputs: Iterable[str | os.PathLike | None] = (),
    class_colours: dict[str, str] | None = None,
    sources: Iterable[str | os.PathLike] | None = None,
) -> Path:
    """Write a run's cells to an ``.h5ad`` file (atomically; an input is refused).

    ``inputs`` are files it must not replace; ``sources`` those recorded as read (default:
    the run's own, :func:`~napari_cellae.pipeline.results.run_sources`), never replaced.
    """
    from napari_cellae.export.anndata import write_anndata

    sources = run_sources(result) if sources is None else list(sources)
    adata = cells_anndata(result, obs, discovery, maps, sources, class_colours)
    return write_anndata(path, adata, [*inputs, *sources])


def run_encode_cells(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
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
    runner: Callable[[list[PositionTask], TrainedModel, int], Iterator[EncodedPosition]]
    | None = None,
) -> CellsResult:
    """Encode every cell, find novel cells and phenotype groups, write ``out`` (.h5ad).

    The cells are cropped and encoded one position at a time (here, or on a Dask cluster
    with ``runner``), so memory holds the features and the cell table, never every crop;
    the gallery crops its few typical cells again.

    Parameters
    ----------
    paths : path-like or sequence of path-like
        One CellH5 file, or several files and folders of plates (as ``cellae encode``).
    trained, out, mapping_path, control_token, batch_size, model_path
        As for :func:`napari_cellae.pipeline.streaming.encode_stream`; ``out`` ends in
        ``.h5ad``.
    progress : callable, optional
        ``progress(done, total)`` over positions.
    options : DiscoveryOptions, optional
        Novelty method, percentile and groups.
    embedding : {"umap", "pca"}
        The 2-D map: ``obsm["X_umap"]`` for "umap"; ``obsm["X_pca"]`` always.
    gallery : path-like, optional
        Also draw a PNG of typical crops per phenotype group (needs control cells).
    on_step : callable, optional
        Called with a short text as each step after encoding starts.
    runner : callable, optional
        Where the positions are encoded (:func:`~napari_cellae.pipeline.streaming.encode_stream`).

    Returns
    -------
    CellsResult
        Its ``result.crops`` holds the cells' identities without pixels.

    Raises
    ------
    ValueError
        User errors, before any work where possible: outputs that are inputs or have the
        wrong suffix, a gallery without control cells, a mapping of another plate.
    """
    from napari_cellae.export.anndata import H5AD_SUFFIX
    from napari_cellae.pipeline.streaming import encoded_positions, plan_encode

    step = on_step or (lambda _text: None)
    options = options or DiscoveryOptions()
    if embedding not in EMBEDDING_METHODS:
        raise ValueError(f"unknown embedding method {embedding!r}")
    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    model_path = model_path if model_path is not None else trained.path
    if Path(out).suffix.lower() != H5AD_SUFFIX:
        raise ValueError(f"cannot write {out} as AnnData: the file name must end in .h5ad")
    plan = plan_encode(
        paths,
        trained,
        out,
        mapping_path,
        control_token,
        model_path,
        thumbnails=False,
        what="AnnData file",
    )
    outputs = [(out, "AnnData file")] + ([(gallery, "gallery")] if gallery is not None else [])
    check_outputs(outputs, plan.inputs)
    mapping = plan.mapping
    if gallery is not None and not any(
        (info := mapping.lookup(t.position)) is not None and info.is_control
        for t in (plan.tasks if mapping is not None else [])
    ):
        raise ValueError(
            f"cannot draw the gallery {gallery}: phenotype groups are groups of novel "
            "cells, and novelty needs negative controls; give --mapping with a Group "
            "column marking them"
        )
    names, class_colours, notes = plate_classes(plan.plates, trained.object_name)
    keys = plan.distinct_positions()
    parts, features = [], []
    for encoded in encoded_positions(plan, trained, batch_size, progress, runner):
        cells = encoded.crops  # identities only: the plan asks for no thumbnails
        cells.positions = [keys[encoded.task.index]]
        parts.append(cells)
        features.append(encoded.features)
    crops = concat_crops(parts, keys)
    notes += unknown_classes(crops, names, [task.source for task in plan.tasks])
    result = RunResult(
        trained, crops, mapping, np.concatenate(features), model_path=_path(model_path)
    )
    step("scoring novelty against the negative controls")
    obs = cell_table(crops, mapping, names)
    views = novelty_views(cell_feature_names(trained))  # learned and outline apart
    found = discover(result.features, obs, options, views, mapping)
    obs = with_discovery(obs, found)
    notes += [found.note] if found.note else []
    step(f"2-D map ({embedding})")
    order = cell_order(obs)  # plates given in any order: one map
    maps = embeddings(result.features, embedding, options.seed, *map_references(obs), order=order)
    result.embedding = maps["X_umap" if embedding == "umap" else "X_pca"]
    sources = list(dict.fromkeys(plan.inputs))  # as given, their linked files, mapping, model
    path = write_cells(out, result, obs, found, maps, sources, class_colours, sources)
    done = CellsResult(result, obs, found, maps, anndata_path=path, notes=notes)
    if gallery is not None:
        try:
            done.gallery_path = _gallery(gallery, plan, crops, obs, found, trained, sources, notes)
        except ValueError as exc:  # e.g. a full disk: say that the cells file is complete
            raise ValueError(f"{exc} (the cells file {path} was written)") from exc
    return done


def _path(path: str | os.PathLike | None) -> Path | None:
    return Path(path) if path is not None else None


def _gallery(path, plan, cells, obs, found: Discovery, trained, inputs, notes: list[str]):
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
    shown = np.unique(np.concatenate(list(found.typical.values())))
    crops = typical_crops(plan, cells, shown, trained)
    rows = {g: np.searchsorted(shown, idx) for g, idx in found.typical.items()}
    return write_gallery(path, crops, rows, captions, trained.normalisation, title, inputs)
