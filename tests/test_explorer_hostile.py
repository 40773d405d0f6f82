"""Hostile content in the Explorer .hdf: text too long for its 128 bytes, control characters,
undecodable names; both writers (whole file and streamed) write the same, and say so."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from napari_cellae.core.crops import CropSet
from napari_cellae.export.explorer import read_explorer_hdf, write_explorer_hdf
from napari_cellae.export.explorer_fields import FixedText
from napari_cellae.export.explorer_stream import ExplorerWriter
from napari_cellae.io.cellh5 import PositionKey
from napari_cellae.io.centres import position_labels
from napari_cellae.io.mapping import PositionInfo

PER = 2  # cells per position


class _Mapping:
    """Conditions by well (what PositionMapping.lookup gives)."""

    def __init__(self, conditions: dict[str, str]) -> None:
        self.conditions = conditions

    def lookup(self, key: PositionKey) -> PositionInfo | None:
        condition = self.conditions.get(key.well)
        return None if condition is None else PositionInfo(condition, False, "target")


def _cells(positions: list[PositionKey], tmp_path: Path, **columns) -> CropSet:
    n = PER * len(positions)
    cx = np.asarray(columns.pop("center_x", np.full(n, 20)), np.int64)
    cy = np.asarray(columns.pop("center_y", np.full(n, 20)), np.int64)
    size = 8
    base = dict(
        crops=np.random.default_rng(0).integers(0, 255, (n, 1, size, size)).astype(np.uint8),
        positions=list(positions),
        position_index=np.repeat(np.arange(len(positions)), PER).astype(np.int32),
        object_index=np.arange(n, dtype=np.int32),
        label_id=np.arange(1, n + 1, dtype=np.int32),
        time_idx=np.zeros(n, np.int32),
        center_x=cx,
        center_y=cy,
        bbox=np.stack([cx - 3, cx + 3, cy - 3, cy + 3], 1),
        angle=np.zeros(n),
        eccentricity=np.zeros(n),
        class_idx=np.full(n, -1, np.int32),
        origin_y=cy - size // 2,
        origin_x=cx - size // 2,
        object_name="Nuclei",
        channels=[0],
        channel_names=["DNA"],
        source=tmp_path / "missing.ch5",
        box=size,
    )
    base.update(columns)
    return CropSet(**base)


def _features(n: int, f: int = 3) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, f)).astype(np.float32)


def _position(crops: CropSet, i: int) -> CropSet:
    """Position ``i``'s cells alone, as ``cellae encode`` appends them."""
    sel = np.flatnonzero(crops.position_index == i)
    one = crops.subset(sel)
    return replace(one, positions=[crops.positions[i]], position_index=np.zeros(len(sel), np.int32))


def _both(tmp_path: Path, crops: CropSet, mapping=None, features=None, **settings):
    """Write with both writers (the stream one position per append, as 'cellae encode');
    returns the two files read back."""
    features = _features(len(crops)) if features is None else features
    whole = write_explorer_hdf(
        tmp_path / "whole.hdf", crops, features, mapping, image_size=(70_000, 70_000), **settings
    )
    labels = position_labels(crops.positions)
    with ExplorerWriter(
        tmp_path / "stream.hdf", mapping, image_size=(70_000, 70_000), **settings
    ) as writer:
        for i in range(len(crops.positions)):
            part = _position(crops, i)
            writer.append(part, features[crops.position_index == i], [labels[i]])
    return read_explorer_hdf(whole), read_explorer_hdf(writer.path)


def _column(data, name: str) -> list[bytes]:
    return list(dict.fromkeys(data.bbox[name].tolist()))  # distinct, in row order


def test_two_long_conditions_stay_two_treatments(tmp_path):
    # 200-character conditions that differ only at the end: numpy cut both to the same
    # 128 bytes and the Explorer pooled the two conditions' cells, without a word.
    long = "siRNA pool " + "x" * 189
    a, b = PositionKey("p", "A01", "1"), PositionKey("p", "B01", "1")
    mapping = _Mapping({"A01": long + "1", "B01": long + "2"})
    with pytest.warns(UserWarning, match="'treatment' column cannot hold"):
        whole, stream = _both(tmp_path, _cells([a, b], tmp_path), mapping)
    for data in (whole, stream):
        treatments = _column(data, "treatment")
        assert len(treatments) == 2
        assert all(len(t) <= 128 for t in treatments)
        assert treatments[0].startswith(b"siRNA pool xxx")
        assert data.bbox["treatment"].tolist() == [treatments[0]] * PER + [treatments[1]] * PER
    assert whole.bbox.tolist() == stream.bbox.tolist()


