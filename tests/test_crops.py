"""Tests for napari_cellae.core.crops: every object of a file cropped, with its metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import (
    HEIGHT,
    WIDTH,
    centre_window,
    centred_crop,
    image_window,
    naive_crop,
    synthetic_position,
)
from napari_cellae.core import normalisation, windows
from napari_cellae.core.crops import (
    CropSet,
    Normalisation,
    check_box,
    collect_crops,
    crop_origins,
    extract_crops,
)
from napari_cellae.core.masking import mask_crops
from napari_cellae.core.resample import cut_by_box
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5


def test_names_other_modules_import_from_here() -> None:
    assert Normalisation is normalisation.Normalisation
    assert crop_origins is windows.crop_origins and extract_crops is windows.extract_crops


@pytest.mark.parametrize("fixture", ["cellcognition_file", "cellprofiler_file"])
def test_collect_equals_naive_per_object(fixture: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    with CellH5(path) as f:
        obj = f.default_object
        channels = [ch.index for ch in f.channels]
        crop_set = collect_crops(f, obj, 16, channels=channels)
        assert isinstance(crop_set, CropSet)
        assert crop_set.crops.flags.c_contiguous
        assert crop_set.crops.dtype == f.dtype(f.positions[0])
        assert crop_set.channel_names == [ch.name for ch in f.channels]
        total = 0
        for p, pos in enumerate(f.positions):
            table = f.objects(pos, obj)
            image = f.image(pos)
            sel = np.flatnonzero(crop_set.position_index == p)
            np.testing.assert_array_equal(crop_set.object_index[sel], np.arange(len(table)))
            for row, i in enumerate(sel):
                cy, cx, t = table.center_y[row], table.center_x[row], table.time_idx[row]
                for j, c in enumerate(channels):
                    # one h5py read per object, centred one by one: the slow reference
                    expected = centred_crop(image, c, t, cy, cx, 16)
                    np.testing.assert_array_equal(crop_set.crops[i, j], expected)
                y0, x0 = int(crop_set.origin_y[i]), int(crop_set.origin_x[i])
                assert (y0, x0) == (cy - 8, cx - 8)
                window, inside = image_window(image[channels[0], t, 0], y0, x0, 16)
                np.testing.assert_array_equal(crop_set.crops[i, 0][inside], window[inside])
            total += len(table)
        assert len(crop_set) == total


def test_collect_metadata_cellcognition(cellcognition_file: Path) -> None:
    with CellH5(cellcognition_file) as f:
        cs = collect_crops(f, "primary__primary", 20)
        assert cs.channels == [0]
        assert cs.crops.dtype == np.uint8
        assert cs.crops.shape[1:] == (1, 20, 20)
        assert not np.isnan(cs.angle).any()
        assert set(np.unique(cs.class_idx)) <= {0, 1}
        assert cs.source == Path(f.path)
        sub = cs.subset(np.array([3, 1]))
        assert len(sub) == 2
        np.testing.assert_array_equal(sub.crops[0], cs.crops[3])
        assert sub.center_x[1] == cs.center_x[1]
        with pytest.raises(ValueError, match=r"crop size 70 px is larger.*64 x 80"):
            collect_crops(f, "primary__primary", 70)


def test_collect_cellprofiler_uint16_missing_optional(cellprofiler_file: Path) -> None:
    with CellH5(cellprofiler_file) as f:
        cs = collect_crops(f, "Nuclei", 16)
        assert cs.crops.dtype == np.uint16
        assert cs.crops.max() > 255  # never truncated to 8 bit
        assert np.isnan(cs.angle).all() and np.isnan(cs.eccentricity).all()
        assert (cs.class_idx == -1).all()


def _write(tmp_path: Path, positions: list) -> Path:
    return write_cellh5(
        tmp_path / "one.ch5",
        positions,
        channel_names=["rfp"],
        object_channels={"primary__primary": 0},
        flavour="cellcognition",
    )


def test_collect_skips_empty_and_handles_single_object(tmp_path: Path) -> None:
    empty = synthetic_position("A01", "1", n_frames=1, n_per_frame=1, classes=False, seed=1)
    obj = empty.objects["primary__primary"]
    for name in ("time_idx", "label_id", "center_x", "center_y", "angle", "eccentricity"):
        setattr(obj, name, getattr(obj, name)[:0])
    obj.bbox = obj.bbox[:0]
    single = synthetic_position("B01", "1", n_frames=1, n_per_frame=1, classes=False, seed=2)
    path = _write(tmp_path, [empty, single])
    with CellH5(path) as f:
        cs = collect_crops(f, "primary__primary", 16)
    assert len(cs) == 1
    assert [p.well for p in cs.positions] == ["B01"]
    np.testing.assert_array_equal(cs.position_index, [0])


def test_cells_at_the_cameras_maximum_are_counted(tmp_path: Path) -> None:
    # peak 400 in uint8: the centre of every spot is clipped at 255; peak 150 of none
    bright = synthetic_position("A01", "1", n_frames=1, n_per_frame=4, peak=400.0, seed=3)
    dim = synthetic_position("B01", "1", n_frames=1, n_per_frame=4, peak=150.0, seed=4)
    path = _write(tmp_path, [bright, dim])
    with CellH5(path) as f:
        cs = collect_crops(f, "primary__primary", 16, mask="cell")
    np.testing.assert_array_equal(cs.clipped_at, [255] * 4 + [0] * 4)
    np.testing.assert_array_equal(cs.subset([5, 0]).clipped_at, [0, 255])


def test_clipped_cells_are_counted_where_other_positions_store_floats(tmp_path: Path) -> None:
    # A uint8 position beside a float32 one: its crops widen to float32, and the count
    # looked at their dtype (not integer: no camera) and found none clipped.
    bright = synthetic_position("A01", "1", n_frames=1, n_per_frame=4, peak=400.0, seed=3)
    floats = synthetic_position("B01", "1", n_frames=1, n_per_frame=4, peak=150.0, seed=4)
    floats.image = floats.image.astype(np.float32)
    path = _write(tmp_path, [bright, floats])
    with CellH5(path) as f:
        alone = collect_crops(f, "primary__primary", 16, positions=[f.positions[0]])
        cs = collect_crops(f, "primary__primary", 16)
    assert cs.crops.dtype == np.float32 and alone.crops.dtype == np.uint8
    np.testing.assert_array_equal(alone.clipped_at, [255] * 4)
    np.testing.assert_array_equal(cs.clipped_at, [255] * 4 + [0] * 4)


# Cells at the four edges, two corners and (last) inside the 64 x 80 image.
EDGE_YX = [(0, 40), (63, 40), (32, 0), (32, 79), (1, 1), (62, 78), (32, 40)]


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("mask", ["none", "cell"])
def test_collect_centres_cells_at_the_border(tmp_path: Path, dtype: str, mask: str) -> None:
    position = synthetic_position(
        "A01",
        "1",
        n_frames=1,
        n_per_frame=len(EDGE_YX),
        dtype=dtype,
        n_channels=2,
        centers_yx=np.array(EDGE_YX),
    )
    path = write_cellh5(
        tmp_path / "edges.ch5",
        [position],
        channel_names=["a", "b"],
        object_channels={"primary__primary": 0},
    )
    size, half = 20, 10
    with CellH5(path) as f:
        cs = collect_crops(f, "primary__primary", size, channels=[0, 1], mask=mask)
        image = f.image(f.positions[0])[...]
        labels = f.labels(f.positions[0], "primary__primary")[0][0, 0, 0]
    assert cs.crops.dtype == np.dtype(dtype) and cs.crops.shape == (7, 2, size, size)
    cy, cx = (np.array(v) for v in zip(*EDGE_YX, strict=True))
    np.testing.assert_array_equal(cs.origin_y, cy - half)
    np.testing.assert_array_equal(cs.origin_x, cx - half)
    assert cs.origin_y.dtype == cs.origin_x.dtype == np.int32
    for i in range(len(cs)):
        y0, x0 = int(cs.origin_y[i]), int(cs.origin_x[i])
        label_window, inside = image_window(labels, y0, x0, size)
        own = label_window == cs.label_id[i]
        assert own[half, half]  # the cell's own pixels sit at the centre
        for j in range(2):
            crop = cs.crops[i, j]
            window, _ = image_window(image[j, 0, 0], y0, x0, size)
            assert crop[half, half] == image[j, 0, 0, cy[i], cx[i]]
            np.testing.assert_array_equal(crop[own], window[own])  # the cell intact
            read = naive_crop(image, j, 0, cy[i], cx[i], size).copy()
            if mask == "none":
                np.testing.assert_array_equal(crop[inside], window[inside])
            else:  # masked as read, then centred
                read_labels = naive_crop(labels[None, None, None], 0, 0, cy[i], cx[i], size)
                mask_crops(read[None, None], read_labels[None], cs.label_id[i : i + 1], mask)
            np.testing.assert_array_equal(crop, centre_window(read, cy[i], cx[i], HEIGHT, WIDTH))
            if i < len(cs) - 1:
                assert (~inside).any() and len(np.unique(crop[~inside])) == 1  # one level
    # The cell inside the image: as read, byte for byte.
    read = np.stack([naive_crop(image, j, 0, 32, 40, size) for j in range(2)])
    if mask == "none":
        assert cs.crops[-1].tobytes() == np.ascontiguousarray(read).tobytes()


def test_cells_larger_than_the_box_are_counted_and_a_fitting_box_suggested(
    cellcognition_file: Path,
) -> None:
    with CellH5(cellcognition_file) as ch5:
        fitting = collect_crops(ch5, "primary__primary", 16)  # boxes are 9 px at most
        small = collect_crops(ch5, "primary__primary", 8)
    assert cut_by_box(fitting) is None
    share, size = cut_by_box(small)
    extent = np.maximum(np.ptp(small.bbox[:, :2], 1), np.ptp(small.bbox[:, 2:], 1)) + 1
    assert share == pytest.approx(np.mean(extent > 8)) and share > 0.05
    assert size % 8 == 0 and size >= np.percentile(extent, 95) + 4
    # Files without bounding boxes give every object a box of its centre only.
    small.bbox[:] = np.stack([small.center_x, small.center_x, small.center_y, small.center_y], 1)
    assert cut_by_box(small) is None


def test_z_stacks_are_cropped_in_the_first_plane_with_a_warning(tmp_path: Path) -> None:
    import dataclasses

    flat = synthetic_position("A01", "0001", n_frames=1, seed=3)
    planes = np.concatenate([flat.image, flat.image // 2, np.zeros_like(flat.image)], axis=2)
    stacked = dataclasses.replace(flat, well="B02", image=planes)
    path = write_cellh5(
        tmp_path / "z.ch5", [flat, stacked], channel_names=["h2b"],
        object_channels={"primary__primary": 0},
    )  # fmt: skip
    with CellH5(path) as f, pytest.warns(UserWarning) as caught:
        cs = collect_crops(f, "primary__primary", 16)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert messages[0] == (
        f"{path}: the images have several z-planes (up to 3); crops are cut from the first "
        "plane only"
    )
    first = cs.position_index == 0
    np.testing.assert_array_equal(cs.crops[first], cs.crops[~first])  # plane 0 of both


def test_chosen_rows_are_cut_as_from_all(cellcognition_file) -> None:
    with CellH5(cellcognition_file) as ch5:
        positions = ch5.positions
        every = collect_crops(ch5, "primary__primary", 16, positions=positions, mask="cell")
        rows = [np.array([0, 3, 14]), np.array([], int)]  # none of the second position
        some = collect_crops(ch5, "primary__primary", 16, positions=positions, mask="cell",
                             rows=rows)  # fmt: skip
        with pytest.raises(ValueError, match=r"A01_0001: holds 15 objects, fewer than"):
            collect_crops(ch5, "primary__primary", 16, positions=positions, rows=[[15], []])
    assert some.positions == positions[:1] and some.object_index.tolist() == [0, 3, 14]
    np.testing.assert_array_equal(some.crops, every.crops[[0, 3, 14]])
    np.testing.assert_array_equal(some.bbox, every.bbox[[0, 3, 14]])
    np.testing.assert_array_equal(some.origin_x, every.origin_x[[0, 3, 14]])


def test_a_box_larger_than_the_images_is_refused_saying_what_fits(cellcognition_file) -> None:
    with CellH5(cellcognition_file) as ch5:
        key = ch5.positions[0]
        check_box(ch5, key, 64)  # the 64 x 80 px images hold it
        with pytest.raises(ValueError, match=r"A01_0001: crop size 65 px is larger") as info:
            check_box(ch5, key, 65)
    assert str(cellcognition_file) in str(info.value)
    assert "choose a cell size of at most 64 px (--crop-size" in str(info.value)


@pytest.mark.parametrize("mask", ["neighbours", "cell"])
def test_a_position_is_cut_alike_in_a_file_of_mixed_pixel_types(tmp_path: Path, mask: str) -> None:
    # An integer position of a file whose other position stores floats was masked and
    # centred after widening to float: its painted and border pixels kept fractions (up to
    # half a count) that the same position cropped alone (streamed, sampled for training)
    # rounds away.
    from napari_cellae.io.cellh5_writer import ObjectData, PositionData

    rng = np.random.default_rng(0)
    positions = []
    for i, dtype in enumerate(["uint16", "float32"]):
        image = rng.integers(0, 1000, (1, 1, 1, 30, 30)).astype(dtype)
        labels = rng.integers(0, 4, (1, 1, 1, 30, 30)).astype(np.uint16)
        cy, cx = (rng.integers(0, 30, 8).astype(np.int32) for _ in range(2))
        cells = ObjectData(
            time_idx=np.zeros(8, np.int32),
            label_id=rng.integers(1, 4, 8).astype(np.int32),
            center_x=cx,
            center_y=cy,
            bbox=np.stack([cx, cx, cy, cy], 1),
        )
        positions.append(PositionData("p", f"A0{i + 1}", "1", image, {"nuc": cells}, labels))
    path = write_cellh5(tmp_path / "mixed.ch5", positions, ["dna"], {"nuc": 0})
    with CellH5(path) as f:
        whole = collect_crops(f, "nuc", 12, mask=mask)
        alone = collect_crops(f, "nuc", 12, mask=mask, positions=[f.positions[0]])
    assert whole.crops.dtype == np.float32 and alone.crops.dtype == np.uint16
    np.testing.assert_array_equal(whole.crops[whole.position_index == 0], alone.crops)


def _stored_as(source: Path, path: Path, order: dict | None = None, **storage) -> Path:
    """``source`` copied with its pixel and label datasets stored as ``storage`` says
    (``chunks`` a function of the shape; ``big_endian``), and each position's objects in
    ``order[position path]`` (every table of them alike)."""
    import h5py

    big_endian, chunks = storage.pop("big_endian", False), storage.pop("chunks", None)
    with h5py.File(source, "r") as a, h5py.File(path, "w") as b:

        def copy(name: str, node: object) -> None:
            if not isinstance(node, h5py.Dataset):
                return
            data, options = node[()], {}
            where = name.rsplit("/object/", 1)[0].rsplit("/feature/", 1)[0]
            if "/position/" in name and name.endswith(("image/channel", "image/region")):
                options = dict(storage, chunks=chunks(data.shape) if chunks else None)
                data = data.astype(data.dtype.newbyteorder(">")) if big_endian else data
            elif order and where in order and data.ndim and len(data) == len(order[where]):
                data = data[order[where]]  # an object table
            b.create_dataset(name, data=data, **options)

        a.visititems(copy)
    return path


@pytest.mark.parametrize("labels", [True, False], ids=["label images", "threshold"])
def test_the_same_cells_stored_otherwise_are_cut_alike(tmp_path: Path, labels: bool) -> None:
    # Metamorphic: chunking, compression, checksums, byte order, the master file of
    # position files, CellProfiler's layout, objects listed in another order and cells
    # cut from a subset of the rows: the same crops, masks, outlines and rows.
    positions = [
        synthetic_position(
            w, "1", n_frames=3, n_per_frame=7, dtype="uint16", n_channels=2, peak=3000, seed=i
        )
        for i, w in enumerate(("A01", "B01"))
    ]
    for position in positions if not labels else []:
        position.labels = None
    (tmp_path / "parts").mkdir()
    write = {"channel_names": ["dna", "gfp"], "object_channels": {"primary__primary": 0}}
    one = write_cellh5(tmp_path / "one.ch5", positions, **write)
    rng = np.random.default_rng(0)
    order = {
        f"sample/0/plate/plate1/experiment/{w}/position/1": rng.permutation(21)
        for w in ("A01", "B01")
    }
    files = [
        _stored_as(one, tmp_path / "contiguous.ch5"),
        _stored_as(
            one, tmp_path / "rows.ch5", chunks=lambda s: (1, 1, 1, 1, s[4]), compression="gzip"
        ),
        _stored_as(one, tmp_path / "single.ch5", chunks=lambda s: s, compression="gzip"),
        _stored_as(one, tmp_path / "lzf.ch5", chunks=lambda s: (1, 2, 1, 7, 13), compression="lzf"),
        _stored_as(
            one,
            tmp_path / "big.ch5",
            big_endian=True,
            chunks=lambda s: (s[0], 1, 1, 9, 11),
            compression="gzip",
            shuffle=True,
            fletcher32=True,
        ),
        _stored_as(one, tmp_path / "order.ch5", order),
        write_cellh5(
            tmp_path / "parts" / "_all_positions.ch5", positions, **write, split_files=True
        ),
        write_cellh5(tmp_path / "profiler.ch5", positions, **write, flavour="cellprofiler"),
    ]

    def cells(path: Path, **kwargs) -> tuple:
        with CellH5(path) as f:
            cut = collect_crops(f, "primary__primary", 20, [1, 0], mask="cell", **kwargs)
        assert len(cut.unlabelled_positions) == (0 if labels else len(cut.positions))
        at = np.lexsort((cut.label_id, cut.time_idx, cut.position_index))
        keys = [cut.positions[i].label for i in cut.position_index[at]]
        rows = np.c_[cut.time_idx, cut.label_id, cut.center_x, cut.center_y, cut.bbox][at]
        return keys, rows, cut.crops[at], cut.morphology[at]

    expected = cells(one)
    for path in files:
        got = cells(path)
        assert got[0] == expected[0], path.name
        for a, b in zip(got[1:], expected[1:], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=path.name)
    # frame 1 of the second position only: its cells as cut with all the others
    with CellH5(one) as f:
        frames = f.objects(f.positions[1], "primary__primary").time_idx
        rows = [np.flatnonzero(frames == 1)]
    some = cells(one, positions=[f.positions[1]], rows=rows)
    part = np.array(expected[0]) == "B01_1"
    part[part] = expected[1][part][:, 0] == 1
    assert len(some[1]) == 7
    for a, b in zip(some[1:], expected[1:], strict=True):
        np.testing.assert_array_equal(a, b[part])
