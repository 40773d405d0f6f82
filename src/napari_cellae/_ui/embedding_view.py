"""The feature embedding in the viewer: a points layer, or a density image for large screens.

Up to :data:`DENSE_ABOVE` cells, every cell is a point of the ``feature embedding`` layer.
Above it, the cells are drawn as a coloured 2-D histogram (:class:`DensityGrid`, an RGBA
image layer under the points) and the points layer holds a seeded random sample of
:data:`SAMPLE` cells plus the selected cells, so that it stays clickable and every
interaction stays fast (``benchmarks/bench_embedding_layer.py``). Either way the points
layer's ``features`` table has a ``cell`` column: the row of the run's cell table (crop
order) of every point, and the ``position_index`` / ``object_index`` columns that
selection linking joins on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae._reader import METADATA_KEY
from napari_cellae._ui.density import DensityGrid
from napari_cellae._ui.result_layers import EMBEDDING_LAYER, select_points
from napari_cellae._ui.theme import canvas_is_light

if TYPE_CHECKING:
    from napari_cellae._ui.cell_table import CellTable
    from napari_cellae._ui.colouring import Colouring
    from napari_cellae._ui.result_layers import ResultLayers

__all__ = ["BINS", "DENSE_ABOVE", "DENSITY_LAYER", "SAMPLE", "SHOWN_SELECTED", "EmbeddingView"]

DENSITY_LAYER = "feature embedding density"
DENSE_ABOVE = 50_000  # cells; more are drawn as a density image
# Under Xvfb (software OpenGL) every shown point costs ~7 us per repaint: 5k points keep a
# repaint near 50 ms, 20k take ~200 ms.
SAMPLE = 5_000
# Selected cells drawn as points; the density image spotlights all of them. napari's
# selection costs grow faster than linearly with the number of points selected.
SHOWN_SELECTED = 2_000
BINS = 512
_FAINT = 0.3  # opacity of the points outside a spotlit selection
# a light canvas: a darker rim (of the point's size) on every point, or the light end of
# the colours (novelty's yellow: the most novel cells) hardly shows on white
_RIM = 0.15
_RIM_SHADE = 0.5  # a rim's colour: the point's, darker (its hue kept)
_BLACK = np.array([0.0, 0.0, 0.0, 1.0], np.float32)  # RGBA of the density view's rims


class EmbeddingView:
    """Shows a :class:`CellTable` as the embedding layer(s) right of the images.

    Parameters
    ----------
    layers : ResultLayers
        Places the layers and owns the (prepared) embedding points layer.
    dense_above : int
        Tables with more cells are drawn as a density image plus a sample of points.
    sample : int
        Points drawn besides the selection in the density view.
    bins : int
        Density image side in bins.
    seed : int
        Seed of the sample.
    """

    def __init__(
        self,
        layers: ResultLayers,
        dense_above: int = DENSE_ABOVE,
        sample: int = SAMPLE,
        bins: int = BINS,
        seed: int = 0,
    ) -> None:
        self.layers = layers
        self.viewer = layers.viewer
        self.dense_above, self.n_sample, self.bins, self.seed = dense_above, sample, bins, seed
        self.table: CellTable | None = None
        self.colouring: Colouring | None = None
        self.rows = np.zeros(0, np.int64)  # cell of every point of the layer
        self.sample = np.zeros(0, np.int64)
        self.grid: DensityGrid | None = None
        self.spotlit: np.ndarray | None = None  # selected cells shown with the rest faint
        self._base: np.ndarray | None = None  # density image without spotlight
        self._offset = np.zeros(2)
        self._side = 1.0
        self._style: dict[str, float] = {}
        self._rim = False  # points drawn on a light canvas: rimmed
        self._layer: Any = None  # the points layer drawn, followed when the user renames it
        self._followed: Any = None  # the layer whose deleted points are followed
        self._meta: dict = {}
        #: called with a new points layer when a deleted one was drawn again
        self.redrawn: Callable[[Any], None] = lambda layer: None

    @property
    def dense(self) -> bool:
        """Whether the shown table is drawn as a density image."""
        return self.table is not None and len(self.table) > self.dense_above

    @property
    def layer(self) -> Any:
        """The embedding points layer: the one drawn (also under a name the user gave it),
        or, if the user deleted it, a new one showing the table again (see ``redrawn``)."""
        drawn = self._layer
        if drawn is not None and drawn in self.viewer.layers:
            return drawn
        self._layer = self.layers.embedding_layer()
        self._follow(self._layer)
        if drawn is not None and self.table is not None:
            # an empty layer would take the cells' colours and selections: an error
            self._fill(self.rows)
            self._layer.metadata[METADATA_KEY] = self._meta
            self.redrawn(self._layer)
        return self._layer

    def taken(self) -> bool:
        """Whether another run (of another dock of the widget) has drawn its cells in the
        layer this view draws in: its table must no longer be drawn there."""
        drawn = self._layer
        if drawn is None or drawn not in self.viewer.layers:
            names = self.viewer.layers
            drawn = names[EMBEDDING_LAYER] if EMBEDDING_LAYER in names else None
        meta = None if drawn is None else drawn.metadata.get(METADATA_KEY)
        return self.table is not None and meta is not None and meta is not self._meta

    def clear(self) -> None:
        """Show no cells: the features of the run shown were dropped (a Stop while they
        were computed), and points of an older run would answer no click."""
        drawn, taken = self._layer, self.taken()  # another run's cells stay
        self.table = self.colouring = self.grid = self.spotlit = self._base = None
        self.rows = self.sample = np.zeros(0, np.int64)
        if taken:
            return
        if drawn is not None and drawn in self.viewer.layers:
            select_points(drawn, [])
            drawn.data = np.zeros((0, 2))
        if DENSITY_LAYER in self.viewer.layers:
            self.viewer.layers.remove(DENSITY_LAYER)

    def prepare(self, n_cells: int) -> None:
        """Add the (empty) density layer now if ``n_cells`` will need it: adding a napari
        layer takes a few hundred ms, better spent while the features are computed than
        when the results appear."""
        if n_cells > self.dense_above and DENSITY_LAYER not in self.viewer.layers:
            self._add_density(np.zeros((1, 1, 4), np.uint8), {})

    def show(self, table: CellTable, meta: dict, colour: str = "condition") -> Any:
        """Draw a new table, coloured by ``colour`` (condition if it has no such colouring).

        Parameters
        ----------
        table : CellTable
        meta : dict
            The points layer's metadata (file, object, positions), for linking.
        colour : str

        Returns
        -------
        napari.layers.Points
        """
        self.table, self.spotlit, self._meta = table, None, meta
        self.colouring = table.colourings.get(colour, table.colourings["condition"])
        self._offset, self._side = self.layers.embedding_box()
        layer = self._layer = self.layers.embedding_layer()  # the run's (prepared) layer
        self._follow(layer)
        select_points(layer, [])
        n = len(table)
        if self.dense:
            rng = np.random.default_rng(self.seed)
            self.sample = np.sort(rng.choice(n, min(n, self.n_sample), replace=False))
            self._density()
            # small dots with a dark rim: they stand out from the density of their colour
            self._style = {"size": max(1.0, self._side / 180), "border_width": 0.15}
        else:
            self.sample = np.arange(n, dtype=np.int64)
            self._drop_density()
            self._style = {"size": max(2.0, self._side / 90), "border_width": self._rim_width}
        self._fill(self.sample)
        layer.metadata[METADATA_KEY] = meta
        return layer

    def set_theme(self, theme: str) -> None:
        """Rim the points on the light canvas of ``theme`` (a napari theme), not on a dark."""
        self._rim = canvas_is_light(theme)
        # the density view's points are always rimmed; another run's are not this one's
        if self.table is None or self.dense or self.taken():
            return
        self._style["border_width"] = self._rim_width
        layer = self.layer
        layer.border_width = self._rim_width
        self._colour_points(layer, self.rows)

    @property
    def _rim_width(self) -> float:
        return _RIM if self._rim else 0.0

    def recolour(self, name: str) -> None:
        """Colour points (and density) by another of the table's colourings."""
        if self.table is None:
            return
        self.colouring = self.table.colourings[name]
        self._colour_points(self.layer, self.rows)
        if self.dense:
            self._base = self.table.density(self.bins, name)
            self._paint()

    def moved(self) -> None:
        """Redraw at the table's new coordinates (another map); the selection is kept."""
        if self.table is None:
            return
        layer = self.layer
        kept = np.fromiter(layer.selected_data, np.int64)
        select_points(layer, [])
        layer.data = self._offset + self.table.unit[self.rows] * self._side
        layer.features = self.table.features.iloc[self.rows].reset_index(drop=True)
        select_points(layer, kept)
        if self.dense:
            self._density()

    def select(self, cells: np.ndarray, spotlight: bool = False) -> None:
        """Select ``cells`` (rows of the table) in the points layer.

        In the density view the selected cells are added to the points (at most
        :data:`SHOWN_SELECTED`, a seeded sample of them). With ``spotlight`` the other
        points turn faint, and the density image shows all selected cells over a dimmed
        image of the rest.
        """
        if self.table is None:
            return
        cells = np.unique(np.asarray(cells, np.int64))
        layer = self.layer
        if not self.dense:
            spotlit = cells if spotlight and len(cells) else None
            if spotlit is not None or self.spotlit is not None:
                self.spotlit = spotlit
                self._colour_points(layer, self.rows)
            # the points of the cells (all but those the user deleted, in cell order)
            at = np.clip(np.searchsorted(self.rows, cells), 0, max(len(self.rows) - 1, 0))
            select_points(layer, at[self.rows[at] == cells] if len(self.rows) else [])
            return
        shown = cells
        if len(cells) > SHOWN_SELECTED:
            rng = np.random.default_rng(self.seed)
            shown = np.sort(rng.choice(cells, SHOWN_SELECTED, replace=False))
        rows = np.union1d(self.sample, shown)
        spotlit = cells if spotlight and len(cells) else None
        recolour = spotlit is not None or self.spotlit is not None
        self.spotlit = spotlit
        if not np.array_equal(rows, self.rows):
            self._fill(rows)
        elif recolour:
            self._colour_points(layer, rows)
        select_points(layer, np.searchsorted(rows, shown))
        self._paint()

    def cells_of(self, rows: np.ndarray) -> np.ndarray:
        """Table rows of points-layer rows."""
        return self.rows[np.asarray(rows, np.int64)]

    # -- internals --------------------------------------------------------------------------------
    def _follow(self, layer: Any) -> None:
        """Follow the points the user deletes from ``layer`` (Delete on the layer the widget
        keeps active): the rows after them move up, and were taken for the next cells."""
        if layer is self._followed:
            return
        if self._followed is not None:
            self._followed.events.data.disconnect(self._on_data)
        layer.events.data.connect(self._on_data)
        self._followed = layer

    def _on_data(self, event: Any = None) -> None:
        layer = self._layer
        if str(getattr(event, "action", "")) != "removed" or layer is not self._followed:
            return
        # the view's own drawing sets as many points as rows; napari removed their features
        if len(layer.data) != len(self.rows) and "cell" in layer.features and not self.taken():
            self.rows = np.asarray(layer.features["cell"], np.int64)

    def _fill(self, rows: np.ndarray) -> None:
        """Make the points layer show the cells ``rows``."""
        table, layer = self.table, self.layer
        self.rows = rows
        data = self._offset + table.unit[rows] * self._side
        features = table.features if len(rows) == len(table) else table.features.iloc[rows]
        select_points(layer, [])
        # Every property set for all points rebuilds napari's whole visual (~7 rebuilds a
        # click in the density view): points that `data` adds take the current size, rim
        # width and rim colour (set here while none is selected, which changes no point),
        # and only what still differs is set for all points.
        for key, value in self._style.items():
            setattr(layer, f"current_{key}", value)
        if self.dense:
            layer.current_border_color = "black"
        layer.data = data
        layer.features = features.reset_index(drop=True)
        self._colour_points(layer, rows)
        for key, value in self._style.items():
            if not np.all(getattr(layer, key) == value):
                setattr(layer, key, value)

    def _face(self, rows: np.ndarray) -> np.ndarray:
        """Colours of the cells ``rows``; faint outside a spotlit selection."""
        colours = self.colouring.colours(rows)
        if self.spotlit is not None:
            colours[~np.isin(rows, self.spotlit), 3] = _FAINT
        return colours

    def _colour_points(self, layer: Any, rows: np.ndarray) -> None:
        """Colour the points of the cells ``rows`` (:meth:`_face`); on a light canvas each
        with a rim of its colour, darker, and as faint as the point."""
        colours = self._face(rows)
        layer.face_color = colours
        if self.dense:  # black rims, as the density's colours are the points'
            if not np.all(layer.border_color == _BLACK):
                layer.border_color = "black"
        elif self._rim:
            rims = colours.copy()
            rims[:, :3] *= _RIM_SHADE
            layer.border_color = rims

    def _density(self) -> None:
        """Bin the cells and draw the density image (a worker may have done both)."""
        self.grid = self.table.grid(self.bins)
        self._base = self.table.density(self.bins, self.colouring.name)
        self._paint()

    def _paint(self) -> None:
        image = self._base
        if self.spotlit is not None:
            image = DensityGrid.spotlight(image, self.grid.render(self.colouring, self.spotlit))
        step = self._side / self.bins
        placement = {"translate": tuple(self._offset + step / 2), "scale": (step, step)}
        if DENSITY_LAYER in self.viewer.layers:
            density = self.viewer.layers[DENSITY_LAYER]
            density.data = image
            for key, value in placement.items():
                if not np.allclose(getattr(density, key), value):
                    setattr(density, key, value)
            return
        self._add_density(image, placement)

    def _add_density(self, image: np.ndarray, placement: dict) -> None:
        active = self.viewer.layers.selection.active
        density = self.viewer.add_image(
            image,
            name=DENSITY_LAYER,
            rgb=True,
            metadata={METADATA_KEY: {"kind": "embedding density"}},
            **placement,
        )
        # under the points, which stay clickable; keep the user's active layer
        layers = self.viewer.layers
        here, points = layers.index(density), layers.index(self.layer)
        if here > points:
            layers.move(here, points)
        if active is not None and active in layers:
            layers.selection.active = active

    def _drop_density(self) -> None:
        self.grid, self._base, self.spotlit = None, None, None
        if DENSITY_LAYER in self.viewer.layers:
            self.viewer.layers.remove(DENSITY_LAYER)
