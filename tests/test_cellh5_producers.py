"""Files built the way the real producers write them, read as they mean them.

CellProfiler's ExportToCellH5 (through the cellh5write library) and CellCognition 1.6 write
details that the test suite's own writer (``napari_cellae.io.cellh5_writer``) does not: the
region table numbers the objects, colours are ``0xRRGGBB`` cut to 7 bytes, tables are
created large and cut to size, a plate file gets its positions only once a run ends. The
files here are written with h5py step by step as those writers do.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import synthetic_position
from napari_cellae.core.crops import collect_crops
from napari_cellae.io.cellh5 import CellH5, CellH5Error
from napari_cellae.io.cellh5_writer import write_cellh5

H, W = 48, 64
_OBJECT = np.dtype([("time_idx", "i4"), ("obj_label_id", "i4")])
_CENTER = np.dtype([("x", "i4"), ("y", "i4")])
_BOX = np.dtype([("left", "i4"), ("right", "i4"), ("top", "i4"), ("bottom", "i4")])
_PLANE = np.dtype(
    [("object_idx", "i4"), ("time_idx", "i4"), ("channel_idx", "i4"), ("zsclice_idx", "i4")]
)
_CHANNEL_DEF = np.dtype(
    [
        ("channel_name", "S50"),
        ("description", "S100"),
        ("is_physical", bool),
        ("voxel_size", "f8", 3),
        ("color", "S7"),
    ]
)
_REGION_DEF = np.dtype([("region_name", "S50"), ("channel_idx", "i4")])
_XS = (10, 30, 50)  # three cells in a row, label ids 1, 2, 3
_Y = 24


def _disks(radius: int, values: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:H, :W]
    image, labels = np.zeros((H, W)), np.zeros((H, W), np.uint16)
    for k, (x, value) in enumerate(zip(_XS, values, strict=True)):
        inside = (xx - x) ** 2 + (yy - _Y) ** 2 <= radius**2
        image[inside], labels[inside] = value, k + 1
    return image, labels


def _image_planes(group: h5py.Group, name: str, n: int) -> None:
    """cellh5write's table of the planes written (object/channel, object/region)."""
    table = group.create_dataset(
        name, shape=(5,), dtype=_PLANE, maxshape=(None,), chunks=(5,), compression="gzip"
    )
    table.resize((n,))
    table[:] = np.array([(k, 0, k, 0) for k in range(n)], _PLANE)


def exporttocellh5(
    folder: Path, objects: list[tuple[str, np.ndarray]], images: list[tuple[str, np.ndarray]]
) -> Path:
    """A master file and its per-process file as ExportToCellH5 writes one image set."""
    sub = folder / "DefaultOut_4711.ch5"  # <master>_<process id>, linked by absolute path
    path = "/sample/0/plate/Plate1/experiment/A01/position/1"
    with h5py.File(sub, "w") as f:
        definition = f.create_group("definition")
        for name in ("image", "object", "feature"):
            definition.create_group(name)
        pos = f.create_group(path)
        for name in ("image", "object", "feature"):
            pos.create_group(name)
        # Label images: one row per exported object, in the module's order.
        region = pos["image"].create_dataset("region", (len(objects), 1, 1, H, W), np.uint16)
        for c, (_, labels) in enumerate(objects):
            region[c, 0, 0] = labels
        _image_planes(pos["object"], "region", len(objects))
        rows = [(name, c) for c, (name, _) in enumerate(objects)]  # channel_idx: the row
        definition["image"].create_dataset("region", data=np.array(rows, _REGION_DEF))
        channel = pos["image"].create_dataset("channel", (len(images), 1, 1, H, W), np.uint16)
        for c, (_, pixels) in enumerate(images):
            channel[c, 0, 0] = (pixels * 65535).astype(np.uint16)
        _image_planes(pos["object"], "channel", len(images))
        # '0xFFFFFF' in a 7-byte column is stored as '0xFFFFF'.
        channel_rows = [(name, name, True, (1, 1, 1), "0xFFFFFF") for name, _ in images]
        definition["image"].create_dataset("channel", data=np.array(channel_rows, _CHANNEL_DEF))
        for name, labels in objects:
            ids = np.unique(labels)[1:]
            table = pos["object"].create_dataset(
                name, (10000,), _OBJECT, maxshape=(None,), chunks=(10000,), compression="gzip"
            )
            table.resize((len(ids),))  # created large, cut to size when finished
            table[:] = np.array([(0, i) for i in ids], _OBJECT)
            feature = pos["feature"].create_group(name)
            matrix = feature.create_dataset(
                "object_features", (len(ids), 2), np.float32, chunks=(10000, 2),
                maxshape=(None, 2), compression="gzip",
            )  # fmt: skip
            matrix[:] = 1.0
            yy, xx = np.nonzero(labels)
            at = labels[yy, xx]
            centre = feature.create_dataset("center", (1000,), _CENTER, maxshape=(None,))
            centre.resize((len(ids),))
            centre[:] = np.array([(xx[at == i].mean(), yy[at == i].mean()) for i in ids], _CENTER)
            box = feature.create_dataset("bounding_box", (1000,), _BOX, maxshape=(None,))
            box.resize((len(ids),))
            box[:] = np.array(
                [(xx[at == i].min(), xx[at == i].max(), yy[at == i].min(), yy[at == i].max())
                 for i in ids], _BOX,
            )  # fmt: skip
    master = folder / "DefaultOut.ch5"
    with h5py.File(master, "w") as f:
        f[path] = h5py.ExternalLink(str(sub.resolve()), path)
        f["definition"] = h5py.ExternalLink(str(sub.resolve()), "definition")
    return master


