"""The dock's scroll area: content as tall as the dock, or scrolled when it does not fit."""

from __future__ import annotations

from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from napari_cellae._ui.scroll import VerticalScroll


def test_content_fills_the_dock_or_scrolls(qtbot):
    content = QWidget()
    layout = QVBoxLayout(content)
    label = QLabel("a long text that wraps " * 10)
    label.setWordWrap(True)
    layout.addWidget(label)
    box = QWidget()
    box.setMinimumSize(250, 400)
    layout.addWidget(box)
    scroll = VerticalScroll(content)
    qtbot.addWidget(scroll)
    assert scroll.minimumSizeHint().width() >= 250  # never narrower than the content
    scroll.resize(320, 900)
    scroll.show()
    qtbot.waitExposed(scroll)
    qtbot.waitUntil(lambda: scroll.verticalScrollBar().maximum() == 0, timeout=2000)
    assert content.height() == scroll.viewport().height()  # fits: nothing to scroll
    assert content.width() == scroll.viewport().width()
    scroll.resize(320, 200)  # a short screen: the content keeps its minimum height
    qtbot.waitUntil(lambda: scroll.verticalScrollBar().maximum() > 0, timeout=2000)
    assert content.height() >= content.minimumSizeHint().height() > 200
