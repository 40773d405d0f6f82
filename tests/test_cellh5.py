"""Reading CellH5 files of both producers, and every way a file can be wrong."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import HEIGHT, WIDTH, synthetic_position
from napari_cellae.io.cellh5 import CellH5, CellH5Error, PositionKey, is_cellh5
from napari_cellae.io.cellh5_writer import write_cellh5


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_cellcognition_file(cellcognition_file: Path) -> None:
    expected = synthetic_position("A01", "0001", seed=1)
    with CellH5(cellcognition_file) as ch5:
        assert ch5.positions == [
            PositionKey("plate1", "A01", "0001"),
            PositionKey("plate1", "B02", "0001"),
        ]
        assert [c.name for c in ch5.channels] == ["rfp"]
        assert ch5.object_names == ["primary__primary"]
        assert ch5.default_object == "primary__primary"
        assert ch5.object_channel("primary__primary") == 0
        assert [c.name for c in ch5.class_labels("primary__primary")] == [
            "interphase",
            "mitotic",
        ]
        pos = ch5.positions[0]
        assert ch5.image_shape(pos) == (1, 3, 1, HEIGHT, WIDTH)
        assert ch5.dtype(pos) == np.uint8
        np.testing.assert_array_equal(ch5.image(pos)[()], expected.image)
        table = ch5.objects(pos, "primary__primary")
        truth = expected.objects["primary__primary"]
        assert len(table) == 15
        np.testing.assert_array_equal(table.time_idx, [0] * 5 + [1] * 5 + [2] * 5)
        np.testing.assert_array_equal(table.center_x, truth.center_x)
        np.testing.assert_array_equal(table.center_y, truth.center_y)
        np.testing.assert_array_equal(table.bbox, truth.bbox)
        np.testing.assert_allclose(table.angle, truth.angle)
        np.testing.assert_array_equal(table.class_idx, truth.class_idx)
        assert ch5.object_count(pos, "primary__primary") == 15


def test_cellprofiler_file(cellprofiler_file: Path) -> None:
    expected = synthetic_position(
        "A02", "1", plate="Plate_1", n_frames=1, n_per_frame=6, dtype="uint16", peak=3000.0,
        n_channels=2, object_name="Nuclei", orientation=False, classes=False, seed=4,
    )  # fmt: skip
    # CellProfiler links by absolute path: the per-position files sit beside the master.
    with h5py.File(cellprofiler_file, "r") as raw:
        link = raw.get("sample/0/plate/Plate_1/experiment/A02/position/1", getlink=True)
        assert Path(link.filename).is_absolute()
    with CellH5(cellprofiler_file) as ch5:
        assert [p.label for p in ch5.positions] == ["A01_1", "A02_1"]
        assert [c.name for c in ch5.channels] == ["DNA", "GFP"]
        assert ch5.default_object == "Nuclei"
        assert ch5.object_channel("Nuclei") == 0
        assert ch5.class_labels("Nuclei") is None
        pos = ch5.positions[1]
        assert ch5.dtype(pos) == np.uint16
        pixels = ch5.image(pos)[()]
        assert pixels.max() > 255  # never truncated to 8 bit
        np.testing.assert_array_equal(pixels, expected.image)
        table = ch5.objects(pos, "Nuclei")
        assert table.angle is None and table.eccentricity is None and table.class_idx is None
        np.testing.assert_array_equal(table.center_y, expected.objects["Nuclei"].center_y)


def test_several_plates_in_one_file(tmp_path: Path) -> None:
    positions = [
        synthetic_position("A01", "1", plate="P2", n_frames=1),
        synthetic_position("A01", "1", plate="P1", n_frames=1),
        synthetic_position("A10", "1", plate="P1", n_frames=1),
        synthetic_position("A2", "1", plate="P1", n_frames=1),
    ]
    path = write_cellh5(tmp_path / "x.ch5", positions, ["dna"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        assert [(p.plate, p.well) for p in ch5.positions] == [
            ("P1", "A01"), ("P1", "A2"), ("P1", "A10"), ("P2", "A01"),
        ]  # fmt: skip


def test_opening_reads_no_pixels_and_never_modifies(cellcognition_file: Path) -> None:
    folder = cellcognition_file.parent
    before = _digest(folder)
    with CellH5(cellcognition_file) as ch5:
        dataset = ch5.image(ch5.positions[0])
        assert isinstance(dataset, h5py.Dataset)  # lazy, read on indexing only
        assert ch5._file.mode == "r"
    assert _digest(folder) == before


def test_is_cellh5(cellcognition_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    assert is_cellh5(cellcognition_file)
    assert not is_cellh5(other)
    assert not is_cellh5(tmp_path / "missing.ch5")


# -- bad input ------------------------------------------------------------------------------


def _write(tmp_path: Path, **kwargs) -> Path:
    position = synthetic_position("A01", "1", n_frames=2, **kwargs)
    return write_cellh5(tmp_path / "bad.ch5", [position], ["dna"], {"primary__primary": 0})


def _expect(path: Path, *fragments: str, call=None) -> None:
    with pytest.raises(CellH5Error) as info:
        if call is None:
            CellH5(path)
        else:
            with CellH5(path) as ch5:
                call(ch5)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "notes.ch5"
    path.write_text("plate layout\n")
    _expect(path, "not an HDF5 file")


def test_truncated_file(cellcognition_file: Path, tmp_path: Path) -> None:
    source = cellcognition_file.parent / "A01_0001.ch5"
    path = tmp_path / "truncated.ch5"
    path.write_bytes(source.read_bytes()[:2000])
    _expect(path, "damaged or truncated")


def test_missing_file(tmp_path: Path) -> None:
    _expect(tmp_path / "nothing.ch5", "no such file")


def test_hdf5_without_sample(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((2, 2))
    _expect(path, "no /sample group")


def test_files_of_other_kinds_are_named(tmp_path: Path, mapping_file: Path) -> None:
    # A cells file, an Explorer .hdf, a model or a mapping given as the CellH5 input read
    # "not a CellH5 file: it has no /sample group" or "not an HDF5 file".
    import anndata as ad
    import torch

    cells = tmp_path / "cells.h5ad"
    ad.AnnData(np.zeros((2, 3), np.float32)).write_h5ad(cells)
    _expect(cells, "is an AnnData file of cells", "give the CellH5 (.ch5) file")
    explorer = tmp_path / "features.hdf"
    with h5py.File(explorer, "w") as f:
        f["data/features"] = np.zeros(3)
    _expect(explorer, "is a CellCognition Explorer .hdf file of features", "(.ch5)")
    model = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(2)}, model)
    _expect(model, "but a napari-cellae model", "give it with --model")
    _expect(mapping_file, "but a position-mapping text file", "give it with --mapping")


def test_unreleased_data_layout(tmp_path: Path) -> None:
    path = tmp_path / "new.ch5"
    with h5py.File(path, "w") as f:
        f.create_group("data/plate1/A01/1")
        f.create_group("layout/plate1")
    _expect(path, "not CellH5 1.x")


def test_dangling_external_link(cellcognition_file: Path) -> None:
    (cellcognition_file.parent / "B02_0001.ch5").unlink()
    _expect(cellcognition_file, "B02_0001.ch5", "external link")


def test_position_without_image(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with h5py.File(path, "a") as f:
        del f["sample/0/plate/plate1/experiment/A01/position/1/image/channel"]
    _expect(path, "position A01_1", "image/channel", call=lambda ch5: ch5.image(ch5.positions[0]))


def test_part_file_holding_another_position(cellcognition_file: Path) -> None:
    # B02's part replaced by a copy of A01's: the master was said to lack the position.
    folder = cellcognition_file.parent
    shutil.copy(folder / "A01_0001.ch5", folder / "B02_0001.ch5")
    _expect(cellcognition_file, "points to 'B02_0001.ch5', which has no /sample/0/plate/plate1/")


def test_virtual_image_whose_source_file_is_gone(tmp_path: Path) -> None:
    path = _write(tmp_path)
    image = "sample/0/plate/plate1/experiment/A01/position/1/image/channel"
    with h5py.File(path, "a") as f:
        pixels = f[image][()]
        f["raw"] = pixels
        del f[image]
        layout = h5py.VirtualLayout(shape=pixels.shape, dtype=pixels.dtype)
        layout[...] = h5py.VirtualSource("raw.ch5", "/raw", shape=pixels.shape)
        f.create_virtual_dataset(image, layout, fillvalue=0)
    shutil.copy(path, tmp_path / "raw.ch5")
    with CellH5(path) as ch5:
        np.testing.assert_array_equal(ch5.image(ch5.positions[0])[()], pixels)
    (tmp_path / "raw.ch5").unlink()  # the pixels would read as zeros without a word
    _expect(
        path,
        "image/channel of position A01_1 is a virtual dataset and its source file 'raw.ch5'",
        call=lambda ch5: ch5.image(ch5.positions[0]),
    )


def test_image_in_an_external_raw_file_that_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A missing external raw file read as "the stored pixels are damaged"; HDF5 looks for
    # it from the working folder, not beside the file.
    path = _write(tmp_path)
    image = "sample/0/plate/plate1/experiment/A01/position/1/image/channel"
    monkeypatch.chdir(tmp_path)
    with h5py.File(path, "a") as f:
        pixels = f[image][()]
        del f[image]
        f.create_dataset(image, data=pixels, external=[("pixels.raw", 0, h5py.h5f.UNLIMITED)])
    with CellH5(path) as ch5:
        np.testing.assert_array_equal(ch5.image(ch5.positions[0])[()], pixels)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    _expect(
        path,
        "image/channel of position A01_1 keeps its values in the external file 'pixels.raw', "
        f"which is missing ({elsewhere / 'pixels.raw'}); one is beside {path.name}, but HDF5 "
        f"looks from the folder a program runs in: run it from {tmp_path}",
        call=lambda ch5: ch5.image(ch5.positions[0]),
    )
    (tmp_path / "pixels.raw").unlink()
    monkeypatch.chdir(tmp_path)
    _expect(
        path,
        "external file 'pixels.raw', which is missing",
        call=lambda ch5: ch5.image(ch5.positions[0]),
    )


def test_virtual_label_images_whose_source_file_is_gone(tmp_path: Path) -> None:
    # Only image/channel was checked: label images whose source had moved read as zeros and
    # the run warned only that label ids were not found (crops left unmasked).
    path = _write(tmp_path)
    region = "sample/0/plate/plate1/experiment/A01/position/1/image/region"
    with h5py.File(path, "a") as f:
        labels = f[region][()]
        f["labels"] = labels
        del f[region]
        layout = h5py.VirtualLayout(shape=labels.shape, dtype=labels.dtype)
        layout[...] = h5py.VirtualSource("labels.ch5", "/labels", shape=labels.shape)
        f.create_virtual_dataset(region, layout, fillvalue=0)
    shutil.copy(path, tmp_path / "labels.ch5")
    with CellH5(path) as ch5:
        dataset, _ = ch5.labels(ch5.positions[0], "primary__primary")
        np.testing.assert_array_equal(dataset[()], labels)
    (tmp_path / "labels.ch5").unlink()
    _expect(
        path,
        "image/region of position A01_1 is a virtual dataset and its source file 'labels.ch5'"
        f" is missing ({tmp_path / 'labels.ch5'}); HDF5 would read those pixels as zeros",
        call=lambda ch5: ch5.labels(ch5.positions[0], "primary__primary"),
    )


def test_label_images_in_an_external_raw_file_that_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path)
    region = "sample/0/plate/plate1/experiment/A01/position/1/image/region"
    monkeypatch.chdir(tmp_path)
    with h5py.File(path, "a") as f:
        labels = f[region][()]
        del f[region]
        f.create_dataset(region, data=labels, external=[("labels.raw", 0, h5py.h5f.UNLIMITED)])
    (tmp_path / "labels.raw").unlink()
    _expect(
        path,
        "image/region of position A01_1 keeps its values in the external file 'labels.raw',"
        f" which is missing ({tmp_path / 'labels.raw'})",
        call=lambda ch5: ch5.labels(ch5.positions[0], "primary__primary"),
    )


def test_object_table_without_centres(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with h5py.File(path, "a") as f:
        del f["sample/0/plate/plate1/experiment/A01/position/1/feature/primary__primary/center"]
    _expect(
        path,
        "no centre table",
        call=lambda ch5: ch5.objects(ch5.positions[0], "primary__primary"),
    )


def test_centres_outside_image(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with h5py.File(path, "a") as f:
        center = f[
            "sample/0/plate/plate1/experiment/A01/position/1/feature/primary__primary/center"
        ]
        values = center[()]
        values["x"][3] = WIDTH + 5
        center[...] = values
    _expect(
        path,
        "outside the 80x64 image",
        f"x={WIDTH + 5}",
        call=lambda ch5: ch5.objects(ch5.positions[0], "primary__primary"),
    )


def test_zero_objects(tmp_path: Path) -> None:
    position = synthetic_position("A01", "1", n_frames=1)
    del position.objects["primary__primary"]
    path = write_cellh5(tmp_path / "empty.ch5", [position], ["dna"], {"primary__primary": 0})
    _expect(path, "no segmented objects", call=lambda ch5: ch5.default_object)
    _expect(path, "no object 'Nuclei'", call=lambda ch5: ch5.objects(ch5.positions[0], "Nuclei"))


@pytest.mark.parametrize("shape", [(HEIGHT, WIDTH), (2, HEIGHT, WIDTH), (1, 2, HEIGHT, WIDTH)])
def test_images_not_five_dimensional(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = _write(tmp_path)
    with h5py.File(path, "a") as f:
        group = f["sample/0/plate/plate1/experiment/A01/position/1/image"]
        del group["channel"]
        group["channel"] = np.zeros(shape, np.uint8)
    _expect(
        path,
        f"has {len(shape)} dimensions",
        "(c, t, z, y, x)",
        call=lambda ch5: ch5.image(ch5.positions[0]),
    )


@pytest.mark.parametrize(
    "shape", [(1, 2, HEIGHT, WIDTH), (1, 3, 1, HEIGHT, WIDTH), (1, 2, 0, HEIGHT, WIDTH)]
)
def test_label_images_of_the_wrong_shape_are_named(tmp_path: Path, shape: tuple) -> None:
    # A 4-D image/region used to pass for "no label images" (and the crops were then
    # segmented by threshold, with a warning that the position had none); one without
    # z-planes failed in h5py's words (IndexError: Index (0) out of range for empty dimension)
    # when the crops were masked.
    path = _write(tmp_path)
    with h5py.File(path, "a") as f:
        group = f["sample/0/plate/plate1/experiment/A01/position/1/image"]
        del group["region"]
        group["region"] = np.zeros(shape, np.uint16)
    _expect(
        path,
        f"image/region of position A01_1 has shape {shape}, not (regions, 2, z, {HEIGHT}",
        "--mask none",
        call=lambda ch5: ch5.labels(ch5.positions[0], "primary__primary"),
    )


def test_position_that_is_a_dataset(tmp_path: Path) -> None:
    """It was reported later in h5py's words ('Field names only allowed for compound
    types') when its image or objects were read."""
    path = _write(tmp_path)
    with h5py.File(path, "a") as f:
        del f["sample/0/plate/plate1/experiment/A01/position/1"]
        f["sample/0/plate/plate1/experiment/A01/position/1"] = 1
    _expect(path, "position A01_1 of plate plate1 (", ") is a dataset, expected a group")


