"""Checked reading of object tables (napari_cellae.io.object_checks); the checks' messages
on whole files are tested in test_objects.py."""

from __future__ import annotations

import numpy as np

from napari_cellae.io.object_checks import shown_number, shown_rows


def test_numbers_and_rows_are_shown_as_stored() -> None:
    assert shown_number(np.float64(80.7)) == "80.7" and shown_number(np.float32(80.0)) == "80"
    assert shown_number(np.float64(1e300)) == "1e+300"
    assert shown_number(np.uint64(2**63)) == str(2**63)  # exactly, not via float
    assert shown_rows(np.arange(3)) == "0, 1, 2"
    assert shown_rows(np.arange(20)) == "0, 1, 2, 3, 4, 5, 6, 7 ..."
