"""Lists of names in messages: the first few, and how many more."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["first_few", "position_name"]

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


def position_name(key: object, with_plate: bool) -> str:
    """A position as a message names it: ``C03_1``, or ``plate1/C03_1`` in a run of several
    plates (``key`` a :class:`~napari_cellae.io.positions.PositionKey`; of plates named
    alike, the plate as :func:`~napari_cellae.pipeline.plates.distinct_keys` renamed it)."""
    return f"{key.shown_plate}/{key.label}" if with_plate else key.label  # type: ignore[attr-defined]
