"""Shared bits of the ``cellae`` command tests."""

from __future__ import annotations

import subprocess
import sys

TINY = ["--size", "16", "--architecture", "c4.3r_p2_d16.0s", "--epochs", "2", "--lr", "0.01"]


def one_line_error(err: str, *needles: str) -> None:
    # What a terminal shows: a carriage return (progress bars) overwrites the line.
    shown = [line.split("\r")[-1] for line in err.split("\n")]
    lines = [line for line in shown if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("cellae: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, err)


def run_on_a_full_disk(child: str, *argv: str) -> str:
    """Run Python code ``child`` (which sets its own file-size limit, standing in for a full
    disk, and prints ``ERROR <message>`` then ``DONE``); check that it failed cleanly: no
    crash, no traceback, nothing "ignored" while h5py closed files. Returns its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", child, *argv], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "DONE" in done.stdout
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    return done.stdout


def usage_error(err: str, command: str, *needles: str) -> None:
    """A bad command line, as ``cellae COMMAND: error: ...`` on one line (no usage block);
    ``command`` empty for ``cellae`` itself."""
    lines = [line for line in err.split("\n") if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"cellae {command}: error: ".replace(" :", ":")), err
    assert "Traceback" not in err and "usage:" not in err
    for needle in needles:
        assert needle in lines[0], (needle, err)
