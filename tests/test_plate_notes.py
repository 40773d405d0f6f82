"""What a run of several plates says about its crops names each position with its plate, as
the cell table does: plates named alike apart by their file, and the plate of a position
named even where the message starts with the run's first plate."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import synthetic_position
from napari_cellae.core.config import TrainConfig
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.pipeline.plate_training import plate_training_crops
from napari_cellae.pipeline.streaming import encode_stream
from test_streaming import ARCH, random_model

RUN2 = "plate1 (run2/plate.ch5)"


def _plates(tmp_path: Path) -> list[Path]:
    """Two files of a plate named plate1; in run2's, A01 was never imaged (its pixels all
    zero) and B01 has no label images."""
    files = []
    for run, seed in (("run1", 1), ("run2", 5)):
        positions = [
            synthetic_position(w, "1", seed=seed + i) for i, w in enumerate(["A01", "B01"])
        ]
        if run == "run2":
            positions[0].image[...] = 0
            positions[1] = replace(positions[1], labels=None)
        (tmp_path / run).mkdir()
        files.append(
            write_cellh5(tmp_path / run / "plate.ch5", positions, ["rfp"], {"primary__primary": 0})
        )
    return files


def _said(caught: list[warnings.WarningMessage], about: str) -> str:
    (text,) = [str(w.message) for w in caught if about in str(w.message)]
    return text


def test_an_encode_of_plates_named_alike_names_the_plate_of_each_position(tmp_path):
    plates = _plates(tmp_path)
    model = random_model(mask="neighbours")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encode_stream(plates, model, tmp_path / "out.hdf")
    # were 'plate1/A01_1', which either file may hold, and 'B01_1', of no plate
    assert f": {RUN2}/A01_1 (15 of 15)." in _said(caught, "without signal")
    assert f"'primary__primary': {RUN2}/B01_1;" in _said(caught, "no label images")


@pytest.mark.parametrize("first", [0, 1])
def test_training_on_plates_names_the_plate_of_each_position(tmp_path, first):
    plates = _plates(tmp_path)
    plates = plates[first:] + plates[:first]  # the message starts with the first plate's name
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=1000, mask="neighbours")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plate_training_crops(plates, config)
    # were 'A01_1' and 'B01_1', after '2 plates (run1/plate.ch5, ...)' as often as not
    assert f": {RUN2}/A01_1 (15 of 15)." in _said(caught, "without signal")
    assert f"'primary__primary': {RUN2}/B01_1;" in _said(caught, "no label images")
