"""Tests for napari_cellae.io.hdf5: link loops, dangling links and damage named clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import damage_chunk
from napari_cellae.io.hdf5 import (
    CellH5Error,
    get_object,
    link_trouble,
    open_read_only,
    read_table,
)
from napari_cellae.io.storage import virtual_trouble


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    """One file with every kind of broken link, and a second file for external loops."""
    path = tmp_path / "links.h5"
    with h5py.File(path, "w") as f:
        f["group/table"] = np.arange(4)
        f["group/self"] = h5py.SoftLink("/group/self")
        f["group/relative_self"] = h5py.SoftLink("relative_self")
        f["x"] = h5py.SoftLink("/y")
        f["y"] = h5py.SoftLink("/x")
        f["through_x"] = h5py.SoftLink("/x/deeper")
        f["fine"] = h5py.SoftLink("/group/table")
        f["to_other"] = h5py.ExternalLink("other.h5", "/back")
        f["dangling"] = h5py.ExternalLink("gone.h5", "/data")
        f["not_hdf5"] = h5py.ExternalLink("notes.txt", "/data")
        f["ext_self"] = h5py.ExternalLink("links.h5", "/ext_self")
        f["mixed"] = h5py.ExternalLink("links.h5", "/mixed_soft")
        f["mixed_soft"] = h5py.SoftLink("/mixed")
        for i in range(20):  # a long chain without a loop
            f[f"chain{i}"] = h5py.SoftLink(f"/chain{i + 1}")
        f["chain20"] = np.zeros(1)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["back"] = h5py.ExternalLink("links.h5", "/to_other")
    (tmp_path / "notes.txt").write_text("not HDF5")
    return path


def _error(path: Path, name: str) -> str:
    with h5py.File(path, "r") as f, pytest.raises(CellH5Error) as info:
        get_object(f, name, path, f"the thing {name}")
    message = str(info.value)
    assert message.startswith(f"{path}: the thing {name}")
    return message


def test_soft_link_to_itself(linked: Path) -> None:
    message = _error(linked, "group/self")
    assert "soft link /group/self in links.h5 points to itself (a link loop)" in message
    assert "soft link /group/relative_self" in _error(linked, "group/relative_self")


def test_soft_links_in_a_circle_also_behind_a_path(linked: Path) -> None:
    assert "form a loop: /x -> /y -> /x" in _error(linked, "x")
    assert "form a loop: /x -> /y -> /x" in _error(linked, "through_x")


def test_external_link_loop_is_not_called_a_missing_file(linked: Path) -> None:
    message = _error(linked, "to_other")
    assert "external links form a loop: links.h5:/to_other -> other.h5:/back" in message
    assert "missing" not in message


def test_external_link_into_its_own_file(linked: Path) -> None:
    message = _error(linked, "ext_self")
    assert "the external link /ext_self in links.h5 points to itself (a link loop)" in message
    message = _error(linked, "mixed")
    assert "soft and external links in links.h5 form a loop: /mixed -> /mixed_soft" in message


def test_too_long_a_chain(linked: Path) -> None:
    assert "more than 16 links in a row starting at /chain0" in _error(linked, "chain0")
    with h5py.File(linked, "r") as f:  # within HDF5's limit: opens
        assert get_object(f, "chain10", linked, "x").shape == (1,)


def test_dangling_and_unreadable_external_links(linked: Path) -> None:
    message = _error(linked, "dangling")
    assert "external link /dangling in links.h5 points to 'gone.h5', a missing file" in message
    assert "beside the master file" in message
    assert "cannot be read as HDF5" in _error(linked, "not_hdf5")


def test_external_link_to_a_folder(tmp_path: Path) -> None:
    # A folder where the part file should be was called "a missing file".
    (tmp_path / "part.ch5").mkdir()
    path = tmp_path / "master.h5"
    with h5py.File(path, "w") as f:
        f["pos"] = h5py.ExternalLink("part.ch5", "/pos")
    assert "points to 'part.ch5', a folder, not a file" in _error(path, "pos")


def test_external_link_into_a_file_without_its_path(tmp_path: Path) -> None:
    # A part file copied over another's name: it is there, but holds another position.
    # The message said the master lacked the position, naming neither the link nor the part.
    with h5py.File(tmp_path / "part.h5", "w") as f:
        f["other/position"] = np.arange(3)
    master = tmp_path / "master.h5"
    with h5py.File(master, "w") as f:
        f["pos"] = h5py.ExternalLink("part.h5", "/wanted/position")
        f["fine"] = h5py.ExternalLink("part.h5", "/other")
    message = _error(master, "pos")
    assert "points to 'part.h5', which has no /wanted/position" in message
    with h5py.File(master, "r") as f:  # optional objects inside a linked group stay optional
        assert get_object(f, "fine/nothing", master, "x", required=False) is None


def test_missing_and_working_objects(linked: Path) -> None:
    assert "is missing (/group/nothing)" in _error(linked, "group/nothing")
    with h5py.File(linked, "r") as f:
        assert get_object(f, "group/nothing", linked, "x", required=False) is None
        assert get_object(f, "fine", linked, "x")[()].tolist() == [0, 1, 2, 3]
        assert link_trouble(f, "group/nothing") is None
        assert link_trouble(f["group"], "self") is not None


def test_read_table(linked: Path, tmp_path: Path) -> None:
    with h5py.File(linked, "r") as f:
        np.testing.assert_array_equal(read_table(f, "group/table", linked, "t"), np.arange(4))
        assert read_table(f, "group/nothing", linked, "t") is None
        with pytest.raises(CellH5Error, match=r"links\.h5: t \(x\) cannot be opened: .*loop"):
            read_table(f, "x", linked, "t")
    path = tmp_path / "compressed.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("table", data=np.arange(4096), chunks=(4096,), compression="gzip")
    damage_chunk(path, "table", (0,))
    with (
        h5py.File(path, "r") as f,
        pytest.raises(CellH5Error, match=r"compressed\.h5: centres \(table\) is damaged"),
    ):
        read_table(f, "table", path, "centres")
    # A small file can declare more unwritten rows than any memory holds (MemoryError).
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("table", shape=(10**13,), dtype="<i8", chunks=(1024,))
    with (
        h5py.File(path, "r") as f,
        pytest.raises(CellH5Error, match=r"huge\.h5: t \(table\) declares 10000000000000 rows"),
    ):
        read_table(f, "table", path, "t")
    # Past any array's size (more than 2**63 bytes) numpy raises ValueError, not MemoryError.
    with h5py.File(path := tmp_path / "past.h5", "w") as f:
        f.create_dataset("table", shape=(2**40, 2**40), dtype="<i8", chunks=(1, 1024))
    with h5py.File(path, "r") as f, pytest.raises(CellH5Error, match=r"past\.h5: t \(table\) dec"):
        read_table(f, "table", path, "t")


def test_open_read_only(tmp_path: Path, linked: Path) -> None:
    with open_read_only(linked) as f:
        assert f.mode == "r"
    text = tmp_path / "plain.ch5"
    text.write_text("hello")
    with pytest.raises(CellH5Error, match="not an HDF5 file"):
        open_read_only(text)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(linked.read_bytes()[:1000])
    with pytest.raises(CellH5Error, match="damaged or truncated"):
        open_read_only(truncated)


def test_files_locked_by_a_writer(tmp_path: Path) -> None:
    # A part file still being written: its lock was reported as "cannot be read as HDF5".
    part, master = tmp_path / "part.h5", tmp_path / "master.h5"
    with h5py.File(part, "w") as f:
        f["pos"] = np.arange(3)
    with h5py.File(master, "w") as f:
        f["pos"] = h5py.ExternalLink("part.h5", "/pos")
    holder = (
        "import h5py, sys, time; f = h5py.File(sys.argv[1], 'a'); print(1, flush=True);"
        " time.sleep(60)"
    )
    writer = subprocess.Popen([sys.executable, "-c", holder, str(part)], stdout=subprocess.PIPE)
    try:
        writer.stdout.readline()
        trouble = _error(master, "pos")
        assert "points to 'part.h5'" in trouble
        assert "locked by a program that is writing it" in trouble
        with pytest.raises(CellH5Error, match="locked by a program that is writing it"):
            open_read_only(part)
    finally:
        writer.kill()
        writer.wait()


def test_file_systems_that_refuse_locks(tmp_path: Path, monkeypatch) -> None:
    # Where the file system refuses locks (errno 38) and HDF5 insists on them, no program
    # holds the file: say so, and how to open it, rather than "locked by a writer".
    path = tmp_path / "screen.ch5"
    with h5py.File(path, "w") as f:
        f["pos"] = np.arange(3)

    def refuse(*args, **kwargs):
        raise OSError(
            38,
            "Unable to synchronously open file (unable to lock file, errno = 38, error message"
            " = 'Function not implemented')",
        )

    monkeypatch.setattr(h5py, "File", refuse)
    with pytest.raises(CellH5Error, match="file system refused HDF5's file lock") as caught:
        open_read_only(path)
    assert str(path) in str(caught.value)
    assert "HDF5_USE_FILE_LOCKING=FALSE" in str(caught.value)
    assert "writing it" not in str(caught.value)


def test_a_file_the_user_may_not_read(tmp_path: Path, monkeypatch) -> None:
    # h5py's words (as a user without read permission gets them; root reads any file)
    path = tmp_path / "screen.ch5"
    path.write_bytes(b"")
    words = (
        "Unable to determine if file is accessible as hdf5 (unable to open file: name = "
        f"'{path}', errno = 13, error message = 'Permission denied', flags = 0, o_flags = 0)"
    )

    def refuse(name):
        raise PermissionError(13, words)

    monkeypatch.setattr(h5py, "is_hdf5", refuse)
    with pytest.raises(CellH5Error, match=rf"^{path}: cannot be read \(permission denied\)$"):
        open_read_only(path)


def test_virtual_datasets_whose_sources_are_gone(tmp_path: Path) -> None:
    # HDF5 reads a missing source as zeros without an error: a blank image, unsaid.
    with h5py.File(tmp_path / "src.h5", "w") as f:
        f["pixels"] = np.arange(6, dtype=np.uint8)
        f["other"] = np.arange(6, dtype=np.uint8)
    path = tmp_path / "vds.h5"
    with h5py.File(path, "w") as f:
        f["plain"] = np.arange(6)
        for name, source in [("ok", "pixels"), ("wrong", "nothing"), ("self", "/plain")]:
            layout = h5py.VirtualLayout(shape=(6,), dtype=np.uint8)
            layout[:] = h5py.VirtualSource("." if name == "self" else "src.h5", source, (6,))
            f.create_virtual_dataset(name, layout, fillvalue=0)
    with h5py.File(path, "r") as f:
        assert virtual_trouble(f["plain"]) is None
        assert virtual_trouble(f["ok"]) is None
        assert virtual_trouble(f["self"]) is None
        assert "has no dataset nothing" in virtual_trouble(f["wrong"])
    (tmp_path / "src.h5").unlink()
    with h5py.File(path, "r") as f:
        assert f["ok"][()].tolist() == [0] * 6  # what HDF5 gives without a word
        assert "source file 'src.h5' is missing" in virtual_trouble(f["ok"])


def test_dangling_soft_links_are_named(tmp_path: Path) -> None:
    """A soft link to nothing passed for an absent table, so a position's label images or
    a file's class labels vanished without a word, where a dangling external link was
    refused."""
    path = tmp_path / "soft.h5"
    with h5py.File(path, "w") as f:
        f["group/table"] = np.arange(3)
        f["dangling"] = h5py.SoftLink("/does/not/exist")
        f["group/relative"] = h5py.SoftLink("nothing")
        f["to_dangling"] = h5py.SoftLink("/dangling")
        f["fine"] = h5py.SoftLink("/group")
    message = _error(path, "dangling")
    assert "the soft link /dangling in soft.h5 points to /does/not/exist, which is not" in message
    assert "/group/relative in soft.h5 points to nothing, which" in _error(path, "group/relative")
    assert "/dangling in soft.h5 points to /does/not/exist" in _error(path, "to_dangling")
    with h5py.File(path, "r") as f:
        with pytest.raises(CellH5Error, match="which is not there"):
            get_object(f, "dangling", path, "x", required=False)
        with pytest.raises(CellH5Error, match="which is not there"):
            read_table(f, "dangling", path, "x")
        # an optional table missing inside a linked group stays optional
        assert get_object(f, "fine/nothing", path, "x", required=False) is None
        assert read_table(f, "fine/nothing", path, "x") is None


def test_tables_in_whose_place_stands_a_group_or_a_dataset(tmp_path: Path) -> None:
    """read_table took a group in a table's place, or a dataset in place of a group on its
    path, for an absent table: /definition/image/region as a group, or a dataset
    /definition/feature/<obj>, dropped the region rows or the class labels without a word."""
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as f:
        f.create_group("image/region")
        f["feature/cells"] = 1
        f["fine/other"] = np.arange(3)
    with h5py.File(path, "r") as f:
        with pytest.raises(CellH5Error) as info:
            read_table(f, "image/region", path, "/definition")
        assert str(info.value) == (
            f"{path}: /definition: image/region is an HDF5 group, not a table"
        )
        with pytest.raises(CellH5Error, match="feature/cells is a dataset, not the group of fe"):
            read_table(f, "feature/cells/object_classification/class_labels", path, "t")
        assert read_table(f, "fine/absent", path, "t") is None
        assert read_table(f, "absent/table", path, "t") is None


def test_a_virtual_table_whose_source_is_gone_is_refused_not_read_as_zeros(
    tmp_path: Path,
) -> None:
    # Only image/channel was checked: an object table or centre table made of a virtual
    # dataset whose source had moved read as zeros (every label id 0, every centre at the
    # corner) and the run went on with a warning about label ids.
    table = np.array([(0, 1), (0, 2), (1, 1)], dtype=[("time_idx", "<i4"), ("obj_label_id", "<i4")])
    with h5py.File(tmp_path / "src.h5", "w") as f:
        f["rows"] = table
    path = tmp_path / "vds.h5"
    with h5py.File(path, "w") as f:
        layout = h5py.VirtualLayout(shape=(3,), dtype=table.dtype)
        layout[:] = h5py.VirtualSource("src.h5", "rows", (3,), dtype=table.dtype)
        f.create_virtual_dataset("objects", layout)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(read_table(f, "objects", path, "objects"), table)
    (tmp_path / "src.h5").unlink()
    with h5py.File(path, "r") as f, pytest.raises(CellH5Error) as e:
        read_table(f, "objects", path, "object table")
    assert str(e.value).startswith(
        f"{path}: object table (objects) is a virtual dataset and its source file 'src.h5'"
        f" is missing ({tmp_path / 'src.h5'}); HDF5 would read its values as zeros"
    )


def test_a_table_compressed_with_a_filter_not_installed(tmp_path: Path) -> None:
    # Called damaged before: HDF5 names only the folder where it looked for the plugin.
    path = tmp_path / "plugin.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("table", data=np.arange(4096), chunks=(1024,), compression="lzf")
    raw = bytearray(path.read_bytes())
    i = raw.index(b"lzf\0")
    assert raw[i - 8 : i - 6] == b"\0}"  # the filter's id, 32000, before its name
    raw[i - 8] = 0xFF  # 32255: no HDF5 has it, as one lacks a plugin (blosc, bitshuffle)
    path.write_bytes(bytes(raw))
    with h5py.File(path, "r") as f, pytest.raises(CellH5Error) as e:
        read_table(f, "table", path, "centres")
    text = str(e.value)
    assert text.startswith(f"{path}: centres (table) cannot be read: it is compressed with")
    assert "filter 'lzf' (id 32255), which is not installed here" in text
    assert "damaged" not in text


def test_a_table_never_written_is_refused_not_read_as_zeros(tmp_path: Path) -> None:
    # Created but never written (a writer that stopped): HDF5 reads its fill value, zeros,
    # without an error: every centre at (0, 0), every label id 0, every box a corner pixel.
    path = tmp_path / "unwritten.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("chunked", shape=(15,), dtype=[("x", "<i4"), ("y", "<i4")], chunks=True)
        f.create_dataset("contiguous", shape=(15,), dtype="<i4")
        f.create_dataset("part", shape=(15,), dtype="<i4", chunks=(5,))[:5] = 7  # one chunk
        f.create_dataset("empty", shape=(0,), dtype="<i4", chunks=(5,), maxshape=(None,))
    with h5py.File(path, "r") as f:
        for name in ("chunked", "contiguous"):
            with pytest.raises(CellH5Error) as e:
                read_table(f, name, path, "centres")
            assert str(e.value).startswith(
                f"{path}: centres ({name}) was never written: the file holds no values for its"
                " 15 row(s)"
            )
        np.testing.assert_array_equal(read_table(f, "part", path, "t"), [7] * 5 + [0] * 10)
        assert read_table(f, "empty", path, "t").shape == (0,)
