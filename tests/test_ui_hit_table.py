"""The hit table: numeric sorting, row selection by key, the note without controls."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from qtpy.QtCore import Qt

from napari_cellae._ui.hit_table import COLUMN_TIPS, WAITING, HitTable


def _hits() -> dict[str, pd.DataFrame]:
    by_position = pd.DataFrame(
        {
            "rank": [1, 2, 3],
            "plate": ["p1", "p1", "p1"],
            "position": ["B02_1", "A01_1", "C03_1"],
            "well": ["B02", "A01", "C03"],
            "condition": ["PLK1", "neg", "KIF11"],
            "n_cells": [20, 100, 9],
            "novel_fraction": [0.9, 0.05, float("nan")],
            "is_control": [False, True, False],
            "q_value": [0.01, 1.0, float("nan")],
        }
    )
    by_condition = by_position.drop(columns=["plate", "well"]).iloc[:2]
    return {"position": by_position, "condition": by_condition}


def test_rows_sort_by_value_and_select_by_key(qtbot):
    chosen: list[tuple[str, list[str]]] = []
    hits = HitTable(lambda by, keys: chosen.append((by, keys)))
    qtbot.addWidget(hits)
    assert hits.note.isVisibleTo(hits) and not hits.table.isVisibleTo(hits)
    assert hits.note.text() == WAITING  # before a run
    hits.show_hits(_hits(), None)
    assert not hits.note.isVisibleTo(hits)
    table = hits.table
    assert table.isVisibleTo(hits) and table.rowCount() == 3
    headers = [table.horizontalHeaderItem(j).text() for j in range(table.columnCount())]
    assert "plate" not in headers  # one plate: no column for it
    assert headers[:3] == ["rank", "position", "condition"]  # the wells start the positions
    # the share of novel cells and the q-value next, where a narrow dock still shows them
    # short headers: 'novel_fraction' took a third of the dock, its numbers past the edge
    assert headers[3:] == ["% novel", "q", "cells", "control"]
    assert table.horizontalHeaderItem(0).toolTip() == COLUMN_TIPS["rank"]
    tip = table.horizontalHeaderItem(3).toolTip()
    assert tip.startswith(COLUMN_TIPS["novel_fraction"]) and "column novel_fraction" in tip
    assert hits.keys() == ["p1/B02_1", "p1/A01_1", "p1/C03_1"]  # by rank
    cells = headers.index("cells")
    table.sortItems(cells, Qt.SortOrder.DescendingOrder)  # 100 > 20 > 9: numbers, not text
    assert [table.item(r, cells).text() for r in range(3)] == ["100", "20", "9"]
    fraction = headers.index("% novel")
    table.sortItems(fraction, Qt.SortOrder.AscendingOrder)
    assert [table.item(r, fraction).text() for r in range(3)] == ["5", "90", ""]  # percent
    control = headers.index("control")
    assert table.item(0, control).text() == "yes"

    table.selectRow(1)  # after sorting: B02
    assert chosen[-1] == ("position", ["p1/B02_1"])
    hits.select_rows(["p1/A01_1", "p1/C03_1"])
    assert chosen[-1] == ("position", ["p1/A01_1", "p1/C03_1"])

    hits.by.setCurrentText("condition")
    assert hits.unit == "condition" and hits.keys() == ["PLK1", "neg"]
    assert table.horizontalHeaderItem(2).text() == "condition"
    table.selectRow(1)
    assert chosen[-1] == ("condition", ["neg"])


def test_numbers_align_right_through_no_deprecated_qt_call(qtbot):
    # QTableWidgetItem.setTextAlignment(int) is deprecated since Qt 6.4: PySide6 warned on
    # every number cell of every hit list. Numbers still align right, text left.
    hits = HitTable(lambda by, keys: None)
    qtbot.addWidget(hits)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        hits.show_hits(_hits(), None)
    table = hits.table
    headers = [table.horizontalHeaderItem(j).text() for j in range(table.columnCount())]
    right = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)
    assert int(table.item(0, headers.index("cells")).textAlignment()) == right
    assert int(table.item(0, headers.index("condition")).textAlignment()) != right


def test_a_note_instead_of_an_empty_table(qtbot):
    hits = HitTable(lambda by, keys: None)
    qtbot.addWidget(hits)
    hits.show_hits({}, "No hit list: novelty needs negative-control cells")
    assert hits.note.isVisibleTo(hits) and "negative-control" in hits.note.text()
    assert not hits.table.isVisibleTo(hits) and not hits.by.isEnabled()
    assert hits.table.rowCount() == 0


def test_every_hit_list_column_has_a_tip():
    from napari_cellae.core.hit_statistics import hit_table

    novel = np.array([True, False, True, True, False, False])
    groups = np.array([0, 0, 1, 1, 2, 2])
    table = hit_table(novel, groups, groups == 0, scores=np.arange(6.0))
    columns = set(table.columns) - {"group"}  # shown as position or condition
    assert {"p_value", "q_value"} <= columns
    assert columns <= set(COLUMN_TIPS), columns - set(COLUMN_TIPS)


def test_tab_leaves_the_table(qtbot):
    """Tab moves on to the next control (Save features below the table), not from cell to
    cell: with 8 columns of many rows a keyboard user could never leave the table."""
    from qtpy.QtWidgets import QApplication, QPushButton, QVBoxLayout, QWidget

    window = QWidget()
    qtbot.addWidget(window)
    hits = HitTable(lambda by, keys: None)
    after = QPushButton("Save features…")
    layout = QVBoxLayout(window)
    layout.addWidget(hits)
    layout.addWidget(after)
    window.show()
    QApplication.setActiveWindow(window)
    qtbot.waitExposed(window)
    hits.show_hits(_hits(), None)
    hits.table.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(hits.table.hasFocus)
    qtbot.keyClick(hits.table, Qt.Key.Key_Tab)
    assert after.hasFocus()
    hits.table.setFocus()
    hits.table.setCurrentCell(0, 0)
    qtbot.keyClick(hits.table, Qt.Key.Key_Down)  # the arrows still move between rows
    assert hits.table.currentRow() == 1
