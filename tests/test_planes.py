"""Tests for napari_cellae.io.planes: every storage layout, the fast path, damaged chunks."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import asymmetric_image
from napari_cellae.core.windows import extract_crops
from napari_cellae.io.planes import PlaneReader


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
        # CellCognition's own: every channel of a frame in one chunk, a quarter of it high
        # and wide (inflated once for all channels cropped)
        f.create_dataset(
            "all_channels", data=image, chunks=(c, 1, 1, h // 4 + 1, w // 4 + 1), compression="gzip"
        )
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
            "all_channels",
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
    path = _layouts(tmp_path, asymmetric_image("uint16", c=2, t=3))
    with h5py.File(path, "r") as f:
        assert PlaneReader(f["gzip_tiles"]).filters == [h5py.h5z.FILTER_DEFLATE]
        assert PlaneReader(f["gzip_shuffle"]).filters == [
            h5py.h5z.FILTER_SHUFFLE,
            h5py.h5z.FILTER_DEFLATE,
        ]
        assert PlaneReader(f["chunked_plain"]).filters == []
        assert PlaneReader(f["gzip_tiles"]).parallel and PlaneReader(f["all_channels"]).parallel
        for slow in ("contiguous", "lzf", "frames_per_chunk", "checksum", "unwritten"):
            reader = PlaneReader(f[slow])
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


def test_pixels_in_a_missing_external_file_are_said_to_be(tmp_path: Path, monkeypatch) -> None:
    # (a label image, say: the raw image is checked when CellH5 opens it) read as damaged
    monkeypatch.chdir(tmp_path)
    image = asymmetric_image("uint8", c=1, t=1)
    path = tmp_path / "external.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("img", data=image, external=[("img.raw", 0, h5py.h5f.UNLIMITED)])
    (tmp_path / "img.raw").unlink()
    t, cy, cx = np.array([0]), np.array([5]), np.array([5])
    with (
        h5py.File(path, "r") as f,
        pytest.raises(ValueError, match=r"frame 0 of the image /img .*external raw file that"),
    ):
        extract_crops(f["img"], t, cy, cx, 8, [0])


def test_image_whose_chunks_were_never_written(tmp_path: Path) -> None:
    """h5py raises MemoryError (not OSError) reading the raw chunk of a dataset with no
    chunk written yet; such an image (all fill value) crashed the crops."""
    path = tmp_path / "unwritten.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "img",
            shape=(1, 2, 1, 30, 50),
            dtype="uint16",
            chunks=(1, 1, 1, 16, 16),
            compression="gzip",
            fillvalue=7,
        )
    with h5py.File(path, "r") as f:
        reader = PlaneReader(f["img"])
        assert reader.parallel
        np.testing.assert_array_equal(reader.window(0, 1, 3, 20, 5, 40), np.full((17, 35), 7))
        crops = extract_crops(
            f["img"], np.array([0, 1]), np.array([4, 25]), np.array([4, 45]), 8, [0]
        )
    np.testing.assert_array_equal(crops, np.full((2, 1, 8, 8), 7))


def test_raw_chunk_reads_hold_h5py_lock(tmp_path: Path) -> None:
    # h5py before 3.16 did not take its global lock in read_direct_chunk: frames cropped in
    # several threads crashed the process (segmentation fault) with h5py 3.8 to 3.15.
    from h5py._objects import phil

    image = asymmetric_image("uint16", c=1, t=2)
    path = tmp_path / "gzip.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("img", data=image, chunks=(1, 1, 1, 16, 20), compression="gzip")
    with h5py.File(path, "r") as f:
        dset = f["img"]
        reader = PlaneReader(dset)
        assert reader.parallel
        held: list[bool] = []

        class Id:  # records whether the lock is held when the raw chunk is fetched
            def read_direct_chunk(self, offsets):
                held.append(bool(phil._is_owned()))
                return dset.id.read_direct_chunk(offsets)

        class Image:
            chunks, dtype, shape, id = dset.chunks, dset.dtype, dset.shape, Id()

        reader.image = Image()
        window = reader.window(0, 1, 3, 28, 5, 45)
        np.testing.assert_array_equal(window, image[0, 1, 0, 3:28, 5:45])
        assert held and all(held)


def _unknown_filter(path: Path, name: str, data: np.ndarray) -> None:
    """Write ``data`` lzf-compressed, then change the filter's id in the file to 32255, one
    no HDF5 has: as a file compressed with a plugin (blosc, bitshuffle) this one lacks."""
    with h5py.File(path, "a") as f:
        f.create_dataset(name, data=data, chunks=True, compression="lzf")
    raw = bytearray(path.read_bytes())
    # the pipeline message: id 32000 (2 bytes), name length, flags, values, then b"lzf\0"
    at = [
        i for i in range(8, len(raw)) if raw[i : i + 4] == b"lzf\0" and raw[i - 8 : i - 6] == b"\0}"
    ]
    assert at
    for i in at:
        raw[i - 8] = 0xFF
    path.write_bytes(bytes(raw))


def test_a_filter_not_installed_is_named_not_called_damage(tmp_path: Path) -> None:
    # HDF5 says only "can't open directory (/usr/local/lib/plugin)" (where it looked for the
    # plugin), which read as damaged pixels.
    from napari_cellae.io.hdf5 import CellH5Error
    from napari_cellae.io.planes import read_pixels

    path = tmp_path / "plugin.h5"
    _unknown_filter(path, "img", np.full((1, 2, 1, 30, 50), 7, np.uint16))  # compressible
    with h5py.File(path, "r") as f:
        for read in (
            lambda: PlaneReader(f["img"]).window(0, 1, 0, 8, 0, 8),
            lambda: read_pixels(f["img"], (0, 1), path, "channel 0, frame 1"),
        ):
            with pytest.raises(
                CellH5Error, match="filter 'lzf' \\(id 32255\\), which is not in"
            ) as e:
                read()
            assert "damaged" not in str(e.value) and "plugin.h5" in str(e.value)


def test_random_layouts_and_pixel_types_give_the_numpy_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random chunk shapes (several channels a chunk, partial last chunks), deflate and
    shuffle or none, byte orders and pixel types, channels in any order and repeated, and
    frames' windows split small: crops against numpy slicing of the stored array."""
    from napari_cellae.core import windows

    dtypes = ["u1", "<u2", ">u2", "<i2", "<f4", ">f8", "<u4", "i1"]
    fast = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        shape = (*rng.integers(1, 5, 2), int(rng.integers(1, 3)), *rng.integers(2, 40, 2))
        image = (rng.random(shape) * 100).astype(dtypes[seed % len(dtypes)])
        chunks = (int(rng.integers(1, shape[0] + 1)), 1, 1, *(rng.integers(1, shape[3:]) + 1))
        with h5py.File(tmp_path / f"{seed}.h5", "w") as f:
            gzip = "gzip" if seed % 3 else None
            f.create_dataset("img", data=image, chunks=chunks, compression=gzip, shuffle=seed % 2)
        monkeypatch.setattr(windows, "_WINDOW_PIXELS", int(rng.integers(1, 400)))
        n, size = int(rng.integers(1, 20)), int(rng.integers(1, min(shape[3:]) + 1))
        t, cy, cx = (rng.integers(0, m, n) for m in (shape[1], shape[3], shape[4]))
        channels = rng.integers(0, shape[0], int(rng.integers(1, 5))).tolist()
        with h5py.File(tmp_path / f"{seed}.h5", "r") as f:
            fast += PlaneReader(f["img"]).parallel
            crops = extract_crops(f["img"], t, cy, cx, size, channels)
        assert crops.dtype == image.dtype
        for i in range(n):
            y0 = min(max(cy[i] - size // 2, 0), shape[3] - size)
            x0 = min(max(cx[i] - size // 2, 0), shape[4] - size)
            expected = image[channels, t[i], 0, y0 : y0 + size, x0 : x0 + size]
            np.testing.assert_array_equal(crops[i], expected, err_msg=f"seed {seed}, crop {i}")
    assert fast > 20  # most went through the chunks inflated here
