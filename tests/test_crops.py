"""Tests for napari_cellae.core.crops: windows, borders, dtypes, chunked reads, normalisation."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import synthetic_position
from napari_cellae.core.crops import (
    CropSet,
    Normalisation,
    collect_crops,
    crop_origins,
    extract_crops,
)
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5


def naive_crop(image: np.ndarray, c: int, t: int, cy: int, cx: int, size: int) -> np.ndarray:
    """Reference: one crop at a time, window shifted inside the image."""
    height, width = image.shape[-2:]
    y0 = min(max(cy - size // 2, 0), height - size)
    x0 = min(max(cx - size // 2, 0), width - size)
    return image[c, t, 0, y0 : y0 + size, x0 : x0 + size]


def asymmetric_image(dtype: str = "uint16", c: int = 2, t: int = 3) -> np.ndarray:
    """Every pixel value unique: value encodes (c, t, y, x); non-square so a transpose fails."""
    h, w = 30, 50
    values = np.arange(c * t * h * w).reshape(c, t, 1, h, w)
    return values.astype(dtype) if dtype != "uint8" else (values % 251).astype(dtype)


def test_crop_origins_centred_and_shifted_inside() -> None:
    y0, x0 = crop_origins(np.array([15, 0, 29, 3]), np.array([25, 49, 0, 47]), 10, 30, 50)
    np.testing.assert_array_equal(y0, [10, 0, 20, 0])
    np.testing.assert_array_equal(x0, [20, 40, 0, 40])


def test_crop_origins_too_large() -> None:
    with pytest.raises(ValueError, match=r"crop size 40 px is larger than the image \(30 x 50"):
        crop_origins(np.array([1]), np.array([1]), 40, 30, 50)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_extract_equals_naive_no_transpose(dtype: str) -> None:
    image = asymmetric_image(dtype)
    t = np.array([2, 0, 1, 2, 0])
    cy = np.array([0, 29, 15, 7, 28])
    cx = np.array([49, 0, 25, 3, 48])
    crops = extract_crops(image, t, cy, cx, 12, [1, 0])
    assert crops.dtype == np.dtype(dtype)
    assert crops.shape == (5, 2, 12, 12)
    assert crops.flags.c_contiguous
    y0, x0 = crop_origins(cy, cx, 12, 30, 50)
    for i in range(5):
        for j, c in enumerate([1, 0]):
            np.testing.assert_array_equal(crops[i, j], naive_crop(image, c, t[i], cy[i], cx[i], 12))
            # crop[y, x] == image[y0 + y, x0 + x]: check one off-diagonal pixel explicitly
            assert crops[i, j, 3, 7] == image[c, t[i], 0, y0[i] + 3, x0[i] + 7]


def test_extract_border_window_is_not_padded() -> None:
    image = asymmetric_image("uint16", c=1, t=1)
    crop = extract_crops(image, np.array([0]), np.array([0]), np.array([0]), 8, [0])[0, 0]
    np.testing.assert_array_equal(crop, image[0, 0, 0, :8, :8])
    assert (crop > 0).sum() == 63  # only the image's own (0, 0) pixel is 0: no padding


def test_extract_uint16_keeps_high_values() -> None:
    image = np.full((1, 1, 1, 20, 20), 60000, dtype=np.uint16)
    crops = extract_crops(image, np.array([0]), np.array([10]), np.array([10]), 6, [0])
    assert crops.dtype == np.uint16
    assert crops.max() == 60000


def test_extract_single_and_zero_objects() -> None:
    image = asymmetric_image("uint8", c=1, t=1)
    one = extract_crops(image, np.array([0]), np.array([5]), np.array([5]), 4, [0])
    assert one.shape == (1, 1, 4, 4)
    none = extract_crops(image, np.array([], int), np.array([], int), np.array([], int), 4, [0])
    assert none.shape == (0, 1, 4, 4)


def test_extract_errors() -> None:
    image = asymmetric_image("uint8", c=1, t=2)
    one = np.array([0])
    with pytest.raises(ValueError, match="larger than the image"):
        extract_crops(image, one, one, one, 31, [0])
    with pytest.raises(ValueError, match="channel 3"):
        extract_crops(image, one, one, one, 4, [3])
    with pytest.raises(ValueError, match="time_idx"):
        extract_crops(image, np.array([2]), one, one, 4, [0])


def test_extract_nan_pixels(tmp_path: Path) -> None:
    image = np.zeros((1, 1, 1, 20, 20), dtype=np.float32)
    image[0, 0, 0, 10, 10] = np.nan
    path = tmp_path / "nan.h5"
    with h5py.File(path, "w") as f:
        f["img"] = image
    with (
        h5py.File(path, "r") as f,
        pytest.raises(ValueError, match=r"/img in .*nan\.h5 contains NaN"),
    ):
        extract_crops(f["img"], np.array([0]), np.array([10]), np.array([10]), 6, [0])
    # NaN outside every crop is harmless
    crops = extract_crops(image, np.array([0]), np.array([2]), np.array([2]), 4, [0])
    assert not np.isnan(crops).any()


def test_extract_reads_each_frame_once(tmp_path: Path) -> None:
    """h5py reads: one per (frame, channel), not one per object."""
    image = asymmetric_image("uint16", c=2, t=3)
    rng = np.random.default_rng(0)
    n = 200
    t, cy, cx = rng.integers(0, 3, n), rng.integers(0, 30, n), rng.integers(0, 50, n)

    class CountingDataset:
        def __init__(self, data: np.ndarray) -> None:
            self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, 0

        def __getitem__(self, key: tuple) -> np.ndarray:
            self.reads += 1
            return self.data[key]

    counting = CountingDataset(image)
    crops = extract_crops(counting, t, cy, cx, 10, [0, 1])
    assert counting.reads == 3 * 2
    np.testing.assert_array_equal(crops, extract_crops(image, t, cy, cx, 10, [0, 1]))


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
                    # one h5py read per object: the slow reference
                    expected = naive_crop(image, c, t, cy, cx, 16)
                    np.testing.assert_array_equal(crop_set.crops[i, j], expected)
                y0, x0 = crop_set.origin_y[i], crop_set.origin_x[i]
                np.testing.assert_array_equal(
                    crop_set.crops[i, 0], image[channels[0], t, 0, y0 : y0 + 16, x0 : x0 + 16]
                )
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


def test_normalisation_uint8_uint16_and_round_trip() -> None:
    rng = np.random.default_rng(0)
    for dtype, top in (("uint8", 255), ("uint16", 40000)):
        crops = rng.integers(0, top + 1, (500, 2, 8, 8)).astype(dtype)
        crops[:, 1] //= 4
        norm = Normalisation.from_crops(crops)
        assert len(norm.low) == 2
        assert norm.high[1] < norm.high[0]  # per-channel ranges
        assert norm.high[0] > 0.95 * top  # 16-bit range used, not 8-bit
        out = norm.apply(crops)
        assert out.dtype == np.float32
        assert out.min() == 0.0 and out.max() == 1.0
        tensor_out = norm.apply(torch.from_numpy(crops))
        np.testing.assert_allclose(tensor_out.numpy(), out, atol=1e-6)
        again = Normalisation.from_dict(norm.to_dict())
        assert again == norm


def test_normalisation_constant_and_errors() -> None:
    norm = Normalisation.from_crops(np.full((3, 1, 4, 4), 7, np.uint8))
    assert norm.high[0] > norm.low[0]
    assert (norm.apply(np.full((1, 1, 4, 4), 7, np.uint8)) == 0).all()
    with pytest.raises(ValueError, match="NaN"):
        Normalisation.from_crops(np.full((2, 1, 4, 4), np.nan, np.float32))
    with pytest.raises(ValueError, match="invalid normalisation"):
        Normalisation.from_dict({"low": [1.0], "high": [0.0]})
    with pytest.raises(ValueError, match="expected"):
        Normalisation(low=[0.0], high=[1.0]).apply(np.zeros((1, 2, 4, 4)))


def _layouts(tmp_path: Path, image: np.ndarray) -> Path:
    """One file holding the same pixels in every storage layout the crop reader treats
    differently."""
    path = tmp_path / "layouts.h5"
    c, t, _, h, w = image.shape
    with h5py.File(path, "w") as f:
        f["contiguous"] = image
        f.create_dataset("gzip_tiles", data=image, chunks=(1, 1, 1, 16, 20), compression="gzip")
        f.create_dataset(
            "gzip_shuffle", data=image, chunks=(1, 1, 1, h, w), compression="gzip", shuffle=True
        )
        f.create_dataset("chunked_plain", data=image, chunks=(1, 1, 1, 7, 9))
        # not ours to inflate: through h5py
        f.create_dataset("lzf", data=image, chunks=(1, 1, 1, 16, 16), compression="lzf")
        f.create_dataset("frames_per_chunk", data=image, chunks=(1, t, 1, 8, 8), compression="gzip")
        f.create_dataset("checksum", data=image, chunks=(1, 1, 1, 8, 8), fletcher32=True)
        # frame 1 of channel 0 never written: unallocated chunks read as the fill value
        sparse = f.create_dataset(
            "sparse",
            shape=image.shape,
            dtype=image.dtype,
            chunks=(1, 1, 1, 16, 16),
            compression="gzip",
            fillvalue=7,
        )
        for ci in range(c):
            for ti in range(t):
                if (ci, ti) != (0, 1):
                    sparse[ci, ti] = image[ci, ti]
        # contiguous but never written: no storage to map, h5py returns the fill value
        f.create_dataset("unwritten", shape=image.shape, dtype=image.dtype, fillvalue=3)
    return path


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_every_storage_layout_gives_the_same_crops(tmp_path: Path, dtype: str) -> None:
    image = asymmetric_image(dtype, c=2, t=3)
    path = _layouts(tmp_path, image)
    rng = np.random.default_rng(1)
    n = 300
    t = np.sort(rng.integers(0, 3, n))
    cy, cx = rng.integers(0, 30, n), rng.integers(0, 50, n)
    with h5py.File(path, "r") as f:
        expected_sparse = f["sparse"][...]
        assert expected_sparse[0, 1].min() == 7 and np.array_equal(expected_sparse[1], image[1])
        for name in (
            "contiguous",
            "gzip_tiles",
            "gzip_shuffle",
            "chunked_plain",
            "lzf",
            "frames_per_chunk",
            "checksum",
            "sparse",
            "unwritten",
        ):
            source = {"sparse": expected_sparse, "unwritten": np.full_like(image, 3)}.get(
                name, image
            )
            for size in (9, 16, 30):
                crops = extract_crops(f[name], t, cy, cx, size, [1, 0])
                np.testing.assert_array_equal(
                    crops, extract_crops(source, t, cy, cx, size, [1, 0]), err_msg=name
                )
                assert crops.flags.c_contiguous and crops.flags.writeable


def test_plane_reader_picks_the_fast_paths(tmp_path: Path) -> None:
    from napari_cellae.core.crops import _PlaneReader

    path = _layouts(tmp_path, asymmetric_image("uint16", c=2, t=3))
    with h5py.File(path, "r") as f:
        assert _PlaneReader(f["gzip_tiles"]).filters == [h5py.h5z.FILTER_DEFLATE]
        assert _PlaneReader(f["gzip_shuffle"]).filters == [
            h5py.h5z.FILTER_SHUFFLE,
            h5py.h5z.FILTER_DEFLATE,
        ]
        assert _PlaneReader(f["chunked_plain"]).filters == []
        assert _PlaneReader(f["gzip_tiles"]).parallel
        for slow in ("contiguous", "lzf", "frames_per_chunk", "checksum", "unwritten"):
            reader = _PlaneReader(f[slow])
            assert reader.filters is None and not reader.parallel, slow


def test_damaged_chunk_names_the_file_and_frame(tmp_path: Path) -> None:
    image = asymmetric_image("uint16", c=1, t=2)
    path = tmp_path / "damaged.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("img", data=image, chunks=(1, 1, 1, 30, 50), compression="gzip")
        info = ds.id.get_chunk_info_by_coord((0, 1, 0, 0, 0))
    with open(path, "r+b") as raw:  # overwrite the middle of frame 1's compressed chunk
        raw.seek(info.byte_offset + info.size // 2)
        raw.write(b"\xff" * 16)
    t, cy, cx = np.array([0, 1]), np.array([5, 5]), np.array([5, 5])
    with (
        h5py.File(path, "r") as f,
        pytest.raises(ValueError, match=r"channel 0, frame 1 of the image /img in .*damaged\.h5"),
    ):
        extract_crops(f["img"], t, cy, cx, 8, [0])