def test_long_plate_names_stay_two_files(tmp_path):
    # Two plates whose names differ after byte 128: their C03_01 became one position.
    plates = ["screen_" + "q" * 130 + "_1", "screen_" + "q" * 130 + "_2"]
    keys = [PositionKey(plate, "C03", "01") for plate in plates]
    with pytest.warns(UserWarning, match="'file' column cannot hold"):
        whole, stream = _both(tmp_path, _cells(keys, tmp_path))
    for data in (whole, stream):
        assert len(_column(data, "file")) == 2
        assert len(_column(data, "treatment")) == 2  # unmapped: the file's label
    assert whole.bbox.tolist() == stream.bbox.tolist()


@pytest.mark.parametrize(
    "ends", [("é", "è"), ("甲", "乙"), ("🧬", "🔬")], ids=["latin", "cjk", "emoji"]
)
def test_non_ascii_cut_at_a_character_and_kept_apart(tmp_path, ends):
    # The last character straddles byte 128: cut before it, never inside it, and the two
    # conditions (which differ only there) stay two treatments.
    stem = "a" * 127
    a, b = PositionKey("p", "A01", "1"), PositionKey("p", "B01", "1")
    mapping = _Mapping({"A01": stem + ends[0], "B01": stem + ends[1]})
    with pytest.warns(UserWarning, match="longer than the 128"):
        whole, stream = _both(tmp_path, _cells([a, b], tmp_path), mapping)
    for data in (whole, stream):
        treatments = _column(data, "treatment")
        assert len(treatments) == 2
        for t in treatments:
            t.decode("utf-8")  # never half a character


def test_short_non_ascii_names_are_written_unchanged(tmp_path, recwarn):
    a = PositionKey("p", "A01", "1")
    mapping = _Mapping({"A01": "KIF11 µM 🧬 基因"})
    whole, stream = _both(tmp_path, _cells([a], tmp_path), mapping)
    for data in (whole, stream):
        assert _column(data, "treatment") == ["KIF11 µM 🧬 基因".encode()]
    assert not [w for w in recwarn if "column" in str(w.message)]


def test_control_characters_become_spaces_and_stay_distinct(tmp_path):
    # NUL ends the text for C readers ('KIF\x0011' and 'KIF\x0012' both read 'KIF'), a
    # trailing NUL vanished (numpy strips it: one treatment with 'KIF11'), and tabs and
    # line breaks break the tables the Explorer exports.
    keys = [PositionKey("p", w, "1") for w in ("A01", "A02", "A03", "A04", "A05", "A06")]
    mapping = _Mapping(
        {
            "A01": "KIF\x0011",
            "A02": "KIF\x0012",
            "A03": "KIF11\x00",
            "A04": "KIF11",
            "A05": "PLK\t1",
            "A06": "PLK\n1",
        }
    )
    with pytest.warns(UserWarning, match="control characters"):
        whole, stream = _both(tmp_path, _cells(keys, tmp_path), mapping)
    for data in (whole, stream):
        treatments = _column(data, "treatment")
        assert treatments == [b"KIF 11", b"KIF 12", b"KIF11", b"KIF11~2", b"PLK 1", b"PLK 1~2"]
    assert whole.bbox.tolist() == stream.bbox.tolist()


def test_undecodable_plate_name_is_written_not_a_crash(tmp_path):
    # A plate named after a folder with bytes that are not UTF-8 (surrogate escapes):
    # writing raised UnicodeEncodeError after all cells had been encoded.
    keys = [PositionKey("pl\udcffate", "A01", "1"), PositionKey("other", "A01", "1")]
    with pytest.warns(UserWarning, match="not text became '\\?'"):
        whole, stream = _both(tmp_path, _cells(keys, tmp_path))
    for data in (whole, stream):
        assert _column(data, "file") == [b"pl?ate/A01_1", b"other/A01_1"]


def test_a_text_keeps_its_bytes_over_calls():
    column = FixedText("treatment", 8, "f.hdf")
    with pytest.warns(UserWarning, match="f.hdf: .*'treatment'"):
        first = column.encode(["abcdefghij1", "short"]).tolist()
    with pytest.warns(UserWarning, match="another treatment's"):
        second = column.encode(["abcdefghij2", "abcdefghij1", "short"]).tolist()
    assert first == [b"abcdefgh", b"short"]
    assert second == [b"abcdef~2", b"abcdefgh", b"short"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e39], ids=["nan", "inf", "beyond_float32"])
