"""The hit table: positions or conditions ranked by their share of novel cells.

Shows a :func:`~napari_cellae.pipeline.hits.hit_list` (the table ``cellae hits`` writes)
in a sortable Qt table. Selecting rows calls back with their keys, so that the widget can
select their cells; without control cells the table is replaced by a note saying why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_cellae._ui.findings import row_key
from napari_cellae.core.novelty import NOVEL_PERCENTILE
from napari_cellae.pipeline.hits import HIT_BY

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMN_TIPS", "WAITING", "HitTable"]

#: shown until a run has hits
WAITING = (
    "After training (or Load model), positions and conditions ranked by their share of "
    "novel cells appear here."
)

_SORT = Qt.ItemDataRole.UserRole
#: shown first, beside the names: the dock is narrow, and in the file's order the share of
#: novel cells and the q-value lay past its edge (only rank to n_cells showed at 1280x720)
_FIRST = ("rank", "plate", "position", "well", "condition", "novel_fraction", "q_value")
#: short headers where the table's own are long: "novel_fraction" took a third of the dock
#: and its right-aligned numbers lay past the edge (the tooltips give the table's names)
_HEADERS = {
    "n_cells": "cells",
    "n_novel": "novel cells",
    "novel_fraction": "% novel",
    "robust_z": "robust z",
    "p_value": "p",
    "q_value": "q",
    "median_novelty": "median novelty",
    "is_control": "control",
}
_KEY = Qt.ItemDataRole.UserRole + 1

#: header tooltips, in the words of the README's hit-list section
COLUMN_TIPS = {
    "rank": "1 = strongest hit (largest share of novel cells)",
    "plate": "Plate",
    "position": "Well and site (by condition: all positions of the condition)",
    "well": "Well",
    "condition": "Condition from the position mapping",
    "n_cells": "Cells with signal (a crop with a channel of one value, as images never "
    "acquired read, is left out of every count); a time-lapse's cells count once per frame",
    "n_novel": "Novel cells: less like the negative controls than "
    f"{NOVEL_PERCENTILE:g} % of control cells",
    "novel_fraction": "Share of novel cells, in percent",
    "enrichment": "Novel fraction over the control cells' novel fraction",
    "robust_z": "Novel fraction against the control wells (median and MAD)",
    "p_value": "How likely this many novel cells would be in cells like the control "
    "wells' (one-sided; weighs the number of cells, those of one frame in a time-lapse)",
    "q_value": "p-value adjusted for the number of rows tested (Benjamini-Hochberg): the "
    "share of false hits expected at or below it",
    "median_novelty": "Median novelty score of the cells",
    "is_control": "A negative control",
}


class _Item(QTableWidgetItem):
    """A cell that sorts by its value (numbers as numbers; NaN last), not its text."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(_SORT), other.data(_SORT)
        if isinstance(mine, float) and isinstance(theirs, float):
            if math.isnan(mine) or math.isnan(theirs):
                return not math.isnan(mine) and math.isnan(theirs)
            return mine < theirs
        return str(mine) < str(theirs)


