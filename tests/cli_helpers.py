"""Shared bits of the ``cellae`` command tests."""

from __future__ import annotations

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
