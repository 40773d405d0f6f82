"""The form's box for each training parameter, and the spin box that names a special value.

Labels, choices, defaults and tooltips come from
:func:`napari_cellae.core.config.field_info`, the same texts ``cellae train --help`` shows;
the spin-box ranges are TrainConfig's limits too.

magicgui's :class:`~magicgui.widgets.SpinBox` is drawn by superqt's ``QLargeIntSpinBox``
(integers beyond 32 bits), which has no ``specialValueText``: the Network input box
showed a bare 0 where 0 means the crops are not resampled. The form's sizes stay far
below 2**31, so a plain ``QSpinBox`` serves, and Qt shows the words for the least value
(typing 0 shows them too). The backend is built as magicgui builds its own spin boxes, on
its Qt backend's ranged-widget base; magicgui wraps any such backend through its public
``widget_type`` argument. That base is magicgui's private class: a magicgui without it gets
its plain spin box (a bare 0), not a form that fails to open.
"""

from __future__ import annotations

import re
from typing import Any

from magicgui.widgets import ComboBox, FloatSpinBox, LineEdit, SpinBox
from magicgui.widgets.bases import RangedWidget
from qtpy.QtWidgets import QSpinBox

from napari_cellae.core.config import field_info
from napari_cellae.core.config_checks import MAX_SAMPLES

__all__ = ["RANGES", "parameter_widget", "special_spin_box"]

#: spin-box limits: TrainConfig's (config_checks), so the form takes every value
#: ``cellae train`` takes (the boxes stopped at 256 px, 1000 epochs, 10 cells); where the
#: config's bound is open, the last value the box's decimals hold before it. ``decimals``:
#: Qt's default two showed the learning rate's least as 0.00 and made 0.005 0.01, and
#: stopped the momentum at 0.99 where cellae train takes 0.995 or 0.999.
RANGES: dict[str, dict[str, Any]] = {
    "crop_size": {"min": 4, "max": 1024},
    "input_size": {"min": 0, "max": 1024},
    "learning_rate": {"min": 0.0001, "max": 1.0, "step": 0.01, "decimals": 4},
    "momentum": {"min": 0.0, "max": 0.999, "step": 0.05, "decimals": 3},
    "batch_size": {"min": 1, "max": 100_000},
    "corruption": {"min": 0.0, "max": 0.999, "step": 0.05, "decimals": 3},
    "epochs": {"min": 1, "max": 100_000},
    "samples": {"min": 1, "max": MAX_SAMPLES, "step": 1000},
}
#: words a box shows for its least value (its help says what 0 means)
_SPECIAL = {"input_size": "as cut"}


def parameter_widget(name: str) -> Any:
    """A magicgui widget for one TrainConfig field: label, default, help (values as shown).

    Parameters
    ----------
    name : str
        The :class:`~napari_cellae.core.config.TrainConfig` field.

    Returns
    -------
    magicgui.widgets.Widget
        A combo box for a field with choices, a spin box for a number, else a line edit.
    """
    info, shown = field_info(name), dict(field_info(name)["choices"])  # value -> box label
    tip = re.sub(r"'(\w+)'", lambda m: f"'{shown.get(m[1], m[1])}'", info["help"])
    common = {"label": info["label"], "value": info["default"], "tooltip": tip}
    if info["choices"]:
        return ComboBox(choices=[(label, value) for value, label in info["choices"]], **common)
    if name in _SPECIAL:
        return special_spin_box(_SPECIAL[name], **RANGES[name], **common)
    if info["type"] is int:
        return SpinBox(**RANGES[name], **common)
    if info["type"] is float:
        limits = dict(RANGES[name])
        decimals = limits.pop("decimals", None)
        box = FloatSpinBox(**limits, **common)
        if decimals is not None:  # Qt rounded the limits and value to 2 decimals: again
            box.native.setDecimals(decimals)
            box.min, box.max, box.value = limits["min"], limits["max"], common["value"]
        return box
    return LineEdit(**common)


def _qt_spin_box() -> type | None:
    """magicgui's Qt backend of an integer spin box on Qt's own ``QSpinBox`` (None where
    magicgui's private ranged-widget base is not where it was)."""
    try:
        from magicgui.backends._qtpy.widgets import QBaseRangedWidget
    except ImportError:
        return None

    class QtSpinBox(QBaseRangedWidget):
        _qwidget: QSpinBox

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(QSpinBox, **kwargs)

        def _mgui_set_value(self, value: Any) -> None:
            super()._mgui_set_value(int(value))

        def _pre_set_hook(self, value: Any) -> int:
            return int(value)

    return QtSpinBox


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
        ``.value`` is an int; ``.native`` the ``QSpinBox`` (magicgui's own spin box, without
        the words, where its private backend base moved).
    """
    backend = _qt_spin_box()
    if backend is None:
        return SpinBox(**kwargs)
    box: RangedWidget[int] = RangedWidget(widget_type=backend, **kwargs)
    box.native.setSpecialValueText(special)
    return box
