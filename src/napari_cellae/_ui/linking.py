"""Selection linking between the feature embedding and the cell centres in the images.

A cell is the same in two points layers when their ``features`` tables agree on
``position_index`` and ``object_index``. A layer's ``position_index`` counts in the
``positions`` list of its metadata (the reader's centres layers hold one group of
positions each; the embedding holds all positions with cells), so positions are compared
by their keys. The join is computed once per embedding (a screen has ~10^6 cells), with
sorted integer keys rather than dictionaries.

The embedding layer may show only some cells (the density view of a large screen): its
``cell`` column then names the row of the full cell table each point is, and a ``show``
callback puts cells that are not shown into the layer before selecting them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae._reader import METADATA_KEY
from napari_cellae._ui.result_layers import cellae_layers, select_points

if TYPE_CHECKING:
    import napari

__all__ = ["SelectionLink", "match_rows"]


def match_rows(
    src_positions: Sequence[Any],
    src_features: Any,
    dst_positions: Sequence[Any],
    dst_features: Any,
) -> np.ndarray:
    """For every row of one points table, the row of another that holds the same cell.

    Parameters
    ----------
    src_positions, dst_positions : sequence of hashable
        Position keys that each table's ``position_index`` column indexes.
    src_features, dst_features : DataFrame or mapping
        With integer columns ``position_index`` and ``object_index``.

    Returns
    -------
    ndarray of int64 (len(src_features),)
        Row in ``dst_features``, or -1 where the cell is not there.
    """
    dst_of_position = {key: i for i, key in enumerate(dst_positions)}
    to_dst = np.array([dst_of_position.get(key, -1) for key in src_positions] + [-1], np.int64)
    src_obj = np.asarray(src_features["object_index"], np.int64)
    src_pos = to_dst[np.asarray(src_features["position_index"], np.int64)]
    dst_pos = np.asarray(dst_features["position_index"], np.int64)
    dst_obj = np.asarray(dst_features["object_index"], np.int64)
    if len(dst_obj) == 0 or len(src_obj) == 0:
        return np.full(len(src_obj), -1, np.int64)
    stride = 1 + int(max(src_obj.max(), dst_obj.max()))
    dst_keys = dst_pos * stride + dst_obj
    order = np.argsort(dst_keys, kind="stable")
    sorted_keys = dst_keys[order]
    src_keys = src_pos * stride + src_obj
    j = np.clip(np.searchsorted(sorted_keys, src_keys), 0, len(sorted_keys) - 1)
    hit = (src_pos >= 0) & (sorted_keys[j] == src_keys)
    return np.where(hit, order[j], -1)


def _positions(layer: Any) -> list[Any]:
    return list(layer.metadata[METADATA_KEY]["positions"])


class SelectionLink:
    """Keeps the selection of the embedding and of the centres layers in step.

    Parameters
    ----------
    viewer : napari.Viewer
    on_focus : callable
        Called with a cell's embedding row when exactly that cell is selected in the
        embedding.
    on_pick : callable
        Called with a cell's embedding row when exactly that cell is selected among the
        centres in the image.

    Cells are rows of the cell table given to :meth:`connect` (the embedding layer's own
    ``features`` by default).
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        on_focus: Callable[[int], None],
        on_pick: Callable[[int], None],
    ) -> None:
        self.viewer = viewer
        self.on_focus = on_focus
        self.on_pick = on_pick
        self.embedding: Any = None
        self._meta: Any = None  # the embedding's metadata when linked: its run's
        self.centres: list[Any] = []  # linked centres layers
        self._to_embedding: list[np.ndarray] = []  # per centres layer: embedding row per row
        self._layer_of = np.zeros(0, np.int64)  # per embedding row: index into centres or -1
        self._row_of = np.zeros(0, np.int64)  # per embedding row: row in that layer
        self._copies: list[bool] = []  # per centres layer: a cell on several rows (z planes)
        self._watched: list[tuple[Any, Any]] = []
        self._syncing = False
        self._removing = False  # points are being deleted: rows are about to move
        self._show: Callable[[np.ndarray], None] = self._select_rows
        self._table: Any = None  # the cells given to connect
        # centres of the file opened again (its layers removed, the file dropped on the
        # viewer) are linked too: clicks in them found no cell
        viewer.layers.events.inserted.connect(self._on_inserted)

    def connect(
        self,
        embedding: Any,
        cells: Any = None,
        show: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        """Link an embedding layer with the centres layers of the same file and object.

        Parameters
        ----------
        embedding : napari.layers.Points
            With ``position_index`` and ``object_index`` columns (and ``cell`` when it
            shows only some of ``cells``), and the file, object and positions in its
            metadata.
        cells : DataFrame, optional
            The cell table (``position_index``, ``object_index``); default: the layer's
            ``features``, one row per point.
        show : callable, optional
            Selects an array of cells in the embedding; default: selects those rows.
        """
        self.disconnect()
        meta = embedding.metadata[METADATA_KEY]
        self.embedding, self._meta, self._table = embedding, meta, cells
        self._show = show or self._select_rows
        positions = meta["positions"]
        features = embedding.features if cells is None else cells
        n = len(features)
        self._layer_of = np.full(n, -1, np.int64)
        self._row_of = np.full(n, -1, np.int64)
        for layer in cellae_layers(self.viewer, "centres"):
            if len(layer.data) == 0 or not self._of_linked_cells(layer):
                continue
            to_embedding = match_rows(_positions(layer), layer.features, positions, features)
            rows = np.flatnonzero(to_embedding >= 0)
            # A z-stack's centres hold a copy of every cell per plane, plane 0's first: a
            # cell is found on its first (the plane its crop comes from), not on the last
            cells, first = np.unique(to_embedding[rows], return_index=True)
            self._layer_of[cells] = len(self.centres)
            self._row_of[cells] = rows[first]
            self.centres.append(layer)
            self._to_embedding.append(to_embedding)
            self._copies.append(len(cells) < len(rows))
            self._watch(
                layer.selected_data.events.items_changed,
                self._centre_callback(layer, to_embedding),
            )
            self._watch(layer.events.data, self._data_callback(layer, to_embedding))
        self._watch(embedding.selected_data.events.items_changed, self._on_embedding_selection)

    def disconnect(self) -> None:
        """Stop following selections (e.g. before linking a new embedding)."""
        for emitter, callback in self._watched:
            with contextlib.suppress(Exception):
                emitter.disconnect(callback)
        self._watched = []
        self.centres = []
        self._to_embedding = []
        self._copies = []
        self._removing = False
        self._layer_of = self._row_of = np.zeros(0, np.int64)
        self.embedding = self._meta = self._table = None

    def locate(self, index: int) -> tuple[Any, int] | None:
        """The centres layer and row of embedding row ``index``, None if not shown."""
        if 0 <= index < len(self._layer_of) and self._layer_of[index] >= 0:
            return self.centres[int(self._layer_of[index])], int(self._row_of[index])
        return None

    def focus(self, index: int) -> tuple[Any, np.ndarray] | None:
        """Select a cell's centre, move the sliders to it and centre the camera on it.

        Returns
        -------
        (layer, point) or None
            The centres layer and the cell's data coordinates; None if the cell has no
            centre in the viewer.
        """
        found = self.locate(index)
        if found is None:
            return None
        layer, row = found
        with self._guard():
            layer.selected_data = {row}
        return layer, self._go_to(layer, row)

    def select(
        self,
        cells: np.ndarray,
        focus: int | None = None,
        show: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        """Select ``cells`` in the embedding and among the centres; bring ``focus`` (one
        of them) into view without changing the selection. ``show`` replaces the
        embedding's ``show`` callback for this once."""
        cells = np.asarray(cells, np.int64)
        with self._guard():
            (show or self._show)(cells)
            self._select_centres(cells)
        found = self.locate(focus) if focus is not None else None
        if found is not None:
            self._go_to(*found)

    # -- internals --------------------------------------------------------------------------------
    def _go_to(self, layer: Any, row: int) -> np.ndarray:
        """Move the sliders to a centre and the camera onto it; its data coordinates."""
        world = np.asarray(layer.data_to_world(layer.data[row]), float)
        offset = self.viewer.dims.ndim - layer.ndim
        sliders = range(layer.ndim - 2)
        if len(sliders):
            # all sliders at once: one re-slice, not one per slider (the first drew the
            # image at the new position but the old frame, read from disk for nothing)
            self.viewer.dims.set_point([offset + a for a in sliders], world[: len(sliders)])
        # napari >= 0.9 keeps the camera in viewer.scene (viewer.camera is deprecated)
        camera = self.viewer.scene.camera if hasattr(self.viewer, "scene") else self.viewer.camera
        camera.center = tuple(world[-2:])
        return np.asarray(layer.data[row])

    def _select_rows(self, cells: np.ndarray) -> None:
        select_points(self.embedding, cells)

    def _cells(self, rows: np.ndarray) -> np.ndarray:
        """Cells of embedding-layer rows."""
        features = self.embedding.features
        if "cell" in features:
            return np.asarray(features["cell"], np.int64)[rows]
        return rows

    def _select_centres(self, cells: np.ndarray) -> None:
        cells = cells[(cells >= 0) & (cells < len(self._layer_of))]
        chosen = None
        for k, layer in enumerate(self.centres):
            if not self._copies[k]:
                select_points(layer, self._row_of[cells[self._layer_of[cells] == k]])
                continue
            # every copy: the viewer opens a stack on its middle plane, where a selection
            # of plane 0's copies showed nothing
            if chosen is None:
                chosen = np.zeros(len(self._layer_of) + 1, bool)  # the last: row -1, no cell
                chosen[cells] = True
            select_points(layer, np.flatnonzero(chosen[self._to_embedding[k]]))

    def _of_linked_cells(self, layer: Any) -> bool:
        """Whether ``layer`` shows centres of the linked embedding's file and objects."""
        info = layer.metadata.get(METADATA_KEY) or {}
        meta = self._meta or {}
        return (
            info.get("kind") == "centres"
            and "path" in meta
            and info.get("object") == meta["object"]
            and Path(info["path"]).resolve() == Path(meta["path"]).resolve()
        )

    def _on_inserted(self, event: Any) -> None:
        if self.embedding is not None and self._of_linked_cells(event.value):
            self.connect(self.embedding, self._table, self._show)

    def _current(self) -> bool:
        """Whether the embedding still shows the linked run's cells. Another dock of the
        widget draws its run in the same layer: its rows are no cells of this run (a
        hit-table row raised IndexError, a click found a cell of another file)."""
        if self.embedding is not None and self.embedding.metadata.get(METADATA_KEY) is self._meta:
            return True
        self.disconnect()
        return False

    def _watch(self, emitter: Any, callback: Any) -> None:
        emitter.connect(callback)
        self._watched.append((emitter, callback))

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        # our own selection changes must not echo back
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    def _centre_callback(self, layer: Any, to_embedding: np.ndarray) -> Callable[..., None]:
        def on_change(event: Any = None) -> None:
            if self._syncing or self._removing or not self._current():
                return
            rows = np.fromiter(layer.selected_data, np.int64)
            rows = rows[rows < len(to_embedding)]  # points the user added are not cells
            # dict: a cell's copies on several planes are one cell
            cells = list(dict.fromkeys(int(c) for c in to_embedding[rows] if c >= 0))
            with self._guard():
                self._show(np.asarray(cells, np.int64))
            if len(cells) == 1:
                self.on_pick(cells[0])

        return on_change

    def _data_callback(self, layer: Any, to_embedding: np.ndarray) -> Callable[..., None]:
        """Join the centres again when the user deleted some (the rows after them move up:
        a click picked the neighbour of its cell) or replaced their data."""

        def on_data(event: Any = None) -> None:
            action = str(getattr(event, "action", ""))
            if action == "removing":  # napari moves the selection before saying removed
                self._removing = True
            elif action == "removed" or (
                action == "changed" and len(layer.data) != len(to_embedding)
            ):
                if self._current():
                    self.connect(self.embedding, self._table, self._show)
            # points the user added come last: rows past the joined ones, no cells

        return on_data

    def _on_embedding_selection(self, event: Any = None) -> None:
        if self._syncing or not self._current():
            return
        rows = np.asarray(sorted(self.embedding.selected_data), np.int64)
        chosen = self._cells(rows[rows < len(self.embedding.features)])
        if len(chosen) == 1:
            self.on_focus(int(chosen[0]))
        elif len(chosen):
            with self._guard():
                self._select_centres(chosen)
