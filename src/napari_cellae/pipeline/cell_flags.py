"""Yes/no columns of a cell table (AnnData ``obs``), read one way everywhere.

Hit lists read ``control``, ``novel`` and ``no_signal``, novelty scoring and the cells
file's map ``no_signal``; here is the one reading, which refuses what is not True/False
(or 1/0). Its own module, so that hit lists and novelty scoring need not import each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["without_signal", "yes_no"]


def yes_no(obs: pd.DataFrame, column: str, source: str) -> np.ndarray:
    """A yes/no column as bools: True/False, or 0/1 numbers, for every cell.

    Anything else is refused: numpy takes the text 'False' and NaN for True, which made
    every cell a control (or novel) without a word.
    """
    import pandas as pd

    values = obs[column]
    if pd.api.types.is_bool_dtype(values) and not values.isna().any():
        return values.to_numpy(bool)
    if pd.api.types.is_numeric_dtype(values) and values.isin([0, 1]).all():
        return values.to_numpy(bool)
    bad = values[~values.isin([True, False]).fillna(False).astype(bool)]
    shown = ", ".join(dict.fromkeys(map(repr, bad.head(50).tolist())))
    raise ValueError(
        f"{source}: column {column} must be True or False (or 1 or 0) for every cell; found"
        f" {shown} ({len(bad)} cell(s){', as text' if bad.map(type).eq(str).any() else ''})"
    )


def without_signal(obs: pd.DataFrame, source: str = "the cell table") -> np.ndarray:
    """The cells marked ``no_signal`` (crops of a channel of one value; none where the
    table has no such column, as files written before it)."""
    if "no_signal" not in obs:
        return np.zeros(len(obs), bool)
    return yes_no(obs, "no_signal", source)
