"""What the input checks cost on sound input: opening a plate, reading its object tables and
loading a model, with the checks as shipped and with them switched off, side by side in one
run.

The checks (each position a distinct HDF5 group, images neither virtual with missing sources
nor kept in missing external files, tables written, objects not sharing label ids, a model
archive whose CRCs hold, settings that agree, finite weights) run on every open and load.
Opening and the napari reader read a few tables per position, and plates have thousands of
positions, so a check of some microseconds per position shows there. Prints seconds with and
without the checks and their ratio (1.00: the checks cost nothing).

Run: ``python benchmarks/bench_checks.py [--wells 384] [--sites 4] [--repeats 5]``. Timings on
a shared machine are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

from bench_open import make_file
from napari_cellae.core.config import TrainConfig
from napari_cellae.core.model import ConvAutoencoder
from napari_cellae.core.model_file import TrainedModel, save_model
from napari_cellae.core.model_load import load_model
from napari_cellae.core.normalisation import Normalisation
from napari_cellae.io.cellh5 import CellH5


@contextlib.contextmanager
def checks_off() -> Iterator[None]:
    """The open and load checks replaced by no-ops (sound input passes them all)."""
    distinct = itertools.count()
    with contextlib.ExitStack() as stack:
        for target, stand_in in [
            ("napari_cellae.io.cellh5.values_elsewhere_trouble", lambda dataset, what: None),
            ("napari_cellae.io.storage.never_written", lambda dataset: False),
            ("napari_cellae.io.objects._shared_labels", lambda frames, labels: 0),
            ("napari_cellae.io.positions._Identities.of", lambda self, group: next(distinct)),
            ("napari_cellae.io.file_kinds.model_problem", lambda path: None),
            ("napari_cellae.core.model_load.check_stored", lambda stored: None),
            ("napari_cellae.core.model_load.check_weights", lambda model: None),
            ("napari_cellae.core.model_load.check_network", lambda meta, model, stored: None),
        ]:
            stack.enter_context(mock.patch(target, stand_in))
        yield


def best_of(repeats: int, step: Callable[[], object]) -> float:
    """Median seconds of ``step`` over ``repeats`` runs, after one warm-up."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def open_plate(path: Path) -> None:
    """What opening does: find the positions, check each one's image."""
    with CellH5(path) as ch5:
        for key in ch5.positions:
            ch5.image_shape(key)


def read_objects(path: Path) -> None:
    """What the napari reader and a run's planning do: every position's object tables."""
    with CellH5(path) as ch5:
        name = ch5.default_object
        for key in ch5.positions:
            ch5.objects(key, name)


def saved_model(folder: Path) -> Path:
    """An untrained model of the default settings (the checks do not depend on weights)."""
    settings = TrainConfig()
    network = ConvAutoencoder(settings.architecture, settings.network_size, 1)
    scale = Normalisation.from_dict({"low": [0.0], "high": [1.0], "per_cell": True})
    model = TrainedModel(network, settings, scale, ["DNA"], "Nuclei")
    return save_model(model, folder / "model.pt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wells", type=int, default=384)
    parser.add_argument("--sites", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plate = Path(tmp) / "plate.ch5"
        make_file(plate, args.wells, args.sites, 1, 512)
        model = saved_model(Path(tmp))
        steps = {
            f"open ({args.wells * args.sites} positions)": lambda: open_plate(plate),
            "object tables of every position": lambda: read_objects(plate),
            f"load_model ({model.stat().st_size / 2**20:.1f} MiB)": lambda: load_model(model),
        }
        print(f"{'step':36s} {'checked s':>10s} {'unchecked s':>12s} {'ratio':>6s}")
        for name, step in steps.items():
            checked = best_of(args.repeats, step)
            with checks_off():
                unchecked = best_of(args.repeats, step)
            print(f"{name:36s} {checked:10.4f} {unchecked:12.4f} {checked / unchecked:6.2f}")


if __name__ == "__main__":
    main()
