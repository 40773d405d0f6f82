"""Tests for napari_cellae.pipeline.crop_notes: what a run says about its crops."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from conftest import synthetic_position, whole_image_objects
from napari_cellae.core.crops import collect_crops
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.pipeline.crop_notes import CropNotes, warn_crops


def _screen(tmp_path: Path) -> Path:
    """Three wells of 12 cells; the first two imaged too bright (clipped at 255)."""
    positions = [
        synthetic_position(well, "1", n_frames=1, n_per_frame=12, peak=peak, seed=i)
        for i, (well, peak) in enumerate((("A01", 400.0), ("A02", 400.0), ("A03", 150.0)))
    ]
    return write_cellh5(tmp_path / "screen.ch5", positions, ["rfp"], {"primary__primary": 0})


def test_streamed_notes_say_what_the_whole_run_says(tmp_path: Path) -> None:
    path = _screen(tmp_path)
    with CellH5(path) as f:
        whole = collect_crops(f, "primary__primary", 16, mask="cell")
        parts = [
            collect_crops(f, "primary__primary", 16, positions=[key], mask="cell")
            for key in f.positions
        ]
    clipped = r"screen\.ch5: 67% of the cells \(24 of 36\) have 3 or more pixels at the camera"
    with pytest.warns(UserWarning, match=clipped) as in_memory:
        warn_crops(whole, "primary__primary", path)
    notes = CropNotes()
    for part in parts:  # one position at a time, as cellae encode streams them
        notes.add(part)
    with pytest.warns(UserWarning, match=clipped) as streamed:
        notes.warn("primary__primary", 16, path)
    assert [str(w.message) for w in streamed] == [str(w.message) for w in in_memory]
    assert sum(notes.sizes.values()) == 36 and notes.cells == 36


def test_positions_of_cells_without_signal_are_named(tmp_path: Path) -> None:
    # Images never written read as the fill value: such a well topped the hit list as a
    # perfect hit (all its cells novel) without a word.
    import h5py

    path = _screen(tmp_path)
    with h5py.File(path, "a") as f:
        f["sample/0/plate/plate1/experiment/A03/position/1/image/channel"][...] = 0
    with CellH5(path) as f:
        whole = collect_crops(f, "primary__primary", 16, mask="cell")
        parts = [
            collect_crops(f, "primary__primary", 16, positions=[key], mask="cell")
            for key in f.positions
        ]
    assert whole.blank.tolist() == [False] * 24 + [True] * 12
    assert whole.subset([0, 30]).blank.tolist() == [False, True]
    said = (
        r"screen\.ch5: 12 of 36 'primary__primary' cells have crops without signal "
        r".*: A03_1 \(12 of 12\)\."
    )
    with pytest.warns(UserWarning, match=said):
        warn_crops(whole, "primary__primary", path)
    notes = CropNotes()
    for part in parts:
        notes.add(part)
    with pytest.warns(UserWarning, match=said):
        notes.warn("primary__primary", 16, path)


def test_streamed_notes_keep_no_array_of_the_cells(tmp_path: Path) -> None:
    # A whole screen streamed position by position: the notes kept each position's
    # bounding boxes (a view of the first 256 rows held all of them) and every cell's
    # clipped value, 24 bytes a cell for the whole run.
    path = _screen(tmp_path)
    notes = CropNotes(sample=5)
    with CellH5(path) as f:
        parts = [
            collect_crops(f, "primary__primary", 16, positions=[key], mask="cell")
            for key in f.positions
        ]
    kept = [weakref.ref(a) for part in parts for a in (part.bbox, part.clipped_at)]
    for part in parts:
        notes.add(part)
    del parts, part
    gc.collect()
    assert [ref() for ref in kept] == [None] * len(kept)
    assert sum(notes.sizes.values()) == 15 and notes.cells == 36  # 5 sizes per position
    assert notes.clipped == {255: 24}


@pytest.mark.filterwarnings("ignore:.*share their label id")
def test_objects_as_large_as_the_images_are_told_no_box_larger_than_them(
    tmp_path: Path,
) -> None:
    # 'a cell size of about 88 px would hold 95 %': more than the 64 px images allow
    path = whole_image_objects(tmp_path / "whole.ch5")
    with CellH5(path) as f:
        whole = collect_crops(f, "primary__primary", 64)
        parts = [collect_crops(f, "primary__primary", 64, positions=[k]) for k in f.positions]
    said = (
        r"whole\.ch5: 100% of the 'primary__primary' objects are larger than the 64 px crop "
        r"box .*span \(nearly\) the whole image \(median 80 px; the images' shorter side is "
        r"64 px\), so no crop box holds them.*Check the segmentation"
    )
    with pytest.warns(UserWarning, match=said) as told:
        warn_crops(whole, "primary__primary", path)  # the image side read from the file
    assert not any("88 px" in str(w.message) for w in told)
    notes = CropNotes()
    for part in parts:  # streamed, as cellae encode: the same from the files noted
        notes.add(part)
    assert notes.sources == {path}
    with pytest.warns(UserWarning, match=said):
        notes.warn("primary__primary", 64, path)
    with pytest.warns(UserWarning, match=r"about 88 px would hold 95 %"):  # a side given wins
        warn_crops(whole, "primary__primary", None, image_side=100)


def _box_warnings(crops, path) -> list[str]:
    with pytest.warns(UserWarning) as said:
        warn_crops(crops, "primary__primary", path)
    return [str(w.message) for w in said if "crop box" in str(w.message)]


def test_the_crop_box_of_drawn_cells_is_judged_on_the_files_objects() -> None:
    # 'cellae train --samples 1 --crop-size 16' on the demo: '100% of the objects are
    # larger than the 16 px crop box ... about 24 px would hold 95 %' (its one drawn
    # cell); every cell: 93 % and 40 px
    from napari_cellae.core.config import TrainConfig
    from napari_cellae.demo.screen import demo_paths
    from napari_cellae.pipeline.sampling import sampled_training_crops

    path = demo_paths()[0]
    config = TrainConfig(crop_size=16, input_size=40, samples=1)
    with CellH5(path) as f:
        drawn, n_cells = sampled_training_crops(f, "primary__primary", [0], None, config)
        every = collect_crops(f, "primary__primary", 16)
    assert len(drawn) == 1 and n_cells == len(every) == 2556
    said = _box_warnings(drawn, path)
    assert said == _box_warnings(every, path)
    assert "93% of the 'primary__primary' objects are larger than the 16 px" in said[0]
    assert "a cell size of about 40 px would hold 95 %" in said[0]
