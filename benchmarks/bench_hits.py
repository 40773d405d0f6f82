"""``cellae hits`` on large cells files: time and peak memory against the number of cells.

Prints, side by side in one run, for a synthetic ``.h5ad`` of ``--cells`` cells and of a
quarter of them (1,536 positions, ``--features`` float32 features, stored novelty scores):

- ``whole file``: the file read with its features (``read_cells(path)``), as ``cellae hits``
  did; then the hit list grouped on every cell's texts (:func:`per_cell_groups`, as
  ``hit_list`` did);
- ``cellae hits``: the command as it is: the cell table alone, the features left on disk,
  each column's distinct values made text once.

Each is run in a fresh process; peak memory is that process's VmHWM, time its wall time
(the imports included). The growth columns divide the large file's numbers by the small
one's: 4.0 is linear. Both must write the same hit table.

Run: ``python benchmarks/bench_hits.py [--cells 1000000] [--features 258]``. Timings on a
shared machine are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_scale import peak_rss_mib

WELLS = 384
SITES = 4


def make_cells(path: Path, n: int, features: int, seed: int = 0) -> Path:
    """A cells file as ``cellae encode`` writes it: a fifth of the wells controls."""
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(seed)
    position = np.sort(rng.integers(0, WELLS * SITES, n))
    well_of = np.array([f"{'ABCDEFGHIJKLMNOP'[w // 24]}{w % 24 + 1:02d}" for w in range(WELLS)])
    well = well_of[position // SITES]
    label = np.char.add(np.char.add(well, "_"), (position % SITES + 1).astype(str))
    control = position // SITES % 5 == 0
    novelty = rng.normal(size=n).astype(np.float32) + (position // SITES % 7 == 3)
    obs = pd.DataFrame(
        {
            "plate": pd.Categorical(np.full(n, "plate1")),
            "well": pd.Categorical(well),
            "site": pd.Categorical((position % SITES + 1).astype(str)),
            "position": pd.Categorical(label),
            "object_index": np.arange(n, dtype=np.int32),
            "condition": pd.Categorical(np.where(control, "scrambled", well)),
            "group": pd.Categorical(np.where(control, "neg", "target")),
            "control": control,
            "novelty": novelty,
            "novel": novelty > np.percentile(novelty[control], 80),
        },
        index=pd.Index([f"plate1/{p}/{i}" for i, p in enumerate(label)], dtype=str),
    )
    x = rng.normal(size=(n, features)).astype(np.float32)
    ad.AnnData(x, obs=obs).write_h5ad(path)
    return path


def per_cell_groups(obs, by: str = "position"):
    """The hit list's grouping as it was: every cell's plate, position, well and condition
    made text and stripped, cell by cell (the reference for ``hit_list``)."""
    import pandas as pd

    from napari_cellae.core.hit_statistics import hit_table
    from napari_cellae.pipeline.hits import _controls

    columns = [c for c in ("plate", "position", "well", "condition") if c in obs]
    for column in ("position", "well"):  # its check of blank names, cell by cell
        assert not (obs[column].astype(str).str.strip() == "").any()
    text = {c: obs[c].astype(str).str.strip() for c in columns}
    key = text["position"] if by == "position" else text["condition"]
    if by == "position" and "plate" in text:
        key = text["plate"] + "/" + key
    groups, labels = pd.factorize(key)
    well_key = text["well"] if "plate" not in text else text["plate"] + "/" + text["well"]
    novel, scores = obs["novel"].to_numpy(bool), obs["novelty"].to_numpy(np.float64)
    controls = _controls(obs, "neg", "bench")
    wells = pd.factorize(well_key)[0]
    table = hit_table(novel, groups, controls, [str(v) for v in labels], wells, scores)
    per_group = pd.DataFrame(text).assign(_key=key.to_numpy())
    described = per_group.groupby("_key", sort=False)[columns].agg(
        lambda values: ",".join(dict.fromkeys(values))
    )
    out = described.loc[table["group"]].reset_index(drop=True)
    table = pd.concat([table.drop(columns="group"), out], axis=1)
    first = ["rank", *columns]
    return table[first + [c for c in table.columns if c not in first]]


def child(mode: str, path: Path, out: Path) -> None:
    """One run in this fresh process: prints its peak memory."""
    if mode == "cellae hits":
        from napari_cellae.cli import main

        assert main(["hits", str(path), "--out", str(out), "-q"]) == 0
    else:  # the whole file, as cellae hits read it before
        from napari_cellae.export.anndata import read_cells
        from napari_cellae.io.atomic import atomic_output

        table = per_cell_groups(read_cells(path).obs)
        with atomic_output(out) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
    print(f"{peak_rss_mib():.0f}")


def measure(mode: str, path: Path, out: Path) -> tuple[float, float]:
    """(seconds, peak MiB) of one run in a fresh process."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - t0, float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=258)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, path, out = args.child
        child(mode, Path(path), Path(out))
        return
    modes = ("whole file", "cellae hits")
    sizes = (max(args.cells // 4, 100), args.cells)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results: dict[tuple[str, int], tuple[float, float]] = {}
        for n in sizes:
            cells = make_cells(folder / f"cells_{n}.h5ad", n, args.features)
            size = cells.stat().st_size / 2**20
            print(f"{n:,} cells, {args.features} features ({size:.0f} MiB file)", flush=True)
            tables = []
            for mode in modes:
                out = folder / f"hits_{mode.replace(' ', '_')}_{n}.csv"
                results[mode, n] = measure(mode, cells, out)
                tables.append(out.read_text())
            print(f"  same hit table: {'yes' if tables[0] == tables[1] else 'NO'}")
            cells.unlink()
        small, large = sizes
        print(f"\n{'':<13}{'cells':>11}{'time':>9}{'peak':>10}")
        for mode in modes:
            for n in sizes:
                seconds, peak = results[mode, n]
                print(f"{mode:<13}{n:>11,}{seconds:>8.1f}s{peak:>7.0f} MiB")
            (t0, m0), (t1, m1) = results[mode, small], results[mode, large]
            print(f"{'':<13}{'growth':>11}{t1 / t0:>8.1f}x{m1 / m0:>7.1f}x")
        (_, whole), (_, hits) = results["whole file", large], results["cellae hits", large]
        print(f"\ncellae hits at {large:,} cells: {whole / hits:.1f}x less memory at its peak")


if __name__ == "__main__":
    main()
