"""The one colour palette: a condition gets the same colour in napari and in saved plots."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PALETTE", "category_colours", "condition_colours"]

# Hex colours matplotlib (scanpy) reads; a CellH5 file's class colour may be anything.
_HEX = re.compile(r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")

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


def category_colours(values: pd.Series, given: Mapping[str, str] | None = None) -> list[str]:
    """One colour per category of a categorical column, in the categories' order.

    As scanpy reads ``uns["<column>_colors"]``, and with the colours napari gives the same
    cells: the palette in order of first appearance among the cells (not the categories'
    order), then ``given`` where it holds a hex colour. Categories no cell has come last.

    Parameters
    ----------
    values : pandas.Series
        A categorical column, one value per cell.
    given : mapping of str to str, optional
        Colour per category (a classifier's own class colours).

    Returns
    -------
    list of str
        Hex colours, ``len(values.cat.categories)`` of them.
    """
    import pandas as pd

    categories = [str(c) for c in values.cat.categories]
    seen = pd.unique(values.cat.codes[values.cat.codes >= 0])
    order = [categories[i] for i in seen] + categories  # unused ones after the others
    colours = condition_colours(order)
    colours.update({str(k): str(v) for k, v in (given or {}).items() if _HEX.fullmatch(str(v))})
    return [colours[c] for c in categories]
