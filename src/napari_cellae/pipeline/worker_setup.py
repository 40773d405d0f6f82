"""Preloaded into the worker processes of ``cellae encode --workers N``: Ctrl-C is the
client's to handle.

A terminal sends Ctrl-C to every process of its foreground group, the local Dask workers
too: each printed a ``KeyboardInterrupt`` traceback ("Process Dask Worker process (from
Nanny)") under 'cellae: interrupted', while ``cellae`` itself stops the run and closes the
cluster (:mod:`napari_cellae.pipeline.local_cluster`), which ends its workers.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

__all__ = ["dask_setup"]


def dask_setup(worker: Any) -> None:
    """Called by Dask as the worker starts: the worker process ignores Ctrl-C (SIGINT)."""
    if threading.current_thread() is threading.main_thread():  # only there can it be set
        signal.signal(signal.SIGINT, signal.SIG_IGN)
