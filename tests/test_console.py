"""Tests for napari_cellae.cli.console: the installed ``cellae`` program's warnings and
SIGTERM handling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from cli_helpers import TINY
from napari_cellae.cli import commands, console


def _run_console(monkeypatch: pytest.MonkeyPatch, command) -> int:
    monkeypatch.setitem(commands._COMMANDS, "info", command)
    monkeypatch.setattr(sys, "argv", ["cellae", "info", "screen.ch5"])
    return console()


def test_warnings_print_as_one_cellae_line(monkeypatch, capsys) -> None:
    def command(args) -> int:
        for _ in range(3):  # as from every position of a streamed run
            warnings.warn("3 of 40 objects are larger than the crop box", stacklevel=1)
            warnings.resetwarnings()  # as libraries do: Python's own dedup forgets
        return 0

    assert _run_console(monkeypatch, command) == 0
    err = capsys.readouterr().err
    assert err == "cellae: warning: 3 of 40 objects are larger than the crop box\n"


def test_a_warning_lifts_an_open_progress_bar_off_its_line(monkeypatch, capsys) -> None:
    from tqdm import tqdm

    def command(args) -> int:
        with tqdm(total=4, desc="encoding", file=sys.stderr, ascii=True) as bar:
            bar.update(1)
            warnings.warn("no row maps 1 of the 32 positions", stacklevel=1)
            bar.update(3)
        return 0

    assert _run_console(monkeypatch, command) == 0
    err = capsys.readouterr().err
    before, warning, after = err.partition("cellae: warning: no row maps 1 of the 32 positions\n")
    # the bar's line was cleared first (not "encoding: 25%|...cellae: warning: ..."), and
    # the bar is drawn again after the warning
    assert warning and before.endswith("\r") and "encoding" in before
    assert "4/4" in after


def test_library_runtime_warnings_keep_their_origin(monkeypatch, capsys) -> None:
    def command(args) -> int:
        warnings.warn("overflow in exp", RuntimeWarning, stacklevel=1)
        return 0

    assert _run_console(monkeypatch, command) == 0
    err = capsys.readouterr().err
    assert "RuntimeWarning: overflow in exp" in err
    assert "test_console.py" in err


def test_sigterm_stops_like_ctrl_c_and_the_handler_is_restored(monkeypatch, capsys) -> None:
    before = signal.getsignal(signal.SIGTERM)

    def command(args) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # interrupted by the handler long before
        return 0

    started = time.monotonic()
    assert _run_console(monkeypatch, command) == 130
    assert time.monotonic() - started < 20
    assert capsys.readouterr().err == "cellae: interrupted\n"
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("seconds, max_retries", [(0.3, None), (0.6, 3)])
def test_ctrl_c_inside_a_llvmlite_callback_stops_the_run_once_out(
    monkeypatch, capsys, seconds, max_retries
) -> None:
    # ctypes drops what llvmlite's callbacks raise: Ctrl-C while UMAP's numba code compiled
    # printed a traceback, and the run went on, wrote its outputs and exited 0. The bound
    # on retries (for a collection whose end was never seen) must not hold for such real
    # callbacks: a Ctrl-C that stayed in one longer (numba compiling for 10 s) was dropped.
    import importlib

    if max_retries is not None:
        console_module = importlib.import_module("napari_cellae.cli.console")
        monkeypatch.setattr(console_module, "_MAX_RETRIES", max_retries)
    before = signal.getsignal(signal.SIGINT)
    swallowed = []
    source = f"def callback(kill, sleep):\n    kill()\n    sleep({seconds})\n"
    namespace: dict = {}
    exec(compile(source, os.path.join("site", "llvmlite", "binding", "fake.py"), "exec"), namespace)

    def command(args) -> int:
        try:  # as ctypes calls a callback: what it raises is lost
            namespace["callback"](lambda: os.kill(os.getpid(), signal.SIGINT), time.sleep)
        except BaseException as exc:
            swallowed.append(exc)
        time.sleep(30)  # interrupted by the signal sent again, long before
        return 0

    monkeypatch.setattr(signal, "getsignal", lambda signum: signal.default_int_handler)
    assert _run_console(monkeypatch, command) == 130
    monkeypatch.undo()
    assert swallowed == []
    assert capsys.readouterr().err == "cellae: interrupted\n"
    signal.signal(signal.SIGINT, before)


def _interrupted_in_a_gc_callback(sent: list[bool]):
    """A command whose collection gets the user's Ctrl-C inside a gc callback (``sent``
    records it), then waits up to 30 s for the signal to be sent again."""
    import gc

    def callback(phase, info) -> None:
        if phase == "start" and not sent:
            sent.append(True)
            signal.raise_signal(signal.SIGINT)  # the user's Ctrl-C
            time.sleep(0.3)  # the handler runs in here

    def command(args) -> int:
        gc.callbacks.append(callback)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(callback)
        for _ in range(300):  # a handler raised from another thread runs between sleeps
            time.sleep(0.1)
        return 0

    return command


def test_ctrl_c_inside_a_gc_callback_stops_the_run_once_out(monkeypatch, capsys) -> None:
    # The garbage collector drops what its callbacks raise: Ctrl-C during 'cellae encode
    # --workers 2' hit distributed's GC diagnosis ('Exception ignored in: ...
    # GCDiagnosis._gc_callback'), and the run went on, wrote its output and exited 0.
    before = signal.getsignal(signal.SIGINT)
    sent: list[bool] = []
    command = _interrupted_in_a_gc_callback(sent)
    monkeypatch.setattr(signal, "getsignal", lambda signum: signal.default_int_handler)
    assert _run_console(monkeypatch, command) == 130
    monkeypatch.undo()
    assert sent == [True]
    assert capsys.readouterr().err == "cellae: interrupted\n"
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_inside_a_finaliser_of_a_collection_stops_the_run_once_out(
    monkeypatch, capsys
) -> None:
    # The collector drops what finalisers raise too: after other runs had left garbage, the
    # test above saw its Ctrl-C handled in a __del__ that gc.collect() ran, and lost.
    import gc

    before = signal.getsignal(signal.SIGINT)
    deleted = []

    class Cyclic:
        def __init__(self) -> None:
            self.me = self  # freed by the collector only

        def __del__(self) -> None:
            deleted.append(True)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)  # the handler runs in here

    def command(args) -> int:
        Cyclic()
        gc.collect()
        time.sleep(30)  # interrupted by the signal sent again, long before
        return 0

    monkeypatch.setattr(signal, "getsignal", lambda signum: signal.default_int_handler)
    started = time.monotonic()
    assert _run_console(monkeypatch, command) == 130
    monkeypatch.undo()
    assert deleted == [True] and time.monotonic() - started < 20
    assert capsys.readouterr().err == "cellae: interrupted\n"
    signal.signal(signal.SIGINT, before)


def test_installed_program_prints_pipeline_warnings_as_cellae_lines(
    cellcognition_file: Path, tmp_path: Path
) -> None:
    # An 8 px box is smaller than the test cells: the pipeline warns.
    tiny = [*TINY[2:], "--size", "8"]
    run = subprocess.run(
        [sys.executable, "-m", "napari_cellae", "train", str(cellcognition_file), "-q", *tiny,
         "--out", str(tmp_path / "model.pt")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert any(line.startswith("cellae: warning: ") and "crop box" in line for line in lines)
    assert "UserWarning" not in run.stderr


def test_ctrl_c_stops_a_run_whose_collection_never_said_it_ended(monkeypatch, capsys) -> None:
    # A signal inside the collector is sent again while it runs; were its end never seen
    # (a library clearing gc.callbacks), Ctrl-C must still stop the run, a little later.
    import importlib

    console_module = importlib.import_module("napari_cellae.cli.console")
    before = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(console_module, "_MAX_RETRIES", 5)

    def command(args) -> int:
        console_module._Collection.running = True  # as if stuck in a collection
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)  # interrupted after five retries, long before
        return 0

    monkeypatch.setattr(signal, "getsignal", lambda signum: signal.default_int_handler)
    started = time.monotonic()
    assert _run_console(monkeypatch, command) == 130
    monkeypatch.undo()
    assert time.monotonic() - started < 20 and not console_module._Collection.running
    assert capsys.readouterr().err == "cellae: interrupted\n"
    signal.signal(signal.SIGINT, before)


def test_a_library_clearing_gc_callbacks_leaves_the_exit_status(monkeypatch, capsys) -> None:
    # The console's own gc callback was removed unchecked at the end: gone (a library
    # clearing gc.callbacks), a finished run ended in a ValueError traceback, not 0.
    import gc

    callbacks = list(gc.callbacks)

    def command(args) -> int:
        gc.callbacks[:] = callbacks  # cleared, and only those of before put back
        return 0

    before = signal.getsignal(signal.SIGINT)
    assert _run_console(monkeypatch, command) == 0
    assert gc.callbacks == callbacks
    assert capsys.readouterr().err == ""
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_sent_again_on_windows_does_not_terminate_the_process(monkeypatch, capsys) -> None:
    # On Windows os.kill(pid, SIGINT) is TerminateProcess: the retry of a Ctrl-C that came
    # inside a gc callback ended the run there and then, with no 'interrupted' and no
    # cleanup of its temporary outputs.
    before = signal.getsignal(signal.SIGINT)
    sent: list[bool] = []
    killed: list[tuple] = []
    command = _interrupted_in_a_gc_callback(sent)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "kill", lambda *args: killed.append(args))  # would terminate
    monkeypatch.setattr(signal, "getsignal", lambda signum: signal.default_int_handler)
    started = time.monotonic()
    assert _run_console(monkeypatch, command) == 130
    monkeypatch.undo()
    assert sent == [True] and killed == [] and time.monotonic() - started < 20
    assert capsys.readouterr().err == "cellae: interrupted\n"
    signal.signal(signal.SIGINT, before)


def test_names_outside_the_console_code_page_print(tmp_path: Path) -> None:
    # Redirected, Windows' standard output is cp1252: a file in a folder named in Greek
    # made 'cellae info' fail with "'charmap' codec can't encode characters".
    from napari_cellae import sample_data

    folder = tmp_path / "αβ"
    folder.mkdir()
    screen = folder / "screen_α.ch5"
    screen.symlink_to(Path(sample_data.__path__[0]) / "demo_screen.ch5")
    env = {**os.environ, "PYTHONIOENCODING": "cp1252", "PYTHONUTF8": "0"}
    run = subprocess.run(
        [sys.executable, "-m", "napari_cellae", "info", str(screen)],
        capture_output=True, timeout=120, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stderr == b""
    assert b"screen_\\u03b1.ch5" in run.stdout.splitlines()[0]
    assert b"Objects: 1" in run.stdout
