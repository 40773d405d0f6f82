"""The layers that show a run's results beside the images: gallery, embedding, selected cell.

Layer names are fixed, so a new run replaces its layers instead of piling them up, and
layers are updated in place where possible (adding or removing a napari layer costs a few
hundred milliseconds). What the embedding layer shows is up to
:class:`~napari_cellae._ui.embedding_view.EmbeddingView`; this module places it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae._reader import METADATA_KEY

if TYPE_CHECKING:
    import napari

    from napari_cellae.pipeline.results import RunResult

__all__ = [
    "EMBEDDING_LAYER",
    "GALLERY_LAYER",
    "MARKER_LAYER",
    "SELECTED_LAYER",
    "ResultLayers",
    "cellae_layers",
    "embedding_meta",
    "select_points",
]

GALLERY_LAYER = "gallery (input | output)"
EMBEDDING_LAYER = "feature embedding"
SELECTED_LAYER = "selected cell (input | output)"
MARKER_LAYER = "marked cells"  # the picked cell, or the gallery's cells


def cellae_layers(viewer: napari.Viewer, kind: str | None = None) -> list[Any]:
    """Layers opened from a CellH5 file (or made by the widget) of one ``kind``."""
    out = []
    for layer in viewer.layers:
        meta = layer.metadata.get(METADATA_KEY) if hasattr(layer, "metadata") else None
        if meta and (kind is None or meta.get("kind") == kind):
            out.append(layer)
    return out


def select_points(layer: Any, rows: Any) -> None:
    """Set a points layer's selection with one ``items_changed`` event.

    napari's selection reports every added or removed point (and merges the reports by
    concatenating tuples): selecting 5,000 points took 0.25 s, most of it there.
    """
    rows = {int(r) for r in rows}
    events = layer.selected_data.events.items_changed
    before = set(layer.selected_data)
    if rows == before:
        return
    with events.blocked():
        layer.selected_data = rows
    events.emit(tuple(rows - before), tuple(before - rows))


def embedding_meta(result: RunResult, colours: dict[str, str]) -> dict:
    """The embedding layer's metadata: file, object and positions (for joining its
    ``position_index`` and ``object_index`` columns with the centres layers), colours."""
    crops = result.crops
    return {
        "kind": "embedding",
        "path": str(crops.source),
        "object": crops.object_name,
        "positions": list(crops.positions),
        "colours": colours,
    }


def _placement(layer: Any) -> dict[str, np.ndarray]:
    """A layer's data-to-world transform, as the keyword arguments of a new layer."""
    return {
        "scale": layer.scale,
        "translate": layer.translate,
        "rotate": layer.rotate,
        "shear": layer.shear,
        "affine": layer.affine.affine_matrix,
    }


