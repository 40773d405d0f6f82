"""How ``cellae`` tells failures apart: an interrupt carried inside another exception, a
reader that has gone (``| head``), memory that torch could not get."""

from __future__ import annotations

import os
import re
import sys

__all__ = ["after_interrupt", "out_of_memory", "stdout_closed"]

_CPU_ALLOCATION = re.compile(r"can't allocate memory: you tried to allocate (\d+) bytes")
_GPU_ALLOCATION = re.compile(r"Tried to allocate ([\d.]+ [KMGT]?i?B)")
_SMALLER = "smaller crops or batches need less (--crop-size, --input-size, --batch-size)"


def after_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` was raised because of a Ctrl-C (or SIGTERM) it carries as cause or
    context.

    Ctrl-C inside a callback of compiled code comes back wrapped: h5py's link visit, which
    reading a CellH5 file's links uses, raises ``SystemError: ... returned a result with an
    exception set`` with the KeyboardInterrupt as its cause, and that printed a traceback.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def out_of_memory(exc: BaseException) -> str | None:
    """What to say when ``exc`` is torch running out of memory, else None.

    torch raises a ``RuntimeError`` (``DefaultCPUAllocator: can't allocate memory``, or
    CUDA's ``OutOfMemoryError``), not a ``MemoryError``, and it ended in a traceback:
    ``cellae train --input-size 1024`` on the demo asked for 10.7 GB of resampled crops.
    """
    if not isinstance(exc, RuntimeError):
        return None
    text = str(exc)
    cpu = _CPU_ALLOCATION.search(text)
    if cpu is not None:
        return f"not enough memory (could not get {int(cpu[1]) / 2**30:.1f} GiB); {_SMALLER}"
    if type(exc).__name__ == "OutOfMemoryError" or "CUDA out of memory" in text:
        gpu = _GPU_ALLOCATION.search(text)
        size = f"could not get {gpu[1]}" if gpu else "CUDA out of memory"
        return f"not enough GPU memory ({size}); {_SMALLER}"
    return None


def stdout_closed() -> bool:
    """Whether the standard output's reader has gone (``cellae info ... | head -1``); if so,
    point it at /dev/null, so that Python's flush at exit adds no 'Exception ignored'."""
    import select

    try:  # the write end of a pipe whose reader has closed polls as an error
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        closed = any(event & select.POLLERR for _, event in poll.poll(0))
    except (AttributeError, ValueError, OSError):  # no poll (Windows), no real stdout
        return False
    if closed:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return closed
