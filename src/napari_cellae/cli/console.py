"""The installed ``cellae`` program: :func:`~napari_cellae.cli.commands.main` with the
manners of a console tool.

Kept apart from ``main`` (which tests and scripts call with arguments) because both changes
are process-wide: warnings print as ``cellae: warning: ...`` lines instead of Python's
``file:line: UserWarning`` with a source line, and SIGTERM, which batch schedulers (SLURM,
torchrun, ``timeout``) send to stop a job, is handled like Ctrl-C so that no half-written
temporary output is left behind.
"""

from __future__ import annotations

import signal
import sys
import warnings
from types import FrameType
from typing import TextIO

from tqdm import tqdm

from napari_cellae.cli.commands import main
from napari_cellae.cli.output import PROG

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
            text = f"{PROG}: warning: {message}\n"
        else:  # a library's deprecation or runtime warning: where it comes from matters
            text = warnings.formatwarning(message, category, filename, lineno, line)
        if text not in self.shown:
            self.shown.add(text)
            # tqdm.write lifts an open progress bar off the line and draws it again below,
            # so a warning never lands in the middle of the bar's line.
            tqdm.write(text, file=sys.stderr if file is None else file, end="")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def console() -> int:
    """Run ``cellae`` with the command line of this process.

    Returns
    -------
    int
        The exit status of :func:`~napari_cellae.cli.commands.main` (130 when stopped by
        Ctrl-C or SIGTERM).
    """
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _WarningPrinter()
            return main()
    finally:
        signal.signal(signal.SIGTERM, previous)
