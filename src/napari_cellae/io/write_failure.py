"""Why an output file could not be written, in words a user can act on.

:mod:`napari_cellae.io.atomic` turns every failed write into ``cannot write PATH: REASON``;
this module finds the reason: the OS error behind a library's exception (HDF5 and torch
word theirs), a full disk, a file system mounted read-only, or one that refuses HDF5's
file locks.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

__all__ = ["errno_of", "lock_refused", "read_only_file_system", "write_failure"]

# HDF5 reports a failed write in words, not as an OSError: "... errno = 28, error message =".
_HDF5_ERRNO = re.compile(r"\berrno = (\d+)")
# Free space below this, after a write failed without saying why, means the disk is full.
_NEARLY_FULL = 1 << 20
# "unable to lock file" with these: the file system has no locks (ENOLCK, ENOSYS, ENOTSUP;
# some network mounts), and HDF5 was told to insist on them.
_NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP}
_FULL = {errno.ENOSPC, errno.EDQUOT}


def errno_of(exc: BaseException) -> int | None:
    """The OS error number behind ``exc``: its own, a cause's, or one HDF5 wrote in words.

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    int or None
        None when no exception in the chain names one.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno:
            return current.errno
        match = _HDF5_ERRNO.search(str(current))
        if match and int(match[1]):
            return int(match[1])
        current = current.__cause__ or current.__context__
    return None


def lock_refused(exc: BaseException) -> bool:
    """Whether ``exc`` is HDF5 failing to lock a file because the file system has no locks
    (with ``HDF5_USE_FILE_LOCKING=TRUE``; by default HDF5 goes on without them).

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    bool
    """
    return "unable to lock file" in str(exc).lower() and errno_of(exc) in _NO_LOCKS


def read_only_file_system(path: str | os.PathLike) -> bool:
    """Whether ``path`` (a file or folder) lies on a file system mounted read-only.

    Root may write into any folder and file whatever their modes, but not there; the
    folder's mode bits look writable, so "permission denied" or "chmod u+w" misled.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    bool
        False where it cannot be told (no statvfs, the path is missing).
    """
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # missing, or no statvfs (Windows)
        return False


def write_failure(path: Path, folder: Path, exc: BaseException) -> ValueError:
    """A write failure as ``cannot write PATH: REASON``, the reason in the OS's words.

    A writer that does not say why (torch's ``unexpected pos 43648 vs 43540``) is explained
    by the disk when it is (nearly) full.

    Parameters
    ----------
    path : Path
        The output as the user named it.
    folder : Path
        Where the file is written (a link's target's folder).
    exc : BaseException
        What the writer raised.

    Returns
    -------
    ValueError
        One line, to be raised.
    """
    number = errno_of(exc)
    if lock_refused(exc):
        return ValueError(
            f"cannot write {path}: the file system of {folder} refuses HDF5's file locks "
            f"({os.strerror(number or 0)}); set the environment variable "
            "HDF5_USE_FILE_LOCKING=FALSE and run again"
        )
    if number == errno.EROFS or (number == errno.EACCES and read_only_file_system(folder)):
        return ValueError(
            f"cannot write {path}: the file system of {folder} is mounted read-only; "
            "choose a folder on another disk"
        )
    if number in _FULL:
        return ValueError(
            f"cannot write {path}: the disk is full ({os.strerror(number)}); free some "
            f"space in {folder} or write to another disk"
        )
    if number:
        return ValueError(f"cannot write {path}: {os.strerror(number)}")
    reason = " ".join(str(exc).split()) or type(exc).__name__
    try:
        stats = os.statvfs(folder)
        free = stats.f_bavail * stats.f_frsize
    except (OSError, AttributeError):  # no statvfs (Windows) or the folder is gone
        free = None
    if free is not None and free < _NEARLY_FULL:
        reason = (
            f"the disk is full ({free} bytes free in {folder}; {reason}); free some space "
            "there or write to another disk"
        )
    return ValueError(f"cannot write {path}: {reason}")
