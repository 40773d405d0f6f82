"""Tests for napari_cellae.io.plane_cache and the stacks that share it, used from threads."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import synthetic_position
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.io.plane_cache import PlaneCache
from napari_cellae.io.position_stack import LazyPositionStack


@pytest.fixture
def switch_often() -> Iterator[None]:
    """Threads take turns after every few bytecodes: races show at once."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _in_threads(work: Callable[[np.random.Generator], None], n: int = 4) -> list[str]:
    """Run ``work`` in ``n`` threads at once; what they raised."""
    errors: list[str] = []

    def run(seed: int) -> None:
        try:
            work(np.random.default_rng(seed))
        except Exception as err:  # gathered for the assertion
            errors.append(repr(err))

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_bounded_in_entries_and_bytes() -> None:
    cache = PlaneCache(entries=2, max_bytes=100)
    for k in range(3):
        cache.put((k,), {0: np.full(10, k, np.uint8), 1: np.full(10, k, np.uint8)})
    assert cache.get((0,), 0) is None and cache.get((2,), 1)[0] == 2
    assert cache.nbytes == 40
    cache.put((3,), {0: np.zeros(101, np.uint8)})  # larger than all: not kept
    assert cache.get((3,), 0) is None and cache.nbytes == 40


def test_cache_used_from_several_threads(switch_often: None) -> None:
    # napari's asynchronous slicing reads layers on a thread of its own: a get between
    # another thread's put and its eviction raised KeyError, the byte count a RuntimeError
    # ('OrderedDict mutated during iteration'), and the layer showed no plane.
    cache = PlaneCache(entries=2)

    def work(rng: np.random.Generator) -> None:
        for _ in range(20000):
            key = (int(rng.integers(0, 4)),)
            if cache.get(key, 0) is None:
                cache.put(key, {0: np.zeros(4, np.uint8)})

    assert _in_threads(work) == []


def test_stack_read_from_several_threads(tmp_path: Path, switch_often: None) -> None:
    # The open datasets of the last positions: one thread dropped the dataset that another
    # had just opened (KeyError).
    positions = [synthetic_position(f"A{i + 1:02d}", "1", n_frames=1, seed=i) for i in range(6)]
    path = write_cellh5(tmp_path / "six.ch5", positions, ["dna"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        stack = LazyPositionStack(ch5, ch5.positions, 0, PlaneCache(entries=2))

        def work(rng: np.random.Generator) -> None:
            for _ in range(150):
                i = int(rng.integers(0, len(positions)))
                np.testing.assert_array_equal(stack[i, 0], positions[i].image[0, 0, 0])

        assert _in_threads(work) == []
