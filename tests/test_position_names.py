"""Position names in mapping files (napari_cellae.io.position_names); whole mapping files
are tested in test_mapping.py."""

from __future__ import annotations

from napari_cellae.io.position_names import (
    canonical,
    canonical_plate,
    position_problem,
    split_position,
)


def test_wells_sites_and_plates_compare_as_written() -> None:
    assert split_position("C03_01", None) == ("C03", "01")
    assert split_position("0_0013", None) == ("0", "0013")
    assert split_position("C03", "2") == ("C03", "2")
    assert canonical("c3", "0038") == canonical("Ｃ03", "38") == ("C3", "38")
    assert canonical("C03", None) == ("C3", None)
    assert canonical_plate(" Plate_1 ") == canonical_plate("plate_1") == "plate_1"
    assert canonical_plate("") is None


def test_a_row_whose_columns_name_two_positions_is_named() -> None:
    assert position_problem("C03_01", "C03", "01", "", "C03_01") is None
    assert "Site column says '02'" in position_problem("C03_01", "C03", "01", "02", "")
    assert "another position" in position_problem("C03", "C03", "1", "1", "C04_1")
