"""Typed progress messages that a running job sends to whoever shows it (widget, tests).

A job (:mod:`napari_cellae.pipeline.jobs`) is a generator that yields these while it works;
the receiver dispatches on the type instead of picking tuples apart by position and string.
Plain data only: no Qt, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    import numpy as np

    from napari_cellae.core.trainer import EpochReport

__all__ = ["Alert", "Encoded", "EpochDone", "Message", "Status"]


@dataclass(frozen=True)
class Status:
    """What the job is doing now, in a sentence for the user.

    Attributes
    ----------
    text : str
    """

    text: str


@dataclass(frozen=True)
class EpochDone:
    """One training epoch finished.

    Attributes
    ----------
    report : EpochReport
        Losses, speed, and whether training was stopped or got stuck.
    gallery : ndarray (h, w) float32
        Input crops beside their current reconstructions, in [0, 1]
        (see :func:`napari_cellae.pipeline.jobs.gallery_grid`).
    """

    report: EpochReport
    gallery: np.ndarray


@dataclass(frozen=True)
class Alert:
    """Something the user should act on although the job goes on (e.g. training is stuck).

    Attributes
    ----------
    text : str
    """

    text: str


@dataclass(frozen=True)
class Encoded:
    """Features of ``done`` of ``total`` cells are computed.

    Attributes
    ----------
    done, total : int
    """

    done: int
    total: int


Message: TypeAlias = Status | EpochDone | Alert | Encoded
