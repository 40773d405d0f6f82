"""Runs without training for the widget's result tests: real crops, synthetic features."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_cellae.core.crops import collect_crops
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.mapping import read_mapping
from napari_cellae.pipeline.results import RunResult


def fake_run(path: Path, mapping: Path | None = None, shift: float = 4.0) -> RunResult:
    """The cells of a test file with 8 random features each; the cells of the second
    position (B02, PLK1 in ``mapping_file``) shifted by ``shift``, so that they are novel.

    ``trained`` is None: nothing here needs the network.
    """
    with CellH5(path) as f:
        crops = collect_crops(f, "primary__primary", 16)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(len(crops), 8)).astype(np.float32)
    features[crops.position_index == 1] += shift
    return RunResult(
        None,
        crops,
        read_mapping(mapping) if mapping is not None else None,
        features=features,
        embedding=features[:, :2].copy(),
    )


TINY = "c4.3r_p2_d16.0s"
TIMEOUT_MS = 120_000


def use_pca(widget) -> None:
    """Show the PCA map only: UMAP's first run compiles numba code for ~20 s."""
    widget.panel.map.setCurrentIndex(widget.panel.map.findData("pca"))


def tiny(widget, epochs: int = 2, samples: int = 300) -> None:
    """A network and run small enough for a test."""
    form = widget.form
    form.crop_size.value = 16
    form.architecture.value = TINY
    form.epochs.value = epochs
    form.samples.value = samples
    form.batch_size.value = 32


def run_job(qtbot, widget, make_worker) -> None:
    """Start a widget job (``make_worker(start=False)``) and wait until it is over."""
    worker = make_worker(start=False)
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        worker.start()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=5000)


def wait_background(qtbot, widget, timeout: int = TIMEOUT_MS) -> None:
    """Wait for the widget's background workers (map, gallery) to end."""
    qtbot.waitUntil(lambda: not widget.results.pending, timeout=timeout)


def start_job(
    runner: Any,
    job: Callable[..., Any],
    *args: Any,
    on_message: Callable[[Any], Any] | None = None,
    on_outcome: Callable[[Any], Any] | None = None,
    on_error: Callable[[Any], Any] | None = None,
    on_finished: Callable[[], Any] | None = None,
    **options: Any,
) -> Any:
    """``runner.start(job, *args, ...)`` with the callbacks a test does not give ignoring
    what they get; ``options`` as ``start`` takes them (``start=False``, ``total``, ...)."""
    return runner.start(
        job,
        *args,
        on_message=on_message or (lambda message: None),
        on_outcome=on_outcome or (lambda outcome: None),
        on_error=on_error or (lambda error: None),
        on_finished=on_finished or (lambda: None),
        **options,
    )
