"""Which objects and channels a run uses (napari_cellae.pipeline.selection)."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import pytest

from conftest import synthetic_position
from napari_cellae.io.cellh5 import CellH5, CellH5Error
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.pipeline import selection


def test_resolve_object_and_channels(cellprofiler_file):
    with CellH5(cellprofiler_file) as ch5:
        assert selection.resolve_object(ch5, None) == "Nuclei"
        assert selection.resolve_channels(ch5, "Nuclei", None) == [0]
        assert selection.resolve_channels(ch5, "Nuclei", ["GFP", "0"]) == [1, 0]
        assert selection.resolve_channels(ch5, "Nuclei", [1]) == [1]
        with pytest.raises(CellH5Error, match=r"no channel 'RFP'.*0=DNA, 1=GFP"):
            selection.resolve_channels(ch5, "Nuclei", ["RFP"])
        with pytest.raises(CellH5Error, match="no channel '5'"):
            selection.resolve_channels(ch5, "Nuclei", ["5"])
        with pytest.raises(ValueError, match="twice"):
            selection.resolve_channels(ch5, "Nuclei", ["DNA", "0"])
        with pytest.raises(CellH5Error, match=r"no object 'Cells'.*Nuclei"):
            selection.resolve_object(ch5, "Cells")


def test_a_channel_given_twice_is_named_in_both_spellings(cellprofiler_file):
    # '--channel 0 --channel DNA' said "channel 'DNA' is given twice", not that 0 is DNA.
    with CellH5(cellprofiler_file) as ch5:
        with pytest.raises(ValueError) as info:
            selection.resolve_channels(ch5, "Nuclei", ["GFP", "0", "DNA"])
        message = str(info.value)
        assert message.startswith(f"{cellprofiler_file}: ")
        assert "channel 'DNA' is given twice: as '0' (channel 0 is 'DNA') and as 'DNA'" in message
        with pytest.raises(ValueError, match=r"channel 'GFP' is given twice \(as '1' both"):
            selection.resolve_channels(ch5, "Nuclei", ["1", "1"])


def test_a_channel_named_by_another_channels_number_is_said(tmp_path: Path) -> None:
    # Channels named '1' and '2' (as cellh5write's own example names them): --channel 1
    # took channel 0, the one named '1', while cellae info lists channel 1 as '2'.
    position = synthetic_position("A01", "1", n_frames=1, n_channels=2)
    path = write_cellh5(tmp_path / "d.ch5", [position], ["1", "2"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        with pytest.warns(
            UserWarning, match=r"channel '1' is .* named so \(number 0\); number 1 is '2'"
        ):
            assert selection.resolve_channels(ch5, "primary__primary", ["1"]) == [0]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no other channel has number 2, nor name '0'
            assert selection.resolve_channels(ch5, "primary__primary", ["2", "0"]) == [1, 0]


def test_channels_named_match_by_name_only(tmp_path: Path) -> None:
    position = synthetic_position("A01", "1", n_frames=1, n_channels=3)
    path = write_cellh5(tmp_path / "d.ch5", [position], ["b", "1", "a"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        assert selection.channels_named(ch5, ["a", "b"], "x") == [2, 0]
        assert selection.channels_named(ch5, ["1"], "x") == [1]
        # '2' is a name here: there is a channel number 2, but none named so
        with pytest.raises(ValueError, match=r"d\.ch5: model m was trained on channel\(s\) 2, "):
            selection.channels_named(ch5, ["2"], "model m was trained on")


def test_channels_are_matched_by_their_true_names_and_shown_escaped(tmp_path: Path) -> None:
    # A no-break or ideographic space, a tab: no text to isprintable, but true names that a
    # model stores and must find again; an escape sequence is shown, not run, in the error.
    position = synthetic_position("A01", "1", n_frames=1, n_channels=2)
    path = write_cellh5(tmp_path / "d.ch5", [position], ["gfp", "dna"], {"o": 0})
    with h5py.File(path, "a") as f:  # the writer writes ASCII names
        rows = f["definition/image/channel"][()]
        rows = rows.astype(
            [(n, "S20" if n == "channel_name" else rows.dtype[n]) for n in rows.dtype.names]
        )
        rows["channel_name"] = [b"gfp", "dna\u3000x".encode()]
        del f["definition/image/channel"]
        f["definition/image/channel"] = rows
    with CellH5(path) as ch5:
        assert [c.name for c in ch5.channels] == ["gfp", "dna\u3000x"]
        assert selection.channels_named(ch5, ["dna\u3000x", "gfp"], "model m was") == [1, 0]
        with pytest.raises(ValueError) as info:
            selection.channels_named(ch5, ["rf\x1b[2Jp"], "model m was trained on")
        assert "channel(s) rf\\x1b[2Jp, which" in str(info.value)  # shown, not run
        assert "channels: gfp, dna\\u3000x" in str(info.value)


def _mixed_channels(path: Path) -> Path:
    """Position A01 of two channels (DNA, GFP), B02 of one (DNA)."""
    positions = [
        synthetic_position("A01", "1", n_channels=2, seed=1),
        synthetic_position("B02", "1", n_channels=1, seed=2),
    ]
    return write_cellh5(path, positions, ["DNA", "GFP"], {"primary__primary": 0})


def test_a_channel_a_later_position_lacks_is_refused_by_name(tmp_path: Path) -> None:
    # The first position's channels were offered; a run on GFP failed after cropping
    # A01 with "channel 1 out of range for /sample/.../image/channel", naming no channel.
    from napari_cellae._ui.file_info import read_file_info

    path = _mixed_channels(tmp_path / "mixed.ch5")
    lacks = rf"{path}: position B02_1 has no channel 'GFP' \(number 1\).*\(channels: 0=DNA\)"
    with CellH5(path) as ch5:
        assert [c.name for c in selection.shared_channels(ch5)] == ["DNA"]
        assert selection.resolve_channels(ch5, "primary__primary", ["DNA"]) == [0]
        assert selection.resolve_channels(ch5, "primary__primary", None) == [0]
        for given in (["GFP"], ["1"], ["DNA", "GFP"]):
            with pytest.raises(CellH5Error, match=lacks):
                selection.resolve_channels(ch5, "primary__primary", given)
        with pytest.raises(CellH5Error, match=lacks):  # a model's channels, as encode asks
            selection.channels_named(ch5, ["DNA", "GFP"], "model m.pt was trained on")
    assert read_file_info(path).channels == [("DNA", 0)]  # the widget offers only DNA


def test_cellae_train_names_the_position_lacking_the_channel(tmp_path: Path, capsys) -> None:
    from cli_helpers import TINY, one_line_error
    from napari_cellae.cli import main

    path = _mixed_channels(tmp_path / "mixed.ch5")
    args = ["train", str(path), *TINY, "--channel", "GFP", "--out", str(tmp_path / "m.pt")]
    assert main(args) == 1
    one_line_error(capsys.readouterr().err, str(path), "position B02_1 has no channel 'GFP'")
    assert not (tmp_path / "m.pt").exists()


def test_the_first_plate_chooses_and_later_plates_match_by_name(tmp_path: Path):
    first = write_cellh5(
        tmp_path / "a.ch5",
        [synthetic_position("A01", "1", n_channels=2, seed=1)],
        ["rfp", "gfp"],
        {"primary__primary": 0},
    )
    swapped = write_cellh5(
        tmp_path / "b.ch5",
        [synthetic_position("A01", "1", n_channels=2, seed=2)],
        ["gfp", "rfp"],
        {"primary__primary": 0},
    )
    with CellH5(first) as ch5:
        chosen = selection.plate_channels(ch5, None, ["gfp"], None, first)
    assert chosen == ("primary__primary", ["gfp"], [1])
    with CellH5(swapped) as ch5:  # the same channel by name, at another number
        assert selection.plate_channels(ch5, *chosen[:1], None, chosen[1], first) == (
            "primary__primary",
            ["gfp"],
            [0],
        )
        with pytest.raises(ValueError, match=r"a\.ch5 gave the training channel\(s\) dna"):
            selection.plate_channels(ch5, "primary__primary", None, ["dna"], first)
