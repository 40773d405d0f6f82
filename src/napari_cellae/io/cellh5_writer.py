"""Write CellH5 files in the layout CellCognition and CellProfiler produce.

Used to build the bundled demo screen and the synthetic files of the test suite. The layout
follows the CellH5 reference library (``cellh5write.py``); see ``docs/formats.md``. Every
file is written under a temporary name and renamed when complete (:mod:`napari_cellae.io.atomic`),
so an interrupted run leaves no half-written CellH5 file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import h5py
import numpy as np

from napari_cellae.io.atomic import atomic_hdf5, check_output
from napari_cellae.io.objects import ObjectTable

Flavour = Literal["cellcognition", "cellprofiler"]

CENTER_DTYPE = np.dtype([("x", "<i4"), ("y", "<i4")])
BBOX_DTYPE = np.dtype([("left", "<i4"), ("right", "<i4"), ("top", "<i4"), ("bottom", "<i4")])
OBJECT_DTYPE = np.dtype([("time_idx", "<i4"), ("obj_label_id", "<i4")])
ORIENTATION_DTYPE = np.dtype([("angle", "<f8"), ("eccentricity", "<f8")])
PREDICTION_DTYPE = np.dtype([("label_idx", "<i4")])
CHANNEL_DEF_DTYPE = np.dtype(
    [
        ("channel_name", "S50"),
        ("description", "S100"),
        ("is_physical", "?"),
        ("voxel_size", "<f8", (3,)),
        ("color", "S7"),
    ]
)
REGION_DEF_DTYPE = np.dtype([("region_name", "S50"), ("channel_idx", "<i4")])
OBJECT_DEF_DTYPE = np.dtype(
    [("name", "S512"), ("type", "S512"), ("source1", "S512"), ("source2", "S512")]
)
CLASS_LABEL_DTYPE = np.dtype([("label", "<i4"), ("name", "S100"), ("color", "S9")])

_DEFAULT_COLORS = ("#FFFFFF", "#00FF00", "#FF0000", "#0000FF")


@dataclass
class ObjectData(ObjectTable):
    """Per-object tables of one object type in one position (all frames), to be written.

    The reader's :class:`~napari_cellae.io.cellh5.ObjectTable` plus what only the writer
    stores: ``probability`` (n, n_classes) of the classifier, optional.
    """

    probability: np.ndarray | None = None


@dataclass
class PositionData:
    """Everything stored for one plate/well/site."""

    plate: str
    well: str
    site: str
    image: np.ndarray  # (c, t, z, y, x)
    objects: dict[str, ObjectData] = field(default_factory=dict)
    labels: np.ndarray | None = None  # (n_regions, t, 1, h, w) uint16


def _region_name(object_name: str, flavour: Flavour) -> str:
    return f"region___{object_name}" if flavour == "cellcognition" else object_name


def _position_path(pos: PositionData) -> str:
    return f"sample/0/plate/{pos.plate}/experiment/{pos.well}/position/{pos.site}"


def _write_definition(
    root: h5py.Group,
    channel_names: list[str],
    object_channels: dict[str, int],
    class_labels: dict[str, list[tuple[int, str, str]]] | None,
    flavour: Flavour,
) -> None:
    definition = root.create_group("definition")
    channels = np.zeros(len(channel_names), CHANNEL_DEF_DTYPE)
    for i, name in enumerate(channel_names):
        channels[i] = (name, name, True, (1.0, 1.0, 1.0), _DEFAULT_COLORS[i % 4])
    definition.create_dataset("image/channel", data=channels)
    regions = np.array(
        [(_region_name(obj, flavour), ch) for obj, ch in object_channels.items()],
        REGION_DEF_DTYPE,
    )
    definition.create_dataset("image/region", data=regions)
    for obj in object_channels:
        definition.create_dataset(
            f"object/{obj}", data=np.array([(obj, "region", "", "")], OBJECT_DEF_DTYPE)
        )
        definition.create_dataset(
            f"feature/{obj}/object_features", data=np.array([], np.dtype([("name", "S512")]))
        )
    for obj, labels in (class_labels or {}).items():
        definition.create_dataset(
            f"feature/{obj}/object_classification/class_labels",
            data=np.array(labels, CLASS_LABEL_DTYPE),
        )


def _write_position(group: h5py.Group, pos: PositionData, flavour: Flavour) -> list[h5py.Dataset]:
    """Write one position; return its datasets, to be kept open until the file is flushed
    (one freed at once writes its cached chunks where a full disk's error cannot be raised)."""
    image = np.asarray(pos.image)
    if image.ndim != 5:
        raise ValueError(f"position image must be 5-D (c, t, z, y, x), got shape {image.shape}")
    chunks = (1, 1, 1, min(image.shape[3], 256), min(image.shape[4], 256))
    kept = [
        group.create_dataset(
            "image/channel", data=image, chunks=chunks, compression="gzip", compression_opts=4
        )
    ]
    if pos.labels is not None:
        kept.append(
            group.create_dataset(
                "image/region",
                data=pos.labels,
                chunks=chunks,
                compression="gzip",
                compression_opts=4,
            )
        )
    n_frames = image.shape[1]
    time_lapse = np.zeros(
        n_frames, [("frame", "<i4"), ("timestamp_abs", "<i4"), ("timestamp_rel", "<f8")]
    )
    time_lapse["frame"] = np.arange(n_frames)
    time_lapse["timestamp_rel"] = np.arange(n_frames) * 300.0
    kept.append(group.create_dataset("image/time_lapse", data=time_lapse))
    for obj, data in pos.objects.items():
        n = len(data.time_idx)
        table = np.zeros(n, OBJECT_DTYPE)
        table["time_idx"] = data.time_idx
        table["obj_label_id"] = data.label_id
        kept.append(group.create_dataset(f"object/{obj}", data=table))
        feature = group.create_group(f"feature/{obj}")
        center = np.zeros(n, CENTER_DTYPE)
        center["x"], center["y"] = data.center_x, data.center_y
        kept.append(feature.create_dataset("center", data=center))
        bbox = np.zeros(n, BBOX_DTYPE)
        bbox_values = np.asarray(data.bbox, np.int32).reshape(n, 4)
        for i, name in enumerate(BBOX_DTYPE.names):
            bbox[name] = bbox_values[:, i]
        kept.append(feature.create_dataset("bounding_box", data=bbox))
        kept.append(feature.create_dataset("object_features", data=np.zeros((n, 0), np.float32)))
        if flavour == "cellcognition" and data.angle is not None:
            orientation = np.zeros(n, ORIENTATION_DTYPE)
            orientation["angle"] = data.angle
            orientation["eccentricity"] = (
                data.eccentricity if data.eccentricity is not None else 0.0
            )
            kept.append(feature.create_dataset("orientation", data=orientation))
        if data.class_idx is not None:
            prediction = np.zeros(n, PREDICTION_DTYPE)
            prediction["label_idx"] = data.class_idx
            kept.append(feature.create_dataset("object_classification/prediction", data=prediction))
            if data.probability is not None:
                kept.append(
                    feature.create_dataset(
                        "object_classification/probability", data=np.asarray(data.probability)
                    )
                )
    return kept


def write_cellh5(
    path: str | os.PathLike,
    positions: list[PositionData],
    channel_names: list[str],
    object_channels: dict[str, int],
    class_labels: dict[str, list[tuple[int, str, str]]] | None = None,
    flavour: Flavour = "cellcognition",
    split_files: bool = False,
) -> Path:
    """Write a CellH5 file (or a master file with one file per position).

    Parameters
    ----------
    path : path-like
        Output file. With ``split_files`` this is the master file that holds only external
        links; CellCognition names it ``_all_positions.ch5``.
    positions : list of PositionData
        The positions to write.
    channel_names : list of str
        One name per raw channel (axis 0 of every position image).
    object_channels : dict
        Object name -> index of the raw channel it was segmented in.
    class_labels : dict, optional
        Object name -> list of ``(label, name, color)`` class definitions.
    flavour : {"cellcognition", "cellprofiler"}
        Region naming (``region___<obj>`` or bare) and link style of master files:
        CellCognition links per-position files by relative name, CellProfiler by absolute path.
    split_files : bool
        Write one file per position and a master file of external links.

    Returns
    -------
    Path
        The written (master) file.

    Raises
    ------
    ValueError
        If ``path`` is a folder or its folder does not exist, a position image is not 5-D,
        or writing fails (the message names the file). No partial file is left behind.
    """
    path = check_output(path, what="CellH5 file")
    if not split_files:
        with atomic_hdf5(path, track_order=True) as root:
            _write_definition(root, channel_names, object_channels, class_labels, flavour)
            kept = []  # every dataset open until the flush (see _write_position)
            for pos in positions:
                kept += _write_position(root.create_group(_position_path(pos)), pos, flavour)
        return path

    links: list[tuple[str, str]] = []  # (position path, file the master links to)
    for pos in positions:
        if flavour == "cellcognition":
            part = path.parent / f"{pos.well}_{pos.site}.ch5"
            link_target = part.name
        else:
            part = path.parent / f"{path.stem}_{pos.well}_{pos.site}.ch5"
            link_target = str(part.resolve())
        with atomic_hdf5(part) as root:
            _write_definition(root, channel_names, object_channels, class_labels, flavour)
            kept = _write_position(root.create_group(_position_path(pos)), pos, flavour)
        del kept
        links.append((_position_path(pos), link_target))
    # The master last: its links only ever point to complete files.
    with atomic_hdf5(path) as master:
        for position_path, link_target in links:
            master[position_path] = h5py.ExternalLink(link_target, "/" + position_path)
        if links:
            master["definition"] = h5py.ExternalLink(links[0][1], "/definition")
    return path
