"""Tests for napari_cellae.io.atomic: outputs refused when they are inputs, atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from napari_cellae.cli import main
from napari_cellae.io.atomic import (
    atomic_output,
    check_output,
    remove_stale_temporaries,
    temporary_name,
)


def test_output_equal_to_an_input_is_refused_by_any_name(tmp_path: Path) -> None:
    source = tmp_path / "screen.ch5"
    source.write_bytes(b"data")
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link.ch5"
    link.symlink_to(source)
    hard = tmp_path / "hard.ch5"
    os.link(source, hard)
    for out in (source, tmp_path / "sub" / ".." / "screen.ch5", link, hard):
        with pytest.raises(ValueError, match="is an input of this run"):
            check_output(out, [None, source], what="model")
    assert source.read_bytes() == b"data"
    assert check_output(tmp_path / "model.pt", [source]) == tmp_path / "model.pt"


def test_an_output_on_a_disk_without_inode_numbers_is_no_input(
    tmp_path: Path, disk_without_inodes: None
) -> None:
    # Some network, FUSE and FAT disks give every file inode 0: samefile took any existing
    # output there for the input, and refused to write it.
    source, old_output = tmp_path / "screen.ch5", tmp_path / "features.hdf"
    source.write_bytes(b"data")
    old_output.write_bytes(b"data")
    assert check_output(old_output, [source]) == old_output
    with pytest.raises(ValueError, match="is an input of this run"):
        check_output(source, [source])  # the same name is still the same file


def test_output_folder_problems_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is a folder"):
        check_output(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        check_output(tmp_path / "missing" / "out.hdf")
    # '--out hits.csv/x.csv' said "folder hits.csv does not exist", next to the file.
    (tmp_path / "hits.csv").write_text("rank")
    with pytest.raises(ValueError) as error:
        check_output(tmp_path / "hits.csv" / "x.csv")
    assert str(error.value) == (
        f"cannot write {tmp_path / 'hits.csv' / 'x.csv'}: {tmp_path / 'hits.csv'} is a file, "
        "not a folder"
    )


def test_devices_and_pipes_are_refused_as_outputs(tmp_path: Path) -> None:
    # Renaming the finished file over them would replace /dev/null for the whole machine.
    fifo = tmp_path / "features.hdf"
    os.mkfifo(fifo)
    for target in (fifo, Path(os.devnull)):
        with pytest.raises(ValueError, match=f"cannot write {target}: it is not a regular file"):
            check_output(target)
    assert not fifo.is_file() and fifo.exists()
    regular = tmp_path / "old.hdf"
    regular.write_bytes(b"old")
    assert check_output(regular) == regular  # an existing file may be replaced


def test_a_read_only_output_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    # The finished file was renamed over it: a file the user had made read-only (chmod
    # a-w) was replaced without a word, and made writable, where writing into it fails.
    kept = tmp_path / "features.hdf"
    kept.write_bytes(b"keep")
    kept.chmod(0o444)
    with pytest.raises(ValueError, match=f"cannot write {kept}: the file is read-only"):
        check_output(kept, what="features file")
    assert main(["hits", str(tmp_path / "cells.h5ad"), "--out", str(kept)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"cellae: error: cannot write {kept}: the file is read-only")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert kept.read_bytes() == b"keep" and kept.stat().st_mode & 0o777 == 0o444


def test_a_symbolic_link_is_written_through(tmp_path: Path) -> None:
    # The finished file was renamed onto the link: the link became a file of its own and
    # its target (say, the project's shared features.hdf) kept the old features.
    (tmp_path / "shared").mkdir()
    target = tmp_path / "shared" / "features.hdf"
    target.write_bytes(b"old")
    link = tmp_path / "features.hdf"
    link.symlink_to(target)
    assert check_output(link) == link
    with atomic_output(link) as tmp:
        assert tmp.parent == target.parent
        tmp.write_bytes(b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["features.hdf"]
    dangling = tmp_path / "dangling.hdf"
    dangling.symlink_to(tmp_path / "missing" / "features.hdf")
    with pytest.raises(ValueError, match=f"folder {tmp_path / 'missing'} does not exist"):
        check_output(dangling)


def test_a_loop_of_symbolic_links_is_refused_not_replaced(tmp_path: Path) -> None:
    # 'cellae hits cells.h5ad --out l1.csv' with l1.csv -> l2.csv -> l1.csv wrote the
    # table over the link l1.csv, which had no target to write through to.
    first, second = tmp_path / "l1.csv", tmp_path / "l2.csv"
    first.symlink_to(second.name)
    second.symlink_to(first.name)
    with pytest.raises(ValueError) as error:
        check_output(first, what="hit table")
    assert str(error.value) == (
        f"cannot write {first}: it is a symbolic link to 'l2.csv' that leads round in a loop;"
        " remove the link or choose another file name"
    )
    assert first.is_symlink() and second.is_symlink()


def test_the_folder_that_receives_the_file_must_be_writable(tmp_path, monkeypatch) -> None:
    # Through a link, the temporary file is made in the target's folder: that folder, not
    # the link's, must be writable. (Simulated: root may write into any folder.)
    import napari_cellae.io.atomic as atomic

    (tmp_path / "locked").mkdir()
    link = tmp_path / "features.hdf"
    link.symlink_to(tmp_path / "locked" / "features.hdf")
    real = os.access
    monkeypatch.setattr(
        atomic.os, "access", lambda p, mode: Path(p).name != "locked" and real(p, mode)
    )
    locked = tmp_path / "locked"
    with pytest.raises(ValueError, match=f"cannot write {link}: folder {locked} is not"):
        check_output(link)
    with pytest.raises(ValueError, match="is not writable"):
        check_output(tmp_path / "locked" / "other.hdf")
    check_output(tmp_path / "free.hdf")  # the link's own folder is writable


def test_a_name_too_long_for_the_temporary_is_refused_before_any_work(tmp_path: Path) -> None:
    # The name fit, the temporary name did not: training failed at the end, in torch's
    # words ('open file failed with strerror: File name too long') with a traceback.
    most = os.pathconf(tmp_path, "PC_NAME_MAX")
    longer = len(temporary_name(tmp_path / "m.pt").name) - len("m.pt")
    fits = tmp_path / ("a" * (most - longer - 3) + ".pt")
    assert check_output(fits) == fits
    with atomic_output(fits) as tmp:
        tmp.write_bytes(b"model")
    too_long = tmp_path / ("a" * (most - longer - 2) + ".pt")
    with pytest.raises(ValueError, match=r"the file name is too long for its folder \(at most"):
        check_output(too_long)


def test_atomic_output_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "features.hdf"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["features.hdf"]
    with atomic_output(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["features.hdf"]


def test_os_errors_name_the_output(tmp_path: Path) -> None:
    target = tmp_path / "out.pt"
    with pytest.raises(ValueError, match=r"cannot write .*out\.pt"), atomic_output(target) as tmp:
        tmp.mkdir()
        (tmp / "x").write_text("a folder cannot replace a file name")
        target.mkdir()
        (target / "y").write_text("non-empty folder: the rename fails")


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = tmp_path / f".model.pt.{int(dead.stdout)}-0001234.cellae-tmp"
    stale.write_text("left by a killed run")
    older = tmp_path / f".model.pt.{int(dead.stdout)}.cellae-tmp"  # named without the thread
    older.write_text("left by a killed run of an older version")
    mine = temporary_name(target)
    mine.write_text("a live writer's file")
    other = tmp_path / f".other.pt.{int(dead.stdout)}.cellae-tmp"
    other.write_text("another output's file")
    assert sorted(remove_stale_temporaries(target)) == sorted([stale, older])
    assert mine.exists() and other.exists()


def test_two_threads_writing_one_output_use_their_own_temporaries(tmp_path: Path) -> None:
    # One temporary per process: two saves of the widget to one file wrote the same
    # temporary, and one of them failed ("unable to truncate a file which is already open").
    target = tmp_path / "features.hdf"
    names: list[Path] = []
    worker = threading.Thread(target=lambda: names.append(temporary_name(target)))
    worker.start()
    worker.join()
    assert names[0] != temporary_name(target)
    assert len(names[0].name) == len(temporary_name(target).name)  # one length check for all


def test_a_write_failure_a_library_words_itself_says_what_is_wrong(tmp_path, monkeypatch):
    # HDF5 reports a full disk as a RuntimeError with "errno = 28" in its text, torch's
    # writer as "[enforce fail at inline_container.cc:672] . unexpected pos 43648 vs 43540":
    # the user read h5py's traceback, or torch's words without a hint at the disk.
    target = tmp_path / "features.hdf"
    target.write_text("old")
    hdf5 = RuntimeError("Can't write data (file write failed: errno = 28, error message = ...)")
    with pytest.raises(ValueError) as hdf5_error, atomic_output(target) as tmp:
        tmp.write_text("half")
        raise hdf5
    assert str(hdf5_error.value) == (
        f"cannot write {target}: the disk is full ({os.strerror(28)}); free some space in "
        f"{tmp_path} or write to another disk"
    )

    class Full:
        f_bavail, f_frsize = 0, 4096

    monkeypatch.setattr(os, "statvfs", lambda folder: Full)
    torch_words = OSError("[enforce fail at inline_container.cc:672] . unexpected pos 43648")
    with pytest.raises(ValueError) as torch_error, atomic_output(target) as tmp:
        raise torch_words
    assert str(torch_error.value) == (
        f"cannot write {target}: the disk is full (0 bytes free in {tmp_path}; "
        "[enforce fail at inline_container.cc:672] . unexpected pos 43648); free some space "
        "there or write to another disk"
    )
    # A program error is not a failed write: it keeps its type and words.
    with pytest.raises(RuntimeError, match=r"^boom$"), atomic_output(target):
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["features.hdf"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_the_temporary_of_a_writer_that_ended_unreaped_is_removed(tmp_path: Path) -> None:
    # A killed writer whose parent is gone stays a zombie where the container's first
    # process reaps nobody: signal 0 still reached it, so its temporary was kept forever.
    import time

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        stat = Path(f"/proc/{child.pid}/stat")
        for _ in range(200):  # ended, and not reaped: Popen waits only when asked
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
            time.sleep(0.05)
        target = tmp_path / "features.hdf"
        stale = tmp_path / f".features.hdf.{child.pid}-0001234.cellae-tmp"
        stale.write_text("left by a killed run")
        assert remove_stale_temporaries(target) == [stale]
    finally:
        child.wait()


class _ReadOnly:
    """``os.statvfs`` of a file system mounted read-only (``mount -o remount,ro``)."""

    f_flag, f_bavail, f_frsize = os.ST_RDONLY, 10**6, 4096


def test_an_output_on_a_read_only_file_system_says_so(tmp_path, monkeypatch) -> None:
    # Root may write any file and folder, whatever their modes, but not on a read-only
    # mount: an existing output there was called "read-only; make it writable (chmod u+w)",
    # which fails too, and its folder "not writable" without a word of why.
    import napari_cellae.io.atomic as atomic

    kept = tmp_path / "hits.csv"
    kept.write_text("old")
    monkeypatch.setattr(os, "statvfs", lambda path: _ReadOnly)
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: False)
    with pytest.raises(ValueError) as error:
        check_output(kept)
    assert str(error.value) == (
        f"cannot write {kept}: its file system is mounted read-only; choose a folder on "
        "another disk"
    )
    new = tmp_path / "new.csv"
    with pytest.raises(ValueError) as error:
        check_output(new)
    assert str(error.value) == (
        f"cannot write {new}: folder {tmp_path} is not writable (its file system is mounted "
        "read-only)"
    )
    assert kept.read_text() == "old"


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (
            # h5py's words where the file system has no locks and HDF5 insists on them
            # (HDF5_USE_FILE_LOCKING=TRUE): 'cannot write ...: Function not implemented'.
            OSError(
                38,
                "Unable to synchronously create file (unable to lock file, errno = 38, "
                "error message = 'Function not implemented')",
            ),
            "the file system of {folder} refuses HDF5's file locks (Function not "
            "implemented); set the environment variable HDF5_USE_FILE_LOCKING=FALSE and run "
            "again",
        ),
        (
            OSError(30, "Read-only file system"),
            "the file system of {folder} is mounted read-only; choose a folder on another disk",
        ),
    ],
)
def test_a_write_refused_by_the_file_system_says_what_to_do(tmp_path, raised, expected):
    target = tmp_path / "features.hdf"
    target.write_text("old")
    with pytest.raises(ValueError) as error, atomic_output(target) as tmp:
        tmp.write_text("half")
        raise raised
    assert str(error.value) == f"cannot write {target}: " + expected.format(folder=tmp_path)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["features.hdf"]


class _Kernel32:
    """Windows' process calls, for processes 101 (running), 102 (ended), 103 (another
    user's), 104 (none such)."""

    def __init__(self, errors: list[int]) -> None:
        self.errors = errors

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int | None:
        self.errors.append({103: 5, 104: 87}.get(pid, 0))
        return None if pid in (103, 104) else pid

    def GetExitCodeProcess(self, handle: int, code) -> int:
        code._obj.value = 259 if handle == 101 else 0
        return 1

    def CloseHandle(self, handle: int) -> int:
        return 1

    def CreateFileW(self, name: str, access: int, share: int, *rest) -> int:
        held = Path(name).name == "hits.csv"  # open in Excel, which shares no deleting
        self.errors.append(32 if held else 0)
        return 2**64 - 1 if held else 7


