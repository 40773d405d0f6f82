"""The loss plot keeps both curves and paints them (also with NaN held-out losses) in the
colours of the viewer's theme, also after the user switches themes."""

from __future__ import annotations

import math

import pytest
from napari.utils.theme import get_theme

from napari_cellae._ui.loss_plot import LossPlot
from napari_cellae._ui.theme import plot_colours


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


def _contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours."""

    def luminance(colour: str) -> float:
        c = [v / 255 for v in bytes.fromhex(colour[1:])]
        c = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_text_and_curves_read_on_the_themes_background(theme):
    colours = plot_colours(theme)
    assert colours.background == get_theme(theme).background.as_hex(format="long")
    assert _contrast(colours.text, colours.background) >= 7
    assert _contrast(colours.axis, colours.background) >= 2
    for curve in (colours.first, colours.second):
        assert _contrast(curve, colours.background) >= 2.5  # lines: thick and labelled


def test_plot_follows_the_viewer_theme(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.theme = "dark"
    plot = LossPlot(viewer)
    qtbot.addWidget(plot)
    plot.resize(300, 150)
    plot.add(1, 0.02, 0.03)
    plot.add(2, 0.01, 0.02)

    def corner_is(colour: str) -> bool:
        # within the rounding of a 16-bit display (Xvfb's, for one)
        shown = plot.grab().toImage().pixelColor(1, 1).name()
        pairs = zip(bytes.fromhex(shown[1:]), bytes.fromhex(colour[1:]), strict=True)
        return all(abs(a - b) <= 8 for a, b in pairs)

    assert corner_is(plot_colours("dark").background)
    viewer.theme = "light"  # switched while the plot is open: it repaints in light colours
    assert plot.colours == plot_colours("light")
    assert corner_is(get_theme("light").background.as_hex(format="long"))
    viewer.theme = "dark"
    assert corner_is(plot_colours("dark").background)


def test_deleted_plot_leaves_theme_changes_alone(make_napari_viewer, qtbot):
    from qtpy.QtCore import QEvent
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer()
    plot = LossPlot(viewer)
    plot.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    before = len(viewer.events.theme.callbacks)
    viewer.theme = "light"  # no "wrapped C/C++ object has been deleted"
    viewer.theme = "dark"
    # the plot's follower let go at the first change after (not on Qt's `destroyed`: a
    # lambda there could be called after the garbage collector had cleared it)
    assert len(viewer.events.theme.callbacks) == before - 1


def test_reveal_scrolls_the_plot_into_the_docks_view(qtbot):
    # a 720 px screen: the open form above the plot left it below the fold while training
    from qtpy.QtCore import QPoint
    from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

    from napari_cellae._ui.scroll import VerticalScroll

    content = QWidget()
    layout = QVBoxLayout(content)
    form = QWidget()
    form.setMinimumHeight(600)
    tabs = QTabWidget()
    plot = LossPlot()
    tabs.addTab(plot, "Loss")
    tabs.addTab(QWidget(), "Embedding and hits")
    tabs.setCurrentIndex(1)
    layout.addWidget(form)
    layout.addWidget(tabs)
    scroll = VerticalScroll(content)
    qtbot.addWidget(scroll)
    scroll.resize(320, 400)
    scroll.show()
    qtbot.waitExposed(scroll)
    qtbot.waitUntil(lambda: scroll.verticalScrollBar().maximum() > 0, timeout=2000)
    assert scroll.verticalScrollBar().value() == 0
    plot.reveal(tabs)
    assert tabs.currentWidget() is plot
    top = plot.mapTo(scroll.viewport(), QPoint(0, 0)).y()
    assert top >= 0 and top + plot.height() <= scroll.viewport().height()


def test_a_deleted_follower_keeps_nothing_alive_until_the_next_theme_change(
    make_napari_viewer, qtbot
):
    # A closed dock's embedding view (its run's cell table, its layers) stayed in memory
    # until the user next switched themes, which may be never.
    import gc
    import weakref

    from qtpy.QtCore import QEvent
    from qtpy.QtWidgets import QApplication, QWidget

    from napari_cellae._ui.theme import follow_theme

    class View:  # as the embedding view, which is no Qt object
        def set_theme(self, theme: str) -> None:
            self.theme = theme

    viewer = make_napari_viewer()
    owner, view = QWidget(), View()
    follow_theme(owner, viewer, view.set_theme)
    assert view.theme == viewer.theme
    gone = weakref.ref(view)
    owner.deleteLater()  # the dock's panel, deleted with its widget
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    del view
    gc.collect()
    assert gone() is None
