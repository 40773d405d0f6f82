"""napari's theme for what the widget paints itself (napari's stylesheet does not reach it).

The loss plot draws with QPainter: its background, text and curves take their colours from
the viewer's theme (``napari.utils.theme.get_theme``) and follow it when the user switches
themes while the widget is open. The embedding's points get a dark rim on a light canvas.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from napari.utils.theme import get_theme

from napari_cellae._ui.lifetime import qt_deleted, weakly

__all__ = ["PlotColours", "canvas_is_light", "follow_theme", "plot_colours"]

# curves that read on the theme's background: light on dark, dark on light
_CURVES = {"dark": ("#4fc3f7", "#ffb74d"), "light": ("#0277bd", "#e65100")}


@dataclass(frozen=True)
class PlotColours:
    """Colours of a plot painted on the dock (``"#rrggbb"``).

    Attributes
    ----------
    background, text, axis : str
        The dock's background and text colours; the axis half-way between.
    first, second : str
        Two curves, both readable on ``background``.
    """

    background: str
    text: str
    axis: str
    first: str
    second: str


def _mix(a: str, b: str) -> str:
    """The colour half-way between two ``"#rrggbb"`` colours."""
    pairs = zip(bytes.fromhex(a[1:]), bytes.fromhex(b[1:]), strict=True)
    return "#" + "".join(f"{(x + y) // 2:02x}" for x, y in pairs)


def _spec(theme: str) -> Any:
    """napari's theme of that name; the dark theme's for a name napari does not know."""
    try:
        return get_theme(theme)
    except (ValueError, KeyError):
        return get_theme("dark")


def plot_colours(theme: str) -> PlotColours:
    """The plot colours of a napari theme (``"dark"``, ``"light"``, ``"system"``, a
    plugin's); a theme napari does not know gives the dark theme's."""
    spec = _spec(theme)
    background, text = spec.background.as_hex(format="long"), spec.text.as_hex(format="long")
    first, second = _CURVES["light" if spec.type == "light" else "dark"]
    return PlotColours(background, text, _mix(background, text), first, second)


def canvas_is_light(theme: str) -> bool:
    """Whether the theme's canvas (behind the layers) is light, like the light theme's white
    (not for a theme napari does not know: the dark theme's black)."""
    r, g, b = _spec(theme).canvas.as_rgb_tuple(alpha=False)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 127.5


def follow_theme(owner: Any, viewer: Any, apply: Callable[[str], None]) -> None:
    """Call ``apply`` with the viewer's theme now and whenever it changes, until the Qt
    object ``owner`` is deleted."""
    apply(viewer.theme)
    owner_ref = weakref.ref(owner)
    # a method weakly: held until the next theme change, it kept a closed dock's embedding
    # view (its run's cell table, its layers) in memory
    apply_ref = weakly(apply)

    def on_theme(event: Any) -> None:
        alive, call = owner_ref(), apply_ref()
        if alive is None or call is None or qt_deleted(alive):  # gone with its viewer or dock
            viewer.events.theme.disconnect(on_theme)
            return
        call(event.value)

    # Checked at the next theme change rather than on Qt's `destroyed`: a lambda connected
    # there can be called after the garbage collector cleared it, which crashed Python.
    viewer.events.theme.connect(on_theme)
