"""Safe output files: checked before any work, written under a temporary name, then renamed.

Every file napari-cellae writes (models, Explorer ``.hdf``, AnnData, plots, demo screens,
mapping files) goes through :func:`atomic_output`, so an interrupted run never leaves a
half-written file at the final path, and :func:`check_output` refuses an output that would
replace one of the run's inputs. HDF5 files written with h5py use :func:`atomic_hdf5`, which
also survives a disk that fills up while the file is written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_cellae.io.processes import held_open, process_alive
from napari_cellae.io.write_failure import errno_of, read_only_file_system, write_failure

if TYPE_CHECKING:
    import h5py

__all__ = [
    "atomic_hdf5",
    "atomic_output",
    "check_distinct",
    "check_output",
    "file_identity",
    "remove_stale_temporaries",
    "resolved",
    "temporary_name",
]

_TEMP_SUFFIX = ".cellae-tmp"
# ".<name>.<pid>-<thread>.cellae-tmp": the pid tells whether the writer is still alive; the
# thread keeps two writers of one process (the widget's savers) apart. Older: no thread.
_TEMP_PATTERN = re.compile(
    r"^\.(?P<name>.+)\.(?P<pid>\d+)(?:-\d+)?" + re.escape(_TEMP_SUFFIX) + "$"
)


def temporary_name(path: str | os.PathLike) -> Path:
    """The hidden temporary file beside ``path`` that this process writes before renaming.

    Parameters
    ----------
    path : path-like
        The final output file.

    Returns
    -------
    Path
        ``.<name>.<pid>-<thread>.cellae-tmp`` in the same folder (same file system: the
        rename is atomic). The thread's number has a fixed width, so that the name's
        length, which :func:`check_output` checks, is the same in every thread.
    """
    path = Path(path)
    thread = threading.get_native_id() % 10**7  # Linux thread ids are below 2**22
    return path.with_name(f".{path.name}.{os.getpid()}-{thread:07d}{_TEMP_SUFFIX}")


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete temporaries of ``path`` left by writers that no longer run (killed runs).

    Only files named by :func:`temporary_name` for this very output whose process has
    ended are removed; a concurrent writer's file is left alone.

    Returns
    -------
    list of Path
        The files removed.
    """
    path = Path(path)
    removed = []
    folder = path.parent if str(path.parent) else Path(".")
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            match = _TEMP_PATTERN.match(entry.name)
            if match and match["name"] == path.name and not process_alive(int(match["pid"])):
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
    return removed


def resolved(path: Path) -> Path:
    """``path.resolve()``, or its absolute path behind a loop of symbolic links (Python
    raises RuntimeError there, a traceback; opening the path later says what is wrong)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def _landing(path: Path) -> Path:
    """The file that writing ``path`` changes: a symbolic link's target, as writing through
    the link does (renaming onto the link replaced the link and left its target stale)."""
    return resolved(path) if path.is_symlink() else path


def _loops(path: Path) -> bool:
    """Whether following the symbolic link ``path`` never ends (a loop of links)."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def file_identity(path: str | os.PathLike) -> tuple[int, int, int, int] | None:
    """The file ``path`` names, as ``os.path.samefile`` tells files apart (device and inode:
    hard links, or one name in two cases on a case-insensitive disk).

    None where it cannot be read, or where the disk gives no inode number (0: some network,
    FUSE and FAT disks), which would make every file of the disk one. Size and modification
    time, one per file, guard against inode numbers a disk makes up and reuses.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    tuple of int or None
        ``(st_dev, st_ino, st_size, st_mtime_ns)``.
    """
    try:
        stat = os.stat(path)
    except OSError:  # opening it says what is wrong
        return None
    if stat.st_ino == 0:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def _same_file(a: Path, b: Path) -> bool:
    if resolved(a) == resolved(b):
        return True
    identity = file_identity(a)
    return identity is not None and identity == file_identity(b)


