"""The benchmark scripts still run (tiny sizes): they call internals that may move."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_crops_runs_and_checks_equality() -> None:
    out = run(
        "bench_crops.py",
        "--objects",
        "400",
        "--positions",
        "2",
        "--frames",
        "2",
        "--camera-objects",
        "48",
    )
    assert "identical crops from both methods: yes" in out
    assert "contiguous, uncompressed" in out and "CellCognition: gzip, 1 chunk/frame" in out


def test_bench_quality_runs() -> None:
    out = run("bench_quality.py", "--epochs", "1", "--quiet")
    assert "learned (autoencoder)" in out and "hand-crafted" in out


def test_bench_training_runs() -> None:
    out = run("bench_training.py", "--batches", "1", "--repeats", "1", "--memory-crops", "3000")
    assert "ratio ours / plain" in out and "shared" in out
