"""UMAP maps computed in a process of their own, so that the viewer stays responsive.

UMAP's compiled (numba) code holds Python's global lock for up to a second at a time: run
in a thread beside napari, it stalled the viewer's event loop (64,669 cells: 72 stalls, the
longest 1.1 s; ``benchmarks/bench_gui_stalls.py``). In another process the thread that
waits for the map holds no lock. One process serves every map of the session; it starts
(and compiles UMAP's code) in the background when the widget opens (:func:`warm_up_maps`).
Should it fail to start or die, the map is made in this process as before. When the viewer
closes, :func:`cancel_maps` ends the process: the map being made is given up
(:class:`MapCancelled`), not made again here, so that no thread is left computing it while
Python exits (its late signals aborted the process).

The process is ``python -m napari_cellae.pipeline.map_process``, given pickled requests on
its standard input: multiprocessing's "spawn" would run the user's own script again in it
(a napari script without ``if __name__ == "__main__"`` opened a second viewer), and "fork"
copies a process that runs Qt's and torch's threads.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import subprocess
import sys
import threading
from typing import IO, Any

import numpy as np

__all__ = ["MapCancelled", "cancel_maps", "embed_apart", "warm_up_maps"]

_process: subprocess.Popen | None = None
_lock = threading.Lock()  # one map at a time through the one process
_cancels = 0  # how many times cancel_maps was called: a map started before one is given up


class MapCancelled(RuntimeError):
    """The map was given up: :func:`cancel_maps` was called while it was being made."""


def _started() -> subprocess.Popen:
    global _process
    if _process is None or _process.poll() is not None:
        _process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # UMAP's and numba's notes: the map says what matters
        )
    return _process


def _ask(request: tuple[np.ndarray, str, int]) -> np.ndarray:
    """The map made by the process (raises OSError, EOFError or pickle errors when it is
    gone; the error embed_2d raised there, as raised)."""
    process = _started()
    assert process.stdin is not None and process.stdout is not None
    pickle.dump(request, process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
    process.stdin.flush()
    ok, answer = pickle.load(process.stdout)
    if not ok:
        raise answer
    return answer


def embed_apart(features: np.ndarray, method: str = "umap", seed: int = 0) -> np.ndarray:
    """:func:`napari_cellae.core.features.embed_2d`, for UMAP in a process of its own.

    Parameters
    ----------
    features : ndarray (N, F)
    method : {"umap", "pca"}
        PCA, quick and light on the lock, is made here.
    seed : int

    Returns
    -------
    ndarray (N, 2) float32
        The same map as ``embed_2d(features, method, seed)``.

    Raises
    ------
    ValueError
        As :func:`~napari_cellae.core.features.embed_2d` (NaN features, an unknown method).
    """
    from napari_cellae.core.features import embed_2d

    # A frozen application's executable is the application itself, not Python.
    if method != "umap" or getattr(sys, "frozen", False):
        return embed_2d(features, method, seed)
    cancels = _cancels
    with _lock:
        try:
            if cancels != _cancels:  # cancelled while the map before it was made
                raise MapCancelled("the UMAP map was cancelled: the viewer closed")
            return _ask((np.asarray(features), method, seed))
        except (OSError, EOFError, pickle.PickleError, AttributeError, ImportError) as err:
            if cancels != _cancels:  # killed by cancel_maps: not made again here
                raise MapCancelled("the UMAP map was cancelled: the viewer closed") from err
            _stop()  # no process, or it died: make the map here
    return embed_2d(features, method, seed)


def cancel_maps() -> None:
    """Give up the maps being made or waiting (they raise :class:`MapCancelled`) and end
    the map process; a later map starts a new one.

    Called when the viewer closes, and when Python exits: a thread waiting for a map
    (a minute for a whole plate) outlived the viewer, and its end reached Qt objects
    already deleted, which aborted Python.
    """
    global _cancels
    _cancels += 1
    _stop()


def _stop() -> None:
    global _process
    process, _process = _process, None
    if process is not None:
        with contextlib.suppress(OSError):
            process.kill()
            process.wait(timeout=5)


atexit.register(cancel_maps)  # the process would go on with its map after ours ended


def warm_up_maps() -> None:
    """Start the map process and compile UMAP's code there (a few seconds, in the
    background), so that the first map comes as quickly as later ones."""
    rng = np.random.default_rng(0)
    embed_apart(rng.normal(size=(40, 3)).astype(np.float32))


def _serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """Answer pickled ``(features, method, seed)`` with ``(True, map)`` or ``(False,
    error)`` until the standard input closes (the viewer's process has ended)."""
    from napari_cellae.core.features import embed_2d

    while True:
        try:
            features, method, seed = pickle.load(requests)
        except EOFError:
            return
        answer: tuple[bool, Any]
        try:
            answer = (True, embed_2d(features, method, seed))
        except Exception as exc:  # the caller raises it as embed_2d would have
            answer = (False, exc)
        pickle.dump(answer, answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


if __name__ == "__main__":
    # The answers get the real standard output; anything a library prints goes to stderr.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.stdin.buffer, answers)
