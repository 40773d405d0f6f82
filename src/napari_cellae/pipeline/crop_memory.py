"""Whether the crops of a whole file fit in memory, asked before any is cut.

The napari widget (and the in-memory runs) hold every cell's crop at once. A time-lapse
screen of millions of objects would fill the machine's memory and the system would end
napari, taking the user's session with it; the command line streams instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari_cellae.core.cores import available_memory

if TYPE_CHECKING:
    from napari_cellae.core.config import TrainConfig
    from napari_cellae.io.cellh5 import CellH5

__all__ = ["check_crop_memory", "crop_bytes"]

# Share of the free memory the crops may take: training, features and napari need the rest.
_MAX_SHARE = 0.6


def crop_bytes(n_cells: int, itemsize: int, n_channels: int, config: TrainConfig) -> int:
    """Bytes the crops of ``n_cells`` take in their stored pixel type (``itemsize`` bytes),
    with a second copy at the network's input size where the crops are resampled."""
    pixels = config.crop_size**2
    if config.network_size != config.crop_size:
        pixels += config.network_size**2
    return n_cells * n_channels * pixels * itemsize


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
    itemsize = max(cellh5.dtype(key).itemsize for key in cellh5.positions)
    need = crop_bytes(n, itemsize, n_channels, config)
    if need <= _MAX_SHARE * free:
        return
    gib = 1 << 30
    raise ValueError(
        f"{cellh5.path}: the crops of its {n:,} '{object_name}' objects ({config.crop_size} px,"
        f" {n_channels} channel(s)) would take {need / gib:.1f} GiB of memory, and "
        f"{free / gib:.1f} GiB is free: use the command line, which streams (cellae train "
        "cuts only the cells it draws, --samples; cellae encode works position by position), "
        "or a file of fewer positions"
    )