@pytest.fixture
def cells_then_nuclei(tmp_path: Path) -> Path:
    """Objects exported as Cells, Nuclei; images as DNA, Actin (the module's own order)."""
    dna, nuclei = _disks(4, (0.5, 0.6, 0.7))
    actin, cells = _disks(8, (0.2, 0.2, 0.2))
    return exporttocellh5(
        tmp_path, [("Cells", cells), ("Nuclei", nuclei)], [("DNA", dna), ("Actin", actin)]
    )


def test_exporttocellh5_region_table_names_no_channel(cells_then_nuclei: Path) -> None:
    # ExportToCellH5 fills channel_idx with the object's row (Nuclei: 1), not the image it
    # was found in: Nuclei were cropped from Actin by default, the DNA left unseen.
    with CellH5(cells_then_nuclei) as ch5:
        assert not ch5.records_object_channels
        assert ch5.default_object == "Nuclei"
        assert ch5.object_channel("Nuclei") == 0
        assert ch5.object_channel("Cells") == 0
        assert ch5.region_index("Nuclei") == 1  # its label images are row 1 all the same
        crops = collect_crops(ch5, "Nuclei", 8, mask="neighbours")
        assert crops.channels == [0]
        np.testing.assert_array_equal(crops.label_id, [1, 2, 3])
        np.testing.assert_array_equal(crops.crops[:, 0, 4, 4], [32767, 39321, 45874])


def test_exporttocellh5_one_image_two_objects(tmp_path: Path) -> None:
    # Cells at row 1 named channel 1 of a file of one image: a warning that the file was
    # wrong ("which the images do not have") on every run.
    dna, nuclei = _disks(4, (0.5, 0.6, 0.7))
    _, cells = _disks(8, (0.2, 0.2, 0.2))
    path = exporttocellh5(tmp_path, [("Nuclei", nuclei), ("Cells", cells)], [("DNA", dna)])
    with CellH5(path) as ch5, warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ch5.object_channel("Cells") == 0


def test_exporttocellh5_colours(cells_then_nuclei: Path) -> None:
    # '0xFFFFFF', '0xFF0000' ... cut to 7 bytes; they were shown as white, red as grey.
    with h5py.File(cells_then_nuclei.parent / "DefaultOut_4711.ch5", "r+") as f:
        rows = f["definition/image/channel"][()]
        rows["color"] = [b"0xFF0000", b"0x00FF00"]
        del f["definition/image/channel"]
        f["definition/image/channel"] = rows
    with CellH5(cells_then_nuclei) as ch5:
        assert [c.color for c in ch5.channels] == ["#FF0000", "#00FF00"]
        assert not ch5.records_object_channels


def test_cellcognition_region_table_names_channels(cells_then_nuclei: Path) -> None:
    # The same numbers under CellCognition's names do name channels.
    sub = cells_then_nuclei.parent / "DefaultOut_4711.ch5"
    with h5py.File(sub, "r+") as f:
        del f["definition/image/region"]
        rows = [("region___Cells", 0), ("region___Nuclei", 1)]
        f["definition/image/region"] = np.array(rows, _REGION_DEF)
    with CellH5(cells_then_nuclei) as ch5:
        assert ch5.records_object_channels
        assert ch5.object_channel("Nuclei") == 1


def test_exporttocellh5_folder_moved(cells_then_nuclei: Path, tmp_path: Path) -> None:
    # The master links by absolute path; HDF5 finds the file beside it once moved.
    moved = tmp_path / "moved"
    moved.mkdir()
    for file in list(tmp_path.glob("DefaultOut*.ch5")):
        file.rename(moved / file.name)
    with CellH5(moved / "DefaultOut.ch5") as ch5:
        assert len(ch5.objects(ch5.positions[0], "Nuclei")) == 3


