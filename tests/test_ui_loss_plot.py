"""The loss plot keeps both curves and paints them (also with NaN held-out losses)."""

from __future__ import annotations

import math

from napari_cellae._ui.loss_plot import LossPlot


def test_points_are_kept_and_painted(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(300, 150)
    empty = plot.grab().toImage()
    plot.add(1, 0.02, 0.03)
    plot.add(2, 0.01, math.nan)  # nothing held out: no held-out point, no crash
    plot.add(3, 0.005, 0.006)
    assert plot.epochs == [1, 2, 3] and plot.train == [0.02, 0.01, 0.005]
    drawn = plot.grab().toImage()
    assert drawn != empty  # the curves changed the picture
    plot.clear()
    assert plot.epochs == [] and plot.held == []
    assert plot.grab().toImage() == empty
