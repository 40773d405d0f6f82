"""Tests for napari_cellae.core.crops: every object of a file cropped, with its metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import naive_crop, synthetic_position
from napari_cellae.core import normalisation, windows
from napari_cellae.core.crops import (
    CropSet,
    Normalisation,
    collect_crops,
    crop_origins,
    extract_crops,
)
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
