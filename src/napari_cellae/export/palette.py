"""The one colour palette: a condition gets the same colour in napari and in saved plots."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["PALETTE", "condition_colours"]

# matplotlib's tab10, in its own order (colour-blind friendlier than random hues).
PALETTE: tuple[str, ...] = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def condition_colours(conditions: Iterable[str]) -> dict[str, str]:
    """Hex colour per distinct condition, in order of first appearance (cycling after 10).

    Parameters
    ----------
    conditions : iterable of str
        Condition of every cell (repeats allowed).

    Returns
    -------
    dict
        ``{condition: "#rrggbb"}``.
    """
    unique = dict.fromkeys(str(c) for c in conditions)
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(unique)}