def check_output(
    path: str | os.PathLike,
    inputs: Iterable[str | os.PathLike | None] = (),
    what: str = "output",
) -> Path:
    """Check an output path before any work is done, so a long run cannot fail at the end.

    Parameters
    ----------
    path : path-like
        The file to be written.
    inputs : iterable of path-like or None
        The run's input files (None entries are skipped). An output that is one of them
        (the same file by any name: relative parts, symbolic or hard links) is refused.
    what : str
        What the output is, for the message (e.g. "model", "features file").

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        Naming the path: it is an input, a folder or another non-regular file (a device
        such as /dev/null, a pipe), a loop of symbolic links, a read-only file, its folder
        (a link's target's) does not exist or is not writable, or its name is too long.
    """
    path = Path(path)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise ValueError(
                f"refusing to write the {what} to {path}: it is an input of this run "
                f"({source}); choose another output file"
            )
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder, expected a file name")
    if path.is_symlink() and _loops(path):  # no file to write through to: the link went
        raise ValueError(
            f"cannot write {path}: it is a symbolic link to {os.readlink(path)!r} that leads "
            "round in a loop; remove the link or choose another file name"
        )
    # The finished file is renamed over the target: a device or pipe (/dev/null, a FIFO)
    # would be replaced by an ordinary file, for every user of the machine.
    if path.exists() and not path.is_file():
        raise ValueError(
            f"cannot write {path}: it is not a regular file (a device, pipe or socket); "
            "choose a file name"
        )
    # Renaming asks only the folder: a file made read-only would be replaced without a word,
    # where writing into it is refused (mode bits too, as root may write anything).
    if path.is_file() and read_only_file_system(path):  # "chmod u+w" cannot help there
        raise ValueError(
            f"cannot write {path}: its file system is mounted read-only; choose a folder on "
            "another disk"
        )
    if path.is_file() and not (path.stat().st_mode & 0o222 and os.access(path, os.W_OK)):
        raise ValueError(
            f"cannot write {path}: the file is read-only; make it writable (chmod u+w) to "
            "replace it, or choose another file name"
        )
    final = _landing(path)  # a link's target: its folder holds the temporary
    if final.is_file() and held_open(final):  # else refused only once the work was done
        raise ValueError(
            f"cannot write {path}: the file is open in another program (Excel, CellCognition"
            " Explorer?); close it there, or choose another file name"
        )
    parent = final.parent if str(final.parent) else Path(".")
    if parent.exists() and not parent.is_dir():  # "does not exist" hid the file in its way
        raise ValueError(f"cannot write {path}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise ValueError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):  # where the temporary file is made
        why = " (its file system is mounted read-only)" if read_only_file_system(parent) else ""
        raise ValueError(f"cannot write {path}: folder {parent} is not writable{why}")
    # The temporary name is longer: too long a name failed only when the work was done.
    longer = len(os.fsencode(temporary_name(final).name)) - len(os.fsencode(final.name))
    try:
        most = os.pathconf(parent, "PC_NAME_MAX") - longer
    except (OSError, ValueError, AttributeError):  # the file system does not say; Windows
        most = None  # has no pathconf: every output was an AttributeError traceback there
    if most is not None and len(os.fsencode(final.name)) > most:
        raise ValueError(
            f"cannot write {path}: the file name is too long for its folder (at most {most}"
            " bytes here, as it is first written under a longer temporary name)"
        )
    from napari_cellae.io.file_kinds import replace_problem  # h5py: only when checking

    if problem := replace_problem(path, what):  # a file of another kind is kept
        raise ValueError(problem)
    return path


def check_distinct(outputs: Iterable[tuple[str | os.PathLike, str]]) -> None:
    """Refuse two outputs of one run that are the same file by any name.

    The one written last replaces the other, which the run still reports as written
    (``--out cells.h5ad --gallery cells.h5ad`` kept only one of the two).

    Parameters
    ----------
    outputs : iterable of (path-like, str)
        Each output file and what it is ("AnnData file", "gallery", ...).

    Raises
    ------
    ValueError
        Naming both outputs.
    """
    seen: list[tuple[Path, str]] = []
    for path, what in outputs:
        path = Path(path)
        for other, other_what in seen:
            if _same_file(path, other):
                raise ValueError(
                    f"cannot write the {what} to {path}: it is where the {other_what} goes"
                    f" ({other}); give them different names"
                )
        seen.append((path, what))


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Write a file under a temporary name and rename it to ``path`` when the block succeeds.

    The temporary file is removed if the block raises (including KeyboardInterrupt), so the
    final path either keeps its previous content or holds the complete new file. Stale
    temporaries of earlier killed runs are cleaned up first. A symbolic link is written
    through: its target is replaced, the link kept.

    Yields
    ------
    Path
        The temporary path to write to.

    Raises
    ------
    ValueError
        If writing fails with an OS error (disk full, permissions), also one a library
        reports as a RuntimeError (HDF5, torch); names ``path`` and says what is wrong.
    """
    path = Path(path)
    final = _landing(path)
    remove_stale_temporaries(final)
    tmp = temporary_name(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except (OSError, RuntimeError) as exc:
        if not isinstance(exc, OSError) and errno_of(exc) is None:
            raise  # a program error, not a failed write
        raise write_failure(path, final.parent, exc) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _discard(h5: h5py.File) -> None:
    """Close an HDF5 file whose content is thrown away, in a way that cannot fail.

    After a failed write (a full disk) HDF5 cannot flush its caches, so closing fails too,
    and the half-closed objects crash the process when they are freed (a segmentation
    fault, seen with HDF5 2.0). The file's descriptor is pointed at an anonymous file in
    memory first: the last writes land there and the close succeeds.
    """
    with contextlib.suppress(Exception):
        if h5.id.valid:
            handle = h5.id.get_vfd_handle()  # the descriptor, for the default (sec2) driver
            if isinstance(handle, int) and handle >= 0:
                with _scratch_file() as scratch:
                    os.dup2(scratch, handle)
    with _file_size_unlimited(), contextlib.suppress(Exception):
        h5.close()


@contextlib.contextmanager
def _file_size_unlimited() -> Iterator[None]:
    """Lift a soft file-size limit (``ulimit -S -f``) as far as allowed, for a while: the
    scratch file takes writes at the offsets of the file that exceeded it."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    except (ImportError, OSError, ValueError):  # no such limits here (Windows)
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@contextlib.contextmanager
def _scratch_file() -> Iterator[int]:
    """A descriptor of an anonymous file that takes any write: in memory where possible."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("cellae-discarded")
        try:
            yield fd
        finally:
            os.close(fd)
    else:
        with tempfile.TemporaryFile() as scratch:
            yield scratch.fileno()


@contextlib.contextmanager
def atomic_hdf5(path: str | os.PathLike, **kwargs: Any) -> Iterator[h5py.File]:
    """Write an HDF5 file under a temporary name; rename it to ``path`` when the block succeeds.

    :func:`atomic_output` for h5py: the file is flushed before it is renamed, and on any
    error (also Ctrl-C) it is closed without writing, so a full disk gives one clear error
    instead of h5py's cascade of tracebacks and a crash of the process.

    Parameters
    ----------
    path : path-like
        The final file.
    **kwargs
        Passed to :class:`h5py.File` (e.g. ``track_order=True``).

    Yields
    ------
    h5py.File
        Open for writing, on the temporary name.

    Raises
    ------
    ValueError
        If writing fails (disk full, permissions); names ``path`` and says what is wrong.
    """
    import h5py

    with atomic_output(path) as tmp:
        h5 = h5py.File(tmp, "w", **kwargs)
        try:
            yield h5
            h5.flush()  # a full disk fails here, while the file can still be closed safely
        except BaseException:
            _discard(h5)
            raise
        h5.close()
