"""The installed ``cellae`` program: :func:`~napari_cellae.cli.commands.main` with the
manners of a console tool.

Kept apart from ``main`` (which tests and scripts call with arguments) because both changes
are process-wide: warnings print as ``cellae: warning: ...`` lines instead of Python's
``file:line: UserWarning`` with a source line, and SIGTERM, which batch schedulers (SLURM,
torchrun, ``timeout``) send to stop a job, is handled like Ctrl-C so that no half-written
temporary output is left behind.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from types import FrameType
from typing import TextIO

from tqdm import tqdm

from napari_cellae.cli.commands import main
from napari_cellae.cli.output import PROG
from napari_cellae.io.definition import shown_name

__all__ = ["console"]


class _WarningPrinter:
    """``warnings.showwarning`` for the console: each text once per run.

    Python's own once-per-place rule is undone whenever a library changes the warning
    filters (scikit-learn and Dask do), and a streamed run meets the same problem in every
    position.
    """

    def __init__(self) -> None:
        self.shown: set[str] = set()

    def __call__(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, UserWarning) and not issubclass(category, DeprecationWarning):
            text = f"{PROG}: warning: {shown_name(str(message))}\n"
        else:  # a library's deprecation or runtime warning: where it comes from matters
            text = warnings.formatwarning(message, category, filename, lineno, line)
        if text not in self.shown:
            self.shown.add(text)
            # tqdm.write lifts an open progress bar off the line and draws it again below,
            # so a warning never lands in the middle of the bar's line.
            tqdm.write(text, file=sys.stderr if file is None else file, end="")


# Seconds after which a signal that arrived inside a ctypes callback is delivered again,
# and how often at most in a row while a collection is said to run (10 s: a collection that
# never said it ended cannot keep Ctrl-C from stopping the run).
_RETRY_S = 0.05
_MAX_RETRIES = 200


def _in_ctypes_callback(frame: FrameType | None) -> bool:
    """Whether Python code called back by llvmlite (numba's compiler) is running: ctypes
    prints and then drops any exception raised there."""
    while frame is not None:
        if f"{os.sep}llvmlite{os.sep}" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


class _Collection:
    """Whether the garbage collector is collecting (a ``gc.callbacks`` entry, put first)."""

    running = False
    retries = 0  # signals sent again in a row on ``running`` alone (_interrupt)

    @classmethod
    def track(cls, phase: str, info: dict) -> None:
        cls.running = phase == "start"


def _in_gc_callback(frame: FrameType | None) -> bool:
    """Whether a garbage-collector callback (``gc.callbacks``, such as distributed's GC
    diagnosis) is running: the collector prints and then drops what it raises."""
    codes = {getattr(getattr(cb, "__func__", cb), "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


def _send_again(signum: int) -> None:
    """Deliver ``signum`` to this process again (from a timer's thread)."""
    if sys.platform == "win32":
        # os.kill there is TerminateProcess for any signal but Ctrl events: the run ended
        # at once, its temporary outputs left behind. raise() runs Python's handler.
        signal.raise_signal(signum)
    else:  # to the process: interrupts the main thread's wait too, where raise() does not
        os.kill(os.getpid(), signum)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # While the collector collects, an object's finaliser (``__del__``, a weakref callback)
    # may be running, which the frames do not tell; the collector drops what it raises
    # too. Only this guess is bounded (a collection whose end was never seen): a callback
    # seen among the frames is one, however long it runs (numba compiling).
    if _in_ctypes_callback(frame) or _in_gc_callback(frame):
        _Collection.retries = 0
    elif _Collection.running and _Collection.retries < _MAX_RETRIES:
        _Collection.retries += 1
    else:
        _Collection.retries = 0
        raise KeyboardInterrupt
    # Ctrl-C while UMAP's numba code compiled printed a traceback, and the run went on,
    # wrote its outputs and exited 0 (so did Ctrl-C during 'cellae encode --workers'
    # when a collection ran distributed's callback): the signal is sent again once out
    # of there.
    retry = threading.Timer(_RETRY_S, _send_again, (signum,))
    retry.daemon = True
    retry.start()


@contextlib.contextmanager
def _printable_stdout() -> Iterator[None]:
    """Standard output that prints any text, escaping what its encoding lacks.

    Redirected to a file or a pipe (``> info.txt``, Git Bash, a notebook), Windows' standard
    output is in the locale's code page (cp1252): a file or condition named in Greek or
    Chinese raised UnicodeEncodeError, which ended the run as 'cellae: error: 'charmap'
    codec can't encode ...'. Python's standard error escapes such characters already.
    """
    stream = sys.stdout
    strict = isinstance(stream, io.TextIOWrapper) and stream.errors == "strict"
    if strict:
        stream.reconfigure(errors="backslashreplace")
    try:
        yield
    finally:
        if strict and not stream.closed:
            with contextlib.suppress(OSError, ValueError):  # a reader gone: nothing to print
                stream.reconfigure(errors="strict")


def console() -> int:
    """Run ``cellae`` with the command line of this process.

    Returns
    -------
    int
        The exit status of :func:`~napari_cellae.cli.commands.main` (130 when stopped by
        Ctrl-C or SIGTERM).
    """
    previous = signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C too, where Python's own handler is set (not where it is ignored: nohup, '&').
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)
    gc.callbacks.insert(0, _Collection.track)
    try:
        with warnings.catch_warnings(), _printable_stdout():
            warnings.showwarning = _WarningPrinter()
            return main()
    finally:
        with contextlib.suppress(ValueError):  # gone where a library cleared gc.callbacks
            gc.callbacks.remove(_Collection.track)
        _Collection.running, _Collection.retries = False, 0
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
