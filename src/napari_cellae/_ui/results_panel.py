"""The dock widget's results tab: colour and map of the embedding, legend, the novelty
boxes and the hit table."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from napari_cellae._ui.hit_table import HitTable
from napari_cellae._ui.novelty_controls import NoveltyControls
from napari_cellae.core.features import DEFAULT_EMBEDDING
from napari_cellae.core.novelty import NOVEL_PERCENTILE

__all__ = ["MAPS", "ResultsPanel", "shrinkable"]

#: 2-D maps offered: (label, method of napari_cellae.core.features.embed_2d)
MAPS = (("UMAP", "umap"), ("PCA", "pca"))
_COLOUR_TIP = (
    "condition: the mapping's treatment; novelty: how unlike the negative controls a cell "
    "is; phenotype group: groups of novel cells with a similar look; class: the "
    "classifier's prediction stored in the file"
)
_LEGEND_TIP = (
    "The colours of the points in the embedding. Novelty: how unlike the negative controls "
    "a cell's features are; a cell scoring above the threshold ('novel above') is novel: it "
    f"scores higher than {NOVEL_PERCENTILE:g} % of the control cells do. The hit table "
    "counts these cells."
)
_MAP_TIP = (
    "UMAP keeps similar cells together (computed in the background after the features; "
    "PCA is shown meanwhile). PCA is the fast, linear map."
)


def shrinkable(combo: QComboBox, letters: int = 6) -> None:
    """Let a combo box be narrower than its longest item (the dock is narrow)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(letters)


class ResultsPanel(QWidget):
    """Colour-by and map choices, the colour legend, the novelty boxes
    (:class:`~napari_cellae._ui.novelty_controls.NoveltyControls`, ``novelty``) and the
    hit table.

    Parameters
    ----------
    on_colour : callable
        Called with the chosen colour mode.
    on_map : callable
        Called with the chosen map method (``"umap"`` or ``"pca"``).
    on_hits : callable
        Called with the hit unit and the keys of the selected hit-table rows.
    """

    def __init__(
        self,
        on_colour: Callable[[str], None],
        on_map: Callable[[str], None],
        on_hits: Callable[[str, list[str]], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.colour_by = QComboBox()
        self.colour_by.addItem("condition")
        self.colour_by.setToolTip(_COLOUR_TIP)
        self.map = QComboBox()
        for label, method in MAPS:
            self.map.addItem(label, method)
        self.map.setCurrentIndex([m for _label, m in MAPS].index(DEFAULT_EMBEDDING))
        self.map.setToolTip(_MAP_TIP)
        for combo in (self.colour_by, self.map):
            shrinkable(combo)
        self.map_state = QLabel("")
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setToolTip(_LEGEND_TIP)
        self.novelty = NoveltyControls()
        self.hits = HitTable(on_hits)

        # two rows: napari's style keeps a combo box at least 120 px wide
        map_row = QHBoxLayout()
        map_row.setContentsMargins(0, 0, 0, 0)
        map_row.addWidget(self.map, 1)
        map_row.addWidget(self.map_state, 1)
        rows = QFormLayout()
        rows.setContentsMargins(0, 0, 0, 0)
        rows.addRow("Colour by", self.colour_by)
        rows.addRow("Map", map_row)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(rows)
        layout.addWidget(self.legend)
        layout.addWidget(self.novelty)
        layout.addWidget(self.hits, 1)
        self._quiet = False
        self.colour_by.currentTextChanged.connect(
            lambda text: None if self._quiet or not text else on_colour(text)
        )
        self.map.currentIndexChanged.connect(
            lambda _index: None if self._quiet else on_map(self.method)
        )

    def hasHeightForWidth(self) -> bool:
        """No. (Its word-wrapped legend says so, and the dock's layout then treats the
        panel's height for its width as a minimum, squeezing the form above it.)"""
        return False

    @property
    def colour(self) -> str:
        """The chosen colour mode."""
        return self.colour_by.currentText()

    @property
    def method(self) -> str:
        """The chosen map method."""
        return str(self.map.currentData())

    def offer_colours(self, names: list[str]) -> str:
        """Offer the colour modes a run has data for; keep the choice if it is one of them.

        Returns
        -------
        str
            The colour mode now chosen.
        """
        chosen = self.colour if self.colour in names else names[0]
        self._quiet = True
        try:
            self.colour_by.clear()
            self.colour_by.addItems(names)
            self.colour_by.setCurrentText(chosen)
        finally:
            self._quiet = False
        return chosen

    def set_method(self, method: str) -> None:
        """Show ``method`` as the chosen map without calling back."""
        self._quiet = True
        try:
            self.map.setCurrentIndex([m for _label, m in MAPS].index(method))
        finally:
            self._quiet = False
