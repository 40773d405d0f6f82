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

from napari_cellae.cli.commands import main
from napari_cellae.cli.output import PROG

__all__ = ["console"]


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    stream = sys.stderr if file is None else file
    if issubclass(category, UserWarning) and not issubclass(category, DeprecationWarning):
        print(f"{PROG}: warning: {message}", file=stream)
    else:  # a library's deprecation or runtime warning: where it comes from matters
        print(
            warnings.formatwarning(message, category, filename, lineno, line), end="", file=stream
        )


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
            warnings.showwarning = _show_warning
            return main()
    finally:
        signal.signal(signal.SIGTERM, previous)
