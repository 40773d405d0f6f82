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


def test_never_narrower_than_a_minimum_width_set_on_the_content(qtbot):
    # the dock widget sets its content's minimum width (330 px), above its layout's minimum;
    # a dock dragged to the scroll area's minimum cut the content's right edge off
    content = QWidget()
    QVBoxLayout(content).addWidget(QLabel("short"))
    content.setMinimumWidth(330)
    assert content.minimumSizeHint().width() < 330
    scroll = VerticalScroll(content)
    qtbot.addWidget(scroll)
    scroll.resize(scroll.minimumSizeHint().width(), 400)
    scroll.show()
    qtbot.waitExposed(scroll)
    assert scroll.viewport().width() >= 330
    assert content.width() == scroll.viewport().width()  # nothing cut off on the right
