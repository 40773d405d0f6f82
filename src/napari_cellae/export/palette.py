"""The one colour palette: a condition gets the same colour in napari and in saved plots."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["PALETTE", "condition_colours"]

# Okabe and Ito's colour-blind-safe colours (Color Universal Design), black left out (the
# viewer's canvas is black), then grey. matplotlib's tab10 before them put green beside red
# as the third and fourth conditions, which a red-green colour-blind user (one man in
# twelve) cannot tell apart.
PALETTE: tuple[str, ...] = (
    "#56b4e9",  # sky blue
    "#e69f00",  # orange
    "#009e73",  # bluish green
    "#d55e00",  # vermillion
    "#cc79a7",  # reddish purple
    "#f0e442",  # yellow
    "#0072b2",  # blue
    "#7f7f7f",  # grey
)


def condition_colours(conditions: Iterable[str]) -> dict[str, str]:
    """Hex colour per distinct condition, in order of first appearance (cycling after 8).

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
