"""Encoding a CellCognition 1.6 plate file whose positions' files are missing says so."""

from __future__ import annotations

import shutil

import pytest

from napari_cellae.io.cellh5 import CellH5Error
from napari_cellae.pipeline.streaming import plan_encode
from test_cellh5_producers import cellcognition_plate
from test_streaming import random_model


def test_encoding_a_plate_file_without_its_positions_folder_says_where_they_should_be(tmp_path):
    # Said 'model ... was trained on objects 'primary__primary', which this file does not
    # have (objects: none)', as though segmentation had failed.
    plate = cellcognition_plate(tmp_path)
    shutil.rmtree(tmp_path / "cellh5")
    with pytest.raises((CellH5Error, ValueError)) as err:
        plan_encode([plate], random_model(), tmp_path / "out.hdf")
    assert "per-position file is not in" in str(err.value) and "A01_01.ch5" in str(err.value)
