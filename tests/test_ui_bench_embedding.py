"""benchmarks/bench_embedding_layer.py still runs (tiny sizes): it drives the widget's view."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_embedding_layer.py"


def test_bench_embedding_layer_prints_both_views() -> None:
    # the display is pytest-xvfb's, inherited through the environment
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--cells", "3000", "--repeats", "1", "--limit", "300"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any("select 1 %" in line and "recolour" in line for line in lines)
    rows = [line for line in lines if line.strip().startswith("3,000")]
    assert len(rows) == 2, done.stdout
    assert "points only" in rows[0] and "density + sample" in rows[1]
    assert not any("did not finish" in row for row in rows), done.stdout
