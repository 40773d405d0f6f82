"""What the dock widget's form offers for a CellH5 file (objects, channels, crop boxes),
read from the file's metadata. No Qt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_cellae.core.config import PRESETS, field_info

if TYPE_CHECKING:
    from napari_cellae.io.mapping import PositionMapping

__all__ = ["FileInfo", "path_or_none", "read_file_info", "read_mapping_for"]


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
    other_boxes : dict
        Network size -> such boxes for the other presets' crop sizes (``cellae train
        --preset demo`` fits its 32 px box, not the default 40 px one).
    """

    objects: list[str]
    default_object: str
    channels: list[tuple[str, int]]
    object_channel: dict[str, int]
    smallest_side: int
    cell_boxes: dict[str, int]
    other_boxes: dict[int, dict[str, int]] = field(default_factory=dict)

    def boxes(self, network: int) -> dict[str, int]:
        """Object -> fitted box for a network made for ``network``-pixel crops (empty
        where that box suits every object, or for a size no preset has)."""
        if network == field_info("crop_size")["default"]:
            return self.cell_boxes
        return self.other_boxes.get(network, {})


def read_file_info(path: str | os.PathLike) -> FileInfo:
    """Objects and channels of a CellH5 file (reads metadata only, opens read-only).

    Raises
    ------
    ValueError
        Naming the file, if it is not a usable CellH5 file.
    """
    from napari_cellae.io.cellh5 import CellH5
    from napari_cellae.pipeline.cell_size import fitted_box, measured_extents
    from napari_cellae.pipeline.selection import shared_channels

    network = field_info("crop_size")["default"]
    others = {p.settings.get("crop_size", network) for p in PRESETS.values()} - {network}
    with CellH5(path) as ch5:
        objects = list(ch5.object_names)
        extents = {o: measured_extents(ch5, o) for o in objects}  # read once for all sizes

        def fitted(size: int) -> dict[str, int]:
            boxes = {o: fitted_box(ch5, o, size, extents[o]) for o in objects}
            return {o: box for o, box in boxes.items() if box is not None}

        return FileInfo(
            objects=objects,
            default_object=ch5.default_object,
            # only those every position has: a position lacking one failed mid-run
            channels=[(c.name, c.index) for c in shared_channels(ch5)],
            object_channel={o: ch5.object_channel(o) for o in objects},
            smallest_side=min(min(ch5.image_shape(p)[-2:]) for p in ch5.positions),
            cell_boxes=fitted(network),
            other_boxes={size: fitted(size) for size in sorted(others)},
        )


def path_or_none(value: Any) -> Path | None:
    """A FileEdit's value as a Path, None when empty."""
    return Path(value) if value is not None and str(value) not in ("", ".") else None


def read_mapping_for(
    path: Path | None, cellh5_path: Path | None, token: str
) -> tuple[str | None, PositionMapping | None]:
    """A chosen position mapping, checked against the chosen CellH5 file as a run checks it.

    Parameters
    ----------
    path : Path or None
        The mapping; None (or no such file) reads nothing.
    cellh5_path : Path or None
        The CellH5 file; one that does not open is left to the file's own checks.
    token : str
        What the controls' Group (or condition) starts with.

    Returns
    -------
    (str or None, PositionMapping or None)
        ``(what is wrong, None)`` or ``(None, the mapping)``; ``(None, None)`` without one.
    """
    from napari_cellae.io.cellh5 import CellH5
    from napari_cellae.io.mapping import read_mapping
    from napari_cellae.pipeline.steps import load_mapping

    if path is None or not path.is_file():
        return None, None
    try:
        cellh5 = CellH5(cellh5_path) if cellh5_path is not None and cellh5_path.is_file() else None
    except (ValueError, OSError):
        cellh5 = None
    try:
        if cellh5 is None:
            return None, read_mapping(path, control_token=token)
        with cellh5:  # the check a run makes (without its warning of unmapped wells)
            return None, load_mapping(path, cellh5, token, warn=False)
    except (ValueError, OSError) as err:
        return str(err), None
