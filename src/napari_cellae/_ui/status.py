"""The dock widget's status line: what the run does now, or what it found."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel

__all__ = ["StatusLine"]


class StatusLine(QLabel):
    """A word-wrapped label of a fixed height: ``lines`` lines, or more for a text that
    needs them.

    Each epoch's message must not re-layout the window (that repaints the whole viewer), so
    the height stays put for the short messages; the end of a run's message (5 lines at the
    dock's width) or a long error grows it rather than being cut off.

    Parameters
    ----------
    text : str
        The first message.
    lines : int
        The least height, in lines of text.
    """

    def __init__(self, text: str = "", lines: int = 4) -> None:
        super().__init__(text)
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self._lines = lines
        self._fit()

    def setText(self, text: str) -> None:
        """Show ``text``, growing (or shrinking back) to the height it needs."""
        super().setText(text)
        self._fit()

    def resizeEvent(self, event: Any) -> None:
        """Fit the height to the new width."""
        super().resizeEvent(event)
        self._fit()

    def changeEvent(self, event: Any) -> None:
        """Fit again when the style changes the font (napari's theme, once docked)."""
        super().changeEvent(event)
        if event.type() == event.Type.FontChange:
            self._fit()

    def _fit(self) -> None:
        least = self._lines * self.fontMetrics().lineSpacing() + 4
        if self.minimumHeight() > least:
            # grown for a long message: a label's heightForWidth is at least its minimum
            # height, so without this the line never shrank back
            self.setMinimumHeight(0)
        height = max(least, self.heightForWidth(self.width()))
        if self.minimumHeight() != height or self.maximumHeight() != height:
            self.setFixedHeight(height)
