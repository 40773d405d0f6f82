"""Output destinations a hostile user (or an unlucky machine) picks: a disk that fills up
while a file is written, demo folders holding read-only or odd files, killed demo runs."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from cli_helpers import run_on_a_full_disk

pytestmark = pytest.mark.skipif(
    not hasattr(os, "memfd_create") or sys.platform != "linux",
    reason="the file-size limit that stands in for a full disk is set the Linux way",
)

# The child writes under a file-size limit (RLIMIT_FSIZE): a write beyond it fails with
# EFBIG ("File too large") as a full disk fails with ENOSPC, without mounting anything.
_FULL_DISK_CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path

    import numpy as np

    from napari_cellae.core.crops import CropSet
    from napari_cellae.io.cellh5 import PositionKey

    out = Path(sys.argv[1])
    n = 3000
    rng = np.random.default_rng(0)
    crops = CropSet(
        crops=rng.integers(0, 256, size=(n, 1, 32, 32), dtype=np.uint8),
        positions=[PositionKey("p", "A01", "1")],
        position_index=np.zeros(n, np.int32),
        object_index=np.arange(n, dtype=np.int32),
        label_id=np.arange(1, n + 1, dtype=np.int32),
        time_idx=np.zeros(n, np.int32),
        center_x=np.full(n, 100, np.int32),
        center_y=np.full(n, 100, np.int32),
        bbox=np.tile(np.array([[90, 110, 90, 110]], np.int32), (n, 1)),
        angle=np.full(n, np.nan),
        eccentricity=np.full(n, np.nan),
        class_idx=np.full(n, -1, np.int32),
        origin_y=np.full(n, 84, np.int32),
        origin_x=np.full(n, 84, np.int32),
        object_name="Nuclei",
        channels=[0],
        channel_names=["DNA"],
        source=out.parent / "missing.ch5",
        box=32,
    )
    features = rng.normal(size=(n, 8)).astype(np.float32)

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
    if sys.argv[2] == "stream":
        from napari_cellae.export.explorer_stream import ExplorerWriter

        try:
            with ExplorerWriter(out, None, image_size=(512, 512)) as writer:
                for start in range(0, n, 500):
                    writer.append(crops.subset(np.arange(start, min(n, start + 500))),
                                  features[start:start + 500])
        except ValueError as exc:
            print("ERROR", exc)
    else:
        from napari_cellae.export.explorer import write_explorer_hdf

        try:
            write_explorer_hdf(out, crops, features, None, image_size=(512, 512))
        except ValueError as exc:
            print("ERROR", exc)
    print("DONE")
    """
)


@pytest.mark.parametrize("writer", ["stream", "whole"])
def test_a_disk_that_fills_up_while_an_explorer_file_is_written(tmp_path: Path, writer) -> None:
    # h5py could not close a file whose caches it could not write: the run printed pages of
    # "Exception ignored ... Can't decrement id ref count" tracebacks and then died of a
    # segmentation fault (exit 139), after or even before its one-line error.
    import h5py

    out = tmp_path / "features.hdf"
    with h5py.File(out, "w") as last_week:  # an Explorer file of last week: may be replaced
        last_week.create_dataset("data/features", data=[1.0, 2.0])
    kept = out.read_bytes()
    said = run_on_a_full_disk(_FULL_DISK_CHILD, str(out), writer)
    assert f"ERROR cannot write {out}: File too large" in said
    assert out.read_bytes() == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.hdf"]


def _small_demo(folder: Path):
    from napari_cellae.demo.screen import DEMO_LAYOUT, make_demo

    return make_demo(folder, layout=DEMO_LAYOUT[:2], size=(96, 96), n_frames=1, n_cells=60)


@pytest.mark.parametrize("protected", ["demo_screen.ch5", "demo_screen_mapping.txt"])
def test_make_demo_refuses_a_read_only_file_of_an_earlier_screen(tmp_path, protected) -> None:
    # Both files were renamed over whatever was there, read-only or not (train, encode and
    # hits refuse a read-only output); and a problem with the mapping came to light only
    # after the CellH5 file had been replaced.
    import h5py

    folder = tmp_path / "screen"
    folder.mkdir()
    with h5py.File(folder / "demo_screen.ch5", "w") as earlier:  # an earlier screen's files
        earlier.create_group("sample/0")
    (folder / "demo_screen_mapping.txt").write_text("A01\tscrambled\n")
    before = {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}
    (folder / protected).chmod(0o444)
    with pytest.raises(ValueError) as refused:
        _small_demo(folder)
    assert str(refused.value).startswith(
        f"cannot write {folder / protected}: the file is read-only"
    )
    for name, content in before.items():
        assert (folder / name).read_bytes() == content
    assert sorted(p.name for p in folder.iterdir()) == [
        "demo_screen.ch5",
        "demo_screen_mapping.txt",
    ]


def test_make_demo_refuses_a_folder_where_its_file_goes_before_rendering(tmp_path) -> None:
    folder = tmp_path / "screen"
    (folder / "demo_screen_mapping.txt").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"demo_screen_mapping\.txt: it is a folder"):
        _small_demo(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["demo_screen_mapping.txt"]


def test_a_screen_is_written_under_the_temporary_name_a_later_run_cleans_up(
    tmp_path, monkeypatch
) -> None:
    # write_screen wrapped write_cellh5, itself atomic, in a second temporary name:
    # ".<.demo_screen.ch5.PID.cellae-tmp>.PID.cellae-tmp", which remove_stale_temporaries
    # never matched, so each killed make-demo left a 4 MB hidden file for good.
    from napari_cellae.io import atomic, cellh5_writer

    folder = tmp_path / "screen"
    seen: list[list[str]] = []
    write_position = cellh5_writer._write_position

    def watching(*args, **kwargs):
        seen.append(sorted(p.name for p in folder.iterdir()))
        return write_position(*args, **kwargs)

    monkeypatch.setattr(cellh5_writer, "_write_position", watching)
    ch5, mapping = _small_demo(folder)
    expected = atomic.temporary_name(ch5).name
    assert seen and all(names == [expected] for names in seen), seen
    assert sorted(p.name for p in folder.iterdir()) == [ch5.name, mapping.name]


class _ReadOnly:
    """``os.statvfs`` of a file system mounted read-only (``mount -o remount,ro``)."""

    f_flag, f_bavail, f_frsize = os.ST_RDONLY, 10**6, 4096


@pytest.mark.parametrize("command", ["make-demo", "demo"])
def test_an_output_folder_on_a_read_only_file_system_says_so(
    tmp_path, monkeypatch, capsys, command
) -> None:
    # The folder's mode bits allow writing; the mount does not: "permission denied" sent
    # the user to chmod, which fails there too. (Simulated: root may write anywhere.)
    from napari_cellae.cli import main

    folder = tmp_path / "out"
    folder.mkdir()
    monkeypatch.setattr(os, "statvfs", lambda path: _ReadOnly)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    args = [command, str(folder)] if command == "make-demo" else [command, "--out", str(folder)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err == (
        f"cellae: error: cannot write into folder {folder}: its file system is mounted "
        "read-only; choose a folder on another disk\n"
    )
    assert list(folder.iterdir()) == []
