"""The ``cellae`` command, run in-process through ``main([...])``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from cli_helpers import TINY, one_line_error, usage_error
from napari_cellae.cli import main
from napari_cellae.core.features import cell_feature_names
from napari_cellae.core.model_load import load_model
from napari_cellae.export.explorer import read_explorer_hdf


def test_info_summarises_file(cellcognition_file, capsys):
    assert main(["info", str(cellcognition_file)]) == 0
    out = capsys.readouterr().out
    assert "Plates: 1 (plate1)" in out
    assert "Positions: 2 (A01_0001, B02_0001)" in out
    assert "0: rfp  uint8  (c, t, z, y, x) = (1, 3, 1, 64, 80)" in out
    assert "Frames: 3" in out
    assert "primary__primary: 30 objects, channel 0 (rfp), classes: interphase, mitotic" in out
    assert "A01_0001: 15  B02_0001: 15" in out
    # 9 px boxes (7 px where the image border clips them)
    assert (
        "size (bounding boxes): median 9 px, 95 % at most 9 px; a 16 px crop box holds them "
        "(the default 40 px box too)"
    ) in out


def test_info_says_the_default_box_holds_the_demo_cells(capsys):
    from napari_cellae.demo.screen import demo_paths

    assert main(["info", str(demo_paths()[0])]) == 0
    assert "95 % at most 32 px; the default 40 px crop box holds them" in capsys.readouterr().out


def test_info_says_the_box_train_will_fit(large_cells_file, capsys):
    # 41 px cells: the default 40 px box would cut them; info says what cellae train does
    assert main(["info", str(large_cells_file)]) == 0
    out = capsys.readouterr().out
    assert "a 48 px crop box holds them (cellae train crops 48 px and resamples to the " in out
    assert "network's 40 px)" in out


def test_info_cellprofiler_two_channels(cellprofiler_file, capsys):
    assert main(["info", str(cellprofiler_file)]) == 0
    out = capsys.readouterr().out
    assert "0: DNA  uint16" in out and "1: GFP  uint16" in out
    assert "Nuclei: 12 objects" in out


def test_info_bad_file_isone_line_error(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.ch5")]) == 1
    one_line_error(capsys.readouterr().err, "missing.ch5")
    junk = tmp_path / "junk.ch5"
    junk.write_text("not hdf5")
    assert main(["info", str(junk)]) == 1
    one_line_error(capsys.readouterr().err, "junk.ch5")


def test_a_reader_that_stops_reading_ends_the_command_quietly(cellcognition_file):
    # `cellae info FILE | head -1`: was "cellae: error: cannot access: Broken pipe", exit 1
    import subprocess
    import sys

    command = [sys.executable, "-m", "napari_cellae", "info", str(cellcognition_file)]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run.stdout.close()  # the reader has gone before the first line
    err = run.stderr.read().decode()
    assert run.wait() == 141 and err == ""


def test_a_broken_pipe_elsewhere_is_an_error(cellcognition_file, monkeypatch, capsys):
    from napari_cellae.cli import commands

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(commands._COMMANDS, "info", broken)
    assert main(["info", str(cellcognition_file)]) == 1
    assert "cannot access: Broken pipe" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["train"]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["--version"]) == 0


def test_train_help_explains_parameters(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in [
        "0.01-0.1 is a good range",
        "becomes NaN",
        "Only for Nesterov momentum",
        "32-256",
        "0-0.3 makes the features robust to noise",
        "20-60 is typical",
        "on the negative controls",
        "held-out loss",
        "one whole cell with a little margin",
        "negative-control positions",
        "normal cell-to-cell variation",
        "--samples",
    ]:
        assert phrase in text, phrase
    assert main(["demo", "--help"]) == 0
    assert "0.01-0.1 is a good range" in " ".join(capsys.readouterr().out.split())


def test_train_then_encode_end_to_end(cellcognition_file, mapping_file, tmp_path, capsys):
    model = tmp_path / "model.pt"
    rc = main(
        [
            "train",
            str(cellcognition_file),
            "--mapping",
            str(mapping_file),
            *TINY,
            "--train-on",
            "controls",
            "--out",
            str(model),
            "-q",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert model.is_file()
    # the control well A01 only: 15 cells, of which 3 are held out
    assert "Trained on 12 control cells, 3 more held out" in captured.out
    assert "; controls: 'scrambled'): 2 epoch(s)" in captured.out

    trained = load_model(model)
    assert trained.object_name == "primary__primary"
    assert trained.channel_names == ["rfp"]
    assert trained.config.crop_size == 16

    out = tmp_path / "features.hdf"
    rc = main(
        [
            "encode",
            str(cellcognition_file),
            "--model",
            str(model),
            "--mapping",
            str(mapping_file),
            "--out",
            str(out),
            "-q",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    width = len(cell_feature_names(trained))
    assert f"Encoded 30 cells of 2 position(s) into {width} features" in captured.out
    data = read_explorer_hdf(out)
    assert data.features.shape == (30, width)
    assert np.isfinite(data.features).all()
    assert data.gallery.shape == (16, 16, 1, 30)
    assert set(data.bbox["treatment"].tolist()) == {b"scrambled", b"PLK1"}


def test_encode_model_that_does_not_fit(cellcognition_file, cellprofiler_file, tmp_path, capsys):
    model = tmp_path / "model.pt"
    assert (
        main(
            [
                "train",
                str(cellcognition_file),
                "--train-on",
                "all",
                *TINY,
                "--out",
                str(model),
                "-q",
            ]
        )
        == 0
    )
    capsys.readouterr()
    out = tmp_path / "cp.hdf"
    rc = main(["encode", str(cellprofiler_file), "--model", str(model), "--out", str(out), "-q"])
    assert rc == 1
    one_line_error(capsys.readouterr().err, "primary__primary", "screen.ch5")
    assert not out.exists()


def test_encode_not_a_model(cellcognition_file, tmp_path, capsys):
    fake = tmp_path / "model.pt"
    fake.write_bytes(b"nonsense")
    rc = main(
        ["encode", str(cellcognition_file), "--model", str(fake), "--out", str(tmp_path / "f.hdf")]
    )
    assert rc == 1
    one_line_error(capsys.readouterr().err, "model.pt")


def test_mapping_naming_positions_not_in_file(cellcognition_file, tmp_path, capsys):
    mapping = tmp_path / "other_plate.txt"
    mapping.write_text(
        "Position\tWell\tSite\tRow\tColumn\tGene Symbol\tsiRNA ID\tGroup\n"
        "0001\tA01\t0001\tA\t1\tscrambled\ts001\tneg\n"
        "0009\tH12\t0001\tH\t12\tKIF11\ts9\ttarget\n",
        encoding="utf-8",
    )
    model = tmp_path / "model.pt"
    rc = main(
        ["train", str(cellcognition_file), "--mapping", str(mapping), *TINY, "--out", str(model)]
    )
    assert rc == 1
    one_line_error(capsys.readouterr().err, "H12")
    assert not model.exists()


def test_a_whole_plate_mapping_for_a_file_of_part_of_it(cellcognition_file, tmp_path, capsys):
    # The plate's mapping names H12 too, which this run did not image: it was refused.
    mapping = tmp_path / "plate.txt"
    mapping.write_text(
        "Position\tWell\tSite\tRow\tColumn\tGene Symbol\tsiRNA ID\tGroup\n"
        "0001\tA01\t0001\tA\t1\tscrambled\ts001\tneg\n"
        "0002\tB02\t0001\tB\t2\tPLK1\ts002\ttarget\n"
        "0009\tH12\t0001\tH\t12\tKIF11\ts9\ttarget\n",
        encoding="utf-8",
    )
    model = tmp_path / "model.pt"
    args = ["train", str(cellcognition_file), "--mapping", str(mapping), *TINY, "--out", str(model)]
    with pytest.warns(UserWarning, match=r"names 1 position\(s\) that are not in .*H12_0001"):
        assert main(args) == 0
    assert model.exists()


def test_positions_the_mapping_lacks_are_one_warning(
    cellcognition_file, mapping_file, tmp_path, capsys, monkeypatch
):
    import sys

    from napari_cellae.cli import console

    # The control well's row only: B02's cells are kept, as a condition of their own.
    controls_only = tmp_path / "controls_only.txt"
    controls_only.write_text("".join(mapping_file.read_text().splitlines(True)[:2]))
    model = tmp_path / "model.pt"
    train = ["train", str(cellcognition_file), "--mapping", str(controls_only), *TINY]
    with pytest.warns(UserWarning) as caught:
        assert main([*train, "--train-on", "controls", "--out", str(model), "-q"]) == 0
    assert [str(w.message) for w in caught].count(
        f"{controls_only}: no row maps 1 of the 2 positions of {cellcognition_file}: B02_0001;"
        " they are kept as conditions of their own, not as negative controls (is a well"
        " misspelt, or a row missing?)"
    ) == 1
    out = capsys.readouterr().out  # A01's cells, its condition named
    assert "Trained on 12 control cells, 3 more held out" in out and "controls: 'scrambled'" in out
    encode = ["encode", str(cellcognition_file), "--model", str(model), "-q", "--out"]
    monkeypatch.setattr(
        sys, "argv", ["cellae", *encode, str(tmp_path / "f.hdf"), "--mapping", str(controls_only)]
    )
    assert console() == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "no row maps" in line]
    assert lines == [
        f"cellae: warning: {controls_only}: no row maps 1 of the 2 positions of"
        f" {cellcognition_file}: B02_0001; they are kept as conditions of their own, not as"
        " negative controls (is a well misspelt, or a row missing?)"
    ], err
    # every position mapped: no such line
    monkeypatch.setattr(
        sys, "argv", ["cellae", *encode, str(tmp_path / "g.hdf"), "--mapping", str(mapping_file)]
    )
    assert console() == 0
    assert "no row maps" not in capsys.readouterr().err


def test_without_a_mapping_train_on_all_cells(cellcognition_file, tmp_path, capsys):
    model = tmp_path / "m.pt"
    rc = main(["train", str(cellcognition_file), *TINY, "--out", str(model), "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "--mapping" not in captured.err  # the default trains on all cells anyway
    assert "Trained on 24 cells, 6 more held out (30 cells in the file" in captured.out
    assert ", 16 px crops): " in captured.out  # no resampling unless asked
    assert load_model(model).config.train_on == "all"
    # asking for controls without saying which they are stays an error, before any work
    rc = main(["train", str(cellcognition_file), *TINY, "--train-on", "controls", "--out", "x.pt"])
    assert rc == 2
    usage_error(capsys.readouterr().err, "train", "argument --train-on: controls needs --mapping")
    # the 'classic' preset trains on the controls given a mapping: without one, a note says
    classic = ["--preset", "classic", "--out", str(tmp_path / "c.pt")]
    rc = main(["train", str(cellcognition_file), *TINY, *classic])
    assert rc == 0
    assert "no --mapping given, so training on all cells (with a position mapping the " in (
        capsys.readouterr().err
    )


def test_bad_option_values(cellcognition_file, mapping_file, tmp_path, capsys):
    common = [
        str(cellcognition_file),
        "--mapping",
        str(mapping_file),
        "--out",
        str(tmp_path / "m.pt"),
    ]
    assert main(["train", *common, *TINY, "--epochs", "0"]) == 2
    usage_error(capsys.readouterr().err, "train", "argument --epochs: must be 1..100000")
    assert main(["train", *common, "--size", "16", "--architecture", "c4.3r_p2_x9"]) == 2
    usage_error(capsys.readouterr().err, "train", "argument --architecture: ")
    assert main(["train", *common, *TINY, "--size", "100"]) == 1  # larger than 64x80 images
    one_line_error(capsys.readouterr().err, "100")
    assert main(["train", *common, *TINY, "--channel", "GFP"]) == 1
    one_line_error(capsys.readouterr().err, "GFP", "rfp")
    assert main(["train", *common, *TINY, "--object", "cells"]) == 1
    one_line_error(capsys.readouterr().err, "cells", "primary__primary")
    assert not (tmp_path / "m.pt").exists()


def test_unwritable_output(cellcognition_file, mapping_file, tmp_path, capsys):
    target = tmp_path / "no" / "dir" / "model.pt"
    rc = main(
        [
            "train",
            str(cellcognition_file),
            "--mapping",
            str(mapping_file),
            *TINY,
            "--out",
            str(target),
        ]
    )
    assert rc == 1
    one_line_error(capsys.readouterr().err, str(target))
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    rc = main(["demo", "--out", str(blocker / "sub"), *TINY])
    assert rc == 1
    one_line_error(capsys.readouterr().err, "plain-file")


def test_diverged_training_is_reported(
    cellcognition_file, mapping_file, tmp_path, capsys, monkeypatch
):
    from napari_cellae.core import trainer

    def diverge(self):
        raise trainer.TrainingDiverged("loss became NaN; try a lower learning rate")
        yield  # pragma: no cover

    monkeypatch.setattr(trainer.Trainer, "run", diverge)
    model = tmp_path / "m.pt"
    rc = main(
        [
            "train",
            str(cellcognition_file),
            "--mapping",
            str(mapping_file),
            *TINY,
            "--out",
            str(model),
        ]
    )
    assert rc == 1
    one_line_error(capsys.readouterr().err, "training diverged", "lower learning rate")
    assert not model.exists()


def test_diverged_training_says_once_that_no_model_was_written(
    cellcognition_file, tmp_path, capsys
):
    # It said 'training diverged: training diverged in epoch 1 ...; The weights of the last
    # good epoch (0) were kept.', of a model that was never written.
    model = tmp_path / "m.pt"
    args = ["train", str(cellcognition_file), *TINY, "--learning-rate", "1e300"]
    assert main([*args, "--out", str(model)]) == 1
    err = capsys.readouterr().err.strip()
    one_line_error(err, "training diverged in epoch 1")
    assert err.count("diverged") == 1 and "kept" not in err
    assert err.endswith("try a lower learning rate (e.g. 1e+299); no model was written")
    assert not model.exists()


def _interrupt_after_an_epoch(monkeypatch) -> None:
    """Training raises KeyboardInterrupt (Ctrl-C) once its first epoch is done."""
    from napari_cellae.core import trainer

    original = trainer.Trainer.run

    def interrupted(self):
        gen = original(self)
        yield next(gen)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.Trainer, "run", interrupted)


def test_ctrl_c_keeps_the_model_so_far(
    cellcognition_file, mapping_file, tmp_path, capsys, monkeypatch
):
    _interrupt_after_an_epoch(monkeypatch)
    model = tmp_path / "m.pt"
    rc = main(
        [
            "train",
            str(cellcognition_file),
            "--mapping",
            str(mapping_file),
            *TINY,
            "--out",
            str(model),
            "-q",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 130  # kept, but not done: `cellae train ... && cellae encode ...` stops
    assert "interrupted after 1 epoch" in captured.err
    assert model.is_file()


def test_ctrl_c_in_the_first_epoch_keeps_the_previous_model(
    cellcognition_file, tmp_path, capsys, monkeypatch
):
    # The untrained network replaced the model of an earlier run, and the run said "saved".
    from napari_cellae.core import trainer

    model = tmp_path / "m.pt"
    with zipfile.ZipFile(model, "w") as earlier:  # what torch.save writes: a zip archive
        earlier.writestr("m/data.pkl", "an earlier run's model")
    before = model.read_bytes()

    def interrupted(self):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(trainer.Trainer, "run", interrupted)
    rc = main(["train", str(cellcognition_file), *TINY, "--out", str(model), "-q"])
    captured = capsys.readouterr()
    assert rc == 130 and "interrupted" in captured.err and "Model saved" not in captured.out
    assert model.read_bytes() == before
    assert [p.name for p in tmp_path.glob("*m.pt*")] == ["m.pt"]  # no temporary left


def test_make_demo_calls_demo_module(tmp_path, capsys, monkeypatch):
    import napari_cellae.demo.screen as demo

    calls = []

    def fake(out_dir, seed=0):
        calls.append((Path(out_dir), seed))
        return Path(out_dir) / "demo_screen.ch5", Path(out_dir) / "demo_screen_mapping.txt"

    monkeypatch.setattr(demo, "make_demo", fake)
    assert main(["make-demo", str(tmp_path / "d"), "--seed", "3"]) == 0
    assert calls == [(tmp_path / "d", 3)]
    assert "demo_screen.ch5" in capsys.readouterr().out


def test_make_screen_writes_a_benchmark_screen(tmp_path, capsys):
    from napari_cellae.io.cellh5 import CellH5

    out = tmp_path / "screen"
    assert main(["make-screen", str(out), "--cells", "150", "--seed", "2"]) == 0
    assert "benchmark_screen.ch5" in capsys.readouterr().out
    with CellH5(out / "benchmark_screen.ch5") as ch5:
        assert len(ch5.positions) == 32
        assert len(ch5.class_labels(ch5.default_object)) == 15
    assert (out / "benchmark_screen_mapping.txt").is_file()
    assert main(["make-screen", str(out / "benchmark_screen.ch5")]) == 1
    assert "expected a folder" in capsys.readouterr().err
    assert main(["make-screen", str(tmp_path / "x"), "--cells", "5"]) == 2
    usage_error(capsys.readouterr().err, "make-screen", "--cells: must be 100..200000")
    assert main(["make-screen", str(tmp_path / "y"), "--zoom", "9"]) == 2
    usage_error(capsys.readouterr().err, "make-screen", "--zoom: must be 0.25..4, got 9")
    assert main(["make-screen", str(tmp_path / "y"), "--light", "0"]) == 2
    usage_error(capsys.readouterr().err, "make-screen", "--light: must be 0.05..4, got 0")
    # The screen is drawn in memory: 1e11 cells were killed by the kernel after taking 23 GB.
    assert main(["make-screen", str(tmp_path / "y"), "--cells", "99999999999"]) == 2
    usage_error(capsys.readouterr().err, "make-screen", "--cells: must be 100..200000")
    # A cell's pixels grow with the square of the zoom: 200,000 cells at zoom 4 need ~58 GB.
    assert main(["make-screen", str(tmp_path / "y"), "--cells", "20000", "--zoom", "4"]) == 2
    usage_error(capsys.readouterr().err, "make-screen", "--cells: must be 100..12500 at --zoom 4")
    assert not (tmp_path / "y").exists()  # refused before anything is written


def test_demo_end_to_end_tiny(tmp_path, capsys):
    out = tmp_path / "demo"
    # The demo's nuclei (about 24 px) do not fit the tiny test box, and the user is told.
    with pytest.warns(UserWarning, match="larger than the 16 px crop box"):
        rc = main(["demo", "--out", str(out), *TINY, "--epochs", "1", "--samples", "300", "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    for name in ("features.hdf", "model.pt", "embedding.png"):
        assert (out / name).is_file(), name
    assert (out / "embedding.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out / "features.hdf") in captured.out
    assert "1 epoch(s)" in captured.out
    assert "5-NN accuracy" in captured.out
    data = read_explorer_hdf(out / "features.hdf")
    names = cell_feature_names(load_model(out / "model.pt"))
    assert data.features.shape[1] == len(names)
    # the Explorer's feature list says which layer every column comes from
    assert data.feature_names == [f"ch1-{name}" for name in names]
    assert "ch1-mask_area" in data.feature_names
    assert {b"scrambled", b"KIF11"} <= set(data.bbox["treatment"].tolist())


def test_a_channel_the_demo_lacks_is_refused_before_any_progress(tmp_path, capsys):
    # The demo has one channel: its error came below a 'training: 0%' bar.
    assert main(["demo", "--out", str(tmp_path / "demo"), *TINY, "--channel", "1"]) == 1
    err = capsys.readouterr().err
    one_line_error(err, "demo_screen.ch5", "has no channel '1' (channels: 0=H2B)")
    assert "training" not in err and "%" not in err


def test_ctrl_c_stops_the_whole_demo_and_keeps_the_earlier_outputs(tmp_path, capsys, monkeypatch):
    # Ctrl-C after an epoch kept that model, then the demo went on to encode, write the
    # features and the plot, and exited 0.
    _interrupt_after_an_epoch(monkeypatch)
    out = tmp_path / "demo"
    out.mkdir()
    with zipfile.ZipFile(out / "model.pt", "w") as earlier:  # torch.save's kind of file
        earlier.writestr("m/data.pkl", "an earlier run's model")
    with h5py.File(out / "features.hdf", "w") as earlier:  # an Explorer file
        earlier.create_dataset("data/features", data=[0.5])
    (out / "embedding.png").write_bytes(b"\x89PNG\r\n\x1a\n an earlier run's map")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.warns(UserWarning, match="larger than the 16 px crop box"):
        rc = main(["demo", "--out", str(out), *TINY, "--epochs", "3", "--samples", "300", "-q"])
    captured = capsys.readouterr()
    assert rc == 130 and captured.err.endswith("cellae: interrupted\n"), captured.err
    assert "Features:" not in captured.out
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporary left


def test_cellprofiler_uint16_two_channels_end_to_end(cellprofiler_file, tmp_path, capsys):
    model, out = tmp_path / "m.pt", tmp_path / "f.hdf"
    args = ["train", str(cellprofiler_file), "--train-on", "all", "--channel", "DNA"]
    assert main([*args, "--channel", "GFP", *TINY, "--out", str(model), "-q"]) == 0
    assert main(["encode", str(cellprofiler_file), "--model", str(model), "--out", str(out)]) == 0
    capsys.readouterr()
    data = read_explorer_hdf(out)
    assert data.gallery.shape == (16, 16, 2, 12)
    assert data.gallery.max() > 200  # 16-bit pixels scaled, not truncated
    assert (data.bbox["angle"] == 0).all()


def test_train_warns_when_the_network_collapsed(
    cellcognition_file, mapping_file, tmp_path, capsys, monkeypatch
):
    from napari_cellae.core.trainer import Trainer

    real = Trainer._evaluate
    monkeypatch.setattr(Trainer, "_evaluate", lambda self: (real(self)[0], True))
    args = ["train", str(cellcognition_file), "--mapping", str(mapping_file), *TINY]
    rc = main([*args, "--out", str(tmp_path / "m.pt"), "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "warning: the network gives the same reconstruction for every cell" in captured.err
    assert "lower learning rate" in captured.err


def test_train_fits_the_box_to_cells_the_default_box_would_cut(large_cells_file, tmp_path, capsys):
    tiny = ["--architecture", "c4.3r_p2_d16.0s", "--epochs", "1", "-q"]
    model = tmp_path / "model.pt"
    assert main(["train", str(large_cells_file), *tiny, "--out", str(model)]) == 0
    captured = capsys.readouterr()
    assert "larger than the 40 px the network is made for" in captured.err
    assert "cropping 48 px" in captured.err and "--crop-size" in captured.err
    assert "48 px resampled to 40 px crops" in captured.out
    config = load_model(model).config
    assert (config.crop_size, config.input_size) == (48, 40)
    # a cell size given by the user is kept (and the cut cells are warned about)
    given = tmp_path / "given.pt"
    with pytest.warns(UserWarning, match="larger than the 40 px crop box"):
        rc = main(["train", str(large_cells_file), *tiny, "--size", "40", "--out", str(given)])
    assert rc == 0 and "the network is made for" not in capsys.readouterr().err
    assert (load_model(given).config.crop_size, load_model(given).config.input_size) == (40, 0)


def test_train_crops_only_the_cells_it_draws(cellcognition_file, tmp_path, capsys, monkeypatch):
    import napari_cellae.pipeline.sampling as sampling

    original, cropped = sampling.sampled_training_crops, []

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        cropped.append(None if out is None else len(out[0]))
        return out

    monkeypatch.setattr(sampling, "sampled_training_crops", spy)
    model = tmp_path / "m.pt"
    rc = main(["train", str(cellcognition_file), *TINY, "--samples", "10", "--out", str(model)])
    out = capsys.readouterr().out
    assert rc == 0 and cropped == [10]  # 10 of the 30 cells cropped
    assert "Trained on 8 cells, 2 more held out (30 cells in the file" in out


def test_train_on_several_plates(tmp_path, capsys):
    from test_plate_training import _plate

    first = _plate(tmp_path / "screen" / "run1" / "plate.ch5", ["A01", "B01"], 1)
    _plate(tmp_path / "screen" / "run2" / "plate.ch5", ["A01"], 5)
    model = tmp_path / "m.pt"
    rc = main(["train", str(first), str(tmp_path / "screen" / "run2"), *TINY, "-q",
               "--samples", "40", "--out", str(model)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "Trained on 32 cells, 8 more held out (45 cells in 2 plates" in out
    folder = tmp_path / "folder.pt"  # a folder of plates is the same two plates
    assert main(["train", str(tmp_path / "screen"), *TINY, "-q", "--out", str(folder)]) == 0
    assert "(45 cells in 2 plates" in capsys.readouterr().out


def test_a_channel_a_later_plate_lacks_is_refused_before_any_progress(tmp_path, capsys):
    # Only the first plate was checked early: the second plate's error came below a
    # 'training: 0%' bar.
    from test_plate_training import _plate

    first = _plate(tmp_path / "a.ch5", ["A01"], 1, channels=("rfp", "gfp"))
    second = _plate(tmp_path / "b.ch5", ["A01"], 5, channels=("rfp",))
    model = tmp_path / "m.pt"
    argv = ["train", str(first), str(second), *TINY, "--channel", "gfp", "--out", str(model)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    one_line_error(err, "b.ch5", "a.ch5 gave the training channel(s) gfp")
    assert "training" not in err.replace("gave the training", "") and "%" not in err
    assert not model.exists()


def test_ctrl_c_inside_an_h5py_callback_is_an_interrupt(tmp_path, capsys, monkeypatch):
    # h5py wraps it: "SystemError: ... returned a result with an exception set" printed a
    # traceback (Ctrl-C while `cellae encode` looked for the links of the input files).
    import h5py

    from napari_cellae.cli import commands

    path = tmp_path / "links.h5"
    with h5py.File(path, "w") as h5:
        h5["a"] = 1

    def info(args) -> int:
        def visit(name: bytes, link) -> None:
            raise KeyboardInterrupt

        with h5py.File(args.file, "r") as h5:
            h5.id.links.visit(visit, info=True)
        return 0

    monkeypatch.setitem(commands._COMMANDS, "info", info)
    assert main(["info", str(path)]) == 130
    assert capsys.readouterr().err == "cellae: interrupted\n"


def test_make_screen_offers_the_generator_s_segmentations(tmp_path, capsys):
    from napari_cellae.cli.parser import build_parser
    from napari_cellae.demo.benchmark import SEGMENTATIONS

    parser = build_parser()
    action = next(
        a
        for sub in parser._subparsers._group_actions
        for name, p in sub.choices.items()
        if name == "make-screen"
        for a in p._actions
        if a.dest == "segmentation"
    )
    assert tuple(action.choices) == SEGMENTATIONS
    out = tmp_path / "pieces"
    assert main(["make-screen", str(out), "--cells", "150", "--segmentation", "pieces"]) == 0
    assert (out / "benchmark_screen.ch5").is_file()
