"""The crop box fitted to the cells of a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import synthetic_position, tiny_images
from napari_cellae.core.config import TrainConfig
from napari_cellae.core.crops import collect_crops
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.pipeline import cell_size
from napari_cellae.pipeline.cell_size import fit_to_cells, fitted_box, measured_extents


def test_extents_are_read_from_the_bounding_boxes(
    cellcognition_file: Path, cellprofiler_file: Path
) -> None:
    # the fixtures' boxes are 9 px (centre +- 4), 7 px where the image border clips them
    with CellH5(cellcognition_file) as ch5:
        extent = measured_extents(ch5, "primary__primary")
    assert len(extent) == 30  # 2 positions x 3 frames x 5 objects
    assert set(extent.tolist()) <= {7, 9} and np.median(extent) == 9
    with CellH5(cellprofiler_file) as ch5:
        assert len(measured_extents(ch5, "Nuclei")) == 12


def test_only_a_sample_of_positions_is_read(
    cellcognition_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cell_size, "_SAMPLED_POSITIONS", 1)
    with CellH5(cellcognition_file) as ch5:
        assert len(measured_extents(ch5, "primary__primary")) == 15


def test_cells_cut_by_the_network_box_get_one_that_holds_them(
    cellcognition_file: Path, large_cells_file: Path
) -> None:
    with CellH5(large_cells_file) as ch5:
        extent = measured_extents(ch5, "primary__primary")
        assert np.mean(extent > 32) > 0.5
        assert fitted_box(ch5, "primary__primary", 32) == 48
        assert fitted_box(ch5, "primary__primary", 48) is None  # 48 px holds them
    with CellH5(cellcognition_file) as ch5:  # 9 px cells: small, but left alone
        assert fitted_box(ch5, "primary__primary", 40) is None


def test_a_fitted_box_never_exceeds_the_images(
    cellcognition_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = np.full(100, 300)  # cells larger than the 64 x 80 px images
    monkeypatch.setattr(cell_size, "measured_extents", lambda *args: big)
    with CellH5(cellcognition_file) as ch5:
        assert fitted_box(ch5, "primary__primary", 40) == 64
        assert fitted_box(ch5, "primary__primary", 64) is None  # nothing better fits


def test_fit_to_cells_resamples_to_the_network_size(
    large_cells_file: Path, cellcognition_file: Path
) -> None:
    config = TrainConfig.from_preset("recommended", crop_size=32)
    fitted, message = fit_to_cells(large_cells_file, config)
    assert (fitted.crop_size, fitted.input_size, fitted.network_size) == (48, 32, 32)
    assert fitted.epochs == config.epochs and fitted.readout == config.readout
    assert "'primary__primary' objects are larger than the 32 px" in message
    assert "cropping 48 px" in message
    same, message = fit_to_cells(cellcognition_file, config)
    assert same == config and message is None


def test_fit_to_cells_names_a_missing_object(cellcognition_file: Path) -> None:
    with pytest.raises(ValueError, match="nuclei"):
        fit_to_cells(cellcognition_file, TrainConfig(), object_name="nuclei")


def test_several_plates_are_fitted_by_the_first_with_objects(
    large_cells_file: Path, tmp_path: Path
) -> None:
    # 'cellae train EMPTY LARGE' measured the first plate only: without objects it told
    # nothing, and the large cells were cut off by the network's box.
    nothing = synthetic_position("A01", "1", n_frames=1, n_per_frame=1)
    table = nothing.objects["primary__primary"]
    nothing.objects["primary__primary"] = type(table)(
        **{name: v[:0] for name, v in vars(table).items() if isinstance(v, np.ndarray)}
    )
    empty = write_cellh5(tmp_path / "empty.ch5", [nothing], ["rfp"], {"primary__primary": 0})
    config = TrainConfig.from_preset("recommended", crop_size=32)
    fitted, message = fit_to_cells([empty, large_cells_file], config)
    assert (fitted.crop_size, fitted.input_size) == (48, 32) and "cropping 48 px" in message


def test_images_smaller_than_the_network_box_are_cropped_whole(tmp_path: Path) -> None:
    # 'cellae train tiny.ch5' (12 x 12 px images, no cell size given) failed: 'crop size
    # 40 px is larger than the image'
    path = tiny_images(tmp_path / "tiny.ch5")
    with CellH5(path) as ch5:
        assert fitted_box(ch5, "nuc", 40) == 12
        assert fitted_box(ch5, "nuc", 12) is None  # the box fits: nothing to change
    fitted, message = fit_to_cells(path, TrainConfig())
    assert (fitted.crop_size, fitted.input_size, fitted.network_size) == (12, 40, 40)
    assert message == (
        "the images' shorter side (12 px) is smaller than the 40 px crop box the network is "
        "made for: cropping 12 px and resampling to 40 px"
    )
    with CellH5(path) as ch5:  # and the box can be cut
        assert collect_crops(ch5, "nuc", fitted.crop_size).crops.shape == (6, 1, 12, 12)


def test_objects_as_large_as_the_images_get_no_box_larger_than_them(
    cellcognition_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # objects spanning the whole 64 x 80 px images: 'cellae info' said 'a 64 px crop box
    # holds them' and 'cellae train' 'cropping 64 px, which holds 95 % of them'
    from napari_cellae.pipeline.cell_size import box_advice

    whole = np.full(30, 80)
    monkeypatch.setattr(cell_size, "measured_extents", lambda *args: whole)
    with CellH5(cellcognition_file) as ch5:
        said = box_advice(ch5, "primary__primary", whole, 40)
    assert said.startswith("they span (nearly) the whole image (the images' shorter side is")
    assert "check the segmentation or the objects chosen (--object)" in said
    assert "holds them (" not in said and "88" not in said
    _, message = fit_to_cells(cellcognition_file, TrainConfig())
    held = "cropping 64 px, the largest the images allow (64 px shorter side), which holds 0%"
    assert held in message
    assert "95 %" not in message
    large = np.array([50] * 15 + [58] * 5)  # 95 % within 58 + 4 px: 64 px fits the images
    with CellH5(cellcognition_file) as ch5:
        said = box_advice(ch5, "primary__primary", large, 40)
        assert said == (
            "a 64 px crop box holds them (cellae train crops 64 px and resamples to the "
            "network's 40 px)"
        )
        some = np.array([40] * 18 + [70] * 2)  # 95 % within 70 + 4 px: 80 px, > 64 px
        assert box_advice(ch5, "primary__primary", some, 40) == (
            "the largest crop box the images allow (their shorter side is 64 px) holds 90% of "
            "them; cellae train crops 64 px and resamples to the network's 40 px"
        )
        assert box_advice(ch5, "primary__primary", np.full(30, 20), 40) == (
            "a 24 px crop box holds them (the default 40 px box too)"
        )
