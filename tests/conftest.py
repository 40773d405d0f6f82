"""Small synthetic CellH5 files in the CellCognition and CellProfiler flavours.

The images are deliberately non-square (64 x 80) so that a transposed crop cannot pass a test,
and every position has an object close to the image border.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_cellae.io.cellh5_writer import ObjectData, PositionData, write_cellh5

HEIGHT, WIDTH = 64, 80
CLASS_LABELS = [(0, "interphase", "#00FF00"), (1, "mitotic", "#FF0000")]


def blob_image(
    centers_yx: np.ndarray, n_frames_index: np.ndarray, n_frames: int, dtype: str, peak: float
) -> np.ndarray:
    """A (t, y, x) image with one Gaussian spot per object plus an x/y ramp background.

    The ramp makes every pixel position distinguishable, so shifted or transposed crops fail.
    """
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = np.empty((n_frames, HEIGHT, WIDTH), np.float64)
    for t in range(n_frames):
        frame = 0.05 * peak * (yy / HEIGHT + 2 * xx / WIDTH) / 3
        for cy, cx in centers_yx[n_frames_index == t]:
            frame += peak * 0.8 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0**2))
        frames[t] = frame
    return np.clip(np.round(frames), 0, np.iinfo(dtype).max).astype(dtype)


def synthetic_position(
    well: str,
    site: str,
    *,
    plate: str = "plate1",
    n_frames: int = 3,
    n_per_frame: int = 5,
    dtype: str = "uint8",
    peak: float = 250.0,
    n_channels: int = 1,
    object_name: str = "primary__primary",
    orientation: bool = True,
    classes: bool = True,
    seed: int = 0,
    centers_yx: np.ndarray | None = None,
) -> PositionData:
    """One position with ``n_per_frame`` blobs per frame, one of them at the border
    (``centers_yx``, shape (n_frames * n_per_frame, 2): these centres instead)."""
    rng = np.random.default_rng(seed)
    n = n_frames * n_per_frame
    time_idx = np.repeat(np.arange(n_frames), n_per_frame).astype(np.int32)
    cy = rng.integers(8, HEIGHT - 8, n).astype(np.int32)
    cx = rng.integers(8, WIDTH - 8, n).astype(np.int32)
    cy[::n_per_frame], cx[::n_per_frame] = 2, WIDTH - 3  # top-right corner object
    if centers_yx is not None:
        cy, cx = (np.asarray(v, np.int32) for v in np.asarray(centers_yx).T)
    frames = blob_image(np.stack([cy, cx], 1), time_idx, n_frames, dtype, peak)
    channels = [frames]
    for c in range(1, n_channels):
        channels.append((frames // (c + 1)).astype(dtype))
    image = np.stack(channels)[:, :, None]  # (c, t, 1, y, x)
    bbox = np.stack(
        [
            np.maximum(cx - 4, 0),
            np.minimum(cx + 4, WIDTH - 1),
            np.maximum(cy - 4, 0),
            np.minimum(cy + 4, HEIGHT - 1),
        ],
        axis=1,
    ).astype(np.int32)
    label_id = np.tile(np.arange(1, n_per_frame + 1), n_frames).astype(np.int32)
    labels = np.zeros((1, n_frames, 1, HEIGHT, WIDTH), np.uint16)
    for i in range(n):
        left, right, top, bottom = bbox[i]
        labels[0, time_idx[i], 0, top : bottom + 1, left : right + 1] = label_id[i]
    objects = ObjectData(
        time_idx=time_idx,
        label_id=label_id,
        center_x=cx,
        center_y=cy,
        bbox=bbox,
        angle=rng.uniform(-90, 90, n) if orientation else None,
        eccentricity=rng.uniform(0, 1, n) if orientation else None,
        class_idx=(np.arange(n) % 2).astype(np.int32) if classes else None,
    )
    return PositionData(plate, well, site, image, {object_name: objects}, labels)


def whole_image_objects(path: Path, wells: tuple[str, ...] = ("A01", "A02")) -> Path:
    """A CellH5 file of 64 x 80 px images whose 8 objects per well share one label that
    covers the whole image (bounding boxes of 80 x 64 px): no crop box can hold them."""
    positions = []
    for i, well in enumerate(wells):
        position = synthetic_position(well, "1", n_frames=1, n_per_frame=8, seed=i)
        position.labels = np.ones_like(position.labels)
        table = position.objects["primary__primary"]
        table.bbox = np.tile(np.array([0, 79, 0, 63], np.int32), (8, 1))
        table.label_id = np.ones(8, np.int32)
        positions.append(position)
    return write_cellh5(path, positions, ["rfp"], {"primary__primary": 0})


def tiny_images(path: Path) -> Path:
    """A CellH5 file of two wells of 12 x 12 px images, 3 one-pixel objects ``nuc`` each:
    smaller than any preset's crop box."""
    positions = []
    for i, well in enumerate(("A01", "A02")):
        rng = np.random.default_rng(i)
        image = rng.integers(0, 100, (1, 1, 1, 12, 12)).astype(np.uint16)
        cy, cx = (rng.integers(0, 12, 3).astype(np.int32) for _ in range(2))
        image[0, 0, 0, cy, cx] = 3000
        labels = np.zeros_like(image)
        labels[0, 0, 0, cy, cx] = np.arange(1, 4)
        table = ObjectData(
            time_idx=np.zeros(3, np.int32),
            label_id=np.arange(1, 4, dtype=np.int32),
            center_x=cx,
            center_y=cy,
            bbox=np.stack([cx, cx, cy, cy], 1).astype(np.int32),
        )
        positions.append(PositionData("plate1", well, "1", image, {"nuc": table}, labels))
    return write_cellh5(path, positions, ["dna"], {"nuc": 0})


