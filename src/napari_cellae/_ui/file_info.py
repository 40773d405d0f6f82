"""What the dock widget's form offers for a CellH5 file (objects, channels, crop boxes),
read from the file's metadata. No Qt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_cellae.core.config import field_info

__all__ = ["FileInfo", "path_or_none", "read_file_info"]


@dataclass
class FileInfo:
    """What the form offers for one CellH5 file.

    Attributes
    ----------
    objects : list of str
        Object types, e.g. ``primary__primary``.
    default_object : str
    channels : list of (str, int)
        Channel name and raw index, of the channels every position has.
    object_channel : dict
        Object -> the channel it was segmented in.
    smallest_side : int
        Shortest image side over all positions (the largest possible crop).
    cell_boxes : dict
        Object -> a crop box fitted to its cells, for objects that the default box does
        not suit (:func:`napari_cellae.pipeline.cell_size.fitted_box`).
    """

    objects: list[str]
    default_object: str
    channels: list[tuple[str, int]]
    object_channel: dict[str, int]
    smallest_side: int
    cell_boxes: dict[str, int]


def read_file_info(path: str | os.PathLike) -> FileInfo:
    """Objects and channels of a CellH5 file (reads metadata only, opens read-only).

    Raises
    ------
    ValueError
        Naming the file, if it is not a usable CellH5 file.
    """
    from napari_cellae.io.cellh5 import CellH5
    from napari_cellae.pipeline.cell_size import fitted_box
    from napari_cellae.pipeline.selection import shared_channels

    network = field_info("crop_size")["default"]
    with CellH5(path) as ch5:
        objects = list(ch5.object_names)
        boxes = {o: fitted_box(ch5, o, network) for o in objects}
        return FileInfo(
            objects=objects,
            default_object=ch5.default_object,
            # only those every position has: a position lacking one failed mid-run
            channels=[(c.name, c.index) for c in shared_channels(ch5)],
            object_channel={o: ch5.object_channel(o) for o in objects},
            smallest_side=min(min(ch5.image_shape(p)[-2:]) for p in ch5.positions),
            cell_boxes={o: box for o, box in boxes.items() if box is not None},
        )


def path_or_none(value: Any) -> Path | None:
    """A FileEdit's value as a Path, None when empty."""
    return Path(value) if value is not None and str(value) not in ("", ".") else None