def _item(value: Any, percent: bool = False) -> _Item:
    """A cell showing ``value`` (a share as a percentage with ``percent``), sorting by it."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        text, key = ("yes" if value else ""), float(bool(value))
    elif isinstance(value, int | float) or hasattr(value, "dtype"):
        number = float(value)
        if percent:
            text = "" if math.isnan(number) else f"{100 * number:.0f}"
        elif number.is_integer() and abs(number) < 1e15:
            text = str(int(number))
        else:
            text = "" if math.isnan(number) else f"{number:.3g}"
        key = number
    else:
        text = key = str(value)
    item = _Item(text)
    item.setData(_SORT, key)
    item.setFlags(Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled)
    if isinstance(key, float):
        # the flags, not int(): setTextAlignment(int) is deprecated since Qt 6.4 (PySide6 warns)
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class HitTable(QWidget):
    """A "Hits by" choice, a note, and a sortable table of one hit list.

    Parameters
    ----------
    on_select : callable
        Called with the unit (``"position"`` or ``"condition"``) and the keys of the
        selected rows (:func:`napari_cellae._ui.findings.row_key`) when the selection
        changes.
    """

    def __init__(self, on_select: Callable[[str, list[str]], None]) -> None:
        super().__init__()
        self.on_select = on_select
        self.hits: dict[str, pd.DataFrame] = {}
        self.by = QComboBox()
        self.by.addItems(list(HIT_BY))
        self.by.setToolTip("One row per position (well and site), or per condition")
        self.by.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.by.setMinimumContentsLength(6)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.table = QTableWidget(0, 0)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.setMinimumHeight(5 * (self.fontMetrics().height() + 6))
        self.table.setSortingEnabled(True)
        # Tab leaves the table (to Save features below); the arrow keys move between rows
        self.table.setTabKeyNavigation(False)
        self.table.setToolTip(
            "Click a row to select its cells in the embedding and the image and to see its "
            "most novel cells in the gallery; click a header to sort."
        )

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel("Hits by"))
        top.addWidget(self.by, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.note)
        layout.addWidget(self.table, 1)
        self.by.currentTextChanged.connect(lambda _text: self._fill())
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.show_hits({}, WAITING)

    @property
    def unit(self) -> str:
        """The unit of the rows shown: ``"position"`` or ``"condition"``."""
        return self.by.currentText()

    def show_hits(self, hits: dict[str, pd.DataFrame], note: str | None) -> None:
        """Show new hit lists (by position and by condition); a note instead when empty."""
        self.hits = hits
        self.note.setText(note or "")
        self.note.setVisible(bool(note))
        self.table.setVisible(bool(hits))
        self.by.setEnabled(bool(hits))
        self._fill()

    def select_rows(self, keys: list[str]) -> None:
        """Select the rows with ``keys`` (as a click would)."""
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(_KEY) in keys:
                self.table.selectRow(row)
        self.table.setSelectionMode(mode)

    def keys(self) -> list[str]:
        """Keys of the rows in their shown order."""
        return [self.table.item(r, 0).data(_KEY) for r in range(self.table.rowCount())]

    def _fill(self) -> None:
        table = self.table
        table.blockSignals(True)
        try:
            table.setSortingEnabled(False)
            table.clearContents()
            frame = self.hits.get(self.unit)
            if frame is None:
                table.setRowCount(0)
                return
            shown = [c for c in frame.columns if not self._redundant(frame, c)]
            columns = [c for c in _FIRST if c in shown] + [c for c in shown if c not in _FIRST]
            table.setColumnCount(len(columns))
            table.setHorizontalHeaderLabels([_HEADERS.get(name, name) for name in columns])
            for j, name in enumerate(columns):
                tip = COLUMN_TIPS.get(name, "")
                if name in _HEADERS:  # the name to look for in the table cellae hits writes
                    tip = f"{tip} (column {name} of cellae hits' table)"
                table.horizontalHeaderItem(j).setToolTip(tip)
            table.setRowCount(len(frame))
            for i, row in enumerate(frame.to_dict("records")):
                for j, name in enumerate(columns):
                    item = _item(row[name], percent=name == "novel_fraction")
                    if j == 0:
                        item.setData(_KEY, row_key(row, self.unit))
                    table.setItem(i, j, item)
            table.setSortingEnabled(True)
            table.sortItems(0, Qt.SortOrder.AscendingOrder)
            table.resizeColumnsToContents()
        finally:
            table.blockSignals(False)

    @staticmethod
    def _redundant(frame: pd.DataFrame, column: str) -> bool:
        """A column that says nothing the others do not: one plate, or wells that every
        position label starts with (space in the dock is short)."""
        if column == "plate":
            return frame["plate"].nunique() < 2
        if column == "well" and "position" in frame:
            labels = frame["position"].astype(str)
            return bool(all(p.startswith(w) for p, w in zip(labels, frame["well"], strict=True)))
        return False

    def _on_selection(self) -> None:
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        self.on_select(self.unit, [self.table.item(r, 0).data(_KEY) for r in rows])
