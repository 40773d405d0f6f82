"""An integer spin box that names a special value (Network input 0: "as cut").

magicgui's :class:`~magicgui.widgets.SpinBox` is drawn by superqt's ``QLargeIntSpinBox``
(integers beyond 32 bits), which has no ``specialValueText``: the Network input box
showed a bare 0 where 0 means the crops are not resampled. The form's sizes stay far
below 2**31, so a plain ``QSpinBox`` serves, and Qt shows the words for the least value
(typing 0 shows them too). The backend is built as magicgui builds its own spin boxes, on
its Qt backend's ranged-widget base; magicgui wraps any such backend through its public
``widget_type`` argument.
"""

from __future__ import annotations

from typing import Any

from magicgui.backends._qtpy.widgets import QBaseRangedWidget
from magicgui.widgets.bases import RangedWidget
from qtpy.QtWidgets import QSpinBox

__all__ = ["special_spin_box"]


class _QtSpinBox(QBaseRangedWidget):
    """magicgui's Qt backend of an integer spin box, on Qt's own ``QSpinBox``."""

    _qwidget: QSpinBox

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(QSpinBox, **kwargs)

    def _mgui_set_value(self, value: Any) -> None:
        super()._mgui_set_value(int(value))

    def _pre_set_hook(self, value: Any) -> int:
        return int(value)


def special_spin_box(special: str, **kwargs: Any) -> RangedWidget[int]:
    """A magicgui integer spin box that shows ``special`` at its minimum.

    Parameters
    ----------
    special : str
        The words shown for the minimum (e.g. "as cut" for 0); its value stays the number.
    **kwargs
        As for :class:`magicgui.widgets.SpinBox` (``value``, ``min``, ``max``, ``label``,
        ``tooltip``, ...); ``max`` must fit in 32 bits.

    Returns
    -------
    magicgui.widgets.bases.RangedWidget
        ``.value`` is an int; ``.native`` the ``QSpinBox``.
    """
    box: RangedWidget[int] = RangedWidget(widget_type=_QtSpinBox, **kwargs)
    box.native.setSpecialValueText(special)
    return box
