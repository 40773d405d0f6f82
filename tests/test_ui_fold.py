"""The dock on a laptop screen: the form folds away so that the hit table is in view."""

from __future__ import annotations

from qtpy.QtCore import QPoint
from qtpy.QtWidgets import QLabel

from napari_cellae._ui.cell_table import cell_table
from napari_cellae._ui.findings import find
from napari_cellae._ui.runner import Outcome
from napari_cellae._ui.scroll import VerticalScroll
from napari_cellae._ui.section import Section
from napari_cellae._widget import DeepLearningWidget
from napari_cellae.io.centres import position_labels
from ui_helpers import fake_run


def test_section_folds_and_says_what_it_holds(qtbot):
    content = QLabel("the settings")
    section = Section("Training", content)
    qtbot.addWidget(section)
    section.set_summary("3 epochs, AdaGrad")
    assert section.expanded and section.header.text() == "Training"
    with qtbot.waitSignal(section.toggled) as toggled:
        section.header.click()  # the user folds it
    assert toggled.args == [False] and not section.expanded
    assert content.isHidden()
    assert section.header.text() == "Training: 3 epochs, AdaGrad"
    assert "3 epochs" in section.header.toolTip()
    section.set_expanded(True)
    assert not content.isHidden() and section.header.text() == "Training"


def test_the_hit_table_is_in_view_at_1440x900(make_napari_viewer, qtbot):
    # At 1440 x 900 the form above the results left the hit table one row, below the
    # fold: a user had to notice that the dock scrolls to see the hits.
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1440, 900)
    widget = DeepLearningWidget(viewer)  # opens the demo screen and its mapping
    viewer.window.add_dock_widget(widget, area="right")
    widget.panel.map.setCurrentIndex(widget.panel.map.findData("pca"))
    result = fake_run(widget.form.file_path(), widget.form.mapping_path())
    findings = find(result)
    table = cell_table(result, position_labels(result.crops.positions), findings)
    widget._on_returned(Outcome(result, table, findings))
    assert not any(section.expanded for section in widget.form.sections)
    assert widget.form.sections[0].header.text().startswith("Cells: demo_screen, ")
    hits = widget.panel.hits.table
    rows = hits.model().rowCount()
    assert rows == 8  # the demo's positions
    scroll = widget.findChild(VerticalScroll)

    def in_view() -> bool:
        # the whole table lies in the dock's visible part, tall enough for every row
        top = hits.mapTo(scroll.viewport(), QPoint(0, 0)).y()
        bottom = top + hits.height()
        tall = hits.viewport().height() >= rows * hits.rowHeight(0)
        return 0 <= top and bottom <= scroll.viewport().height() and tall

    qtbot.waitUntil(in_view, timeout=3000)  # once laid out
    widget.form.sections[1].set_expanded(True)  # what the user opens stays open
    assert widget.form.sections[1].expanded and not widget.form.sections[0].expanded