def test_on_windows_stale_temporaries_are_found_without_ending_their_writers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os.kill(pid, 0) is TerminateProcess on Windows: looking for the temporaries of killed
    # runs ended the process of any pid named by one (a concurrent writer, or whichever
    # program had since been given that pid).
    import ctypes

    from napari_cellae.io import processes

    killed: list[tuple] = []
    errors: list[int] = []
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "kill", lambda *args: killed.append(args))
    monkeypatch.setattr(processes, "_kernel32", lambda: _Kernel32(errors))
    monkeypatch.setattr(ctypes, "get_last_error", lambda: errors[-1], raising=False)
    target = tmp_path / "features.hdf"
    files = {pid: tmp_path / f".features.hdf.{pid}-0001234.cellae-tmp" for pid in range(101, 105)}
    for file in files.values():
        file.write_text("a temporary")
    assert sorted(remove_stale_temporaries(target)) == [files[102], files[104]]
    assert killed == []
    assert files[101].exists() and files[103].exists()


def test_outputs_are_checked_where_the_os_has_no_pathconf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os.pathconf is Unix only: on Windows every output check (each command that writes a
    # file, each save of the widget) ended in "AttributeError: module 'os' has no
    # attribute 'pathconf'".
    monkeypatch.delattr(os, "pathconf")
    target = tmp_path / "model.pt"
    assert check_output(target, what="model") == target
    with pytest.raises(ValueError, match="it is a folder"):
        check_output(tmp_path, what="model")


def test_on_windows_an_output_open_in_another_program_is_refused_before_the_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Windows cannot rename over a file another program holds open: a hit table open in
    # Excel failed as "Permission denied" only when the run had finished.
    import ctypes

    from napari_cellae.io import processes

    errors: list[int] = []
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(processes, "_kernel32", lambda: _Kernel32(errors))
    monkeypatch.setattr(ctypes, "get_last_error", lambda: errors[-1], raising=False)
    held, closed = tmp_path / "hits.csv", tmp_path / "hits_plate2.csv"
    held.write_text("rank,position\n")
    closed.write_text("rank,position\n")
    with pytest.raises(ValueError) as refused:
        check_output(held)
    assert str(refused.value) == (
        f"cannot write {held}: the file is open in another program (Excel, CellCognition "
        "Explorer?); close it there, or choose another file name"
    )
    assert check_output(closed) == closed
    assert check_output(tmp_path / "new.csv") == tmp_path / "new.csv"
