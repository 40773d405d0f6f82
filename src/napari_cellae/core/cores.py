"""How many CPU cores this process may use (no Qt, no torch)."""

from __future__ import annotations

import os

__all__ = ["usable_cores"]


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity where the OS reports one (containers
    often allow fewer than the machine has), else the machine's CPU count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
