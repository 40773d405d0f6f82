"""Hostile content of structurally valid CellH5 files: pixels, tables and label images that
are unusual but legitimate must work; those that cannot be computed with are refused with the
file and position named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from cli_helpers import TINY, one_line_error
from conftest import synthetic_position
from napari_cellae.cli import main
from napari_cellae.cli.output import fail, note
from napari_cellae.core.crops import collect_crops
from napari_cellae.core.model_load import load_model
from napari_cellae.core.precision import check_resolution
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5


def _file(tmp_path: Path, image_of, name: str = "hostile.ch5", n_channels: int = 1) -> Path:
    """One position of 12 cells (uint8 blobs, 0..~200) whose image ``image_of`` turns into
    the pixels under test."""
    position = synthetic_position("A01", "1", n_frames=2, n_per_frame=6, n_channels=n_channels)
    position.image = image_of(position.image)
    return write_cellh5(
        tmp_path / name,
        [position],
        channel_names=[f"ch{i}" for i in range(n_channels)],
        object_channels={"primary__primary": 0},
    )


OFFSET_IMAGES = {
    # 32-bit camera offset: float32 steps by 256 at 3e9, the 200-count cells vanish
    "uint32": lambda im: im.astype(np.uint32) + np.uint32(3_000_000_000),
    "int64": lambda im: im.astype(np.int64) + 2**40,
    "float64": lambda im: 1e6 + im.astype(np.float64) * 1e-3,
}


@pytest.mark.parametrize("dtype", sorted(OFFSET_IMAGES))
def test_contrast_float32_cannot_resolve_is_refused(tmp_path: Path, dtype: str) -> None:
    path = _file(tmp_path, OFFSET_IMAGES[dtype])
    with CellH5(path) as ch5, pytest.raises(ValueError) as err:
        collect_crops(ch5, "primary__primary", 24)
    message = str(err.value)
    assert str(path) in message and "position A01_1" in message
    assert f"{dtype} pixels" in message and "float32" in message
    assert "12 of 12 object crop(s)" in message


LEGIT_WIDE = {
    # wide types whose values float32 holds (or resolves far below 5 % of the contrast)
    "uint32": lambda im: im.astype(np.uint32) * 1000,
    "int32": lambda im: im.astype(np.int32) - 100,
    "int64": lambda im: im.astype(np.int64) + 2**20,
    "float64": lambda im: im.astype(np.float64) / 255.0,
    "uint16 offset": lambda im: im.astype(np.uint16) // 8 + np.uint16(60000),
}


@pytest.mark.parametrize("kind", sorted(LEGIT_WIDE))
def test_wide_pixels_float32_resolves_are_cropped_as_stored(tmp_path: Path, kind: str) -> None:
    path = _file(tmp_path, LEGIT_WIDE[kind])
    with CellH5(path) as ch5:
        crops = collect_crops(ch5, "primary__primary", 24)
        image = ch5.image(ch5.positions[0])[()]
    assert crops.crops.dtype == image.dtype
    assert len(crops) == 12
    # The centre pixel of each crop is the stored pixel at the object's centre.
    centre = crops.crops[:, 0, 12, 12]
    stored = image[0, crops.time_idx, 0, crops.center_y, crops.center_x]
    np.testing.assert_array_equal(centre, stored)


def test_resolution_ignores_flat_crops_and_narrow_types() -> None:
    flat = np.full((3, 1, 8, 8), 3_000_000_000, np.uint32)  # one value: nothing to resolve
    check_resolution(flat, "x")
    narrow = np.full((3, 1, 8, 8), 60000, np.uint16)
    narrow[:, :, 4, 4] += 1  # a 1-count contrast at 60000 is exact in float32
    check_resolution(narrow, "x")
    # 2 counts of noise on a uint32 background of 300,000, where float32 steps by 1/32:
    # 64 levels across the crop's range is resolved (a 1 % bar refused the whole file)
    noise = np.full((3, 1, 8, 8), 300_000, np.uint32)
    noise[:, :, 4, 4] += 2
    check_resolution(noise, "x")
    one = flat.copy()
    one[1, 0, 4, 4] += 300  # a contrast of 300 counts where float32 steps by 256
    with pytest.raises(ValueError, match=r"in 1 of 3 object crop\(s\).*3000000000 to 3000000300"):
        check_resolution(one, "file.ch5, position A01_1")


def _described(path: Path) -> str:
    """What 'cellae info' prints about ``path``, as a terminal would be given it."""
    command = [sys.executable, "-m", "napari_cellae", "info", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def test_names_with_control_characters_are_shown_escaped(tmp_path: Path, capsys) -> None:
    """Channel and class names are text a terminal runs: an escape sequence in one coloured
    or cleared 'cellae info' and its errors, a line break printed a line of its own."""
    position = synthetic_position("A01", "1", n_frames=1)
    path = write_cellh5(
        tmp_path / "names.ch5",
        [position],
        ["dna"],
        {"primary__primary": 0},
        class_labels={"primary__primary": [(0, "a", "#FF0000"), (1, "b", "#00FF00")]},
    )
    channels = "definition/image/channel"
    classes = "definition/feature/primary__primary/object_classification/class_labels"
    with h5py.File(path, "a") as f:
        for table, column, names in (
            (channels, "channel_name", ["dn\x1b[31ma\nerror: x"]),
            (classes, "name", ["inter\x1b[2Jphase\r", "mit\u202eotic"]),
        ):
            rows = f[table][()]
            rows = rows.astype(
                [(n, "S40" if n == column else rows.dtype[n]) for n in rows.dtype.names]
            )
            rows[column] = [name.encode() for name in names]
            del f[table]
            f[table] = rows
    with CellH5(path) as ch5:  # kept as they are: models and outputs hold the true names
        assert ch5.channels[0].name == "dn\x1b[31ma\nerror: x"
        assert [c.name for c in ch5.class_labels("primary__primary")] == [
            "inter\x1b[2Jphase\r",
            "mit\u202eotic",
        ]
    described = _described(path)
    assert "\x1b" not in described and "\r" not in described and "\u202e" not in described
    assert "\nerror: x" not in described
    # a model keeps the true name, so it finds the channel again; errors show it escaped
    model = tmp_path / "m.pt"
    train = ["train", str(path), "--out", str(model), "--train-on", "all", *TINY]
    assert main(train) == 0
    assert load_model(model).channel_names == ["dn\x1b[31ma\nerror: x"]
    printed = capsys.readouterr().out
    assert "channel(s) dn\\x1b[31ma\\nerror: x," in printed and "\x1b" not in printed
    assert main(["train", str(path), "--out", str(model), "--channel", "x\x1b[2J", *TINY]) == 1
    one_line_error(capsys.readouterr().err, "x\\x1b[2J", "0=dn\\x1b[31ma\\nerror: x")


def test_messages_reach_the_terminal_with_their_names_escaped(capsys) -> None:
    fail("plate p\x1b[2J: no cells\nerror: a line of its own")
    note("channel a\u202eb")
    err = capsys.readouterr().err
    assert err == (
        "cellae: error: plate p\\x1b[2J: no cells\\nerror: a line of its own\n"
        "cellae: note: channel a\\u202eb\n"
    )


def test_nan_pixels_name_the_channel_and_how_many_cells(tmp_path: Path) -> None:
    """A NaN or infinite pixel was refused naming file and position only: not which
    channel holds it, nor whether one cell or every cell is hit."""

    def with_holes(image: np.ndarray) -> np.ndarray:
        image = image.astype(np.float32)
        # The top-right pixel of each frame, channel 1 only: within the crops of the corner
        # cell alone (one a frame), the other cells lying 8 px or more from the border.
        image[1, 0, 0, 0, -1], image[1, 1, 0, 0, -1] = np.nan, np.inf
        return image

    position = synthetic_position("A01", "1", n_frames=2, n_per_frame=6, n_channels=2)
    position.image = with_holes(position.image)
    path = write_cellh5(tmp_path / "holes.ch5", [position], ["dna", "gfp"], {"primary__primary": 0})
    with CellH5(path) as ch5, pytest.raises(ValueError) as caught:
        collect_crops(ch5, "primary__primary", 16, [0, 1])
    text = str(caught.value)
    assert "holes.ch5, position A01_1" in text
    assert "in 2 of 12 object crop(s)" in text and "channel 'gfp'" in text
    assert "'dna'" not in text


HOSTILE_PLATE, HOSTILE_WELL, HOSTILE_SITE = "pl\x1b[2Jate\r", "A01\nerror: x", "1\u202e"


def test_plate_well_and_site_names_are_shown_escaped_but_kept(tmp_path: Path) -> None:
    """HDF5 group names are text a terminal runs too: 'Plates: 1 (p^Mq)' cleared the screen
    or printed a line of its own. Shown escaped; found and written as the file names them."""
    from napari_cellae.io.centres import position_labels
    from napari_cellae.pipeline.discovery import cell_table

    position = synthetic_position(HOSTILE_WELL, HOSTILE_SITE, plate=HOSTILE_PLATE, n_frames=1)
    path = write_cellh5(tmp_path / "groups.ch5", [position], ["dna"], {"primary__primary": 0})
    raw = f"{HOSTILE_WELL}_{HOSTILE_SITE}"
    shown = "A01\\nerror: x_1\\u202e"
    with CellH5(path) as ch5:
        (key,) = ch5.positions
        assert (key.plate, key.well, key.site) == (HOSTILE_PLATE, HOSTILE_WELL, HOSTILE_SITE)
        assert key.label == shown and key.shown_plate == "pl\\x1b[2Jate\\r"
        assert position_labels([key]) == [raw]  # output files: the true names
        assert position_labels([key], shown=True) == [shown]
        crops = collect_crops(ch5, "primary__primary", 16)  # the group is found
        assert list(cell_table(crops)["position"].unique()) == [raw]
        with pytest.raises(ValueError, match="larger than") as caught:
            collect_crops(ch5, "primary__primary", 200)
    assert shown in str(caught.value) and raw not in str(caught.value)
    described = _described(path)
    assert "Plates: 1 (pl\\x1b[2Jate\\r)" in described and shown in described
    assert "\x1b" not in described and "\r" not in described and "\u202e" not in described
    assert "\nerror: x" not in described
