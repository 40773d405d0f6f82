"""Write (and read back) the CellCognition Explorer ``.hdf`` file of learned features.

The layout is the one the CellCognition Explorer main GUI opens (see ``docs/formats.md``)::

    /                       attrs training_data=[b"data"], application
    /data/bbox              compound (file S128, treatment S128, label i4, x i4, y i4,
                            angle f8, eccentricity f8, left i4, right i4, top i4, bottom i4)
    /data/features          compound of float32 fields ch1-<feature name> (explorer_names)
    /data/feature_groups    compound (feature S64, Simple1 S64)
    /data/contours          attr channels=[b"Channel_1", ... one per gallery channel]
    /data/contours/Channel_1  (N, 2) vlen uint16: x corners, y corners of the crop square
                            (the same in Channel_2 ...: the Explorer outlines each colour)
    /data/gallery           uint8 (s, s, n_channels, N), thumbnail i = gallery[:, :, c, i] in
                            [y, x] order; attrs colors, image_size=(height, width)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from napari_cellae.export.explorer_fields import (
    FileFields,
    corner_contours,
    fits_float32,
    int32_columns,
)
from napari_cellae.export.explorer_names import FEATURE_PREFIX, feature_names
from napari_cellae.io.atomic import atomic_hdf5, check_output
from napari_cellae.io.centres import position_labels

if TYPE_CHECKING:
    from napari_cellae.core.crops import CropSet
    from napari_cellae.core.normalisation import Normalisation
    from napari_cellae.io.mapping import PositionMapping

__all__ = [
    "BBOX_DTYPE",
    "FEATURE_PREFIX",
    "ExplorerData",
    "application_name",
    "build_arrays",
    "checked_features",
    "feature_names",
    "read_explorer_hdf",
    "source_image_size",
    "to_uint8",
    "write_explorer_hdf",
]

BBOX_DTYPE = np.dtype(
    [
        ("file", "S128"),
        ("treatment", "S128"),
        ("label", "<i4"),
        ("x", "<i4"),
        ("y", "<i4"),
        ("angle", "<f8"),
        ("eccentricity", "<f8"),
        ("left", "<i4"),
        ("right", "<i4"),
        ("top", "<i4"),
        ("bottom", "<i4"),
    ]
)
FEATURE_GROUP_DTYPE = np.dtype([("feature", "S64"), ("Simple1", "S64")])
CONTOUR_CHANNEL = "Channel_1"


def outline_channels(n_channels: int) -> list[str]:
    """Names of the outline datasets: one per gallery channel (``Channel_1`` ...). The
    Explorer draws an outline for each colour of the gallery from the contour channel of
    the same place, so one outline for two colours failed to be drawn."""
    return [f"Channel_{i + 1}" for i in range(max(n_channels, 1))]


GALLERY_COLOR = b"#FFFFFF"


def application_name() -> str:
    """The ``application`` attribute written into Explorer files (names this version)."""
    from napari_cellae import __version__

    return f"napari-cellae {__version__} (CellCognition Explorer deep learning module)"


def to_uint8(crops: np.ndarray, normalisation: Normalisation | None) -> np.ndarray:
    """Thumbnails as uint8: 8-bit data as stored, wider data scaled (never truncated)."""
    if crops.dtype == np.uint8:
        return crops
    if normalisation is None:
        from napari_cellae.core.normalisation import Normalisation

        normalisation = Normalisation.from_crops(crops)
    out = np.empty(crops.shape, dtype=np.uint8)
    for start in range(0, len(crops), 4096):  # bounded float32 working memory
        part = normalisation.apply(crops[start : start + 4096])
        part = np.asarray(part.detach().cpu() if hasattr(part, "detach") else part)
        out[start : start + len(part)] = np.clip(np.rint(part * 255.0), 0, 255).astype(np.uint8)
    return out


def source_image_size(crops: CropSet) -> tuple[int, int]:
    """(height, width) of the source images; falls back to the extent of the centres."""
    try:
        from napari_cellae.io.cellh5 import CellH5

        with CellH5(crops.source) as ch5:
            shape = ch5.image_shape(crops.positions[int(crops.position_index[0])])
        return int(shape[-2]), int(shape[-1])
    except Exception:
        # Not the crop windows: centred at the border, they reach past the image.
        return int(crops.center_y.max()) + 1, int(crops.center_x.max()) + 1


def build_arrays(
    crops: CropSet,
    features: np.ndarray,
    mapping: PositionMapping | None,
    normalisation: Normalisation | None,
    names: Sequence[str] | None = None,
    file_labels: Sequence[str] | None = None,
    fields: FileFields | None = None,
) -> dict[str, np.ndarray]:
    """The Explorer rows of some cells: ``bbox``, ``features``, ``groups``, ``contours``
    and ``gallery`` arrays, as :func:`write_explorer_hdf` writes them (the streaming
    writer appends the same rows position by position); ``names`` are the features' own
    (:func:`~napari_cellae.export.explorer_names.feature_names`). ``file_labels``, one per
    entry of ``crops.positions``, fill the ``file`` column; default
    :func:`~napari_cellae.io.centres.position_labels` (``plate/C03_01`` when the cells come
    from several plates, so that one plate's C03_01 is not another's). ``fields`` fits the
    ``file`` and ``treatment`` texts into their 128 bytes, distinct texts kept distinct
    across calls (warns of any changed); default: for these rows alone."""
    n = len(crops)
    size = int(crops.box)  # the window in the image, also where crops were resampled
    pos_labels = list(file_labels) if file_labels is not None else position_labels(crops.positions)
    if len(pos_labels) != len(crops.positions):
        raise ValueError(f"{len(pos_labels)} file labels for {len(crops.positions)} positions")
    treatments = []
    for key, label in zip(crops.positions, pos_labels, strict=True):
        info = mapping.lookup(key) if mapping is not None else None
        # Unmapped positions keep their own label so they stay distinguishable.
        treatments.append(info.condition if info is not None else label)
    pidx = np.asarray(crops.position_index, dtype=np.int64)

    bbox = np.zeros(n, dtype=BBOX_DTYPE)
    fields = fields if fields is not None else FileFields()
    bbox["file"] = fields.file.encode(pos_labels)[pidx] if n else bbox["file"]
    bbox["treatment"] = fields.treatment.encode(treatments)[pidx] if n else bbox["treatment"]
    for name, values in int32_columns(crops).items():  # refused where they would wrap
        bbox[name] = values
    # Orientation is optional (CellProfiler has none): absent, NaN or inf becomes 0 (inf
    # was written as 1.8e308).
    for name in ("angle", "eccentricity"):
        values = getattr(crops, name, None)
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            bbox[name] = np.where(np.isfinite(values), values, 0.0)

    names = feature_names(features.shape[1], names)
    feat = np.ascontiguousarray(features, dtype=np.float32).view(
        np.dtype([(name, "<f4") for name in names])
    )
    feat = feat.reshape(n)

    groups = np.zeros(len(names), dtype=FEATURE_GROUP_DTYPE)
    # feature_names gives ASCII names of at most 64 bytes
    groups["feature"] = np.array([name.encode() for name in names], dtype="S64")
    groups["Simple1"] = b"Simple1"

    # Corners of the crop square shown, centred on the cell (cut to uint16).
    contours = corner_contours(crops.origin_x, crops.origin_y, size, fields)

    # (N, C, y, x) -> (y, x, C, N): thumbnail i, channel c is gallery[:, :, c, i] in [y, x].
    gallery = np.ascontiguousarray(to_uint8(crops.crops, normalisation).transpose(2, 3, 1, 0))
    return {
        "bbox": bbox,
        "features": feat,
        "groups": groups,
        "contours": contours,
        "gallery": gallery,
    }


def checked_features(path: str | os.PathLike, features: np.ndarray, n: int) -> np.ndarray:
    """``features`` as an array, refused (naming ``path``) unless it has shape (n, F)."""
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] != n:
        raise ValueError(
            f"cannot write {path}: features have shape {features.shape}, "
            f"expected ({n}, n_features) for {n} cells"
        )
    return features


def write_explorer_hdf(
    path: str | os.PathLike,
    crops: CropSet,
    features: np.ndarray,
    mapping: PositionMapping | None,
    *,
    normalisation: Normalisation | None = None,
    image_size: tuple[int, int] | None = None,
    inputs: Iterable[str | os.PathLike | None] = (),
    names: Sequence[str] | None = None,
) -> Path:
    """Write learned features of all cells as a CellCognition Explorer ``.hdf`` file.

    Parameters
    ----------
    path : path-like
        Output file. Written to a temporary name in the same folder and renamed when
        complete, so a failure never leaves a partial file behind.
    crops : CropSet
        The crops that were encoded (gives positions, centres, boxes, thumbnails).
    features : ndarray, shape (N, F)
        Learned features, row ``i`` for crop ``i``.
    mapping : PositionMapping or None
        Gives each position's condition (``treatment``); unmapped positions use their
        position label.
    normalisation : Normalisation, optional
        Intensity scaling of the model; used to turn 16-bit (or wider) crops into 8-bit
        thumbnails. 8-bit crops are stored unchanged. Chosen from the crops if omitted.
    image_size : (int, int), optional
        (height, width) of the source images; read from the CellH5 file if omitted.
    inputs : iterable of path-like, optional
        Input files of the run (the CellH5 file is always one); writing over one of them
        is refused.
    names : sequence of str, optional
        The features' own names (``conv1_mean_0``, ..., ``mask_area``), written as
        ``ch1-<name>``; without them, ``ch1-deep_learning_feature_<i>``.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If features do not match the crops, there are no cells, or the file cannot be
        written (the message names the path).
    """
    path = Path(path)
    n = len(crops)
    features = checked_features(path, features, n)
    if n == 0:
        raise ValueError(f"cannot write {path}: there are no cells to write")
    if features.shape[1] == 0:
        raise ValueError(f"cannot write {path}: features have no columns")
    if not fits_float32(features):
        raise ValueError(
            f"cannot write {path}: features contain NaN or infinite values (or values "
            "too large for the file's 32-bit floats)"
        )
    check_output(path, [crops.source, *inputs], "features file")

    arrays = build_arrays(
        crops, features, mapping, normalisation, names, fields=FileFields(str(path))
    )
    if image_size is None:
        image_size = source_image_size(crops)

    # HDF5 creates the temporary file itself, so it gets the user's normal permissions.
    with atomic_hdf5(path) as h5:
        h5.attrs["training_data"] = np.array([b"data"])
        h5.attrs["application"] = np.bytes_(application_name().encode("utf-8"))
        data = h5.create_group("data")
        # Every dataset stays open until the file is flushed: one freed at once would write
        # its cached chunks while being freed, where a full disk's error cannot be raised.
        kept = [
            data.create_dataset("bbox", data=arrays["bbox"]),
            data.create_dataset("features", data=arrays["features"]),
            data.create_dataset("feature_groups", data=arrays["groups"]),
        ]
        gallery = arrays["gallery"]
        s, _, c, _ = gallery.shape
        contours = data.create_group("contours")
        contours.attrs["channels"] = np.array([name.encode() for name in outline_channels(c)])
        for name in outline_channels(c):
            cds = contours.create_dataset(name, shape=(n, 2), dtype=h5py.vlen_dtype(np.uint16))
            cds[...] = arrays["contours"]
            kept.append(cds)
        gds = data.create_dataset(
            "gallery",
            data=gallery,
            # A chunk holds a few hundred whole thumbnails: the Explorer reads them one by
            # one, and gzip keeps big screens small.
            chunks=(s, s, c, min(n, 256)),
            compression="gzip",
            compression_opts=1,
        )
        gds.attrs["colors"] = np.array([GALLERY_COLOR] * c)
        gds.attrs["image_size"] = np.array(image_size, dtype=np.int64)
        kept.append(gds)
    return path


@dataclass
class ExplorerData:
    """Contents of a CellCognition Explorer ``.hdf`` file.

    Attributes
    ----------
    bbox : ndarray
        Structured array with :data:`BBOX_DTYPE` fields, one row per cell.
    features : ndarray, shape (N, F), float32
    feature_names : list of str
    feature_groups : ndarray
        Structured array (feature, Simple1).
    gallery : ndarray, shape (s, s, n_channels, N), uint8
        ``gallery[:, :, c, i]`` is thumbnail ``i`` in [y, x] order.
    contours : ndarray, shape (N, 2), object
        uint16 arrays: x corners and y corners of each crop square.
    contour_channels : list of str
    image_size : tuple of int
        (height, width) of the source images.
    colors : list of str
    application : str
    training_data : list of str
    """

    bbox: np.ndarray
    features: np.ndarray
    feature_names: list[str]
    feature_groups: np.ndarray
    gallery: np.ndarray
    contours: np.ndarray
    contour_channels: list[str] = field(default_factory=list)
    image_size: tuple[int, ...] = ()
    colors: list[str] = field(default_factory=list)
    application: str = ""
    training_data: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.bbox)


def _str(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_explorer_hdf(path: str | os.PathLike) -> ExplorerData:
    """Read a CellCognition Explorer ``.hdf`` file written by :func:`write_explorer_hdf`.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    ExplorerData

    Raises
    ------
    ValueError
        If the file is missing or not in the Explorer layout (the message names it).
    """
    path = Path(path)
    try:
        h5 = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        raise ValueError(f"cannot read {path}: not an HDF5 file or not readable ({exc})") from exc
    with h5:
        try:
            data = h5["data"]
            feat_ds = data["features"]
            names = list(feat_ds.dtype.names or ())
            raw = feat_ds[()]
            features = (
                raw.view(np.float32).reshape(len(raw), len(names))
                if names
                else np.zeros((len(raw), 0), np.float32)
            )
            gds = data["gallery"]
            cgrp = data["contours"]
            channels = [_str(c) for c in cgrp.attrs.get("channels", [])]
            contours = cgrp[channels[0] if channels else CONTOUR_CHANNEL][()]
            return ExplorerData(
                bbox=data["bbox"][()],
                features=np.array(features, dtype=np.float32),
                feature_names=names,
                feature_groups=data["feature_groups"][()],
                gallery=gds[()],
                contours=contours,
                contour_channels=channels,
                image_size=tuple(int(v) for v in gds.attrs.get("image_size", ())),
                colors=[_str(c) for c in gds.attrs.get("colors", [])],
                application=_str(h5.attrs.get("application", b"")),
                training_data=[_str(t) for t in h5.attrs.get("training_data", [])],
            )
        except KeyError as exc:
            raise ValueError(f"{path} is not a CellCognition Explorer file: missing {exc}") from exc
