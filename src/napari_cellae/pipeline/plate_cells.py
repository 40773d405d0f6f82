"""What an AnnData run streamed over several plates needs of them beyond the features.

The plates' names made distinct, the classifier's class names they share, and the crops of
the gallery's typical cells, cut again (the run keeps no pixels).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.core.listing import first_few
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.centres import UNCLASSIFIED, long_hex, unknown_class

if TYPE_CHECKING:
    from napari_cellae.core.crops import CropSet
    from napari_cellae.core.model_file import TrainedModel
    from napari_cellae.pipeline.streaming import EncodePlan

__all__ = [
    "class_colours",
    "class_labels",
    "class_names",
    "plate_classes",
    "typical_crops",
    "unknown_classes",
]


def class_names(cellh5: CellH5, object_name: str) -> dict[int, str] | None:
    """Names of the classifier classes a CellH5 file stores for an object type, if any.

    Keyed by the row of the class table: that is what a cell's ``label_idx`` (its
    ``class_idx``) counts, whatever label values the classifier used.
    """
    labels = cellh5.class_labels(object_name)
    return {i: str(c.name) for i, c in enumerate(labels)} if labels else None


def class_colours(cellh5: CellH5, object_name: str) -> dict[str, str]:
    """The classifier's colour per class name, as napari colours the classes: the hex codes
    its points layer reads (:func:`~napari_cellae.io.centres.long_hex`: ``#RGB`` written
    out as ``#RRGGBB``); other colours, which a CellH5 file may hold, left out."""
    colours: dict[str, str] = {}
    for label in cellh5.class_labels(object_name) or []:
        # None for '#GGGGGG', 'red', CellProfiler's '0xFF000'
        if (colour := long_hex(str(label.color))) is not None:
            colours[str(label.name)] = colour
    return colours


def class_labels(classes: np.ndarray, names: dict[int, str] | None) -> np.ndarray:
    """Each cell's ``obs["class"]``: the name of its class, "unclassified" without a
    prediction (-1), as the reader's points layer and the widget call such cells.

    Without ``names`` (no class table, or plates naming their classes differently) the
    class number; an index beyond the class list is "unknown (7)", not a bare 7 that reads
    as a class name (:func:`unknown_classes` says which).
    """
    found, inverse = np.unique(np.asarray(classes, np.int64), return_inverse=True)
    text = [
        UNCLASSIFIED if c < 0 else str(c) if names is None else names.get(c, unknown_class(c))
        for c in found.tolist()
    ]
    return np.asarray(text, dtype=object)[inverse.reshape(-1)]


def unknown_classes(cells: CropSet, names: dict[int, str] | None, sources: list[Path]) -> list[str]:
    """A note for each plate whose cells carry class indices beyond its class list.

    Parameters
    ----------
    cells : CropSet
        The run's cells; ``position_index`` counts ``sources``.
    names : dict of int to str or None
        The plates' shared class names (None: nothing to compare with).
    sources : list of Path
        Each position's plate file.
    """
    if names is None or not len(cells):
        return []
    source_of = np.asarray([str(s) for s in sources], dtype=object)[cells.position_index]
    notes = []
    for plate in dict.fromkeys(sources):
        classes = np.unique(cells.class_idx[source_of == str(plate)])
        beyond = [int(c) for c in classes if c >= 0 and int(c) not in names]
        if beyond:
            shown = first_few([str(c) for c in beyond], 8)
            notes.append(
                f"{plate}: cells carry class indices {shown}, beyond the {len(names)} "
                f"class(es) its classifier lists (0-{len(names) - 1}): obs['class'] calls "
                f"them '{unknown_class(beyond[0])}' and so on"
            )
    return notes


def plate_classes(
    plates: list[Path], object_name: str
) -> tuple[dict[int, str] | None, dict[str, str] | None, list[str]]:
    """The classifier's class names shared by every plate, the first plate's colour per
    class name (as napari colours the classes), and a note where the names differ (each
    plate's cells then keep their class numbers only: one name could mean two; no colours).
    """
    found, colours = [], None
    for plate in plates:
        with CellH5(plate) as ch5:
            found.append(class_names(ch5, object_name))
            if colours is None:  # the first plate's
                colours = class_colours(ch5, object_name)
    if all(names == found[0] for names in found):
        return found[0], (colours if found[0] else None), []
    odd = next(p for p, names in zip(plates, found, strict=True) if names != found[0])
    return (
        None,
        None,
        [
            f"the plates' classifiers name their classes differently ({plates[0]} and {odd}): "
            "obs['class'] holds class numbers, not names"
        ],
    )


def typical_crops(
    plan: EncodePlan, cells: CropSet, rows: np.ndarray, trained: TrainedModel
) -> np.ndarray:
    """The crops of some of a streamed run's cells, cut again as the model saw them.

    Parameters
    ----------
    plan : EncodePlan
        The run's plan; ``cells.position_index`` counts its tasks.
    cells : CropSet
        The run's cells (identities; pixels not needed).
    rows : ndarray of int
        Cells to crop, sorted and unique.
    trained : TrainedModel

    Returns
    -------
    ndarray (len(rows), C, S, S)
        In the stored dtype, at the network's input size.
    """
    from napari_cellae.core.crops import collect_crops
    from napari_cellae.core.resample import to_network_size
    from napari_cellae.pipeline.open_files import close_open_files, open_cellh5

    parts = []
    with warnings.catch_warnings():  # what these positions raise was shown while encoding
        warnings.simplefilter("ignore")
        try:
            for p in np.unique(cells.position_index[rows]):
                task = plan.tasks[int(p)]
                picked = rows[cells.position_index[rows] == p]
                cut = collect_crops(
                    open_cellh5(task.source),
                    task.object_name,
                    task.crop_size,
                    list(task.channels),
                    [task.position],
                    trained.config.mask,
                    [cells.object_index[picked].astype(np.int64)],
                )
                parts.append(to_network_size(cut, trained.model.crop_size).crops)
        finally:
            close_open_files()
    return np.concatenate(parts)
