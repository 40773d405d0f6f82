"""Runs without training for the widget's result tests: real crops, synthetic features."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from conftest import CLASS_LABELS, synthetic_position
from napari_cellae.core.crops import collect_crops
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5
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


#: the mapping of :func:`four_well_screen`: A01 and A02 negative controls, B01 and B02 treated
FOUR_WELL_MAPPING = (
    "Position\tWell\tSite\tRow\tColumn\tGene Symbol\tsiRNA ID\tGroup\n"
    "0001\tA01\t0001\tA\t1\tscrambled\ts001\tneg\n"
    "0002\tA02\t0001\tA\t2\tscrambled\ts001\tneg\n"
    "0003\tB01\t0001\tB\t1\tPLK1\ts123\ttarget\n"
    "0004\tB02\t0001\tB\t2\tKIF11\ts456\ttarget\n"
)


def four_well_screen(folder: Path, split_files: bool = False) -> tuple[Path, Path]:
    """Four wells of 3 frames x 7 cells, two negative controls and two treated (B02's cells
    dimmer, so that some are novel), and their mapping file (:data:`FOUR_WELL_MAPPING`).
    ``split_files``: a master file linking one file per position."""
    positions = [
        synthetic_position(well, "0001", n_per_frame=7, seed=i, peak=250.0 if i < 3 else 140.0)
        for i, well in enumerate(("A01", "A02", "B01", "B02"))
    ]
    ch5 = write_cellh5(
        folder / "screen.ch5",
        positions,
        channel_names=["rfp"],
        object_channels={"primary__primary": 0},
        class_labels={"primary__primary": CLASS_LABELS},
        flavour="cellcognition",
        split_files=split_files,
    )
    mapping = folder / "mapping.txt"
    mapping.write_text(FOUR_WELL_MAPPING, encoding="utf-8")
    return ch5, mapping
