"""Holding the widget's pieces without keeping them alive, and telling when Qt deleted one.

napari's events, the viewer's theme and finished thread workers outlive a closed dock; what
they hold strongly stays in memory with it (the run's cells, its network). No torch.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["qt_deleted", "weakly"]


def weakly(callback: Callable[..., Any]) -> Callable[[], Callable[..., Any] | None]:
    """A reference to ``callback`` that does not keep its object alive: call it to get the
    callback, or None once its object was collected. Plain functions are held as they are.
    """
    if inspect.ismethod(callback):
        return weakref.WeakMethod(callback)
    return lambda: callback


def qt_deleted(qobject: Any) -> bool:
    """Whether Qt deleted the C++ object behind a Python wrapper that lives on."""
    try:
        qobject.objectName()
    except RuntimeError:  # "wrapped C/C++ object ... has been deleted" (PySide: "Internal")
        return True
    return False
