"""Interaction times of the feature embedding in napari: every cell a point vs density view.

For synthetic screens of 100,000 and 1,000,000 cells (12 phenotype blobs, 384 conditions,
a novelty score), the widget's :class:`~napari_cellae._ui.embedding_view.EmbeddingView`
shows the embedding either as one point per cell ("points only") or, as the widget does
above 50,000 cells, as a density image plus a 5,000-point sample and the selection
("density"). Timed on the GUI thread, each until the canvas has drawn (median of 3):

- add: fill the prepared embedding layer(s) (the widget adds the density layer while it
  computes the features: "layers", not an interaction, printed for completeness)
- again: show another table of the same size (a new run)
- select 1 %: select 1 % of the cells, as a row of the hit table does
- recolour: colour by novelty instead of condition
- new map: move every cell (UMAP replacing PCA)
- zoom: redraw after a camera change

Each view and size runs in its own process with a time limit: napari takes minutes, or
crashes, on a million points. Needs a display; run under Xvfb::

    xvfb-run -a python benchmarks/bench_embedding_layer.py
    xvfb-run -a python benchmarks/bench_embedding_layer.py --cells 100000 --limit 300
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

STEPS = ("add", "again", "select 1 %", "recolour", "new map", "zoom")
VIEWS = {"points": "points only", "density": "density + sample"}


def synthetic_table(n: int, seed: int = 0):
    """A cell table of ``n`` cells: 2-D blobs, conditions, positions, novelty (worker side)."""
    import pandas as pd

    from napari_cellae._ui.cell_table import CellTable
    from napari_cellae._ui.colouring import categorical, colourings

    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(12, 2))
    blob = rng.integers(0, 12, n)
    emb = (centres[blob] + rng.normal(size=(n, 2))).astype(np.float32)
    # 384 conditions, 32 per phenotype
    labels = np.char.add("siRNA ", (blob * 32 + rng.integers(0, 32, n)).astype(str))
    condition = categorical("condition", labels)
    features = pd.DataFrame(
        {
            "cell": np.arange(n),
            "embedding_1": emb[:, 0],
            "embedding_2": emb[:, 1],
            "condition": pd.Categorical.from_codes(condition.codes, condition.labels),
            "position_index": rng.integers(0, 1536, n),
            "object_index": rng.integers(0, 2000, n),
            "novelty": np.abs(rng.normal(size=n)) * (1 + (blob > 8)),
        }
    )
    modes = colourings(features, threshold=2.0, condition=condition)
    table = CellTable(features, modes)
    table.add_map("pca", emb)
    return table


def _drawn(app) -> None:
    # napari asks vispy to redraw; the draw happens when Qt processes its events
    for _ in range(2):
        app.processEvents()


def child(n: int, view_name: str, repeats: int) -> None:
    """Time every step for one size and view; print one JSON line."""
    import warnings

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_cellae._reader import METADATA_KEY
    from napari_cellae._ui.cell_table import density_view, unit_square
    from napari_cellae._ui.embedding_view import BINS, EmbeddingView
    from napari_cellae._ui.result_layers import ResultLayers

    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    tables = [synthetic_table(n, seed) for seed in (0, 1)]
    dense = view_name == "density"
    for table in tables:  # as the job's worker does for the density view
        if dense:
            table.prepare_density(BINS)
    build = (time.perf_counter() - t0) / 2
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    app = QApplication.instance()
    viewer.add_image(
        np.zeros((1040, 1392), np.uint8), name="H2B", metadata={METADATA_KEY: {"kind": "image"}}
    )
    layers = ResultLayers(viewer)
    layers.prepare(np.zeros((64, 256), np.float32))  # as the widget does before a run
    _drawn(app)
    dense_above = n - 1 if dense else n + 1
    view = EmbeddingView(layers, dense_above=dense_above)
    meta = {"kind": "embedding", "path": "", "object": "", "positions": [], "colours": {}}
    rng = np.random.default_rng(1)
    times: dict[str, list[float]] = {step: [] for step in STEPS}

    def timed(step: str, action) -> None:
        start = time.perf_counter()
        action()
        _drawn(app)
        times[step].append(time.perf_counter() - start)

    start = time.perf_counter()
    view.prepare(n)  # the widget does this while it computes the features
    _drawn(app)
    prepare = time.perf_counter() - start
    timed("add", lambda: view.show(tables[0], meta))
    for r in range(repeats):
        table = tables[(r + 1) % 2]
        timed("again", lambda table=table: view.show(table, meta))
        cells = rng.choice(n, n // 100, replace=False)
        timed("select 1 %", lambda cells=cells: view.select(cells, spotlight=True))
        timed("recolour", lambda: view.recolour("novelty"))
        view.recolour("condition")
        _drawn(app)
        # the worker computes the map, its unit square and bins; the GUI thread shows them
        other = "umap" if table.method == "pca" else "pca"
        moved = np.ascontiguousarray(table.maps["pca"][:, ::-1])
        unit = unit_square(moved)
        grid, images = density_view(unit, table.colourings, BINS) if dense else (None, None)
        table.add_map(other, moved, unit, grid, images)

        def new_map(table=table, other=other) -> None:
            table.show_map(other)
            view.moved()

        timed("new map", new_map)
        camera = viewer.camera
        timed("zoom", lambda camera=camera: setattr(camera, "zoom", camera.zoom * 1.1))
    out = {step: statistics.median(values) for step, values in times.items() if values}
    out["add"] = times["add"][0]
    out["prepare"] = prepare
    print(json.dumps({"cells": n, "view": view_name, "build_s": build, "times": out}))
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--limit", type=float, default=240.0, help="seconds per size and view")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("CELLS", "VIEW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1], args.repeats)
        return
    print(f"ms until drawn (Xvfb, software OpenGL), median of {args.repeats} runs;")
    print("'layers': adding the density layer, done while the features are computed")
    _print_header()
    for n in args.cells:
        for view in VIEWS:
            command = [sys.executable, __file__, "--child", str(n), view]
            command += ["--repeats", str(args.repeats)]
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=args.limit, check=False
                )
                lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
                row = (
                    json.loads(lines[-1])
                    if lines
                    else {"cells": n, "view": view, "failed": f"exit {done.returncode}"}
                )
            except subprocess.TimeoutExpired:
                row = {"cells": n, "view": view, "failed": f"> {args.limit:.0f} s"}
            _print_row(row)


def _print_header() -> None:
    steps = "".join(f"{s:>11}" for s in STEPS)
    print(f"{'cells':>9}  {'view':<17}{steps}     layers   table (worker)")


def _print_row(row: dict) -> None:
    head = f"{row['cells']:>9,}  {VIEWS[row['view']]:<17}"
    if "failed" in row:
        print(head + f"  did not finish: {row['failed']}", flush=True)
        return
    times = row["times"]
    cells = "".join(f"{1000 * times[s]:>11.0f}" for s in STEPS)
    print(head + cells + f"{1000 * times['prepare']:>11.0f}   {row['build_s']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
