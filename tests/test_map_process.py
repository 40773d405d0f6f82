"""UMAP maps made in a process of their own (napari_cellae.pipeline.map_process)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from napari_cellae.core.features import embed_2d
from napari_cellae.pipeline import map_process


def _features(n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(3)
    return (rng.normal(size=(n, 8)) + np.repeat(np.eye(8)[:3] * 4, n // 3, axis=0)).astype(
        np.float32
    )


def test_the_map_is_made_in_another_process_and_is_the_same_map() -> None:
    x = _features()
    apart = map_process.embed_apart(x)
    process = map_process._process
    assert process is not None and process.poll() is None and process.pid != os.getpid()
    np.testing.assert_array_equal(apart, embed_2d(x, "umap", 0))
    np.testing.assert_array_equal(map_process.embed_apart(x, "pca"), embed_2d(x, "pca", 0))
    # the process serves the next map too
    map_process.embed_apart(x[:150], seed=1)
    assert map_process._process is process


def test_its_errors_are_raised_as_embed_2d_raises_them() -> None:
    bad = _features()
    bad[4, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        map_process.embed_apart(bad)
    assert map_process.embed_apart(_features()).shape == (300, 2)  # and it goes on


def test_a_process_that_died_is_replaced_and_a_missing_one_made_up_for(monkeypatch) -> None:
    x = _features()
    map_process.embed_apart(x)
    map_process._process.kill()
    map_process._process.wait()
    np.testing.assert_array_equal(map_process.embed_apart(x), embed_2d(x, "umap", 0))

    def no_process(*args, **kwargs):
        raise OSError(24, "Too many open files")

    map_process._stop()
    monkeypatch.setattr(map_process.subprocess, "Popen", no_process)
    np.testing.assert_array_equal(map_process.embed_apart(x), embed_2d(x, "umap", 0))


def _silent_process(monkeypatch) -> list[np.ndarray]:
    """Maps go to a process that never answers (a whole plate's UMAP takes a minute);
    returns the features of the maps made in this process instead."""
    import subprocess
    import sys

    map_process._stop()
    popen = subprocess.Popen
    silent = [sys.executable, "-c", "import time; time.sleep(600)"]
    ours = [sys.executable, "-m", map_process.__name__]
    monkeypatch.setattr(
        subprocess, "Popen", lambda args, **kw: popen(silent if args == ours else args, **kw)
    )
    made_here: list[np.ndarray] = []
    monkeypatch.setattr(
        "napari_cellae.core.features.embed_2d", lambda x, *a, **k: made_here.append(x)
    )
    return made_here


def test_a_cancelled_map_ends_its_wait_and_is_not_made_here(monkeypatch) -> None:
    # Closing the viewer while a UMAP map was made left its thread waiting for the map
    # process; Python exited meanwhile and the thread's end aborted it ('wrapped C/C++
    # object ... deleted', exit status 134). Killing the process alone would have made
    # the map again in this process.
    import threading

    made_here = _silent_process(monkeypatch)
    outcome: list[BaseException] = []

    def make() -> None:
        try:
            map_process.embed_apart(_features(3000))
        except BaseException as err:
            outcome.append(err)

    thread = threading.Thread(target=make)
    thread.start()
    while not map_process._lock.locked() and thread.is_alive():
        thread.join(0.01)
    map_process.cancel_maps()
    thread.join(60)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], map_process.MapCancelled), outcome
    assert not made_here and map_process._process is None
    # a map asked for after the cancel is made as usual
    monkeypatch.undo()
    assert map_process.embed_apart(_features()).shape == (300, 2)
