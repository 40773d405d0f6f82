"""The loss plot of the dock widget: training and held-out loss per epoch."""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QScrollArea, QSizePolicy, QTabWidget, QWidget

from napari_cellae._ui.theme import follow_theme, plot_colours

__all__ = ["LossPlot"]


class LossPlot(QWidget):
    """Training and held-out loss per epoch, drawn with QPainter on a log scale.

    A few hundred points at most: painting takes about a millisecond, so the plot can be
    redrawn after every epoch without stalling the viewer (matplotlib took ~0.3 s).

    Parameters
    ----------
    viewer : napari.Viewer, optional
        Whose theme the plot's colours follow (napari's dark theme without one).
    """

    def __init__(self, viewer: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.epochs: list[int] = []
        self.train: list[float] = []
        self.held: list[float] = []
        self.colours = plot_colours("dark")
        if viewer is not None:
            follow_theme(self, viewer, self.set_theme)

    def set_theme(self, theme: str) -> None:
        """Paint in the colours of a napari theme (``"dark"``, ``"light"``, ...)."""
        self.colours = plot_colours(theme)
        self.update()

    def clear(self) -> None:
        """Forget all points."""
        self.epochs.clear()
        self.train.clear()
        self.held.clear()
        self.update()

    def reveal(self, tabs: QTabWidget) -> None:
        """Bring the plot into view: its tab in ``tabs``, scrolled into the dock's view (on
        a 720 px screen it was below the fold while training, the form above it open)."""
        tabs.setCurrentWidget(self)
        area = self.parentWidget()
        while area is not None and not isinstance(area, QScrollArea):
            area = area.parentWidget()
        if area is not None:
            area.ensureWidgetVisible(self, 0, 0)

    def add(self, epoch: int, train_loss: float, held_out_loss: float) -> None:
        """Append one epoch and schedule a repaint."""
        self.epochs.append(epoch)
        self.train.append(train_loss)
        self.held.append(held_out_loss)
        self.update()

    def paintEvent(self, event: Any) -> None:
        """Draw axes, both curves and a legend."""
        from qtpy.QtCore import QPointF, QRectF
        from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF

        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        colours = self.colours
        painter.fillRect(0, 0, w, h, QColor(colours.background))
        font = painter.font()
        font.setPointSizeF(8)
        painter.setFont(font)
        text, axis = QColor(colours.text), QColor(colours.axis)
        left, right, top, bottom = 58, 10, 22, 26
        plot = QRectF(left, top, max(10, w - left - right), max(10, h - top - bottom))
        painter.setPen(QPen(axis))
        painter.drawRect(plot)
        painter.setPen(QPen(text))
        painter.drawText(
            QRectF(left, h - bottom + 4, plot.width(), 16), Qt.AlignmentFlag.AlignHCenter, "epoch"
        )
        values = [v for v in self.train + self.held if np.isfinite(v) and v > 0]
        if not self.epochs or not values:
            painter.drawText(plot, Qt.AlignmentFlag.AlignCenter, "loss per epoch appears here")
            painter.end()
            return
        lo, hi = np.log10(min(values)), np.log10(max(values))
        if hi - lo < 0.1:
            lo, hi = lo - 0.05, hi + 0.05
        n = max(self.epochs[-1], 2)

        def point(epoch: float, value: float) -> QPointF:
            x = plot.left() + (epoch - 1) / (n - 1) * plot.width()
            y = plot.bottom() - (np.log10(value) - lo) / (hi - lo) * plot.height()
            return QPointF(x, y)

        # y labels at the ends (log scale), x labels first/last epoch
        painter.drawText(
            QRectF(0, plot.top() - 7, left - 4, 14), Qt.AlignmentFlag.AlignRight, f"{10**hi:.1e}"
        )
        painter.drawText(
            QRectF(0, plot.bottom() - 7, left - 4, 14), Qt.AlignmentFlag.AlignRight, f"{10**lo:.1e}"
        )
        painter.drawText(
            QRectF(left - 20, plot.bottom() + 2, 40, 14), Qt.AlignmentFlag.AlignHCenter, "1"
        )
        painter.drawText(
            QRectF(plot.right() - 20, plot.bottom() + 2, 40, 14),
            Qt.AlignmentFlag.AlignHCenter,
            str(n),
        )
        for series, colour, label, dx in (
            (self.train, colours.first, "training cells", 0),
            (self.held, colours.second, "held-out cells", 110),
        ):
            pen = QPen(QColor(colour))
            pen.setWidthF(1.8)
            painter.setPen(pen)
            pts = [point(e, v) for e, v in zip(self.epochs, series, strict=True) if v > 0]
            if len(pts) > 1:
                painter.drawPolyline(QPolygonF(pts))
            for p in pts[-1:] if len(pts) > 1 else pts:
                painter.drawEllipse(p, 2.5, 2.5)
            painter.drawLine(int(left + dx), 11, int(left + dx + 16), 11)
            painter.setPen(QPen(text))
            painter.drawText(QRectF(left + dx + 20, 3, 100, 16), Qt.AlignmentFlag.AlignLeft, label)
        painter.end()
