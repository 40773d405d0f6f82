"""The CellCognition Explorer .hdf: exact layout, round trip, orientation, failure safety."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import image_window
from napari_cellae.core.crops import CropSet, Normalisation, collect_crops
from napari_cellae.export.explorer import (
    BBOX_DTYPE,
    feature_names,
    read_explorer_hdf,
    source_image_size,
    write_explorer_hdf,
)
from napari_cellae.io.cellh5 import CellH5, PositionKey
from napari_cellae.io.mapping import read_mapping

SIZE = 16


def _crops(path: Path, size: int = SIZE, channels: list[int] | None = None) -> CropSet:
    with CellH5(path) as ch5:
        return collect_crops(ch5, ch5.default_object, size, channels=channels)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _features(n: int, f: int = 5) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, f)).astype(np.float32)


def _pattern_cropset(tmp_path: Path, dtype=np.uint8) -> CropSet:
    """Two hand-made crops whose pixels say where they are: value = 10 * y + x."""
    yy, xx = np.mgrid[0:4, 0:4]
    crop = (10 * yy + xx).astype(dtype)
    crops = np.stack([crop, crop + 1])[:, None]  # (2, 1, 4, 4)
    n = 2
    return CropSet(
        crops=np.ascontiguousarray(crops),
        positions=[PositionKey("p", "A01", "1")],
        position_index=np.zeros(n, np.int32),
        object_index=np.arange(n, dtype=np.int32),
        label_id=np.array([4, 9], np.int32),
        time_idx=np.zeros(n, np.int32),
        center_x=np.array([5, 30], np.int32),
        center_y=np.array([7, 2], np.int32),
        bbox=np.array([[3, 7, 5, 9], [28, 32, 0, 4]], np.int32),
        angle=np.array([np.nan, 12.5]),
        eccentricity=np.array([np.nan, 0.5]),
        class_idx=np.full(n, -1, np.int32),
        origin_y=np.array([5, 0], np.int32),
        origin_x=np.array([3, 28], np.int32),
        object_name="Nuclei",
        channels=[0],
        channel_names=["DNA"],
        source=tmp_path / "missing.ch5",
        box=4,
    )


def test_layout_dtypes_and_round_trip(cellcognition_file, mapping_file, tmp_path):
    crops = _crops(cellcognition_file)
    features = _features(len(crops))
    mapping = read_mapping(mapping_file)
    out = write_explorer_hdf(tmp_path / "features.hdf", crops, features, mapping)
    assert out == tmp_path / "features.hdf"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "cellcognition_mapping.txt",
        "features.hdf",
    ]  # no temporary file left behind

    n = len(crops)
    with h5py.File(out, "r") as h5:
        assert list(h5.attrs["training_data"]) == [b"data"]
        assert "napari-cellae" in h5.attrs["application"].decode()
        data = h5["data"]
        assert set(data) == {"bbox", "features", "feature_groups", "contours", "gallery"}
        assert data["bbox"].dtype == BBOX_DTYPE
        assert data["bbox"].dtype.names == (
            "file",
            "treatment",
            "label",
            "x",
            "y",
            "angle",
            "eccentricity",
            "left",
            "right",
            "top",
            "bottom",
        )
        assert data["bbox"].shape == (n,)
        fdt = data["features"].dtype
        assert fdt.names == tuple(f"ch1-deep_learning_feature_{i}" for i in range(5))
        assert all(fdt[name] == np.dtype("<f4") for name in fdt.names)
        assert data["features"].shape == (n,)
        groups = data["feature_groups"][()]
        assert groups.dtype == np.dtype([("feature", "S64"), ("Simple1", "S64")])
        assert groups["feature"].tolist() == [name.encode() for name in fdt.names]
        assert set(groups["Simple1"].tolist()) == {b"Simple1"}
        assert list(data["contours"].attrs["channels"]) == [b"Channel_1"]
        contours = data["contours/Channel_1"]
        assert contours.shape == (n, 2)
        assert h5py.check_vlen_dtype(contours.dtype) == np.dtype(np.uint16)
        gallery = data["gallery"]
        assert gallery.dtype == np.uint8
        assert gallery.shape == (SIZE, SIZE, 1, n)
        assert list(gallery.attrs["colors"]) == [b"#FFFFFF"]
        assert tuple(gallery.attrs["image_size"]) == (64, 80)  # (height, width)

    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()  # normal permissions

    back = read_explorer_hdf(out)
    assert len(back) == n
    np.testing.assert_array_equal(back.features, features)
    assert back.features.dtype == np.float32
    assert back.feature_names == feature_names(5)
    assert back.image_size == (64, 80)
    assert back.training_data == ["data"]
    assert back.contour_channels == ["Channel_1"]

    bbox = back.bbox
    np.testing.assert_array_equal(bbox["x"], crops.center_x)
    np.testing.assert_array_equal(bbox["y"], crops.center_y)
    np.testing.assert_array_equal(
        np.stack([bbox["left"], bbox["right"], bbox["top"], bbox["bottom"]], 1), crops.bbox
    )
    np.testing.assert_allclose(bbox["angle"], crops.angle)
    np.testing.assert_allclose(bbox["eccentricity"], crops.eccentricity)
    # file = position label, treatment = condition from the mapping, label = label id.
    labels = [crops.positions[i].label.encode() for i in crops.position_index]
    assert bbox["file"].tolist() == labels
    by_well = {b"A01": b"scrambled", b"B02": b"PLK1"}
    expected = [by_well[crops.positions[i].well.encode()] for i in crops.position_index]
    assert bbox["treatment"].tolist() == expected
    with CellH5(cellcognition_file) as ch5:
        table = ch5.objects(crops.positions[0], crops.object_name)
    first = crops.position_index == 0
    np.testing.assert_array_equal(bbox["label"][first], table.label_id[crops.object_index[first]])

    # Gallery is stored [y, x]: thumbnail i equals the crop and, inside the image, the
    # centred window (object 0 sits at the border, its window reaching past the image).
    np.testing.assert_array_equal(back.gallery[:, :, 0, :], crops.crops[:, 0].transpose(1, 2, 0))
    with CellH5(cellcognition_file) as ch5:
        for i in (0, 1, n - 1):
            key = crops.positions[crops.position_index[i]]
            y0, x0 = int(crops.origin_y[i]), int(crops.origin_x[i])
            plane = ch5.image(key)[0, crops.time_idx[i], 0]
            window, inside = image_window(plane, y0, x0, SIZE)
            np.testing.assert_array_equal(back.gallery[:, :, 0, i][inside], window[inside])
    # Contours: x and y corners of the centred crop square (cut at 0).
    for i in (0, 1, n - 1):
        x0, y0 = int(crops.origin_x[i]), int(crops.origin_y[i])
        left, top = max(x0, 0), max(y0, 0)
        assert back.contours[i, 0].tolist() == [left, x0 + SIZE, x0 + SIZE, left]
        assert back.contours[i, 1].tolist() == [top, top, y0 + SIZE, y0 + SIZE]


def test_resampled_crops_keep_their_window_in_the_image(cellcognition_file, tmp_path):
    from napari_cellae.core.resample import to_network_size

    crops = to_network_size(_crops(cellcognition_file), 24)  # a 16 px box, a 24 px network
    assert (crops.box, crops.crops.shape[-1]) == (SIZE, 24)
    write_explorer_hdf(tmp_path / "f.hdf", crops, _features(len(crops)), None)
    back = read_explorer_hdf(tmp_path / "f.hdf")
    assert back.gallery.shape[:2] == (24, 24)  # thumbnails as the network saw them
    x0, y0 = int(crops.origin_x[1]), int(crops.origin_y[1])
    assert back.contours[1, 0].tolist()[1:3] == [x0 + SIZE, x0 + SIZE]  # the box, not 24 px
    assert back.contours[1, 1].tolist()[2:] == [y0 + SIZE, y0 + SIZE]
    assert crops.subset([1]).box == SIZE


def test_image_size_without_the_source_file_comes_from_the_centres(tmp_path):
    # The crop windows may reach past the image; the centres never do.
    assert source_image_size(_pattern_cropset(tmp_path)) == (8, 31)


def test_gallery_is_y_x_for_asymmetric_pattern_and_missing_orientation(tmp_path):
    crops = _pattern_cropset(tmp_path)
    out = write_explorer_hdf(tmp_path / "p.hdf", crops, _features(2, 3), None, image_size=(9, 40))
    back = read_explorer_hdf(out)
    # pixel value 10 * y + x: gallery[y, x, c, i] must hold exactly that.
    assert back.gallery[1, 3, 0, 0] == 13
    assert back.gallery[3, 1, 0, 0] == 31
    assert back.gallery[0, 2, 0, 1] == 3
    assert back.image_size == (9, 40)
    # NaN orientation is written as 0, never NaN.
    assert back.bbox["angle"].tolist() == [0.0, 12.5]
    assert back.bbox["eccentricity"].tolist() == [0.0, 0.5]
    # Unmapped position: treatment = position label.
    assert back.bbox["treatment"].tolist() == [b"A01_1", b"A01_1"]
    # The label is the segmentation label carried by the crops.
    assert back.bbox["label"].tolist() == [4, 9]


def test_the_file_column_names_the_plate_of_a_file_with_several(tmp_path):
    # One CellH5 file can hold several plates, each with its own A01_1: the Explorer
    # groups cells by `file`, and the two positions merged into one.
    from dataclasses import replace

    from napari_cellae.export.explorer import build_arrays

    crops = _pattern_cropset(tmp_path)
    two = replace(
        crops,
        positions=[PositionKey("plate1", "A01", "1"), PositionKey("plate2", "A01", "1")],
        position_index=np.array([0, 1], np.int32),
    )
    out = write_explorer_hdf(tmp_path / "p.hdf", two, _features(2, 3), None, image_size=(9, 40))
    back = read_explorer_hdf(out).bbox
    assert back["file"].tolist() == [b"plate1/A01_1", b"plate2/A01_1"]
    assert back["treatment"].tolist() == [b"plate1/A01_1", b"plate2/A01_1"]  # unmapped
    # one plate: the position's label alone, as the Explorer's own files have it
    assert read_explorer_hdf(
        write_explorer_hdf(tmp_path / "q.hdf", crops, _features(2, 3), None, image_size=(9, 40))
    ).bbox["file"].tolist() == [b"A01_1", b"A01_1"]
    given = build_arrays(two, _features(2, 3), None, None, file_labels=["x/A01_1", "y/A01_1"])
    assert given["bbox"]["file"].tolist() == [b"x/A01_1", b"y/A01_1"]
    with pytest.raises(ValueError, match="1 file labels for 2 positions"):
        build_arrays(two, _features(2, 3), None, None, file_labels=["x/A01_1"])


def test_cellprofiler_uint16_two_channels_no_orientation(cellprofiler_file, tmp_path):
    crops = _crops(cellprofiler_file, channels=[0, 1])
    assert crops.crops.dtype == np.uint16 and crops.crops.max() > 255
    assert np.isnan(crops.angle).all()
    norm = Normalisation.from_crops(crops.crops)
    out = write_explorer_hdf(
        tmp_path / "cp.hdf", crops, _features(len(crops), 4), None, normalisation=norm
    )
    back = read_explorer_hdf(out)
    assert back.gallery.shape == (SIZE, SIZE, 2, len(crops))
    assert back.gallery.dtype == np.uint8
    assert back.colors == ["#FFFFFF", "#FFFFFF"]
    # Scaled with the normalisation, not truncated: the brightest pixels reach ~255
    # and the order of intensities is kept.
    expected = np.rint(norm.apply(crops.crops) * 255).astype(np.uint8)
    np.testing.assert_array_equal(back.gallery, expected.transpose(2, 3, 1, 0))
    assert back.gallery.max() >= 250
    truncated = (crops.crops & 0xFF).astype(np.uint8).transpose(2, 3, 1, 0)
    assert not np.array_equal(back.gallery, truncated)
    assert (back.bbox["angle"] == 0).all() and (back.bbox["eccentricity"] == 0).all()
    assert set(back.bbox["file"].tolist()) == {p.label.encode() for p in crops.positions}


def test_every_gallery_colour_has_its_outline(cellprofiler_file, tmp_path):
    # The Explorer outlines each colour of the gallery with the contour channel of the same
    # place: a two-channel file held one (Channel_1), so the second colour's had none.
    from napari_cellae.export.explorer_stream import ExplorerWriter

    crops = _crops(cellprofiler_file, channels=[0, 1])
    features, norm = _features(len(crops), 4), Normalisation.from_crops(crops.crops)
    whole = write_explorer_hdf(tmp_path / "whole.hdf", crops, features, None, normalisation=norm)
    with ExplorerWriter(tmp_path / "stream.hdf", None, normalisation=norm) as writer:
        writer.append(crops, features)
    for path in (whole, writer.path):
        with h5py.File(path, "r") as h5:
            outlines = h5["data/contours"]
            assert list(outlines.attrs["channels"]) == [b"Channel_1", b"Channel_2"]
            assert len(h5["data/gallery"].attrs["colors"]) == 2
            first, second = outlines["Channel_1"][()], outlines["Channel_2"][()]
            assert first.shape == second.shape == (len(crops), 2)
            for a, b in zip(first.ravel(), second.ravel(), strict=True):
                np.testing.assert_array_equal(a, b)  # the same crop square
        assert all(name.startswith("ch1-") for name in read_explorer_hdf(path).feature_names)


def test_uint16_without_normalisation_is_scaled_from_data(tmp_path):
    crops = _pattern_cropset(tmp_path, dtype=np.uint16)
    crops.crops = crops.crops * 1000  # values up to 34000
    back = read_explorer_hdf(write_explorer_hdf(tmp_path / "u.hdf", crops, _features(2), None))
    g = back.gallery[:, :, 0, 0].astype(int)
    assert g.max() > 200
    assert (np.diff(g, axis=1) >= 0).all()  # monotone like the data (x increases)


def test_failure_leaves_no_partial_file(cellcognition_file, tmp_path, monkeypatch):
    crops = _crops(cellcognition_file)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "features.hdf"

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_group", boom)
    with pytest.raises(ValueError, match=r"features\.hdf.*disk full"):
        write_explorer_hdf(target, crops, _features(len(crops)), None)
    assert list(out_dir.iterdir()) == []

    # An existing file is left untouched by a failed write.
    target.write_bytes(b"old")
    with pytest.raises(ValueError):
        write_explorer_hdf(target, crops, _features(len(crops)), None)
    assert target.read_bytes() == b"old"
    assert [p.name for p in out_dir.iterdir()] == ["features.hdf"]


def test_unwritable_destination_names_the_path(cellcognition_file, tmp_path):
    crops = _crops(cellcognition_file)
    feats = _features(len(crops))
    missing = tmp_path / "no" / "such" / "features.hdf"
    with pytest.raises(ValueError, match=r"no/such/features\.hdf"):
        write_explorer_hdf(missing, crops, feats, None)
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=r"file\.txt/features\.hdf"):
        write_explorer_hdf(blocker / "features.hdf", crops, feats, None)
    with pytest.raises(ValueError, match="folder"):
        write_explorer_hdf(tmp_path, crops, feats, None)
    assert [p for p in tmp_path.rglob("*") if "features" in p.name] == []


def test_bad_features_are_rejected(cellcognition_file, tmp_path):
    crops = _crops(cellcognition_file)
    with pytest.raises(ValueError, match="shape"):
        write_explorer_hdf(tmp_path / "a.hdf", crops, _features(len(crops) - 1), None)
    bad = _features(len(crops))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_explorer_hdf(tmp_path / "a.hdf", crops, bad, None)
    assert list(tmp_path.glob("*.hdf")) == []


def test_read_rejects_non_explorer_files(tmp_path, cellcognition_file):
    with pytest.raises(ValueError, match="not a CellCognition Explorer file"):
        read_explorer_hdf(cellcognition_file)
    with pytest.raises(ValueError, match="cannot read"):
        read_explorer_hdf(tmp_path / "nope.hdf")


def test_refuses_to_overwrite_an_input_and_removes_stale_temporaries(cellcognition_file, tmp_path):
    crops = _crops(cellcognition_file)
    feats = _features(len(crops))
    before = cellcognition_file.read_bytes()
    with pytest.raises(ValueError, match="refusing to write the features file"):
        write_explorer_hdf(cellcognition_file, crops, feats, None)  # the crops' own source
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    alias = tmp_path / "sub" / ".." / "model.pt"
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match=r"model\.pt: it is an input"):
        write_explorer_hdf(alias, crops, feats, None, inputs=[model])
    assert cellcognition_file.read_bytes() == before and model.read_bytes() == b"weights"
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".features.hdf.999999999.cellae-tmp"  # left by a killed run
    stale.write_bytes(b"half")
    write_explorer_hdf(out / "features.hdf", crops, feats, None)
    assert [p.name for p in out.iterdir()] == ["features.hdf"]