class ResultLayers:
    """Places the result layers to the right of and below the file's images.

    Parameters
    ----------
    viewer : napari.Viewer
    """

    def __init__(self, viewer: napari.Viewer) -> None:
        self.viewer = viewer

    def image_box(self) -> tuple[float, float, float, float]:
        """World (y0, x0, y1, x1) of the file's images, to place result layers beside."""
        boxes = [layer.extent.world[:, -2:] for layer in cellae_layers(self.viewer, "image")]
        if not boxes:
            return 0.0, 0.0, 256.0, 256.0
        lo = np.min([b[0] for b in boxes], axis=0)
        # At least 1 wide: a 1 px image has no extent, and results scaled to it would be 0.
        hi = np.maximum(np.max([b[1] for b in boxes], axis=0), lo + 1.0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def upsert_image(self, name: str, data: np.ndarray, **kwargs: Any) -> Any:
        """Update the image layer ``name`` in place, or add it (gray, contrast 0-1)."""
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            if layer.data.shape == data.shape and layer.data.dtype == data.dtype:
                layer.data[...] = data  # same size: overwrite the pixels, no new array
                layer.refresh()
            else:
                layer.data = data
            for key, value in kwargs.items():
                # each change re-slices the layer: skip unchanged placement
                if not np.allclose(getattr(layer, key), value):
                    setattr(layer, key, value)
            return layer
        return self.viewer.add_image(
            data, name=name, colormap="gray", contrast_limits=(0, 1), **kwargs
        )

    def show_gallery(self, gallery: np.ndarray) -> None:
        """Show input|output pairs below the images, as wide as they are."""
        y0, x0, y1, x1 = self.image_box()
        scale = (x1 - x0) / gallery.shape[1]
        gap = 0.04 * (y1 - y0)
        self.upsert_image(GALLERY_LAYER, gallery, translate=(y1 + gap, x0), scale=(scale, scale))

    def prepare(self, blank_gallery: np.ndarray) -> None:
        """Add the (blank) gallery and the (empty) embedding before a run starts.

        Adding a layer costs napari a few hundred ms, which a user expects at the click,
        not as a stall in the middle of training. The selected layer keeps its controls.
        """
        active = self.viewer.layers.selection.active
        new = GALLERY_LAYER not in self.viewer.layers
        self.show_gallery(blank_gallery)
        self.embedding_layer()
        if active is not None and active in self.viewer.layers:
            self.viewer.layers.selection.active = active
        if new:
            self.viewer.reset_view()

    def drop_blank(self) -> None:
        """Remove the gallery and embedding that :meth:`prepare` added blank, when the run
        that wanted them failed before showing anything."""
        for name in (GALLERY_LAYER, EMBEDDING_LAYER):
            if name in self.viewer.layers and not np.any(self.viewer.layers[name].data):
                self.viewer.layers.remove(name)

    def embedding_layer(self) -> Any:
        """The embedding points layer, created empty if missing."""
        if EMBEDDING_LAYER in self.viewer.layers:
            return self.viewer.layers[EMBEDDING_LAYER]
        return self.viewer.add_points(
            np.zeros((0, 2)), name=EMBEDDING_LAYER, border_width=0, opacity=0.8
        )

    def embedding_box(self) -> tuple[np.ndarray, float]:
        """World (y, x) of the embedding's top-left corner and its side: a square right of
        the images, as tall as they are."""
        y0, _x0, y1, x1 = self.image_box()
        side = y1 - y0
        return np.array([y0, x1 + 0.04 * side]), side

    def show_pair(self, pair: np.ndarray) -> None:
        """Show one cell's crop beside its reconstruction, right of the images."""
        y0, _x0, y1, x1 = self.image_box()
        side = y1 - y0
        gap = 0.04 * side
        scale = 0.5 * side / pair.shape[1]
        active = self.viewer.layers.selection.active
        self.upsert_image(
            SELECTED_LAYER, pair, translate=(y1 + gap, x1 + gap), scale=(scale, scale)
        )
        # a new layer becomes the active one: keep the user's (to go on picking cells)
        if active is not None and active in self.viewer.layers:
            self.viewer.layers.selection.active = active

    def mark(self, centres: Any, points: np.ndarray, size: float) -> None:
        """Draw a square of ``size`` around each of ``points`` (one, or an array of them)
        of a centres layer."""
        points = np.atleast_2d(np.asarray(points, float))
        # the centres' data coordinates: placed as they are (a scale in µm, a translate or
        # a rotation the user gave them), or the squares land beside the cells
        placement = _placement(centres)
        if MARKER_LAYER in self.viewer.layers:
            marker = self.viewer.layers[MARKER_LAYER]
            if marker.ndim == points.shape[1]:
                marker.data = points
                marker.size = size  # points added by `data` take napari's default size
                marker.symbol = "square"
                marker.border_color = "cyan"
                now = _placement(marker)
                if not all(np.allclose(now[key], value) for key, value in placement.items()):
                    for key, value in placement.items():  # each change re-slices the layer
                        setattr(marker, key, value)
                return
            self.viewer.layers.remove(marker)
        self.viewer.add_points(
            points,
            name=MARKER_LAYER,
            size=size,
            face_color="transparent",
            border_color="cyan",
            border_width=0.08,
            symbol="square",
            axis_labels=centres.axis_labels,
            **placement,
        )
        # keep the embedding active: the user goes on picking cells there
        with contextlib.suppress(KeyError):
            self.viewer.layers.selection.active = self.viewer.layers[EMBEDDING_LAYER]
