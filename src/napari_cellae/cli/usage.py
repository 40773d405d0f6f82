"""Usage errors of ``cellae``: one line naming the option and what it allows, exit status 2.

argparse finds the values of the wrong type or outside a list of choices; the ranges
(``--epochs 0``, ``--cells 1e12``) and options that contradict one another are checked
here or in :mod:`napari_cellae.core.config_checks` and said in the same shape::

    cellae train: error: argument --epochs: must be 1..100000, got 0
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Collection, Sequence
from typing import NoReturn

from napari_cellae.core.config_checks import SettingError, seed_problem
from napari_cellae.io.definition import shown_name

__all__ = [
    "MAX_NEIGHBOURS",
    "MAX_SCREEN_CELLS",
    "CommandParser",
    "UsageError",
    "check_device",
    "check_novelty_args",
    "check_screen_args",
    "option_name",
    "print_usage_error",
    "setting_error",
    "subcommand_parser",
    "unrecognized",
]

# make-screen draws every well in memory: about 18 kB per cell (473 MB peak for 20,000
# cells), so 1e11 cells were killed by the kernel's out-of-memory killer after taking 23 GB.
MAX_SCREEN_CELLS = 200_000
# knn novelty compares each cell with at most 50,000 control cells (core.novelty's sample):
# more neighbours change nothing, and beyond int64 the .h5ad could not be written, after
# encoding the whole screen.
MAX_NEIGHBOURS = 50_000


class UsageError(ValueError):
    """A bad command line: an option's value outside its range, or options that contradict
    one another. ``cellae`` prints ``cellae COMMAND: error: MESSAGE`` and exits with 2.

    Parameters
    ----------
    option : str
        The option as typed, e.g. ``--epochs``; empty for a message that names its options.
    problem : str
        What is wrong and what is allowed.
    """

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"argument {option}: {problem}" if option else problem)


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and point to ``--help``: argparse's
    usage block before them (13 lines for ``cellae train``) buried the one that said what
    was wrong."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE (see PROG --help)`` on stderr; exit with status 2."""
        # '--augment=yes': argparse's 'ignored explicit argument' told no one what to type
        switch = re.fullmatch(r"argument (--[\w-]+)/(--no-[\w-]+): ignored explicit.*", message)
        if switch is not None:
            message = (
                f"argument {switch[1]}: takes no value; give {switch[1]} to turn it on, "
                f"{switch[2]} to turn it off"
            )
        self.exit(
            2,
            f"{self.prog}: error: {shown_name(message)}{_choice_guess(message)} "
            f"(see '{self.prog} --help')\n",
        )


def _choice_guess(message: str) -> str:
    """``; did you mean 'train'?`` for argparse's ``invalid choice: 'trian' (choose from
    'info', ...)``, where one choice is close (in any case: ``--preset Classic``)."""
    found = re.fullmatch(r".*invalid choice: '(.*?)' \(choose from (.*)\)", message)
    if found is None:
        return ""
    choices = re.findall(r"'([^']*)'", found.group(2))
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(found.group(1).lower(), list(by_lower), n=1, cutoff=0.75)
    return f"; did you mean '{by_lower[close[0]]}'?" if close else ""


def option_name(field: str) -> str:
    """The command-line option of a ``TrainConfig`` field: ``--held-out-fraction``."""
    return "--" + field.replace("_", "-")


def setting_error(exc: SettingError, given: Collection[str]) -> UsageError:
    """A ``TrainConfig`` check's error said by the option to change.

    Parameters
    ----------
    exc : SettingError
    given : collection of str
        The fields given on the command line: where several settings are involved (a crop
        size and the architecture it does not fit), the one the user gave is named.

    Returns
    -------
    UsageError
    """
    field = next((f for f in exc.fields if f in given), exc.fields[0])
    problem = exc.problem
    if problem.startswith(f"{field} "):  # 'epochs must be ...' -> '--epochs: must be ...'
        problem = problem[len(field) + 1 :]
    return UsageError(option_name(field), problem)