def test_scalar_label_images_are_named(tmp_path: Path) -> None:
    """A scalar image/region failed with an IndexError (tuple index out of range)."""
    path = _write(tmp_path)
    with h5py.File(path, "a") as f:
        group = f["sample/0/plate/plate1/experiment/A01/position/1/image"]
        del group["region"]
        group["region"] = np.uint16(1)
    _expect(
        path,
        "image/region of position A01_1 has shape (), not (regions, 2, z,",
        call=lambda ch5: ch5.labels(ch5.positions[0], "primary__primary"),
    )


@pytest.mark.parametrize("kind", ["scalar", "group"])
def test_object_count_of_a_table_that_is_not_one(tmp_path: Path, kind: str) -> None:
    """``cellae info`` counts objects from the table's length: a scalar table crashed with
    a TypeError, a group in its place counted its members as objects."""
    positions = [synthetic_position(well, "1", n_frames=2) for well in ("A01", "A02")]
    path = write_cellh5(tmp_path / "bad.ch5", positions, ["dna"], {"primary__primary": 0})
    with h5py.File(path, "a") as f:
        name = "sample/0/plate/plate1/experiment/A02/position/1/object/primary__primary"
        rows = f[name][()]
        del f[name]
        if kind == "scalar":
            f[name] = rows[0]
        else:
            f.create_group(name)
            f[name]["a"], f[name]["b"] = rows, rows
    _expect(
        path,
        "object 'primary__primary' of position A02_1: object/primary__primary",
        call=lambda ch5: ch5.object_count(ch5.positions[1], "primary__primary"),
    )


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("plain", "holds int32 values of shape (10, 2), not a table of objects (compound"),
        ("group", "is not a table of objects (compound columns time_idx, obj_label_id)"),
        ("no time", "is a table without a time_idx column (columns: obj_label_id)"),
    ],
)
def test_an_object_entry_that_is_no_table_is_named(tmp_path: Path, kind: str, said: str) -> None:
    """Such an entry was skipped without a word: 'contains no segmented objects (no tables
    under object/)' though one is there, or 'has no object (objects in this file: none)'."""
    path = _write(tmp_path)
    with h5py.File(path, "a") as f:
        name = "sample/0/plate/plate1/experiment/A01/position/1/object/primary__primary"
        rows = f[name][()]
        del f[name]
        if kind == "plain":
            f[name] = np.stack([rows["time_idx"], rows["obj_label_id"]], 1).astype(np.int32)
        elif kind == "group":
            f.create_group(name)
        else:
            f[name] = np.rec.fromarrays([rows["obj_label_id"]], names="obj_label_id")
    where = "object/primary__primary of position A01_1 "
    _expect(path, "contains no segmented objects (" + where + said, call=lambda c: c.default_object)
    _expect(path, where + said, call=lambda ch5: ch5.check_object("primary__primary"))
    with CellH5(path) as ch5:
        assert ch5.object_names == []
        assert ch5.object_problem("primary__primary").startswith(where + said)
        assert ch5.object_problem("Nuclei") is None
        with pytest.raises(CellH5Error, match=r"has no object 'Nuclei' \(objects in this file: n"):
            ch5.check_object("Nuclei")


