"""A run's results in the viewer: embedding, colours, 2-D map, hits, gallery, picked cells.

:class:`Results` takes what a job hands over (:class:`~napari_cellae._ui.runner.Outcome`:
the run, its cell table and its findings) and keeps the embedding layer(s), the results
panel and the selection linking in step. Work that takes more than a moment (the UMAP
map, reconstructions for the gallery) runs in side-task workers (:mod:`.background`); a
result that arrives after a newer run or selection is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae._reader import METADATA_KEY
from napari_cellae._ui import files
from napari_cellae._ui.background import side_task
from napari_cellae._ui.cell_table import density_view, unit_square
from napari_cellae._ui.density import DensityGrid
from napari_cellae._ui.embedding_view import DENSE_ABOVE, EmbeddingView
from napari_cellae._ui.hit_table import WAITING
from napari_cellae._ui.linking import SelectionLink
from napari_cellae._ui.rescoring import Rescoring
from napari_cellae._ui.result_layers import ResultLayers, embedding_meta
from napari_cellae._ui.results_panel import ResultsPanel
from napari_cellae._ui.theme import follow_theme
from napari_cellae.pipeline import jobs
from napari_cellae.pipeline.map_process import MapCancelled, cancel_maps

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

    import napari

    from napari_cellae._ui.cell_table import CellTable
    from napari_cellae._ui.colouring import Colouring
    from napari_cellae._ui.findings import Findings
    from napari_cellae._ui.runner import Outcome
    from napari_cellae.pipeline.results import RunResult

__all__ = ["TAKEN", "Results", "novel_gallery"]

TAKEN = (
    "Another Deep Learning Module shows its cells in the viewer now: train or load a "
    "model here to show this one's again."
)


def novel_gallery(result: RunResult, cells: np.ndarray) -> np.ndarray:
    """Crops of ``cells`` beside their reconstructions, tiled (run in a worker: torch)."""
    crops = result.crops.crops[np.asarray(cells, np.int64)]
    return jobs.gallery_grid(*jobs.reconstruct_gallery(result.trained, crops))


class Results:
    """Shows one run's results and reacts to its panel (:class:`ResultsPanel`, ``panel``).

    Parameters
    ----------
    viewer : napari.Viewer
    layers : ResultLayers
    say : callable
        Shows a sentence in the widget's status line.
    on_error : callable
        Shows the error of a background worker.
    dense_above : int
        Embeddings of more cells are drawn as a density image.
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        layers: ResultLayers,
        say: Callable[[str], None],
        on_error: Callable[[BaseException], None],
        dense_above: int = DENSE_ABOVE,
    ) -> None:
        self.viewer, self.layers = viewer, layers
        self.panel = ResultsPanel(self.recolour, self.choose_map, self.select_hits)
        self.say, self.on_error = say, on_error
        self.view = EmbeddingView(layers, dense_above)
        follow_theme(self.panel, viewer, self.view.set_theme)  # points rimmed on white
        self.link = SelectionLink(viewer, on_focus=self.focus_cell, on_pick=self.show_cell)
        self.view.redrawn = self._link  # the user deleted the embedding: link its new layer
        self.result: RunResult | None = None
        self.table: CellTable | None = None
        self.findings: Findings | None = None
        self.pending: dict[str, Any] = {}  # running background workers by task
        self._mapping: CellTable | None = None  # the table whose map a worker computes
        self._maps = 0
        self._gallery_request = 0
        self.closed = False  # the widget closed: background workers draw nothing
        self.rescoring = Rescoring(self)  # the novelty boxes: the findings made again

    # -- a new run -------------------------------------------------------------------------------
    def show(self, outcome: Outcome) -> Any:
        """Show a finished run with features: embedding, colours, hits; start its UMAP.

        Returns
        -------
        napari.layers.Points
            The embedding layer.
        """
        result, table, findings = outcome.result, outcome.table, outcome.findings
        assert result is not None and table is not None
        self.closed = False
        self.result, self.table, self.findings = result, table, findings
        colour = self.panel.offer_colours(list(table.colourings))
        layer = self.view.show(table, embedding_meta(result, table.colours), colour)
        self._link(layer)
        self.panel.legend.setText(self.view.colouring.legend_html())
        self._show_hits()
        self.rescoring.shown()
        self.choose_map(self.panel.method)
        if not result.reports and result.trained is not None and findings is not None:
            # a loaded model: the gallery held the crops of the run before, of another file
            self.show_gallery(findings.most_novel(np.arange(len(table)), jobs.GALLERY_PAIRS))
        return layer

    def _show_hits(self) -> None:
        findings, result = self.findings, self.result
        note = None if findings is None else findings.discovery.note
        if findings is not None and findings.discovery.novelty is None:
            note = f"No hit list: {note}."
        if result.empty:  # said in a passing warning too; a well whose cells died is news
            note = " ".join(filter(None, [note, f"No cells, so no row: {result.empty}."]))
        self.panel.hits.show_hits(findings.hits if findings is not None else {}, note)

    def refresh_findings(self) -> None:
        """Show the findings made again for the shown cells (:attr:`table` took their
        columns): hit table, and the points' columns and colours."""
        self._show_hits()
        if self._shown():
            self.view.moved()  # the points' features table: the new novelty columns
            self.recolour(self.panel.colour)

    def _link(self, layer: Any) -> None:
        meta = layer.metadata[METADATA_KEY]
        self.link.disconnect()  # a centres layer added below links the new run once
        try:  # a selected cell is found through its centre in the image
            files.show_centres(self.viewer, meta["path"], meta["object"])
        except ValueError as err:
            self.on_error(err)
        self.link.connect(layer, cells=self.table.features, show=self.view.select)

    def clear(self) -> None:
        """Forget the shown run (its features were dropped)."""
        self.result = self.table = self.findings = None
        self.link.disconnect()
        self.view.clear()
        self.panel.hits.show_hits({}, WAITING)
        self.panel.legend.setText("")
        self.rescoring.shown()

    def close(self) -> None:
        """The widget closed: stop following selections; what its background workers (map,
        gallery) return later is neither drawn nor, failing, reported."""
        self.closed = True
        self.link.disconnect()
        if self._mapping is not None:  # its thread waited a minute for a map nobody sees
            cancel_maps()

    def reopen(self) -> None:
        """The widget was docked again after :meth:`close`: clicks on the shown run's cells
        (still in the viewer) find them in the other views again."""
        self.closed = False
        if self._shown():
            self._link(self.view.layer)

    # -- the results panel -----------------------------------------------------------------------
    def recolour(self, name: str) -> None:
        """Colour the embedding by ``name`` (a colour mode of the run)."""
        if not self._shown() or name not in self.table.colourings:
            return
        self.view.recolour(name)
        self.panel.legend.setText(self.view.colouring.legend_html())

    def choose_map(self, method: str) -> None:
        """Show the 2-D map ``method``, computing it in a worker the first time."""
        table = self.table
        if not self._shown():
            return
        if method in table.maps:
            if self._mapping is not table:
                self.panel.map_state.setText("")
            if table.method != method:
                table.show_map(method)
                self.view.moved()
            return
        if self._mapping is table:  # one map per run at a time; the newest choice wins
            return
        self.panel.map_state.setText(f"computing {method.upper()}…")
        self._mapping = table
        bins = self.view.bins if len(table) > self.view.dense_above else None
        worker = side_task(
            self._embed_unless_closed,
            self.result,
            method,
            bins,
            table.colourings,
            errored=lambda err: self._map_failed(table, err),
            swaps_warnings=method == "umap",  # UMAP's notes are quieted in catch_warnings
        )
        worker.returned.connect(lambda done: self._map_ready(table, method, *done))
        self._maps += 1
        self.start_task(f"map {self._maps}", worker)

    def _embed_unless_closed(self, *args: Any) -> Any:
        # a map still waiting for a job's end (the warning state) when the widget closed
        if self.closed:
            raise MapCancelled("the UMAP map was cancelled: the widget closed")
        return _embed(*args)

    def _map_ready(
        self,
        table: CellTable,
        method: str,
        embedding: np.ndarray,
        unit: np.ndarray,
        grid: DensityGrid | None,
        images: dict[str, np.ndarray],
    ) -> None:
        if self._mapping is table:
            self._mapping = None
        if table is not self.table or not self._viewer_open():  # a newer run, or closed
            return
        self.panel.map_state.setText("")
        table.add_map(method, embedding, unit, grid, images)
        self.choose_map(self.panel.method)

    def _map_failed(self, table: CellTable, err: BaseException) -> None:
        if self._mapping is table:
            self._mapping = None
        if table is not self.table or not self._viewer_open():
            return
        self.panel.map_state.setText("")
        self.panel.set_method(self.table.method if self.table is not None else "pca")
        if isinstance(err, MapCancelled):  # another dock closed: no failure of this one
            self.say("The UMAP map was given up (a Deep Learning Module closed): choose it again.")
            return
        self.on_error(err)

    def select_hits(self, by: str, keys: list[str]) -> None:
        """Select the cells of hit-table rows everywhere; their most novel in the gallery."""
        findings = self.findings
        if findings is None or not self._shown():
            return
        cells = findings.cells_of(by, keys) if keys else np.zeros(0, np.int64)
        top = findings.most_novel(cells, jobs.GALLERY_PAIRS)
        focus = int(top[0]) if len(top) else None
        self.link.select(cells, focus, show=lambda c: self.view.select(c, spotlight=True))
        if not len(cells):
            return
        self._mark(top, focus)
        what = f"{len(keys)} {by}s" if len(keys) > 1 else keys[0]
        plates = {key.plate for key in self.result.crops.positions}
        if by == "position" and len(keys) == 1 and len(plates) < 2:
            what = what.split("/", 1)[-1]  # "plate/C03_01": the plate where wells repeat
        if by == "position":
            conditions = self.table.features["condition"].iloc[cells].astype(str).unique()
            what += f" ({', '.join(conditions[:3])}{', …' if len(conditions) > 3 else ''})"
        self.say(
            f"{len(cells)} cells of {what} selected; the {len(top)} most novel are in the "
            "gallery and in cyan squares."
        )
        self.show_gallery(top)

    def show_gallery(self, cells: np.ndarray) -> None:
        """Show ``cells`` beside their reconstructions in the gallery (in a worker)."""
        self._gallery_request += 1
        request, result = self._gallery_request, self.result
        worker = side_task(novel_gallery, result, cells, errored=self._gallery_failed)
        worker.returned.connect(lambda grid: self._gallery_ready(request, result, grid))
        self.start_task(f"gallery {request}", worker)

    def _mark(self, cells: np.ndarray, focus: int | None) -> None:
        """Square the image's ``cells`` that are in the layer of ``focus`` (the most novel
        cells: those of the gallery)."""
        found = self.link.locate(focus) if focus is not None else None
        if found is None:
            return
        layer = found[0]
        self._reveal(layer)
        rows = []
        for cell in cells:
            at = self.link.locate(int(cell))
            if at is not None and at[0] is layer:
                rows.append(at[1])
        self.layers.mark(layer, layer.data[rows], float(self.result.crops.box))

    def _reveal(self, centres: Any) -> None:
        """Show the file of a found cell, whose layers are hidden when another file was
        chosen since the run: the cell was squared on the other file's image."""
        files.open_file(self.viewer, Path(centres.metadata[METADATA_KEY]["path"]))

    def _gallery_failed(self, err: BaseException) -> None:
        if self._viewer_open():
            self.on_error(err)

    def _gallery_ready(self, request: int, result: RunResult, grid: np.ndarray) -> None:
        if request == self._gallery_request and result is self.result and self._viewer_open():
            self.layers.show_gallery(grid)

    def anndata_writer(
        self, path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]
    ) -> Any:
        """An unstarted worker writing the shown run's cells to ``path`` (``.h5ad``).

        Raises
        ------
        ValueError
            Without a run, while it is re-scored, or for an output that is an input or
            not ``.h5ad``.
        """
        if self.result is None or self.findings is None or self.table is None:
            raise ValueError("Train or load a model first: there are no cells to save.")
        if self.rescoring.pending():  # the table shown is not yet the boxes' one
            raise ValueError("Re-scoring the cells' novelty: save once the hit table shows it.")
        inputs = list(inputs)
        out = files.anndata_path(path, inputs)
        return files.anndata_writer(self.result, self.findings, self.table.maps, out, inputs)

    # -- one cell ---------------------------------------------------------------------------------
    def focus_cell(self, index: int) -> None:
        """Select cell ``index`` (crop order) everywhere and bring it into view.

        Selects its centre point, moves the position/time sliders to it, centres the
        camera on it and shows its crop beside its reconstruction.
        """
        if not self._shown():
            return
        found = self.link.focus(index)
        if found is not None:
            layer, point = found
            self._reveal(layer)
            self.layers.mark(layer, point, float(self.result.crops.box))
        self.show_cell(index)

    def show_cell(self, index: int) -> None:
        """Show a cell's crop beside its reconstruction and say which cell it is."""
        result, table = self.result, self.table
        if not self._shown():
            return
        crops = result.crops
        self.layers.show_pair(jobs.cell_pair(result.trained, crops.crops[index : index + 1]))
        row = table.features.iloc[index]
        novelty = f", novelty {row['novelty']:.3g}" if "novelty" in row else ""
        self.say(
            f"Selected cell: position {row['position']}, frame {int(crops.time_idx[index])}, "
            f"object {int(crops.object_index[index])} — {row['condition']}{novelty}"
        )

    def _shown(self) -> bool:
        """Whether the embedding shows this run's cells. Another dock of the widget on the
        same viewer draws its run in the same layers: this one's then stays in its panel
        (and can be saved), and its clicks would change another run's points."""
        if self.table is None:
            return False
        if not self.view.taken():
            return True
        self.link.disconnect()
        self.say(TAKEN)
        return False

    # -- workers ----------------------------------------------------------------------------------
    def _viewer_open(self) -> bool:
        # a worker may return after the viewer closed: its layers can no longer be changed;
        # or after the widget closed: it draws no more
        return not self.closed and hasattr(getattr(self.viewer, "window", None), "_qt_window")

    def start_task(self, task: str, worker: Any) -> None:
        """Start a side-task ``worker``, listed in :attr:`pending` under ``task`` until it
        finishes."""
        self.pending[task] = worker
        worker.finished.connect(lambda: self.pending.pop(task, None))
        worker.start()


def _embed(
    result: RunResult, method: str, bins: int | None, colourings: dict[str, Colouring]
) -> tuple[np.ndarray, np.ndarray, DensityGrid | None, dict[str, np.ndarray]]:
    """A run's 2-D map, each plate scaled as in the ``.h5ad`` maps of ``cellae encode``
    (:mod:`~napari_cellae.pipeline.map_features`), in the unit square and, for the density
    view (``bins``), binned and drawn in every colouring."""
    from napari_cellae.pipeline.map_features import map_features
    from napari_cellae.pipeline.map_process import embed_apart

    # the job's scaling where it built one (the PCA map's): the cell table and each
    # plate's controls are not gone through again
    features = map_features(result.features, result.crops, result.mapping, result.map_scaling)
    embedding = embed_apart(features, method, seed=0)  # UMAP in a process: no stalls
    unit = unit_square(embedding)
    if not bins:
        return embedding, unit, None, {}
    return embedding, unit, *density_view(unit, colourings, bins)