def naive_crop(image: np.ndarray, c: int, t: int, cy: int, cx: int, size: int) -> np.ndarray:
    """Reference: one crop at a time, window shifted inside the image."""
    height, width = image.shape[-2:]
    y0 = min(max(cy - size // 2, 0), height - size)
    x0 = min(max(cx - size // 2, 0), width - size)
    return image[c, t, 0, y0 : y0 + size, x0 : x0 + size]


def image_window(
    plane: np.ndarray, y0: int, x0: int, size: int, fill: float = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Reference: the window of a 2-D plane at ``(y0, x0)``, which may reach past the plane;
    returns it (``fill`` outside the plane) and the mask of its pixels inside the plane."""
    height, width = plane.shape
    top, left = max(y0, 0), max(x0, 0)
    bottom, right = min(y0 + size, height), min(x0 + size, width)
    window = np.full((size, size), fill, dtype=plane.dtype)
    inside = np.zeros((size, size), bool)
    window[top - y0 : bottom - y0, left - x0 : right - x0] = plane[top:bottom, left:right]
    inside[top - y0 : bottom - y0, left - x0 : right - x0] = True
    return window, inside


def centre_window(window: np.ndarray, cy: int, cx: int, height: int, width: int) -> np.ndarray:
    """Reference, one crop at a time: ``window`` (as :func:`naive_crop` reads it, shifted
    inside a ``height`` x ``width`` image) moved so ``(cy, cx)`` is its centre; what lies
    outside the image takes the median of the window's edge ring (rounded for integers)."""
    size = window.shape[-1]
    y0 = min(max(cy - size // 2, 0), height - size)
    x0 = min(max(cx - size // 2, 0), width - size)
    ring = np.concatenate([window[0], window[-1], window[1:-1, 0], window[1:-1, -1]])
    level = np.quantile(ring, 0.5, method="lower")  # the lower median: a pixel value
    # Place the window's pixels in image coordinates, then read the centred window there.
    canvas = np.full((height + 2 * size, width + 2 * size), level, dtype=window.dtype)
    canvas[y0 + size : y0 + 2 * size, x0 + size : x0 + 2 * size] = window
    top, left = cy - size // 2 + size, cx - size // 2 + size
    out = canvas[top : top + size, left : left + size].copy()
    if (top, left) == (y0 + size, x0 + size):
        return window.copy()  # not moved: untouched
    return out


def centred_crop(image: np.ndarray, c: int, t: int, cy: int, cx: int, size: int) -> np.ndarray:
    """Reference: one crop centred on ``(cy, cx)``, as ``collect_crops`` gives it."""
    height, width = image.shape[-2:]
    return centre_window(np.asarray(naive_crop(image, c, t, cy, cx, size)), cy, cx, height, width)


def asymmetric_image(dtype: str = "uint16", c: int = 2, t: int = 3) -> np.ndarray:
    """Every pixel value unique: value encodes (c, t, y, x); non-square so a transpose fails."""
    h, w = 30, 50
    values = np.arange(c * t * h * w).reshape(c, t, 1, h, w)
    return values.astype(dtype) if dtype != "uint8" else (values % 251).astype(dtype)


@pytest.fixture
def disk_without_inodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file reports inode 0, as on some network, FUSE and FAT disks."""
    real_stat = os.stat

    def stat_without_inode(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        fields = list(real_stat(path, *args, **kwargs))
        fields[stat.ST_INO] = 0
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", stat_without_inode)


@pytest.fixture
def cellcognition_file(tmp_path: Path) -> Path:
    """CellCognition style: uint8, 3 frames, ``primary__primary`` with orientation and class
    predictions, one file per position plus ``_all_positions.ch5`` with relative links."""
    folder = tmp_path / "cellcognition" / "hdf5"
    folder.mkdir(parents=True)
    positions = [
        synthetic_position("A01", "0001", seed=1),
        synthetic_position("B02", "0001", seed=2),
    ]
    return write_cellh5(
        folder / "_all_positions.ch5",
        positions,
        channel_names=["rfp"],
        object_channels={"primary__primary": 0},
        class_labels={"primary__primary": CLASS_LABELS},
        flavour="cellcognition",
        split_files=True,
    )


@pytest.fixture
def mapping_file(tmp_path: Path) -> Path:
    """CellCognition mapping table for ``cellcognition_file``: A01 control, B02 PLK1."""
    path = tmp_path / "cellcognition_mapping.txt"
    path.write_text(
        "Position\tWell\tSite\tRow\tColumn\tGene Symbol\tsiRNA ID\tGroup\n"
        "0001\tA01\t0001\tA\t1\tscrambled\ts001\tneg\n"
        "0002\tB02\t0001\tB\t2\tPLK1\ts123\ttarget\n",
        encoding="utf-8",
    )
    return path


def write_cellprofiler_screen(path: Path, wells: tuple[str, ...] = ("A01", "A02")) -> Path:
    """CellProfiler style: uint16 (values above 255), object ``Nuclei``, one frame, two
    channels, no orientation, no classes, master file ``path`` with absolute links to one
    file per well."""
    positions = [
        synthetic_position(
            well,
            "1",
            plate="Plate_1",
            n_frames=1,
            n_per_frame=6,
            dtype="uint16",
            peak=3000.0,
            n_channels=2,
            object_name="Nuclei",
            orientation=False,
            classes=False,
            seed=seed,
        )
        for seed, well in enumerate(wells, start=3)
    ]
    return write_cellh5(
        path,
        positions,
        channel_names=["DNA", "GFP"],
        object_channels={"Nuclei": 0},
        flavour="cellprofiler",
        split_files=True,
    )


@pytest.fixture
def cellprofiler_file(tmp_path: Path) -> Path:
    """:func:`write_cellprofiler_screen` of wells A01 and A02."""
    folder = tmp_path / "cellprofiler"
    folder.mkdir()
    return write_cellprofiler_screen(folder / "screen.ch5")


@pytest.fixture(params=["cellcognition", "cellprofiler"])
def large_cells_file(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """Cells with 41 x 41 px bounding boxes (fewer where the image border clips them)."""
    position = synthetic_position("A01", "1", n_frames=1, n_per_frame=12, seed=5)
    table = position.objects["primary__primary"]
    cx, cy = table.center_x, table.center_y
    table.bbox = np.stack([cx - 20, cx + 20, cy - 20, cy + 20], axis=1).clip(0, 63)
    return write_cellh5(
        tmp_path / "large.ch5",
        [position],
        channel_names=["dna"],
        object_channels={"primary__primary": 0},
        flavour=request.param,
    )


def damage_chunk(path: Path, dataset: str, coord: tuple[int, ...]) -> None:
    """Overwrite the middle of one compressed chunk of ``dataset`` in ``path`` with junk,
    as a bad disk sector would."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info_by_coord(coord)
    with open(path, "r+b") as raw:
        raw.seek(info.byte_offset + info.size // 2)
        raw.write(b"\xff" * 16)


@pytest.fixture
def errors(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Messages the widget shows with napari's show_error (imported here only: the core's
    tests need no Qt)."""
    from napari_cellae import _widget

    shown: list[str] = []
    monkeypatch.setattr(_widget, "show_error", lambda message: shown.append(str(message)))
    return shown


@pytest.fixture
def runner(qtbot):
    """A widget's job runner (``_ui.runner.JobRunner``) whose owner widget the test closes."""
    from qtpy.QtWidgets import QWidget

    from napari_cellae._ui.runner import JobRunner

    owner = QWidget()
    qtbot.addWidget(owner)
    return JobRunner(owner)