def test_object_table_without_frame_column(tmp_path: Path) -> None:
    """The object types come from the first position; a later one may lack time_idx."""
    positions = [synthetic_position(well, "1", n_frames=2) for well in ("A01", "A02")]
    path = write_cellh5(tmp_path / "bad.ch5", positions, ["dna"], {"primary__primary": 0})
    with h5py.File(path, "a") as f:
        name = "sample/0/plate/plate1/experiment/A02/position/1/object/primary__primary"
        labels = f[name]["obj_label_id"]
        del f[name]
        f[name] = np.rec.fromarrays([labels], names="obj_label_id")
    _expect(
        path,
        "object 'primary__primary' of position A02_1: object/primary__primary has no "
        "time_idx column",
        call=lambda ch5: ch5.objects(ch5.positions[1], "primary__primary"),
    )


def test_frame_index_beyond_image(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with h5py.File(path, "a") as f:
        table = f["sample/0/plate/plate1/experiment/A01/position/1/object/primary__primary"]
        values = table[()]
        values["time_idx"][0] = 7
        table[...] = values
    _expect(path, "time_idx 7", call=lambda ch5: ch5.objects(ch5.positions[0], "primary__primary"))


_CLASSES = "feature/primary__primary/object_classification/class_labels"


@pytest.mark.parametrize(
    ("table", "data", "fragments"),
    [
        (
            "image/region",
            np.array([b"region___primary__primary"]),
            (
                "/definition/image/region is not a 1-D table with the columns region_name,"
                " channel_idx (it has shape (1,) and no named columns)",
            ),
        ),
        (
            "image/region",
            np.array(
                [(b"region___primary__primary", np.nan)],
                [("region_name", "S30"), ("channel_idx", "<f8")],
            ),
            ("/definition/image/region column channel_idx holds [nan], not whole numbers",),
        ),
        (
            _CLASSES,
            np.array([(0, b"interphase")], [("label", "<i4"), ("name", "S20")]),
            (
                f"/definition/{_CLASSES} is not a 1-D table with the columns label, name, color",
                "columns label, name)",
            ),
        ),
        (
            _CLASSES,
            np.array((0, b"a", b"#fff"), [("label", "<i4"), ("name", "S4"), ("color", "S4")]),
            ("is not a 1-D table", "shape ()"),
        ),
        (
            _CLASSES,
            np.array([(0.5, b"a", b"#fff")], [("label", "<f4"), ("name", "S4"), ("color", "S4")]),
            ("column label holds [0.5], not whole numbers",),
        ),
        (
            "image/channel",
            np.array((b"dna", b"#FFFFFF"), [("channel_name", "S8"), ("color", "S8")]),
            ("/definition/image/channel is not a 1-D table (it has shape ()",),
        ),
    ],
    ids=[
        "region-plain",
        "region-nan",
        "classes-no-colour",
        "classes-scalar",
        "label-0.5",
        "channel-scalar",
    ],
)
def test_malformed_definition_tables_are_named(tmp_path: Path, table, data, fragments) -> None:
    """These raised numpy's words naming no file ('no field of name channel_idx', 'cannot
    convert float NaN to integer') or a traceback (a scalar table)."""
    position = synthetic_position("A01", "1", n_frames=2)
    path = write_cellh5(
        tmp_path / "bad.ch5",
        [position],
        ["dna"],
        {"primary__primary": 0},
        class_labels={"primary__primary": [(0, "interphase", "#00FF00")]},
    )
    with h5py.File(path, "a") as f:
        del f[f"definition/{table}"]
        f[f"definition/{table}"] = data
    _expect(path, *fragments, call=_describe)


def test_a_segmentation_channel_the_images_lack_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with h5py.File(path, "a") as f:
        del f["definition/image/region"]
        f["definition/image/region"] = np.array(
            [(b"region___primary__primary", 5)], [("region_name", "S30"), ("channel_idx", "<i4")]
        )
    with CellH5(path) as ch5, pytest.warns(UserWarning, match=r"bad\.ch5: .*channel 5, which"):
        assert ch5.object_channel("primary__primary") == 0


def test_copy_of_master_without_parts(cellcognition_file: Path, tmp_path: Path) -> None:
    lonely = tmp_path / "_all_positions.ch5"
    shutil.copy(cellcognition_file, lonely)
    _expect(lonely, "cannot be opened")


# -- link loops, read-only access -----------------------------------------------------------

_A01 = "sample/0/plate/plate1/experiment/A01/position/0001"


def _describe(ch5: CellH5) -> None:
    """Everything ``cellae info`` reads."""
    for pos in ch5.positions:
        ch5.image_shape(pos)
        for name in ch5.object_names:
            ch5.object_count(pos, name)
            ch5.objects(pos, name)
    for name in ch5.object_names:
        ch5.object_channel(name)
        ch5.class_labels(name)
    assert ch5.channels


def _crops(ch5: CellH5) -> None:
    """What ``cellae train`` reads."""
    from napari_cellae.core.crops import collect_crops

    collect_crops(ch5, ch5.default_object, 16)


def _reader(path: Path) -> None:
    from napari_cellae._reader import read_cellh5

    read_cellh5(str(path))


@pytest.mark.parametrize(
    ("file", "link"),
    [
        ("A01_0001.ch5", f"/{_A01}/object/primary__primary"),
        ("A01_0001.ch5", f"/{_A01}/feature/primary__primary/center"),
        ("A01_0001.ch5", f"/{_A01}/image/channel"),
        ("A01_0001.ch5", "/definition/image/channel"),
        ("_all_positions.ch5", "/sample/0/plate/plate1/experiment/B02/position/0001"),
        ("_all_positions.ch5", "/sample"),
    ],
)
def test_soft_link_loop_named_by_every_entry_point(
    cellcognition_file: Path, file: str, link: str
) -> None:
    with h5py.File(cellcognition_file.parent / file, "a") as f:
        del f[link]
        f[link] = h5py.SoftLink(link)
    for entry in (
        lambda: _describe(CellH5(cellcognition_file)),
        lambda: _crops(CellH5(cellcognition_file)),
        lambda: _reader(cellcognition_file),
    ):
        with pytest.raises(CellH5Error) as info:
            entry()
        message = str(info.value)
        assert message.startswith(f"{cellcognition_file}: ")
        assert f"the soft link {link} in {file} points to itself (a link loop)" in message


def test_external_link_loop_is_named(cellcognition_file: Path) -> None:
    part = cellcognition_file.parent / "B02_0001.ch5"
    part.unlink()
    target = "/sample/0/plate/plate1/experiment/B02/position/0001"
    with h5py.File(part, "w") as f:
        f[target] = h5py.ExternalLink("_all_positions.ch5", target)
    _expect(
        cellcognition_file,
        "position B02_0001 of plate plate1 cannot be opened: the external links form a loop:",
        f"_all_positions.ch5:{target} -> B02_0001.ch5:{target} -> _all_positions.ch5:{target}",
    )


def test_every_file_is_opened_read_only(
    cellcognition_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[str] = []
    original = h5py.File.__init__

    def recording(self, name, mode="r", *args, **kwargs):
        modes.append(mode)
        original(self, name, mode, *args, **kwargs)

    folder = cellcognition_file.parent
    before = _digest(folder)
    monkeypatch.setattr(h5py.File, "__init__", recording)
    assert is_cellh5(cellcognition_file)
    with CellH5(folder) as ch5:
        _describe(ch5)
        _crops(ch5)
    _reader(cellcognition_file)
    assert modes and set(modes) == {"r"}
    assert _digest(folder) == before
    # The link tracer opens the files a broken link passes through: read-only as well.
    monkeypatch.setattr(h5py.File, "__init__", original)
    target = "/sample/0/plate/plate1/experiment/B02/position/0001"
    (folder / "B02_0001.ch5").unlink()
    with h5py.File(folder / "B02_0001.ch5", "w") as f:
        f[target] = h5py.ExternalLink("_all_positions.ch5", target)
    before = _digest(folder)
    modes.clear()
    monkeypatch.setattr(h5py.File, "__init__", recording)
    with pytest.raises(CellH5Error, match="loop"):
        CellH5(cellcognition_file)
    assert len(modes) >= 2 and set(modes) == {"r"}
    assert _digest(folder) == before


def test_objects_that_only_later_positions_hold_are_said_to_be_there(tmp_path: Path) -> None:
    # The object types come from the first position with any: 'Nuclei' of B02 was refused
    # as "has no object 'Nuclei' (objects in this file: primary__primary)".
    positions = [synthetic_position("A01", "1", n_frames=1)]
    positions.append(synthetic_position("B02", "1", n_frames=1, object_name="Nuclei"))
    path = write_cellh5(tmp_path / "mixed.ch5", positions, ["dna"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        assert ch5.object_names == ["primary__primary"]
        with pytest.raises(
            CellH5Error,
            match=r"has objects 'Nuclei' in 1 of 2 positions \(B02_1\) but not in A01_1, "
            r"which holds primary__primary",
        ):
            ch5.check_object("Nuclei")
        with pytest.raises(CellH5Error, match=r"has no object 'Cells' \(objects in this file"):
            ch5.check_object("Cells")


def test_a_malformed_region_table_leaves_the_channels_readable(tmp_path: Path) -> None:
    # Channel names need the region table only where CellCognition wrote more channel rows
    # than the images hold; the raw images (the napari reader) opened with a region table
    # that label images and object channels refuse, and must still.
    position = synthetic_position("A01", "1", n_frames=2)
    path = write_cellh5(tmp_path / "bad.ch5", [position], ["dna"], {"primary__primary": 0})
    with h5py.File(path, "a") as f:
        del f["definition/image/region"]
        f["definition/image/region"] = np.array([b"region___primary__primary"])
    with CellH5(path) as ch5:
        assert [c.name for c in ch5.channels] == ["dna"]
        with pytest.raises(CellH5Error, match="image/region is not a 1-D table"):
            ch5.object_channel("primary__primary")


def test_channels_of_one_name_are_told_apart(tmp_path: Path) -> None:
    """Two channels named 'DAPI' were both 'DAPI': '--channel DAPI' took the last, and a model
    trained on channel 0 (it remembers names) was applied to channel 1's pixels without a word."""
    from napari_cellae.pipeline.selection import channels_named, resolve_channels

    positions = [synthetic_position(w, "1", n_channels=3, seed=i) for i, w in enumerate("AB")]
    path = write_cellh5(
        tmp_path / "d.ch5", positions, ["DAPI", "GFP", "DAPI"], {"primary__primary": 0}
    )
    with CellH5(path) as ch5:
        names = [c.name for c in ch5.channels]
        assert names == ["DAPI (channel 0)", "GFP", "DAPI (channel 2)"]
        assert channels_named(ch5, [names[0]], "the model was trained on") == [0]
        with pytest.raises(
            CellH5Error, match=r"no channel 'DAPI' \(channels: 0=DAPI \(channel 0\)"
        ):
            resolve_channels(ch5, "primary__primary", ["DAPI"])
        assert resolve_channels(ch5, "primary__primary", ["DAPI (channel 2)"]) == [2]


def test_object_table_of_no_rows_beside_longer_feature_tables(tmp_path: Path) -> None:
    """Encoding counted the position's objects from its table alone, took it for an empty
    well and left its cells out without a word (the reader and training refused it)."""
    path = _write(tmp_path)
    with h5py.File(path, "a") as f:
        name = "sample/0/plate/plate1/experiment/A01/position/1/object/primary__primary"
        rows = f[name][:0]
        del f[name]
        f[name] = rows
    _expect(
        path,
        "feature/primary__primary/center has 10 rows, object/primary__primary has 0",
        call=lambda ch5: ch5.object_count(ch5.positions[0], "primary__primary"),
    )
