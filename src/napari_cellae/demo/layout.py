"""Plate layout and files of a synthetic screen: conditions, wells, mapping file, CellH5 file.

Shared by the bundled demo (:mod:`napari_cellae.demo.screen`) and the benchmark screen
(:mod:`napari_cellae.demo.benchmark`): both render positions into :class:`RenderedPosition`
and write them with :func:`write_screen` and :func:`write_mapping`, after
:func:`check_screen_outputs` has checked both destinations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_cellae.io.atomic import atomic_output, check_output

__all__ = [
    "Condition",
    "ObjectRow",
    "RenderedPosition",
    "WellSpec",
    "check_screen_outputs",
    "write_mapping",
    "write_screen",
]

# One measured object: time, label, cx, cy, left, right, top, bottom, angle, eccentricity, class.
ObjectRow = tuple[int, int, int, int, int, int, int, int, float, float, int]


@dataclass(frozen=True)
class Condition:
    """One treatment of the screen.

    Parameters
    ----------
    gene : str
        Treatment name (``Gene Symbol`` column of the mapping file).
    sirna : str
        Reagent ID (``siRNA ID`` column).
    group : str
        ``neg`` for negative controls, ``target`` otherwise.
    fractions : tuple of float
        Expected fraction of each class, in the order of the screen's class table.
    """

    gene: str
    sirna: str
    group: str
    fractions: tuple[float, ...]


@dataclass(frozen=True)
class WellSpec:
    """One imaged position: well, site and its condition."""

    well: str
    site: str
    condition: Condition


@dataclass
class RenderedPosition:
    """Pixels, labels and per-object ground truth of one position (all frames).

    Attributes
    ----------
    image : ndarray of uint8 or uint16, shape (1, t, 1, h, w)
    labels : ndarray of uint16, shape (1, t, 1, h, w)
        Label images; label ``i`` is the same object in every frame.
    time_idx, label_id, center_x, center_y : ndarray of int32, shape (n,)
        One row per segmented object and frame, sorted by frame, then label.
    bbox : ndarray of int32, shape (n, 4)
        ``left, right, top, bottom`` of the mask, right and bottom inclusive.
    angle, eccentricity : ndarray of float64, shape (n,)
        Major-axis angle from the x axis towards +y (radians, [-pi/2, pi/2]) and
        eccentricity of the mask's second moments.
    class_idx : ndarray of int32, shape (n,)
        True phenotype, an index into the screen's class table.
    """

    image: np.ndarray
    labels: np.ndarray
    time_idx: np.ndarray
    label_id: np.ndarray
    center_x: np.ndarray
    center_y: np.ndarray
    bbox: np.ndarray
    angle: np.ndarray
    eccentricity: np.ndarray
    class_idx: np.ndarray

    @classmethod
    def from_rows(
        cls, image: np.ndarray, labels: np.ndarray, rows: Sequence[ObjectRow]
    ) -> RenderedPosition:
        """Build from images and one ``ObjectRow`` tuple per object, in CellH5 order.

        Parameters
        ----------
        image, labels : ndarray, shape (1, t, 1, h, w)
        rows : sequence of tuple
            ``(time, label, cx, cy, left, right, top, bottom, angle, eccentricity, class)``.

        Returns
        -------
        RenderedPosition
        """
        table = list(zip(*rows, strict=True)) if rows else [()] * 11
        return cls(
            image=image,
            labels=labels,
            time_idx=np.asarray(table[0], np.int32),
            label_id=np.asarray(table[1], np.int32),
            center_x=np.asarray(table[2], np.int32),
            center_y=np.asarray(table[3], np.int32),
            bbox=np.asarray(table[4:8], np.int32).T.reshape(-1, 4),
            angle=np.asarray(table[8], np.float64),
            eccentricity=np.asarray(table[9], np.float64),
            class_idx=np.asarray(table[10], np.int32),
        )


def _well_row_column(well: str) -> tuple[str, int]:
    return well[0], int(well[1:])


def check_screen_outputs(screen: Path, mapping: Path) -> None:
    """Check both files of a screen before it is rendered.

    Parameters
    ----------
    screen, mapping : Path
        The CellH5 file and the position-mapping file to be written.

    Raises
    ------
    ValueError
        Naming the file: it is a folder, a device, read-only, or its name is too long (see
        :func:`~napari_cellae.io.atomic.check_output`). A read-only file of an earlier
        screen was replaced without a word, and a problem with the mapping showed only after
        the CellH5 file had been replaced.
    """
    check_output(screen, what="CellH5 file")
    check_output(mapping, what="position mapping")


def write_mapping(path: Path, layout: Sequence[WellSpec]) -> Path:
    """Write the tab-separated CellCognition position mapping of a layout.

    Parameters
    ----------
    path : Path
        Output file (written to a temporary name, then renamed).
    layout : sequence of WellSpec
        Positions and their conditions, one row each.

    Returns
    -------
    Path
        ``path``.
    """
    header = ["Position", "Well", "Site", "Row", "Column", "Gene Symbol", "siRNA ID", "Group"]
    lines = ["\t".join(header)]
    for spec in layout:
        row, column = _well_row_column(spec.well)
        cond = spec.condition
        fields = [f"{spec.well}_{int(spec.site):02d}", spec.well, spec.site, row, str(column)]
        lines.append("\t".join([*fields, cond.gene, cond.sirna, cond.group]))
    path = check_output(path, what="position mapping")
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_screen(
    path: Path,
    layout: Sequence[WellSpec],
    rendered: Sequence[RenderedPosition],
    *,
    plate: str,
    channel_name: str,
    object_name: str,
    class_labels: list[tuple[int, str, str]],
) -> Path:
    """Write rendered positions as one CellCognition-style CellH5 file.

    The true phenotype of every object becomes its classification (``prediction`` and a
    one-hot ``probability``); the label images are stored as ``image/region``.

    Parameters
    ----------
    path : Path
        Output file (written to a temporary name, then renamed: a reader never sees a
        half-written screen).
    layout : sequence of WellSpec
        Well and site of each position.
    rendered : sequence of RenderedPosition
        Pixels and objects of each position, in layout order.
    plate, channel_name, object_name : str
        Names stored in the file.
    class_labels : list of tuple
        ``(label, name, colour)`` rows; ``class_idx`` indexes this list.

    Returns
    -------
    Path
        ``path``.
    """
    from napari_cellae.io.cellh5_writer import ObjectData, PositionData, write_cellh5

    positions = []
    for spec, pos in zip(layout, rendered, strict=True):
        obj = ObjectData(
            time_idx=pos.time_idx,
            label_id=pos.label_id,
            center_x=pos.center_x,
            center_y=pos.center_y,
            bbox=pos.bbox,
            angle=pos.angle,
            eccentricity=pos.eccentricity,
            class_idx=pos.class_idx,
            probability=np.eye(len(class_labels))[pos.class_idx],
        )
        positions.append(
            PositionData(
                plate=plate,
                well=spec.well,
                site=spec.site,
                image=pos.image,
                objects={object_name: obj},
                labels=pos.labels,
            )
        )
    # write_cellh5 checks the path and writes under a temporary name itself: a second
    # temporary around it was named ".<.name.pid.cellae-tmp>.pid.cellae-tmp", which no later
    # run recognised as its own to clean up after a killed one.
    return write_cellh5(
        path,
        positions,
        channel_names=[channel_name],
        object_channels={object_name: 0},
        class_labels={object_name: class_labels},
        flavour="cellcognition",
    )
