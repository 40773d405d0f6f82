"""Other processes and our outputs: whether the process that wrote a temporary output still
runs (POSIX and Windows), whether a program holds an output open (Windows)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["held_open", "process_alive"]

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
    kernel32.CreateFileW.restype = ctypes.c_void_p
    kernel32.CreateFileW.argtypes = [
        ctypes.c_wchar_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_void_p,
        ctypes.c_ulong, ctypes.c_ulong, ctypes.c_void_p,
    ]  # fmt: skip
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


# CreateFileW's DELETE access, share-everything mode, OPEN_EXISTING and its failure value,
# and the error of a file another program holds open without letting it be replaced.
_DELETE, _SHARE_ALL, _OPEN_EXISTING = 0x10000, 0x7, 3
_INVALID_HANDLE, _SHARING_VIOLATION = 2**64 - 1, 32


def held_open(path: str | os.PathLike) -> bool:
    """Whether another program holds ``path`` open so that it cannot be replaced.

    Only Windows refuses to replace a file that is open (in Excel, which locks the CSV
    files it shows, or in CellCognition Explorer): elsewhere this is always False.

    Parameters
    ----------
    path : path-like
        An existing file.

    Returns
    -------
    bool
    """
    if sys.platform != "win32":
        return False
    import ctypes

    kernel32 = _kernel32()
    # Asking for the right to delete (what a rename over the file needs) fails exactly
    # when an open handle does not share it.
    handle = kernel32.CreateFileW(
        os.fspath(path), _DELETE, _SHARE_ALL, None, _OPEN_EXISTING, 0, None
    )
    if handle is None or handle in (_INVALID_HANDLE, _INVALID_HANDLE >> 32):
        return ctypes.get_last_error() == _SHARING_VIOLATION  # type: ignore[attr-defined]
    kernel32.CloseHandle(handle)
    return False
