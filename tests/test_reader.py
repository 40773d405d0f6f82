"""Tests of the napari reader: layers from CellH5 files, laziness, errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import damage_chunk
from napari_cellae._reader import (
    METADATA_KEY,
    LazyPositionStack,
    napari_get_reader,
    read_cellh5,
)
from napari_cellae.io.cellh5 import CellH5, CellH5Error
from napari_cellae.io.cellh5_writer import ObjectData, PositionData, write_cellh5


def _tiny_position(
    well: str, site: str, shape: tuple[int, int], n: int, seed: int, dtype=np.uint16
) -> PositionData:
    rng = np.random.default_rng(seed)
    h, w = shape
    image = rng.integers(0, 1000, size=(2, 2, 1, h, w)).astype(dtype)
    cy = rng.integers(0, h, n).astype(np.int32)
    cx = rng.integers(0, w, n).astype(np.int32)
    obj = ObjectData(
        time_idx=(np.arange(n) % 2).astype(np.int32),
        label_id=np.arange(1, n + 1, dtype=np.int32),
        center_x=cx,
        center_y=cy,
        bbox=np.stack([cx, cx, cy, cy], axis=1).astype(np.int32),
    )
    return PositionData("P1", well, site, image, {"Nuclei": obj})


def _write(path: Path, positions: list[PositionData]) -> Path:
    return write_cellh5(path, positions, ["dna", "tubulin"], {"Nuclei": 0}, flavour="cellprofiler")


@pytest.fixture
def many_positions_file(tmp_path: Path) -> Path:
    """200 tiny positions of equal shape (a plate scan in miniature)."""
    positions = [
        _tiny_position(f"{chr(65 + i // 20)}{i % 20 + 1:02d}", "1", (24, 32), 3, i)
        for i in range(200)
    ]
    return _write(tmp_path / "plate.ch5", positions)


def _layers_by_type(layers):
    images = [layer for layer in layers if layer[2] == "image"]
    points = [layer for layer in layers if layer[2] == "points"]
    return images, points


def test_get_reader_claims_cellh5_only(tmp_path, cellcognition_file, cellprofiler_file):
    assert napari_get_reader(str(cellcognition_file)) is read_cellh5
    assert napari_get_reader(str(cellprofiler_file)) is read_cellh5
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.zeros(3)
    assert napari_get_reader(str(other)) is None
    (tmp_path / "text.hdf5").write_text("not hdf5")
    assert napari_get_reader(str(tmp_path / "text.hdf5")) is None
    assert napari_get_reader(str(tmp_path / "image.tif")) is None


def test_h5_with_sample_is_claimed(tmp_path):
    path = _write(tmp_path / "screen.h5", [_tiny_position("A01", "1", (16, 16), 2, 0)])
    reader = napari_get_reader(str(path))
    assert reader is read_cellh5
    images, _ = _layers_by_type(reader(str(path)))
    assert [layer[1]["name"] for layer in images] == ["dna", "tubulin"]
    assert images[0][0].shape == (2, 16, 16)


def test_damaged_file_raises_clear_error(tmp_path):
    bad = tmp_path / "broken.ch5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    reader = napari_get_reader(str(bad))
    assert reader is not None
    with pytest.raises(CellH5Error, match=r"broken\.ch5"):
        reader(str(bad))


def test_open_cellcognition_file(make_napari_viewer, cellcognition_file):
    viewer = make_napari_viewer()
    layers = viewer.open(str(cellcognition_file), plugin="napari-cellae")
    with CellH5(cellcognition_file) as ch5:
        positions = ch5.positions
        channels = [c.name for c in ch5.channels]
        shape = ch5.image_shape(positions[0])
        obj = ch5.default_object
        tables = [ch5.objects(p, obj) for p in positions]
        labels = ch5.class_labels(obj)
    images = [layer for layer in layers if layer._type_string == "image"]
    points = [layer for layer in layers if layer._type_string == "points"]
    assert [layer.name for layer in images] == channels
    assert len(points) == 1
    n_pos = len(positions)
    expected = (n_pos, shape[1], shape[3], shape[4]) if n_pos > 1 else (shape[1], *shape[3:])
    for layer in images:
        assert layer.data.shape == expected
        assert layer.data.dtype == np.uint8
        assert layer.blending == "additive"
        assert layer.metadata[METADATA_KEY]["path"] == str(cellcognition_file)
    # lazily read plane equals the stored plane
    with CellH5(cellcognition_file) as ch5:
        stored = ch5.image(positions[-1])[0, 1, 0]
        np.testing.assert_array_equal(images[0].data[n_pos - 1, 1], stored)
    pts = points[0]
    coords = np.concatenate(
        [
            np.stack([np.full(len(t), i), t.time_idx, t.center_y, t.center_x], axis=1)
            for i, t in enumerate(tables)
        ]
    )
    np.testing.assert_array_equal(pts.data, coords)
    for column in ("object_index", "label_id", "time", "plate", "well", "site", "position"):
        assert column in pts.features.columns
    np.testing.assert_array_equal(
        pts.features["label_id"], np.concatenate([t.label_id for t in tables])
    )
    assert labels is not None
    names = {lab.name for lab in labels}
    assert set(pts.features["class_name"]) <= names | {"unclassified"}
    assert viewer.dims.axis_labels[0] == "position"


def test_open_cellprofiler_file_keeps_uint16(make_napari_viewer, cellprofiler_file):
    viewer = make_napari_viewer()
    layers = viewer.open(str(cellprofiler_file), plugin="napari-cellae")
    images = [layer for layer in layers if layer._type_string == "image"]
    points = [layer for layer in layers if layer._type_string == "points"]
    assert images and points
    assert all(layer.data.dtype == np.uint16 for layer in images)
    assert points[0].name == "Nuclei centres"
    assert "class_name" not in points[0].features.columns
    with CellH5(cellprofiler_file) as ch5:
        n = sum(len(ch5.objects(p, "Nuclei")) for p in ch5.positions)
        shape = ch5.image_shape(ch5.positions[0])
    assert len(points[0].data) == n
    assert images[0].data.shape[-2:] == shape[-2:]


def test_many_positions_open_without_reading_pixels(
    make_napari_viewer, many_positions_file, monkeypatch
):
    reads: list[tuple[int, ...]] = []
    original = h5py.Dataset.__getitem__

    def counting(self, key, *args, **kwargs):
        out = original(self, key, *args, **kwargs)
        if self.ndim == 5:  # image/channel datasets
            reads.append(np.shape(out))
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting)
    viewer = make_napari_viewer()
    layers = viewer.open(str(many_positions_file), plugin="napari-cellae")
    images = [layer for layer in layers if layer._type_string == "image"]
    assert len(images) == 2  # one stacked layer per channel, not 400 layers
    assert images[0].data.shape == (200, 2, 24, 32)
    assert isinstance(images[0].data, LazyPositionStack)
    # one plane per channel for the contrast, one per channel for the display (+ thumbnail)
    pixels = sum(int(np.prod(s)) for s in reads)
    assert pixels <= 6 * 24 * 32, reads
    points = next(layer for layer in layers if layer._type_string == "points")
    assert points.data.shape == (600, 4)
    np.testing.assert_array_equal(np.unique(points.data[:, 0]), np.arange(200))
    # moving the position slider reads only the newly shown planes
    reads.clear()
    viewer.dims.set_current_step(0, 150)
    assert sum(int(np.prod(s)) for s in reads) <= 4 * 24 * 32


def test_positions_of_different_sizes_share_one_canvas(tmp_path):
    # Positions of two sizes were two layers per channel along one slider: a step showed
    # A01_1 and B01_1 drawn over each other (and their centres beside each other's cells).
    positions = [
        _tiny_position("A01", "1", (16, 16), 2, 0),
        _tiny_position("A02", "1", (16, 16), 2, 1),
        _tiny_position("B01", "1", (20, 12), 3, 2),
    ]
    path = _write(tmp_path / "mixed.ch5", positions)
    images, points = _layers_by_type(read_cellh5(str(path)))
    assert [layer[1]["name"] for layer in images] == ["dna", "tubulin"]
    assert [layer[1]["name"] for layer in points] == ["Nuclei centres"]
    for channel, (data, kwargs, _) in enumerate(images):
        assert data.shape == (3, 2, 20, 16)  # one step of the slider, one position
        keys = kwargs["metadata"][METADATA_KEY]["positions"]
        assert [key.label for key in keys] == ["A01_1", "A02_1", "B01_1"]
        pixels = np.asarray(data)
        for i, position in enumerate(positions):
            _, _, _, h, w = position.image.shape
            np.testing.assert_array_equal(pixels[i, :, :h, :w], position.image[channel, :, 0])
            assert not pixels[i, :, h:].any() and not pixels[i, :, :, w:].any()  # blank
    # the centres keep their coordinates: they stay on their cells in the canvas
    coords = points[0][0]
    assert coords.shape == (7, 4)
    b01 = positions[2].objects["Nuclei"]
    np.testing.assert_array_equal(
        coords[coords[:, 0] == 2][:, 2:], np.c_[b01.center_y, b01.center_x]
    )


def test_other_pixel_types_frames_and_channels_share_the_canvas(tmp_path):
    # The first position holds one channel of uint8, the second two of uint16, the third
    # three frames: one layer per channel, of a type that holds both, blank where a
    # position lacks a channel or frame.
    first = _tiny_position("A01", "1", (16, 16), 2, 0, dtype=np.uint8)
    first.image = first.image[:1]
    third = _tiny_position("A03", "1", (16, 16), 2, 2)
    third.image = np.concatenate([third.image, third.image[:, :1]], axis=1)
    positions = [first, _tiny_position("A02", "1", (16, 16), 2, 1), third]
    path = _write(tmp_path / "channels.ch5", positions)
    images, points = _layers_by_type(read_cellh5(str(path)))
    assert [layer[1]["name"] for layer in images] == ["dna", "tubulin"]
    dna, tubulin = (np.asarray(layer[0]) for layer in images)
    assert dna.dtype == np.uint16 and dna.shape == (3, 3, 16, 16)
    np.testing.assert_array_equal(dna[0, :2], first.image[0, :, 0])
    np.testing.assert_array_equal(tubulin[1, :2], positions[1].image[1, :, 0])
    np.testing.assert_array_equal(tubulin[2], third.image[1, :, 0])
    assert not tubulin[0].any() and not dna[:2, 2].any()
    assert [layer[1]["name"] for layer in points] == ["Nuclei centres"]
    # contrast from the channel's own pixels, not the blank where a position lacks it
    assert images[1][1]["contrast_limits"][1] > 0


def test_positions_of_other_plane_counts_have_centres_on_their_planes(tmp_path):
    flat = _tiny_position("A01", "1", (16, 16), 2, 0)
    deep = _tiny_position("A02", "1", (16, 16), 3, 1)
    deep.image = np.concatenate([deep.image] * 3, axis=2)  # 3 planes
    path = _write(tmp_path / "planes.ch5", [flat, deep])
    images, points = _layers_by_type(read_cellh5(str(path)))
    assert images[0][0].shape == (2, 2, 3, 16, 16)
    assert images[0][1]["axis_labels"] == ("position", "t", "z", "y", "x")
    coords = points[0][0]
    # A01's 2 cells on its one plane, A02's 3 on each of its 3
    assert coords.shape == (2 + 3 * 3, 5)
    assert sorted(coords[coords[:, 0] == 0][:, 2]) == [0, 0]
    assert sorted(coords[coords[:, 0] == 1][:, 2]) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert len(points[0][1]["features"]["object_index"]) == len(coords)


def test_several_files_show_the_first_only(tmp_path):
    a = _write(tmp_path / "a.ch5", [_tiny_position("A01", "1", (16, 16), 2, 0)])
    b = _write(tmp_path / "b.ch5", [_tiny_position("A01", "1", (16, 16), 2, 1)])
    layers = read_cellh5([str(a), str(b)])
    assert len(layers) == 6
    shown = [
        kwargs["metadata"][METADATA_KEY]["path"] for _, kwargs, _ in layers if kwargs["visible"]
    ]
    assert shown == [str(a)] * 3


def test_lazy_stack_indexing(many_positions_file):
    images, _ = _layers_by_type(read_cellh5(str(many_positions_file)))
    stack = images[1][0]
    with CellH5(many_positions_file) as ch5:
        ref = np.stack([ch5.image(p)[1, :, 0] for p in ch5.positions[:3]])
    np.testing.assert_array_equal(stack[:3], ref)
    np.testing.assert_array_equal(stack[2, 1, 5:9, ::2], ref[2, 1, 5:9, ::2])
    np.testing.assert_array_equal(stack[-198, ..., 3], ref[2, :, :, 3])
    assert stack[0, 0].dtype == np.uint16
    with pytest.raises(IndexError):
        stack[200]


def test_several_plates_label_positions_with_plate(tmp_path):
    a = _tiny_position("A01", "1", (16, 16), 2, 0)
    b = _tiny_position("A01", "1", (16, 16), 3, 1)
    b.plate = "P2"
    path = _write(tmp_path / "plates.ch5", [a, b])
    _, points = _layers_by_type(read_cellh5(str(path)))
    features = points[0][1]["features"]
    assert list(features["position"]) == ["P1/A01_1"] * 2 + ["P2/A01_1"] * 3
    assert list(features["plate"]) == ["P1"] * 2 + ["P2"] * 3


_A01 = "sample/0/plate/plate1/experiment/A01/position/0001"


def test_damaged_chunk_of_the_first_shown_plane(cellcognition_file):
    part = cellcognition_file.parent / "A01_0001.ch5"
    # the position and frame napari opens at: the first of two, the second of three
    damage_chunk(part, f"{_A01}/image/channel", (0, 1, 0, 0, 0))
    with pytest.raises(CellH5Error) as info:
        read_cellh5(str(cellcognition_file))
    message = str(info.value)
    assert message.startswith(f"{cellcognition_file}: cannot read channel 0 (rfp), frame 1 of")
    assert f"position A01_0001 (stored in {part}): the stored pixels are damaged" in message


def test_a_folder_opens_its_master_file(tmp_path, cellcognition_file):
    folder = cellcognition_file.parent
    reader = napari_get_reader(str(folder))
    assert reader is read_cellh5
    from_folder, from_file = reader(str(folder)), read_cellh5(str(cellcognition_file))
    assert [layer[1]["name"] for layer in from_folder] == [layer[1]["name"] for layer in from_file]
    np.testing.assert_array_equal(from_folder[-1][0], from_file[-1][0])
    assert from_folder[0][1]["metadata"][METADATA_KEY]["path"] == str(cellcognition_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert napari_get_reader(str(empty)) is None  # not ours: other readers may try
    cellcognition_file.unlink()
    reader = napari_get_reader(str(folder))  # .ch5 files but no master: claimed, explained
    with pytest.raises(CellH5Error, match=r"is a folder with 2 \.ch5 files but no master"):
        reader(str(folder))


def test_napari_leaves_folders_to_other_readers(make_napari_viewer, cellcognition_file):
    # napari picks readers by name pattern before asking them: claiming folders made it ask
    # the user which reader to use for every .zarr or image folder. A CellCognition folder is
    # opened by its master file (napari_get_reader still takes folders, see above).
    import npe2

    manager = npe2.PluginManager.instance()

    def readers(path):
        return {reader.plugin_name for reader in manager.iter_compatible_readers([str(path)])}

    assert "napari-cellae" in readers(cellcognition_file)
    assert "napari-cellae" not in readers(cellcognition_file.parent)
    viewer = make_napari_viewer()
    layers = viewer.open(str(cellcognition_file), plugin="napari-cellae")
    assert [layer.name for layer in layers] == ["rfp", "primary__primary centres"]


def test_nan_centres_in_the_reader(cellcognition_file):
    part = cellcognition_file.parent / "A01_0001.ch5"
    name = "sample/0/plate/plate1/experiment/A01/position/0001/feature/primary__primary/center"
    with h5py.File(part, "a") as f:
        old = f[name][()]
        del f[name]
        new = np.zeros(len(old), [("x", "<f8"), ("y", "<f8")])
        new["x"], new["y"] = old["x"], old["y"]
        new["y"][3] = np.nan
        f[name] = new
    with pytest.raises(CellH5Error, match=r"A01_0001: y is missing \(NaN\) .* row\(s\) 3;"):
        read_cellh5(str(cellcognition_file))


def test_float_images_with_nan_or_inf_get_finite_contrast_limits(make_napari_viewer, tmp_path):
    # NaN or inf limits break napari's contrast slider, and the layer could not be removed.
    position = _tiny_position("A01", "1", (16, 16), 3, 0, dtype=np.float32)
    position.image[:, :, :, :4] = np.nan
    position.image[0, :, :, 4:6] = np.inf
    position.image[1] = np.nan  # a channel without one finite pixel
    path = _write(tmp_path / "float.ch5", [position])
    images, _ = _layers_by_type(read_cellh5(str(path)))
    limits = [layer[1]["contrast_limits"] for layer in images]
    assert all(np.isfinite(limits).all() and hi > lo for lo, hi in limits), limits
    assert limits[1] == (0.0, 1.0)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-cellae")
    assert len(layers) == 3  # both channels and the centres
    viewer.layers.clear()


def test_centres_of_a_z_stack_are_on_every_plane(make_napari_viewer, tmp_path):
    # CellH5 centres are 2-D; napari opens a stack on its middle plane, where a single copy
    # on plane 0 showed no centre at all.
    position = _tiny_position("A01", "1", (16, 16), 4, 0)
    position = PositionData(
        position.plate, position.well, position.site,
        np.repeat(position.image, 3, axis=2), position.objects,
    )  # fmt: skip
    path = _write(tmp_path / "z.ch5", [position])
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-cellae")
    centres = next(layer for layer in layers if layer._type_string == "points")
    assert centres.axis_labels[-3] == "z"
    np.testing.assert_array_equal(centres.data[:, -3], np.repeat([0, 1, 2], 4))
    np.testing.assert_array_equal(centres.data[4:8, -2:], centres.data[:4, -2:])
    np.testing.assert_array_equal(centres.features["object_index"], np.tile(np.arange(4), 3))
    z = viewer.dims.axis_labels.index("z")
    assert viewer.dims.current_step[z] == 1  # napari shows the middle plane first ...
    t = viewer.dims.current_step[viewer.dims.axis_labels.index("t")]
    assert len(centres._view_data) == np.count_nonzero(position.objects["Nuclei"].time_idx == t)
    # ... and a cell found from another view goes to plane 0, where its crop comes from
    from napari_cellae._ui.linking import match_rows

    cells = {"position_index": np.zeros(4, int), "object_index": np.arange(4)}
    rows = match_rows(["A01_1"], cells, ["A01_1"], centres.features)
    np.testing.assert_array_equal(centres.data[rows, -3], 0)


@pytest.mark.parametrize(
    ("dtype", "value"),
    [(np.float32, 1e20), (np.uint64, np.iinfo(np.uint64).max), (np.int64, np.iinfo(np.int64).min)],
)
def test_constant_huge_pixels_get_increasing_contrast_limits(
    make_napari_viewer, tmp_path, dtype, value
):
    # lo + 1 == lo at these magnitudes: napari refused the equal limits and the file did
    # not open ("Sequence (1e+20, 1e+20) must be monotonically increasing").
    position = _tiny_position("A01", "1", (16, 16), 3, 0, dtype=dtype)
    position.image[...] = value
    path = _write(tmp_path / "constant.ch5", [position])
    images, _ = _layers_by_type(read_cellh5(str(path)))
    for _, kwargs, _ in images:
        lo, hi = kwargs["contrast_limits"]
        assert np.isfinite([lo, hi]).all() and hi > lo
        assert lo <= float(np.asarray(value, dtype)) <= hi
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-cellae")
    assert len(layers) == 3
    viewer.layers.clear()


def test_contrast_from_a_frame_cellcognition_wrote(tmp_path: Path) -> None:
    # CellCognition stores every frame but writes only the analysed ones (attribute
    # 'valid'); limits from the blank middle frame, (0, 1), saturated every cell.
    position = _tiny_position("A01", "1", (16, 16), 3, 0)
    position.image = np.zeros((2, 5, 1, 16, 16), np.uint16)
    position.image[:, [0, 4]] = 500
    position.image[:, [0, 4], :, 8, 8] = 900
    position.objects["Nuclei"].time_idx[:] = 0
    path = _write(tmp_path / "sparse.ch5", [position])
    with h5py.File(path, "r+") as f:
        channel = f["sample/0/plate/P1/experiment/A01/position/1/image/channel"]
        channel.attrs["valid"] = np.array([1.0, 0, 0, 0, 1])
    images, _ = _layers_by_type(read_cellh5(str(path)))
    assert [kwargs["contrast_limits"] for _, kwargs, _ in images] == [(500.0, 900.0)] * 2


def _sparse_time_lapse(path: Path, valid: list[float], n_positions: int = 1) -> Path:
    """Positions of 4 frames, each written frame's pixels its own (500 + 100 * frame, the
    position's index at the centre pixel); frames whose ``valid`` is 0 stay zeros."""
    positions = []
    for k in range(n_positions):
        position = _tiny_position(f"A{k + 1:02d}", "1", (16, 16), 3, k)
        position.image = np.zeros((2, len(valid), 1, 16, 16), np.uint16)
        for t in np.flatnonzero(valid):
            position.image[:, t] = 500 + 100 * t
            position.image[:, t, :, 8, 8] = 2000 + 1000 * k
        position.objects["Nuclei"].time_idx[:] = np.flatnonzero(valid)[0]
        positions.append(position)
    path = _write(path, positions)
    with h5py.File(path, "r+") as f:
        for k in range(n_positions):
            image = f[f"sample/0/plate/P1/experiment/A{k + 1:02d}/position/1/image/channel"]
            image.attrs["valid"] = np.array(valid)
    return path


