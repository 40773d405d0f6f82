"""How many CPU cores and how much memory this process may use (no Qt, no torch)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

__all__ = ["available_memory", "usable_cores"]


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity where the OS reports one (containers
    often allow fewer than the machine has), else the machine's CPU count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def available_memory(
    meminfo: Path = Path("/proc/meminfo"), cgroup: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """Bytes of memory this process can still take without swapping, where the OS says.

    Parameters
    ----------
    meminfo : Path
        Linux's memory summary; its ``MemAvailable`` line.
    cgroup : Path
        The cgroup (v2) folder: a container's ``memory.max`` less its ``memory.current``
        caps what the machine has free.

    Returns
    -------
    int or None
        Elsewhere (Windows, macOS) what psutil says; None where nothing says.
    """
    found = []
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            used = int((cgroup / "memory.current").read_text().strip())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    if not found and sys.platform != "linux":  # no /proc: the crops' check was skipped
        import psutil  # a dependency (napari's too); Windows and macOS have no /proc

        with contextlib.suppress(OSError):
            found.append(int(psutil.virtual_memory().available))
    return min(found) if found else None
