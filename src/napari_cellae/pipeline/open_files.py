"""CellH5 files kept open per process while a screen is encoded position by position.

A worker that reopened the master file for every position would re-read the plate's
structure each time; here each process keeps the last few plates it read open.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from napari_cellae.io.cellh5 import CellH5, CellH5Error

__all__ = ["close_open_files", "open_cellh5"]

_MAX_OPEN = 4  # one per plate; a run reads its plates in turn
_open_files: dict[tuple[str, int, int], CellH5] = {}
_open_lock = threading.Lock()


def open_cellh5(path: Path) -> CellH5:
    """An open CellH5 file of this process (cached; reopened when the file changed).

    Raises
    ------
    CellH5Error
        If the file cannot be read here, naming this machine (a Dask worker elsewhere must
        see the files at the same path).
    """
    try:
        stat = path.stat()
    except OSError as exc:
        raise CellH5Error(
            f"{path}: cannot be read on {socket.gethostname()} ({exc.strerror or exc}); every "
            "machine encoding must see the files at the same path"
        ) from None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _open_lock:
        ch5 = _open_files.get(key)
        if ch5 is None:
            ch5 = CellH5(path)
            if len(_open_files) >= _MAX_OPEN:
                _open_files.pop(next(iter(_open_files))).close()
            _open_files[key] = ch5
        return ch5


def close_open_files() -> None:
    """Close the CellH5 files :func:`open_cellh5` kept open in this process."""
    with _open_lock:
        while _open_files:
            _open_files.popitem()[1].close()
