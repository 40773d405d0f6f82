"""Tests for napari_cellae.io.cellh5_writer: what it writes reads back; writes are atomic."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from cli_helpers import run_on_a_full_disk
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


_FULL_DISK_CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path

    import numpy as np

    from napari_cellae.io.cellh5_writer import ObjectData, PositionData, write_cellh5

    out, split = Path(sys.argv[1]), sys.argv[2] == "split"
    rng = np.random.default_rng(0)
    positions = []
    for well in ("A01", "A02", "A03"):
        image = rng.integers(0, 4096, (1, 3, 1, 400, 400), dtype=np.uint16)  # ~700 KB packed
        n = 5
        objects = ObjectData(
            time_idx=np.zeros(n, np.int32), label_id=np.arange(1, n + 1, dtype=np.int32),
            center_x=np.full(n, 50, np.int32), center_y=np.full(n, 50, np.int32),
            bbox=np.tile(np.array([[40, 60, 40, 60]], np.int32), (n, 1)),
        )
        positions.append(PositionData("p", well, "1", image, {"Nuclei": objects}))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, resource.RLIM_INFINITY))
    try:
        write_cellh5(out, positions, ["DNA"], {"Nuclei": 0}, split_files=split)
    except ValueError as exc:
        print("ERROR", exc)
    print("DONE")
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="a file-size limit stands in for a full disk")
@pytest.mark.parametrize("split", ["one", "split"])
def test_a_disk_that_fills_up_gives_one_error_and_keeps_the_old_file(
    tmp_path: Path, split: str
) -> None:
    # h5py could not close a file whose caches it could not write: tracebacks, then a
    # segmentation fault (make-demo and make-screen on a full disk).
    out = tmp_path / "screen.ch5"
    with h5py.File(out, "w") as last_week:  # a CellH5 file of last week: may be replaced
        last_week.create_group("sample/0")
    kept = out.read_bytes()
    said = run_on_a_full_disk(_FULL_DISK_CHILD, str(out), split)
    assert "ERROR cannot write" in said and "File too large" in said
    assert out.read_bytes() == kept
    assert not [p for p in tmp_path.iterdir() if "tmp" in p.name]
