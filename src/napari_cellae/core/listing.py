"""Lists of names in messages: the first few, and how many more."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["first_few"]

NAMED = 5  # names a message lists before "and N more"


def first_few(names: Sequence[str], shown: int = NAMED) -> str:
    """``"A01, A02, A03 and 4 more"``: the first ``shown`` names, and the count of the rest.

    Parameters
    ----------
    names : sequence of str
    shown : int
        Names listed at most.

    Returns
    -------
    str
    """
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
