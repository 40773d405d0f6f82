"""core.listing: the first few names of a message, and how many more."""

from __future__ import annotations

from napari_cellae.core.listing import first_few


def test_first_few_names_and_counts_the_rest() -> None:
    names = [f"A0{i}" for i in range(1, 9)]
    assert first_few(names) == "A01, A02, A03, A04, A05 and 3 more"
    assert first_few(names[:5]) == "A01, A02, A03, A04, A05"
    assert first_few(names, shown=2) == "A01, A02 and 6 more"
    assert first_few(["B02"]) == "B02" and first_few([]) == ""