def subcommand_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of subcommand ``name`` of ``parser`` (``cellae train``'s of ``cellae``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(f"{parser.prog} has no subcommand {name!r}")


def unrecognized(parser: argparse.ArgumentParser, extra: Sequence[str]) -> str:
    """``unrecognized arguments: --epocs 2; did you mean --epochs?`` for ``parser``'s
    options (argparse said it with the usage of ``cellae`` itself, and guessed nothing)."""
    known = [flag for action in parser._actions for flag in action.option_strings]
    early = [word for word in extra if word.split("=", 1)[0] in known]
    if early:  # 'cellae -q info F': cellae's own parser met it, before the command
        return f"{' '.join(early)} must come after the command: {parser.prog} {' '.join(early)} ..."
    guesses = {}
    for word in extra:
        option = word.split("=", 1)[0]
        close = difflib.get_close_matches(option, known, n=1, cutoff=0.8)
        if option.startswith("--") and close:
            guesses[option] = close[0]
    said = [f"{guess} (for {option})" for option, guess in guesses.items()]
    if len(said) == 1:
        said = list(guesses.values())
    hint = f"; did you mean {', '.join(said)}?" if said else ""
    return f"unrecognized arguments: {' '.join(extra)}{hint}"


def check_screen_args(args: argparse.Namespace) -> None:
    """``cellae make-demo`` / ``make-screen``: refuse a seed outside the one rule of every
    command, or a screen the machine could not hold, before the folder is made."""
    problem = seed_problem(args.seed)  # numpy: 'expected non-negative integer', after the folder
    if problem is not None:
        raise UsageError("--seed", problem)
    if args.command != "make-screen":
        return
    if not 0.25 <= args.zoom <= 4:
        raise UsageError("--zoom", f"must be 0.25..4, got {args.zoom:g}")
    if not 0.05 <= args.light <= 4:
        raise UsageError("--light", f"must be 0.05..4, got {args.light:g}")
    # A cell's pixels grow with the square of the zoom (2,000 cells took 136 MB at zoom 1,
    # 671 MB at zoom 4), so the cap on cells shrinks by it.
    most = int(MAX_SCREEN_CELLS / max(args.zoom, 1) ** 2)
    if not 100 <= args.cells <= most:
        zoomed = f" at --zoom {args.zoom:g}" if args.zoom > 1 else ""
        raise UsageError(
            "--cells",
            f"must be 100..{most}{zoomed} (the screen is drawn in memory, about 18 kB a cell "
            f"at zoom 1, zoom squared times that above), got {args.cells}",
        )


def check_novelty_args(args: argparse.Namespace, k: int, nu: float) -> None:
    """Refuse novelty option values by their option names, before any cell is encoded.

    They failed only after encoding the whole screen, in the scoring's words (``need k >= 1
    and 0 < nu <= 1``) or scikit-learn's (a negative --seed).

    Parameters
    ----------
    args : argparse.Namespace
        Of ``cellae encode`` or ``cellae hits``.
    k, nu : int, float
        The neighbours and nu the scoring will use (given or default).
    """
    p = args.novelty_percentile
    groups = getattr(args, "groups", None)
    seed_wrong = seed_problem(getattr(args, "seed", 0))
    problems = [
        (p is not None and not 0 <= p <= 100, "--novelty-percentile", f"must be 0..100, got {p}"),
        (
            not 1 <= k <= MAX_NEIGHBOURS,
            "--neighbours",
            f"must be 1..{MAX_NEIGHBOURS} (the most control cells a cell is compared with), "
            f"got {k}",
        ),
        (not 0 < nu < 1, "--nu", f"must be above 0 and below 1, got {nu}"),
        # The grouping said 'the number of phenotype groups must be >= 1', naming no option.
        (groups is not None and groups < 1, "--groups", f"must be at least 1, got {groups}"),
        (seed_wrong is not None, "--seed", seed_wrong or ""),
    ]
    for bad, option, problem in problems:
        if bad:
            raise UsageError(option, problem)


def check_device(device: str) -> None:
    """Refuse ``--device cuda[:N]`` where torch sees no such GPU, before any cell is cut.

    The trainer said it only after every crop was cut, as ``device 'cuda' requested but
    CUDA is not available``, naming no option.
    """
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        why = "this torch is built without CUDA" if torch.version.cuda is None else "no GPU"
        raise UsageError(
            "--device",
            f"{device}: no CUDA GPU can be used here ({why}); give --device cpu, or auto to "
            "use a GPU where there is one",
        )
    index, count = device.partition(":")[2], torch.cuda.device_count()
    if index and int(index) >= count:
        raise UsageError(
            "--device", f"{device}: this machine has {count} GPU(s), cuda:0..cuda:{count - 1}"
        )


def print_usage_error(command: str, exc: UsageError) -> int:
    """Print ``cellae COMMAND: error: ...`` on stderr; return the exit status 2."""
    print(f"cellae {command}: error: {exc}", file=sys.stderr)
    return 2
