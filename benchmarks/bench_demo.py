"""Wall time of ``cellae demo`` (goal: under two minutes on two CPU cores).

Runs the real command in a fresh process (import time included, as a user sees it) and
prints the wall time next to the summary the command printed. Extra arguments are
passed on to ``cellae demo``::

    python benchmarks/bench_demo.py [--repeat N] [-- --epochs 20 ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

GOAL_S = 120.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs (default 1)")
    parser.add_argument("extra", nargs="*", help="arguments for `cellae demo`")
    args = parser.parse_args(argv)

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    times = []
    for run in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, "-m", "napari_cellae", "demo", "--out", out, "-q"]
            t0 = time.perf_counter()
            proc = subprocess.run([*cmd, *args.extra], capture_output=True, text=True)
            elapsed = time.perf_counter() - t0
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return proc.returncode
            times.append(elapsed)
            print(f"run {run + 1}: {elapsed:.1f} s")
            print("  " + proc.stdout.strip().replace("\n", "\n  "))
    best = min(times)
    verdict = "OK" if best < GOAL_S else "SLOWER than the goal"
    print(
        f"cellae demo: best {best:.1f} s, median {sorted(times)[len(times) // 2]:.1f} s over "
        f"{len(times)} run(s) on {cpus} CPU(s); goal < {GOAL_S:.0f} s: {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
