"""The unit of work of a whole-screen encoding, and what it gives back.

A run (:mod:`~napari_cellae.pipeline.streaming`) is planned into one
:class:`PositionTask` per position; encoding one (here, in full batches:
:mod:`~napari_cellae.pipeline.position_batches`, or on a Dask worker) gives an
:class:`EncodedPosition`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.io.cellh5 import PositionKey

if TYPE_CHECKING:
    from napari_cellae.core.crops import CropSet
    from napari_cellae.core.scale_check import ScaleCheck

__all__ = ["EncodedPosition", "PositionTask"]


@dataclass(frozen=True)
class PositionTask:
    """One unit of work: the objects of one position of one CellH5 file.

    Attributes
    ----------
    index : int
        Place in the output (tasks are written in this order).
    source : Path
        The CellH5 file to open (absolute, so any worker finds it on a shared file system).
    position : PositionKey
    object_name : str
    channels : tuple of int
        Raw channel indices in this file (the model's channels, by name).
    crop_size : int
        The crop box (the model's cell size).
    n_cells : int
        Objects in the position, counted when planning.
    thumbnails : bool
        Return the cells' 8-bit thumbnails (the Explorer file shows them); without, the
        results carry no pixels.
    """

    index: int
    source: Path
    position: PositionKey
    object_name: str
    channels: tuple[int, ...]
    crop_size: int
    n_cells: int
    thumbnails: bool = True

    @property
    def where(self) -> str:
        """``position C03_01 of FILE`` for messages."""
        return f"position {self.position.label} of {self.source}"


@dataclass
class EncodedPosition:
    """What a task returns: the cells of one position and their features.

    Attributes
    ----------
    task : PositionTask
    crops : CropSet
        The cells' identities; ``crops.crops`` holds their uint8 thumbnails (as written to
        the Explorer gallery), not the raw crops.
    features : ndarray (n, F) float32
    warned : tuple of str
        UserWarnings raised while encoding elsewhere (a Dask worker), to be shown here.
    scale : ScaleCheck or None
        How the pixels encoded since the previous position sit on the model's intensity
        scale: the run adds them up and judges them once, whatever the batches or workers.
    """

    task: PositionTask
    crops: CropSet
    features: np.ndarray
    warned: tuple[str, ...] = ()
    scale: ScaleCheck | None = None