def cellcognition_plate(folder: Path, merged: bool = False) -> Path:
    """CellCognition 1.6's plate file: /layout, an empty group per finished position, the
    data in cellh5/<well>_<site>.ch5 until the run ends (then copied in, folder removed)."""
    per_position = folder / "cellh5"
    per_position.mkdir(parents=True)
    layout = np.dtype([("File", "S10"), ("Well", "S3"), ("Site", "<i8"), ("Group", "S10")])
    plate = folder / "LT0001_01.ch5"
    with h5py.File(plate, "w") as f:
        rows = [(b"A01_01", b"A01", 1, b"neg"), (b"B02_01", b"B02", 1, b"target")]
        f.create_dataset("layout/LT0001_01", data=np.array(rows, layout))
    for seed, well in enumerate(("A01", "B02")):
        position = synthetic_position(well, "1", plate="LT0001_01", seed=seed)
        write_cellh5(
            per_position / f"{well}_01.ch5",
            [position],
            channel_names=["rfp"],
            object_channels={"primary__primary": 0},
        )
        with h5py.File(plate, "r+") as f:  # createSite
            f.create_group(f"sample/0/plate/LT0001_01/experiment/{well}/position/1")
    return plate


def test_cellcognition_plate_file_before_its_positions_are_copied_in(tmp_path: Path) -> None:
    # A stopped run, or any plate but the last of a run of several, keeps its positions'
    # data in cellh5/; the plate file was refused: "position A01_1 has no raw image".
    plate = cellcognition_plate(tmp_path)
    expected = synthetic_position("B02", "1", plate="LT0001_01", seed=1)
    with CellH5(tmp_path) as ch5:
        assert ch5.path == plate
        assert [p.label for p in ch5.positions] == ["A01_1", "B02_1"]
        assert [c.name for c in ch5.channels] == ["rfp"]
        assert ch5.default_object == "primary__primary"
        pos = ch5.positions[1]
        np.testing.assert_array_equal(ch5.image(pos)[()], expected.image)
        table = ch5.objects(pos, "primary__primary")
        np.testing.assert_array_equal(table.center_x, expected.objects["primary__primary"].center_x)
        crops = collect_crops(ch5, "primary__primary", 16, mask="neighbours")
        assert len(crops.crops) == 30 and not crops.unlabelled_positions


def test_cellcognition_plate_file_without_its_positions(tmp_path: Path) -> None:
    plate = cellcognition_plate(tmp_path)
    shutil.rmtree(tmp_path / "cellh5")
    with CellH5(plate) as ch5, pytest.raises(CellH5Error) as err:
        ch5.image(ch5.positions[0])
    assert "position A01_1 is an empty group (no image, objects or features)" in str(err.value)
    assert "per-position file is not in" in str(err.value) and "A01_01.ch5" in str(err.value)


def test_cellcognition_plate_file_without_its_positions_in_the_widget(tmp_path: Path) -> None:
    # The widget's form asks for the objects first: it said "contains no segmented objects
    # (no tables under object/)" where napari's reader said where the data should be.
    from napari_cellae._ui.form import read_file_info

    plate = cellcognition_plate(tmp_path)
    shutil.rmtree(tmp_path / "cellh5")
    with pytest.raises(CellH5Error) as err:
        read_file_info(plate)
    assert "position A01_1 is an empty group (no image, objects or features)" in str(err.value)
    assert "Put the folder cellh5 with the per-position files beside the plate file" in str(
        err.value
    )


def test_cellcognition_channel_kinds_sharing_a_camera_channel(tmp_path: Path) -> None:
    # Primary and secondary both imaged in rfp, tertiary in gfp: CellCognition stores rfp
    # once (channel 0) and gfp as channel 1, but writes a definition row per kind; channel
    # 1 was named 'secondary' (an rfp row) and drawn red.
    position = synthetic_position("A01", "1", n_channels=2, seed=2)
    path = write_cellh5(
        tmp_path / "A01_01.ch5",
        [position],
        channel_names=["x", "y"],
        object_channels={"primary__primary": 0},
    )
    kinds = [("primary", "rfp", "#FF0000"), ("secondary", "rfp", "#FF0000")]
    kinds.append(("tertiary", "gfp", "#00FF00"))
    regions = [("primary", "primary", 0), ("secondary", "expanded", 0)]
    regions.append(("tertiary", "expanded", 1))
    with h5py.File(path, "r+") as f:
        del f["definition/image/channel"], f["definition/image/region"]
        rows = [(kind, channel, True, (0, 0, 0), color) for kind, channel, color in kinds]
        f["definition/image/channel"] = np.array(rows, _CHANNEL_DEF)
        rows = [(f"region___{kind}__{name}", c) for kind, name, c in regions]
        f["definition/image/region"] = np.array(rows, _REGION_DEF)
    with CellH5(path) as ch5:
        assert [(c.name, c.color) for c in ch5.channels] == [
            ("primary", "#FF0000"),
            ("tertiary", "#00FF00"),
        ]
