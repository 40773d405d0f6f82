"""The widget's encoding of a run's cells in chunks: progress between them, one judgement.

The widget encodes a file's cells a chunk at a time to show its progress. Each chunk was
encoded by its own call, which judged its own pixels on the model's intensity scale, so
that a file whose share of saturated pixels passes the bar in one chunk and not over the
whole was warned about or not by where the chunks fell (``cellae encode`` now judges the
whole run). Here one :class:`~napari_cellae.core.scale_check.ScaleCheck` counts every
chunk and warns once, at the end. No Qt; torch only once called.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_cellae.core.crops import CropSet
    from napari_cellae.core.model_file import TrainedModel

__all__ = ["ENCODE_CHUNK", "encode_chunks"]

ENCODE_CHUNK = 2048  # cells per progress message while encoding


def encode_chunks(
    trained: TrainedModel, crops: CropSet, chunk: int = ENCODE_CHUNK
) -> Iterator[tuple[int, np.ndarray | None]]:
    """Encode in chunks, yielding progress; the last item carries the features.

    Parameters
    ----------
    trained : TrainedModel
    crops : CropSet
    chunk : int
        Cells encoded between two progress items.

    Yields
    ------
    (int, ndarray or None)
        Cells encoded so far; the features (N, F) float32 of every cell in the last item
        (learned, then the outline's), None before.

    Warns
    -----
    UserWarning
        Once, after the last chunk: the whole run's pixels against the model's scale
        (:meth:`~napari_cellae.core.scale_check.ScaleCheck.warn`).
    """
    from napari_cellae.core.features import cell_feature_names, encode, with_outline
    from napari_cellae.core.scale_check import ScaleCheck

    trained.check_compatible(crops.crops.shape[-1], crops.crops.shape[1])
    n = len(crops)
    parts = []
    scale = ScaleCheck(trained.normalisation)  # every chunk's pixels, judged once
    for start in range(0, n, chunk):
        part = crops.subset(np.arange(start, min(n, start + chunk)))
        learned = encode(trained, part.crops, scale_check=scale)
        parts.append(with_outline(trained, learned, part.morphology))
        yield min(n, start + chunk), None
    scale.warn(trained.channel_names)
    width = len(cell_feature_names(trained))  # the readout's, not the bottleneck's
    yield n, np.concatenate(parts) if parts else np.zeros((0, width), np.float32)
