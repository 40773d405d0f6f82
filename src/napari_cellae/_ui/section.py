"""A collapsible section of the dock widget's form: a title bar that folds its content away.

On a laptop screen (900 px tall) the form's two boxes and the results do not fit one above
the other: the form folds up once a run's results are shown, each section keeping one line
that says what was used (``Cells: demo_screen, primary__primary, H2B, 40 px``), and a
click on it opens it again.
"""

from __future__ import annotations

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QFrame, QSizePolicy, QToolButton, QVBoxLayout, QWidget

__all__ = ["Section"]


class Section(QFrame):
    """A titled box whose content a click on the title folds away or shows again.

    Parameters
    ----------
    title : str
        Shown in the title bar (with the summary while folded).
    content : QWidget
        What the section holds.
    """

    #: emitted with the new state when the section is opened (True) or folded (False)
    toggled = Signal(bool)

    def __init__(self, title: str, content: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self._summary = ""
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.header = QToolButton()
        self.header.setCheckable(True)
        self.header.setChecked(True)
        self.header.setAutoRaise(True)
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        # as wide as the dock, however long the summary: the dock must not widen
        self.header.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.header.setStyleSheet("QToolButton { border: none; font-weight: bold; }")
        self.content = content
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 4)
        layout.setSpacing(2)
        layout.addWidget(self.header)
        layout.addWidget(content)
        self.header.toggled.connect(self._on_toggled)
        self._show_state()

    @property
    def expanded(self) -> bool:
        """Whether the content is shown."""
        return self.header.isChecked()

    def set_expanded(self, expanded: bool) -> None:
        """Open (True) or fold (False) the section."""
        self.header.setChecked(expanded)

    def set_summary(self, summary: str) -> None:
        """What the title bar says after the title while the section is folded."""
        self._summary = summary
        self._show_state()

    def _on_toggled(self, expanded: bool) -> None:
        self._show_state()
        self.toggled.emit(expanded)

    def _show_state(self) -> None:
        expanded = self.expanded
        self.content.setVisible(expanded)
        self.header.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        text = self.title if expanded or not self._summary else f"{self.title}: {self._summary}"
        self.header.setText(text)
        what = f"the {self.title.lower()} settings"
        shown = f" ({self._summary})" if self._summary else ""
        self.header.setToolTip(f"Hide {what}" if expanded else f"Show {what}{shown}")
