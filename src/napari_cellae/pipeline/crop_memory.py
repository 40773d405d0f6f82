"""Whether the crops of a whole file fit in memory, asked before any is cut.

The napari widget (and the in-memory runs) hold every cell's crop at once. A time-lapse
screen of millions of objects would fill the machine's memory and the system would end
napari, taking the user's session with it; the command line streams instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import DTypeLike

from napari_cellae.core.cores import available_memory
from napari_cellae.core.resample import RESAMPLE_CHUNK

if TYPE_CHECKING:
    from napari_cellae.core.config import TrainConfig
    from napari_cellae.io.cellh5 import CellH5

__all__ = ["check_crop_memory", "crop_bytes"]

# Share of the free memory the crops may take: training, features and napari need the rest.
_MAX_SHARE = 0.6


def crop_bytes(n_cells: int, dtype: DTypeLike, n_channels: int, config: TrainConfig) -> int:
    """Bytes cutting the crops of ``n_cells`` takes at its peak.

    Parameters
    ----------
    n_cells : int
    dtype : dtype-like
        The stored pixel type (1 byte a pixel for 8-bit images).
    n_channels : int
    config : TrainConfig
        Its crop size and network size.

    Returns
    -------
    int
        The crops in their stored pixel type; where they are resampled to the network's
        size, also their resampled copy and the float working copies of one chunk of them
        (:func:`~napari_cellae.core.resample.resample_crops`).
    """
    dtype = np.dtype(dtype)
    itemsize = dtype.itemsize
    crop, network = config.crop_size, config.network_size
    stored = n_cells * n_channels * crop**2 * itemsize
    if network == crop:
        return stored
    resampled = n_cells * n_channels * network**2 * itemsize
    work = min(n_cells, RESAMPLE_CHUNK) * n_channels * network**2 * _work_bytes(dtype)
    return stored + resampled + work


def _work_bytes(dtype: np.dtype) -> int:
    """Bytes per pixel of resampling's float working copies of a chunk of crops.

    Torch's output in float32 (float64 for 32- and 64-bit integers and float64, which
    float32 rounds) and, for integer pixels, a float64 copy rounded and clipped into
    another. Measured: 19.5 bytes per resampled 8-bit pixel (2,556 demo cells at 256 and
    512 px), where 1 byte was counted.
    """
    floats = 8 if (dtype.itemsize > 4 if dtype.kind == "f" else dtype.itemsize >= 4) else 4
    return floats + (16 if dtype.kind in "iub" else 0)


def check_crop_memory(
    cellh5: CellH5, object_name: str, n_channels: int, config: TrainConfig
) -> None:
    """Refuse to cut every crop of a file when they would not fit in the free memory.

    Raises
    ------
    ValueError
        Naming the file, the cells, the memory they need and what is free, and the
        command-line way, which streams.
    """
    free = available_memory()
    if free is None or not cellh5.positions:
        return
    n = sum(cellh5.object_count(key, object_name) for key in cellh5.positions)
    dtypes = {np.dtype(cellh5.dtype(key)) for key in cellh5.positions}
    need = max(crop_bytes(n, dtype, n_channels, config) for dtype in dtypes)
    if need <= _MAX_SHARE * free:
        return
    gib = 1 << 30
    size = config.network_size
    resampled = f" resampled to {size} px" if size != config.crop_size else ""
    # Resampling's float copies are most of it: a smaller network input is the first cure.
    smaller = (
        f"choose a smaller network input than {size} px (--input-size; 'Network input' in "
        "the widget), or "
        if resampled
        else ""
    )
    raise ValueError(
        f"{cellh5.path}: the crops of its {n:,} '{object_name}' objects ({config.crop_size} px"
        f"{resampled}, {n_channels} channel(s)) would take {need / gib:.1f} GiB of memory, and "
        f"{free / gib:.1f} GiB is free: {smaller}use the command line, which streams (cellae "
        "train cuts only the cells it draws, --samples; cellae encode works position by "
        "position), or a file of fewer positions"
    )