def test_features_that_are_not_finite_float32_are_refused(tmp_path, bad):
    # float64 features beyond float32's range became inf in the file (numpy's cast said
    # only 'overflow encountered in cast'), where NaN and inf themselves were refused.
    a = PositionKey("p", "A01", "1")
    features = _features(PER).astype(np.float64)
    features[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        _both(tmp_path, _cells([a], tmp_path), features=features)
    assert not (tmp_path / "whole.hdf").exists()
    features[1, 2] = 3e38  # large, but a float32
    whole, stream = _both(tmp_path, _cells([a], tmp_path), features=features)
    assert whole.features[1, 2] == stream.features[1, 2] == np.float32(3e38)


def test_orientation_that_is_not_finite_becomes_0(tmp_path):
    # NaN became 0, but inf became 1.8e308 (numpy's nan_to_num) in angle and eccentricity.
    a = PositionKey("p", "A01", "1")
    crops = _cells([a], tmp_path, angle=np.array([np.inf, -np.inf]))
    crops.eccentricity = np.array([np.nan, 0.25])
    for data in _both(tmp_path, crops):
        assert data.bbox["angle"].tolist() == [0.0, 0.0]
        assert data.bbox["eccentricity"].tolist() == [0.0, 0.25]


def test_cells_beyond_the_uint16_outlines_are_said_once(tmp_path, recwarn):
    # A 70,000 px image: the outline corners are uint16, so a crop square past 65535 px
    # collapsed onto that edge without a word.
    keys = [PositionKey("p", "A01", "1"), PositionKey("p", "A02", "1")]
    crops = _cells(keys, tmp_path, center_x=[70_000, 100, 69_000, 100], center_y=[100] * 4)
    whole, stream = _both(tmp_path, crops)
    said = [str(w.message) for w in recwarn if "uint16 outlines" in str(w.message)]
    assert len(said) == 2  # once per file, not once per position
    assert "whole.hdf: cells lie beyond 65535 px" in said[0]
    assert "x=69996, y=96" in said[0]
    for data in (whole, stream):
        assert data.bbox["x"].tolist() == [70_000, 100, 69_000, 100]  # 32-bit: right
        assert data.contours[0, 0].tolist() == [65535] * 4  # cut, as said
        assert data.contours[1, 0].tolist() == [96, 104, 104, 96]


def test_cells_within_the_outlines_say_nothing(tmp_path, recwarn):
    a = PositionKey("p", "A01", "1")
    whole, _ = _both(tmp_path, _cells([a], tmp_path, center_x=[65_531, 2], center_y=[0, 3]))
    assert not [w for w in recwarn if "uint16" in str(w.message)]
    assert whole.contours[0, 0].tolist() == [65527, 65535, 65535, 65527]
    assert whole.contours[0, 1].tolist() == [0, 0, 4, 4]  # cut at 0 at the border


def test_feature_names_that_do_not_fit_are_said_once(tmp_path, recwarn):
    # Two channels whose names differ only in punctuation give two 'brightness_H2B_GFP'
    # columns: every column fell back to a number without a word.
    keys = [PositionKey("p", "A01", "1"), PositionKey("p", "A02", "1")]
    names = ["code_0", "brightness_H2B-GFP", "brightness_H2B GFP"]
    whole, stream = _both(tmp_path, _cells(keys, tmp_path), names=names)
    said = [str(w.message) for w in recwarn if "feature columns" in str(w.message)]
    assert len(said) == 2  # once per file, not once per position
    assert "'brightness_H2B-GFP' and 'brightness_H2B GFP' are both" in said[0]
    for data in (whole, stream):
        assert data.feature_names == [f"ch1-deep_learning_feature_{i}" for i in range(3)]
    recwarn.clear()
    whole, stream = _both(tmp_path, _cells(keys, tmp_path), names=["code_0", "a", "b"])
    assert not [w for w in recwarn if "feature columns" in str(w.message)]
    assert whole.feature_names == stream.feature_names == ["ch1-code_0", "ch1-a", "ch1-b"]


@pytest.mark.parametrize(
    "column, values",
    [("x", {"center_x": [2**31 + 5, 10]}), ("label", {"label_id": np.array([2**31, 1])})],
)
def test_integers_beyond_32_bits_are_refused_not_wrapped(tmp_path, column, values):
    # numpy's cast into the i4 columns wrapped them: x=2**31+5 was written as -2147483643.
    a = PositionKey("p", "A01", "1")
    with pytest.raises(ValueError, match=f"'{column}' 214748\\d+ does not fit .* 32 bits"):
        _both(tmp_path, _cells([a], tmp_path, **values))
    assert not (tmp_path / "whole.hdf").exists()