def test_napari_opens_a_time_lapse_on_a_written_frame(make_napari_viewer, tmp_path) -> None:
    # CellCognition analysing every other frame leaves the middle one napari opens at (1 of
    # 0-3) blank: the image was black until the user moved the time slider.
    path = _sparse_time_lapse(tmp_path / "every_other.ch5", [1.0, 0, 1, 0])
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-cellae")
    t = viewer.dims.current_step[viewer.dims.axis_labels.index("t")]
    assert t in (0, 2)
    assert viewer.layers["dna"].data[t].max() > 0
    # a written middle frame is left as it is; so is a file without 'valid'
    viewer.layers.clear()
    path = _sparse_time_lapse(tmp_path / "written.ch5", [1.0, 1, 0, 0])
    viewer.open(str(path), plugin="napari-cellae")
    assert viewer.dims.current_step[viewer.dims.axis_labels.index("t")] == 1


def test_contrast_from_the_position_napari_shows_first(tmp_path: Path) -> None:
    # Of 4 positions napari opens the second (index 1); limits were set on the third, whose
    # brightest pixel (4000) the shown one (3000) never reaches.
    path = _sparse_time_lapse(tmp_path / "four.ch5", [1.0, 1, 1, 1], n_positions=4)
    images, _ = _layers_by_type(read_cellh5(str(path)))
    assert images[0][1]["contrast_limits"] == (600.0, 3000.0)  # position 1, frame 1
