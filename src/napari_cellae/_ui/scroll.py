"""A scroll area for the dock widget: it scrolls up and down, never sideways."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QEvent, QObject, QSize, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QWidget

__all__ = ["VerticalScroll"]


class VerticalScroll(QScrollArea):
    """Holds ``content`` as wide as the dock, and as tall as the dock or its minimum height.

    On a short screen the dock scrolls instead of growing the window past the screen. Qt's
    own resizing (``widgetResizable``) gives word-wrapped content its preferred height,
    which shows a scroll bar even when the content would fit.

    Parameters
    ----------
    content : QWidget
    """

    def __init__(self, content: QWidget) -> None:
        super().__init__()
        self.setWidgetResizable(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(content)
        content.installEventFilter(self)

    def minimumSizeHint(self) -> QSize:
        """The content's minimum width plus the scroll bar's, so nothing is cut off."""
        hint = super().minimumSizeHint()
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(_least(self.widget()).width() + bar, hint.height())

    def resizeEvent(self, event: Any) -> None:
        """Fit the content to the new size."""
        super().resizeEvent(event)
        self._fit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Fit again when the content's layout changes (a table appears, a text grows)."""
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self._fit()
        return super().eventFilter(watched, event)

    def _fit(self) -> None:
        content, view = self.widget(), self.viewport().size()
        height = max(view.height(), _least(content).height())
        if content.size() != QSize(view.width(), height):
            content.resize(view.width(), height)


def _least(content: QWidget) -> QSize:
    """The smallest size Qt lets ``content`` take: its layout's minimum, or a minimum size
    set on it if larger (the dock content's width: without it, a dock dragged to its
    narrowest cut the content's right edge off)."""
    return content.minimumSizeHint().expandedTo(content.minimumSize())
