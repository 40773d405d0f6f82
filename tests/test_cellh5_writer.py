"""Tests for napari_cellae.io.cellh5_writer: what it writes reads back; writes are atomic."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import synthetic_position
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5


def _positions() -> list:
    return [synthetic_position("A01", "1", n_frames=1), synthetic_position("B01", "1", n_frames=1)]


@pytest.mark.parametrize("flavour", ["cellcognition", "cellprofiler"])
def test_split_files_link_to_complete_parts(tmp_path: Path, flavour: str) -> None:
    path = write_cellh5(
        tmp_path / "_all_positions.ch5",
        _positions(),
        ["dna"],
        {"primary__primary": 0},
        flavour=flavour,
        split_files=True,
    )
    names = sorted(p.name for p in tmp_path.iterdir())
    assert not [n for n in names if n.endswith(".cellae-tmp")]
    assert len(names) == 3
    with h5py.File(path, "r") as master:
        link = master.get("definition", getlink=True)
        assert isinstance(link, h5py.ExternalLink)
        assert Path(link.filename).is_absolute() == (flavour == "cellprofiler")
    with CellH5(path) as ch5:
        assert [p.well for p in ch5.positions] == ["A01", "B01"]
        np.testing.assert_array_equal(ch5.image(ch5.positions[1])[()], _positions()[1].image)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "screen.ch5"
    write_cellh5(target, _positions()[:1], ["dna"], {"primary__primary": 0})
    before = target.read_bytes()
    bad = synthetic_position("C01", "1", n_frames=1)
    bad.image = bad.image[0]  # 4-D: refused while writing
    with pytest.raises(ValueError, match="must be 5-D"):
        write_cellh5(target, [*_positions(), bad], ["dna"], {"primary__primary": 0})
    assert target.read_bytes() == before
    with pytest.raises(ValueError, match="must be 5-D"):
        write_cellh5(tmp_path / "new.ch5", [bad], ["dna"], {"primary__primary": 0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["screen.ch5"]


def test_output_problems_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing.*does not exist"):
        write_cellh5(tmp_path / "missing" / "x.ch5", _positions(), ["dna"], {"primary__primary": 0})
    with pytest.raises(ValueError, match="is a folder"):
        write_cellh5(tmp_path, _positions(), ["dna"], {"primary__primary": 0})
