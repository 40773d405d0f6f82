"""Tests for napari_cellae.io.objects: object tables checked before any crop is cut."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import damage_chunk, synthetic_position
from napari_cellae.core.crops import collect_crops
from napari_cellae.io.cellh5 import CellH5, CellH5Error
from napari_cellae.io.cellh5_writer import write_cellh5

POSITION = "sample/0/plate/plate1/experiment/A01/position/1"
FEATURE = f"{POSITION}/feature/primary__primary"


def _file(tmp_path: Path) -> Path:
    position = synthetic_position("A01", "1", n_frames=2)
    return write_cellh5(tmp_path / "cells.ch5", [position], ["dna"], {"primary__primary": 0})


def _replace(path: Path, name: str, edit, dtype: str = "<f8") -> None:
    """Rewrite table ``name`` with ``dtype`` columns and let ``edit`` change the values."""
    with h5py.File(path, "a") as f:
        old = f[name][()]
        new = np.zeros(len(old), [(field, dtype) for field in old.dtype.names])
        for field in old.dtype.names:
            new[field] = old[field]
        edit(new)
        del f[name]
        f[name] = new


def _objects(path: Path):
    with CellH5(path) as ch5:
        return ch5.objects(ch5.positions[0], "primary__primary")


def _set(field: str, rows: list[int], value: float):
    def edit(table: np.ndarray) -> None:
        table[field][rows] = value

    return edit


def test_nan_centres_are_named_not_shown_as_huge_numbers(tmp_path: Path) -> None:
    path = _file(tmp_path)
    _replace(path, f"{FEATURE}/center", _set("x", [2, 7], np.nan))
    for read in (
        _objects,
        lambda p: collect_crops(CellH5(p), "primary__primary", 16),
    ):
        with pytest.raises(CellH5Error) as info:
            read(path)
        message = str(info.value)
        assert message.startswith(f"{path}: object 'primary__primary' of position A01_1:")
        assert "x is missing (NaN) for 2 object(s) in feature/primary__primary/center" in message
        assert "object row(s) 2, 7" in message
        assert "2147483648" not in message


@pytest.mark.parametrize(
    ("table", "field", "value", "fragment"),
    [
        (f"{FEATURE}/center", "y", np.inf, "y is infinite for 1 object(s)"),
        (f"{FEATURE}/bounding_box", "left", np.nan, "left is missing (NaN) for 1 object(s) in"),
        (f"{POSITION}/object/primary__primary", "time_idx", np.nan, "time_idx is missing"),
        (f"{FEATURE}/object_classification/prediction", "label_idx", np.nan, "label_idx"),
    ],
)
def test_other_missing_numbers(tmp_path: Path, table, field, value, fragment) -> None:
    path = _file(tmp_path)
    _replace(path, table, _set(field, [4], value))
    with pytest.raises(CellH5Error, match="object row\\(s\\) 4") as info:
        _objects(path)
    assert fragment in str(info.value)


def test_float_centres_are_rounded(tmp_path: Path) -> None:
    path = _file(tmp_path)
    before = _objects(path)
    _replace(path, f"{FEATURE}/center", _set("x", [1], float(before.center_x[1]) + 0.6))
    after = _objects(path)
    assert after.center_x.dtype == np.int32
    assert after.center_x[1] == before.center_x[1] + 1
    np.testing.assert_array_equal(np.delete(after.center_x, 1), np.delete(before.center_x, 1))


def test_tables_of_different_length(tmp_path: Path) -> None:
    path = _file(tmp_path)
    with h5py.File(path, "a") as f:
        box = f[f"{FEATURE}/bounding_box"][()]
        del f[f"{FEATURE}/bounding_box"]
        f[f"{FEATURE}/bounding_box"] = box[:-1]
    with pytest.raises(
        CellH5Error, match="bounding_box has 9 rows, object/primary__primary has 10"
    ):
        _objects(path)


def test_damaged_compressed_centre_table(tmp_path: Path) -> None:
    path = _file(tmp_path)
    with h5py.File(path, "a") as f:
        center = f[f"{FEATURE}/center"][()]
        del f[f"{FEATURE}/center"]
        f.create_dataset(f"{FEATURE}/center", data=np.tile(center, 100), compression="gzip")
        objects = f[f"{POSITION}/object/primary__primary"][()]
        del f[f"{POSITION}/object/primary__primary"]
        f[f"{POSITION}/object/primary__primary"] = np.tile(objects, 100)
    damage_chunk(path, f"{FEATURE}/center", (0,))
    with pytest.raises(CellH5Error) as info:
        _objects(path)
    message = str(info.value)
    assert message.startswith(f"{path}: object 'primary__primary' of position A01_1")
    assert "feature/primary__primary/center) is damaged" in message


OBJECTS = f"{POSITION}/object/primary__primary"


def _assert_refused(path: Path, fragment: str) -> None:
    """Reading the objects and cropping both refuse ``path``, naming the object and position."""
    for read in (_objects, lambda p: collect_crops(CellH5(p), "primary__primary", 16)):
        with pytest.raises(CellH5Error) as info:
            read(path)
        message = str(info.value)
        assert message.startswith(f"{path}: object 'primary__primary' of position A01_1: ")
        assert fragment in message


@pytest.mark.parametrize(
    ("table", "field", "value", "dtype", "fragment"),
    [
        (
            f"{FEATURE}/center",
            "x",
            2**32 + 40,  # int32 wraps it round to x=40, inside the image
            "<i8",
            "1 centre(s) lie outside the 80x64 image, e.g. object 3 at x=4294967336, y=",
        ),
        (f"{FEATURE}/center", "y", 5 - 2**32, "<i8", "object 3 at x="),
        (
            OBJECTS,
            "time_idx",
            2**32 + 1,
            "<i8",
            "time_idx 4294967297 of object 3 does not exist (the image has 2 frame(s)); "
            "1 object(s) of object/primary__primary have such a frame",
        ),
        (OBJECTS, "time_idx", 2**63 + 1, "<u8", "time_idx 9223372036854775809 of object 3"),
        (
            OBJECTS,
            "obj_label_id",
            2**32 + 2,
            "<i8",
            "obj_label_id does not fit a 32-bit integer for 1 object(s) in "
            "object/primary__primary, object row(s) 3, e.g. 4294967298",
        ),
        (
            f"{FEATURE}/object_classification/prediction",
            "label_idx",
            2**32,
            "<i8",
            "label_idx does not fit a 32-bit integer for 1 object(s)",
        ),
        (f"{FEATURE}/center", "x", 1e300, "<f8", "e.g. object 3 at x=1e+300, y="),
    ],
    ids=["x-int64", "y-int64", "time-int64", "time-uint64", "label-int64", "class", "x-float"],
)
def test_whole_numbers_beyond_32_bits_are_refused_not_wrapped(
    tmp_path: Path, table, field, value, dtype, fragment
) -> None:
    path = _file(tmp_path)
    _replace(path, table, _set(field, [3], value), dtype)
    _assert_refused(path, fragment)


@pytest.mark.parametrize("frame", [2, -1])
def test_a_frame_the_image_lacks_is_refused_naming_the_table(tmp_path: Path, frame: int) -> None:
    # A time-lapse's time_idx past the image's frames (2 of frames 0 and 1) or below them
    # was refused without naming the table that holds it.
    path = _file(tmp_path)
    _replace(path, OBJECTS, _set("time_idx", [3, 5], frame), "<i4")
    _assert_refused(
        path,
        f"time_idx {frame} of object 3 does not exist (the image has 2 frame(s)); 2 object(s) "
        "of object/primary__primary have such a frame",
    )


def test_bounding_boxes_beyond_32_bits_are_clipped_not_wrapped(tmp_path: Path) -> None:
    path = _file(tmp_path)
    _replace(path, f"{FEATURE}/bounding_box", _set("right", [3], 3 + 2**32), "<i8")
    assert _objects(path).bbox[3, 1] == 79  # the image's last column, not 3 (wrapped)


def test_bounding_boxes_beyond_the_image_are_cut_to_it(tmp_path: Path) -> None:
    path = _file(tmp_path)
    stored = _objects(path).bbox

    def edit(table: np.ndarray) -> None:
        table["left"][2], table["right"][2] = -(10**9), 10**9
        table["top"][5], table["bottom"][5] = -7, 64

    _replace(path, f"{FEATURE}/bounding_box", edit, "<i4")
    bbox = _objects(path).bbox
    np.testing.assert_array_equal(bbox[2], [0, 79, stored[2, 2], stored[2, 3]])
    np.testing.assert_array_equal(bbox[5], [stored[5, 0], stored[5, 1], 0, 63])
    np.testing.assert_array_equal(np.delete(bbox, [2, 5], 0), np.delete(stored, [2, 5], 0))


def test_bounding_box_edges_stored_the_wrong_way_round_are_the_same_box(tmp_path: Path) -> None:
    # left > right made a 1 px cell (and the suggested crop 16 px, whatever the cells' size)
    path = _file(tmp_path)
    stored = _objects(path).bbox

    def edit(table: np.ndarray) -> None:
        table["left"], table["right"] = table["right"].copy(), table["left"].copy()
        table["top"][4], table["bottom"][4] = table["bottom"][4], table["top"][4]

    _replace(path, f"{FEATURE}/bounding_box", edit, "<i4")
    assert (stored[:, 1] > stored[:, 0]).all()  # else nothing was turned round
    np.testing.assert_array_equal(_objects(path).bbox, stored)


def test_float_centres_on_the_image_edge_are_on_its_edge_pixel(tmp_path: Path) -> None:
    # 79.5 (the corner-counted centre of the last column of an 80 px image) rounded to 80
    # and was refused as outside the image; -0.5 likewise rounds to the first pixel.
    path = _file(tmp_path)

    def edit(table: np.ndarray) -> None:
        table["x"][[0, 1, 2]] = [79.5, 79.9, -0.5]
        table["y"][[3, 4]] = [63.5, -0.4]

    _replace(path, f"{FEATURE}/center", edit)
    objects = _objects(path)
    assert objects.center_x[:3].tolist() == [79, 79, 0]
    assert objects.center_y[3:5].tolist() == [63, 0]
    crops = collect_crops(CellH5(path), "primary__primary", 16)
    assert crops.center_x[:3].tolist() == [79, 79, 0]


@pytest.mark.parametrize(("x", "shown"), [(80.0, "x=80"), (80.7, "x=80.7"), (-0.6, "x=-0.6")])
def test_centres_outside_the_image_are_named_as_stored(
    tmp_path: Path, x: float, shown: str
) -> None:
    path = _file(tmp_path)
    _replace(path, f"{FEATURE}/center", _set("x", [2], x))
    with pytest.raises(
        CellH5Error, match=f"1 centre\\(s\\) lie outside the 80x64 image, e.g. object 2 at {shown},"
    ):
        _objects(path)


def test_objects_sharing_a_label_in_one_frame_are_counted(tmp_path: Path) -> None:
    path = _file(tmp_path)
    assert _objects(path).shared_labels == 0

    def edit(table: np.ndarray) -> None:
        # Frame 0 holds rows 0-4 (labels 1-5), frame 1 rows 5-9 (labels 1-5 again).
        table["obj_label_id"][[1, 4]] = 3  # three objects labelled 3 in frame 0
        table["obj_label_id"][9] = 1  # two labelled 1 in frame 1
        table["obj_label_id"][[7, 8]] = 0  # background: the masking counts those itself

    _replace(path, OBJECTS, edit, "<i4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per run by the cropping, not per table
        objects = _objects(path)
    assert objects.shared_labels == 5
    assert objects.label_id.tolist() == [1, 3, 3, 4, 3, 1, 2, 0, 0, 1]


@pytest.mark.parametrize(
    ("name", "make", "fragment"),
    [
        (OBJECTS, lambda old: old[0], "object/primary__primary has shape ();"),
        (f"{FEATURE}/center", lambda old: old[:, None], "center has shape (10, 1);"),
        (OBJECTS, None, "object/primary__primary is an HDF5 group, not a table"),
        (f"{POSITION}/object", 1, "object is a dataset, not the group of object/primary__p"),
    ],
    ids=["scalar-objects", "2d-centres", "group", "object-dataset"],
)
def test_tables_not_one_row_per_object(tmp_path: Path, name, make, fragment) -> None:
    """A scalar table crashed with a TypeError, a 2-D one cut its crops with a numpy
    broadcast error naming no file, and a group in a table's place dropped the position's
    cells as if none had been segmented."""
    # A second, intact position names the object, as on a plate with one bad well.
    position, other = (synthetic_position(w, "1", n_frames=2) for w in ("A01", "B02"))
    path = write_cellh5(tmp_path / "cells.ch5", [position, other], ["dna"], {"primary__primary": 0})
    with h5py.File(path, "a") as f:
        old = f[name][()] if isinstance(f[name], h5py.Dataset) else None
        del f[name]
        if make is None:
            f.create_group(name)
        else:
            f[name] = make(old) if callable(make) else make
    _assert_refused(path, fragment)


def test_orientation_that_is_not_numbers(tmp_path: Path) -> None:
    path = _file(tmp_path)
    with h5py.File(path, "a") as f:
        n = len(f[OBJECTS])
        del f[f"{FEATURE}/orientation"]
        f[f"{FEATURE}/orientation"] = np.zeros(n, [("angle", "S4"), ("eccentricity", "<f8")])
    with pytest.raises(CellH5Error, match="orientation column angle holds \\|S4, not numbers"):
        _objects(path)


def test_a_fractional_frame_is_refused_not_rounded(tmp_path: Path) -> None:
    # time_idx 0.6 was rounded to frame 1 without a word: a column of times (seconds,
    # hours) rather than frame numbers cropped every cell from some frame.
    path = _file(tmp_path)
    _replace(path, OBJECTS, _set("time_idx", [3, 6], 0.6))
    _assert_refused(
        path,
        "time_idx 0.6 of object 3 in object/primary__primary is not a whole frame number "
        "(frames count 0, 1, 2 ...); 2 object(s) have a fractional one, object row(s) 3, 6",
    )
    (tmp_path / "whole").mkdir()
    whole = _file(tmp_path / "whole")
    _replace(whole, OBJECTS, _set("time_idx", [3, 6], 1.0))  # whole floats stay accepted
    assert list(_objects(whole).time_idx[[3, 6]]) == [1, 1]


@pytest.mark.parametrize(
    ("table", "field", "what"),
    [
        (OBJECTS, "obj_label_id", "a whole label id"),
        (f"{FEATURE}/object_classification/prediction", "label_idx", "a whole class index"),
    ],
)
def test_fractional_label_and_class_ids_are_refused(tmp_path: Path, table, field, what) -> None:
    # 2.5 was rounded to 2 without a word: the crop masked with another cell's label, or
    # the cell shown under another class.
    path = _file(tmp_path)
    _replace(path, table, _set(field, [4], 2.5))
    with pytest.raises(CellH5Error, match="object row\\(s\\) 4") as info:
        _objects(path)
    assert f"{field} 2.5 of object 4 in " in str(info.value) and what in str(info.value)
    (tmp_path / "whole").mkdir()
    whole = _file(tmp_path / "whole")
    _replace(whole, table, _set(field, [4], 1.0))  # whole floats stay accepted
    _objects(whole)


def test_a_position_holding_other_objects_is_not_taken_for_an_empty_well(tmp_path: Path) -> None:
    # A01's objects named 'primary__primary', B02's 'Nuclei' (a master joining two exports):
    # B02 was read as a well without cells, and dropped from training and the outputs.
    positions = [synthetic_position("A01", "1", n_frames=1)]
    positions.append(synthetic_position("B02", "1", n_frames=1, object_name="Nuclei"))
    path = write_cellh5(tmp_path / "mixed.ch5", positions, ["dna"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        assert len(ch5.objects(ch5.positions[0], "primary__primary")) == 5
        for read in (ch5.objects, ch5.object_count):
            with pytest.raises(CellH5Error, match="position B02_1: there is no object/primary"):
                read(ch5.positions[1], "primary__primary")
    # A well where nothing was segmented (no object tables, or only relations) stays empty.
    with h5py.File(path, "a") as f:
        del f["sample/0/plate/plate1/experiment/B02/position/1/object/Nuclei"]
        f["sample/0/plate/plate1/experiment/B02/position/1/object/tracking"] = np.zeros(3)
    with CellH5(path) as ch5:
        assert ch5.object_count(ch5.positions[1], "primary__primary") == 0


def test_image_planes_listed_by_cellh5write_are_no_objects(tmp_path: Path) -> None:
    # cellh5write (CellProfiler's ExportToCellH5) lists every stored image plane under
    # object/channel and object/region, with a time_idx. Taken for objects, 'channel'
    # became the default object of a file whose cells are 'nuc' (upper case sorts first),
    # and every command, cellae info too, failed on its missing centres.
    position = synthetic_position("A01", "1", n_frames=1, object_name="nuc")
    path = write_cellh5(
        tmp_path / "cp.ch5", [position], ["DNA"], {"nuc": 0}, flavour="cellprofiler"
    )
    planes = np.dtype(
        [("object_idx", "<i4"), ("time_idx", "<i4"), ("channel_idx", "<i4"), ("zsclice_idx", "<i4")]
    )
    with h5py.File(path, "a") as f:
        for name in ("channel", "region"):
            f[f"{POSITION}/object/{name}"] = np.zeros(1, planes)
    with CellH5(path) as ch5:
        assert ch5.object_names == ["nuc"]
        assert ch5.default_object == "nuc"
        assert len(ch5.objects(ch5.positions[0], "nuc")) == 5
        with pytest.raises(CellH5Error, match=r"object/channel .*lists image planes"):
            ch5.check_object("channel")


def test_object_group_gone_beside_stored_centres(tmp_path: Path) -> None:
    """A position without object tables passed for an empty well though its centre table
    held cells: they were left out without a word, and encoding called the position one
    whose cells all died (a strong hit)."""
    position, other = (synthetic_position(w, "1", n_frames=2) for w in ("A01", "B02"))
    path = write_cellh5(tmp_path / "cells.ch5", [position, other], ["dna"], {"primary__primary": 0})
    with h5py.File(path, "a") as f:
        del f[f"{POSITION}/object"]
    empty = shutil.copy(path, tmp_path / "empty.ch5")
    with h5py.File(empty, "a") as f:  # an empty well keeps reading as one
        del f[f"{POSITION}/feature"]
    assert len(_objects(empty).time_idx) == 0
    _assert_refused(
        path,
        "there is no object/primary__primary table, but feature/primary__primary/center holds"
        " 10 centre(s)",
    )


@pytest.mark.parametrize("table", [f"{FEATURE}/center", f"{POSITION}/object/primary__primary"])
def test_an_object_table_never_written_is_refused(tmp_path: Path, table: str) -> None:
    # Read as HDF5's fill value, all centres lay at (0, 0) (or every label id was 0) and the
    # cells were cropped from the corner, the masking warning covering only some of them.
    path = _file(tmp_path)
    with h5py.File(path, "a") as f:
        shape, dtype = f[table].shape, f[table].dtype
        del f[table]
        f.create_dataset(table, shape=shape, dtype=dtype, chunks=True)
    with CellH5(path) as ch5, pytest.raises(CellH5Error, match="was never written") as e:
        ch5.objects(ch5.positions[0], "primary__primary")
    assert str(e.value).startswith(f"{path}: ")


def test_half_pixel_centres_follow_the_image_when_it_is_moved_by_whole_pixels(
    tmp_path: Path,
) -> None:
    # A centroid midway between two pixels (CellProfiler's mean of pixel indices for a cell
    # of even width, or a corner-counted centre) went to the even one of the two (np.rint),
    # so an image moved by one pixel put its cells one pixel off in their crops: x 20.5 was
    # read as 20 and 21.5 as 22. Ties now go up, where an even crop's centre pixel
    # (size // 2) puts the window's middle on the centroid.
    centres = np.array([[20, 20], [30, 33], [40, 50], [25, 60]])
    paths = []
    for shift in (0, 1):  # the whole image moved (ramp and all, none of it near the edge)
        position = synthetic_position(
            "A01", "1", n_frames=1, n_per_frame=4, dtype="uint16", centers_yx=centres
        )
        position.image = np.roll(position.image, shift, axis=(-2, -1))
        position.labels = np.roll(position.labels, shift, axis=(-2, -1))
        path = tmp_path / f"moved{shift}.ch5"
        write_cellh5(path, [position], ["dna"], {"primary__primary": 0})

        def halves(table: np.ndarray, shift: int = shift) -> None:
            table["x"] = centres[:, 1] + shift + 0.5  # 20.5, then 21.5
            table["y"] = centres[:, 0] + shift - 0.5  # 19.5, then 20.5

        _replace(path, f"{FEATURE}/center", halves)
        paths.append(path)
    a, b = (collect_crops(CellH5(p), "primary__primary", 16, mask="cell") for p in paths)
    np.testing.assert_array_equal(b.center_x, a.center_x + 1)
    np.testing.assert_array_equal(b.center_y, a.center_y + 1)
    np.testing.assert_array_equal(a.crops, b.crops)
    np.testing.assert_array_equal(a.morphology, b.morphology)
    np.testing.assert_array_equal(a.center_x, centres[:, 1] + 1)  # 20.5 -> 21
    np.testing.assert_array_equal(a.center_y, centres[:, 0])  # 19.5 -> 20
