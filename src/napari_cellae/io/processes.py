"""Whether the process that wrote a temporary output still runs (POSIX and Windows)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["process_alive"]

# Windows' OpenProcess access right, error code and exit code of a running process.
_QUERY_LIMITED_INFORMATION, _ACCESS_DENIED, _STILL_ACTIVE = 0x1000, 5, 259


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs.

    Parameters
    ----------
    pid : int
        A process id, as a temporary file's name holds it.

    Returns
    -------
    bool
        False for a process that has ended (also one never reaped); True for a running
        one, also another user's.
    """
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # os.kill(pid, 0) there is TerminateProcess: it ended pid
        return _alive_on_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A process that has ended but was never reaped (its parent gone, in a container whose
    first process reaps nobody): signal 0 still reaches it, yet it writes nothing more."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS) or the process has just gone
        return False
    return stat[stat.rfind(")") + 2 :].startswith("Z")  # the state follows "(name) "


def _kernel32() -> Any:
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.OpenProcess.restype = ctypes.c_void_p  # a handle is pointer-sized
    kernel32.OpenProcess.argtypes = [ctypes.c_ulong, ctypes.c_int, ctypes.c_ulong]
    kernel32.GetExitCodeProcess.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong)]
    kernel32.CloseHandle.argtypes = [ctypes.c_void_p]
    return kernel32


def _alive_on_windows(pid: int) -> bool:
    """Whether process ``pid`` runs, asked without a signal (Windows)."""
    import ctypes

    kernel32 = _kernel32()
    handle = kernel32.OpenProcess(_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:  # no such process, or another user's that we may not look at
        return ctypes.get_last_error() == _ACCESS_DENIED  # type: ignore[attr-defined]
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True  # not known: its file is kept
        return code.value == _STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
