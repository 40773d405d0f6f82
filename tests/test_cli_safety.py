"""``cellae`` from a hostile user's view: outputs that are inputs, folder clashes, leftovers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli_helpers import TINY, one_line_error, usage_error
from napari_cellae.cli import main
from napari_cellae.core.model_load import load_model


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if any cropping or model loading starts."""
    import napari_cellae.core.model_load as model_load
    import napari_cellae.pipeline.runs as runs

    def forbidden(*args, **kwargs):
        raise AssertionError("work started although the output is refused")

    monkeypatch.setattr(runs, "crops_for", forbidden)
    monkeypatch.setattr(model_load, "load_model", forbidden)


def _train_tiny(cellcognition_file: Path, model: Path, capsys) -> Path:
    args = ["train", str(cellcognition_file), "--train-on", "all", *TINY, "--out", str(model)]
    assert main([*args, "-q"]) == 0
    capsys.readouterr()
    return model


def test_encode_and_train_refuse_to_overwrite_their_inputs(
    cellcognition_file, mapping_file, tmp_path, capsys, request
):
    model = _train_tiny(cellcognition_file, tmp_path / "model.pt", capsys)
    request.getfixturevalue("no_work")
    folder = cellcognition_file.parent
    (folder / "sub").mkdir()
    link = tmp_path / "link.hdf"
    link.symlink_to(cellcognition_file)
    # a per-position file the master links to
    position_file = next(f for f in sorted(folder.glob("*.ch5")) if f != cellcognition_file)
    clashes = [
        cellcognition_file,
        folder / "sub" / ".." / cellcognition_file.name,
        link,
        mapping_file,
        position_file,
        model,
    ]
    files = [cellcognition_file, mapping_file, position_file, model]
    before = {f: f.read_bytes() for f in files}
    encode = ["encode", str(cellcognition_file), "--model", str(model)]
    for out in clashes:
        rc = main([*encode, "--mapping", str(mapping_file), "--out", str(out), "-q"])
        assert rc == 1, out
        one_line_error(capsys.readouterr().err, "refusing to write the features file", str(out))
    as_cells = link.with_name("cells.h5ad")  # named as what it would have been
    as_cells.symlink_to(cellcognition_file)
    assert main([*encode, "--mapping", str(mapping_file), "--out", str(as_cells), "-q"]) == 1
    one_line_error(capsys.readouterr().err, "refusing to write the AnnData file", str(as_cells))
    train = ["train", str(cellcognition_file), "--mapping", str(mapping_file), *TINY]
    for out in clashes[:5]:
        assert main([*train, "--out", str(out), "-q"]) == 1, out
        one_line_error(capsys.readouterr().err, "refusing to write the model", str(out))
    assert {f: f.read_bytes() for f in files} == before


def test_demo_and_make_demo_refuse_folder_clashes(tmp_path, capsys, request):
    from napari_cellae.demo.screen import demo_paths

    request.getfixturevalue("no_work")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["demo", "--out", str(blocker), *TINY]) == 1
    one_line_error(capsys.readouterr().err, "a-file", "it is a file")
    assert main(["make-demo", str(blocker)]) == 1
    one_line_error(capsys.readouterr().err, "a-file", "it is a file")
    assert blocker.read_text() == "x"
    # were "cannot create folder ...: File exists" and "it is a file"
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    assert main(["make-demo", str(tmp_path / "dangling")]) == 1
    one_line_error(capsys.readouterr().err, "it links to", "gone, which does not exist")
    assert main(["make-demo", os.devnull]) == 1
    one_line_error(capsys.readouterr().err, "it is a special file", "expected a folder")

    out = tmp_path / "out"
    (out / "model.pt").mkdir(parents=True)
    assert main(["demo", "--out", str(out), *TINY]) == 1
    one_line_error(capsys.readouterr().err, "model.pt", "folder")
    (out / "model.pt").rmdir()
    ch5, mapping = demo_paths()
    (out / "features.hdf").symlink_to(ch5)
    before = ch5.stat().st_size, ch5.stat().st_mtime_ns
    assert main(["demo", "--out", str(out), *TINY]) == 1
    one_line_error(capsys.readouterr().err, "refusing to write the features file")
    assert (ch5.stat().st_size, ch5.stat().st_mtime_ns) == before
    (out / "features.hdf").unlink()
    (out / "embedding.png").symlink_to(mapping)
    assert main(["demo", "--out", str(out), *TINY]) == 1
    one_line_error(capsys.readouterr().err, "refusing to write the plot")


def test_killed_runs_leave_no_temporaries_behind(cellcognition_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    dead = 999_999_999  # no such process: these are a killed run's leftovers
    stale = [out / f".model.pt.{dead}.cellae-tmp", out / f".features.hdf.{dead}.cellae-tmp"]
    for path in stale:
        path.write_bytes(b"half written")
    model = _train_tiny(cellcognition_file, out / "model.pt", capsys)
    args = ["encode", str(cellcognition_file), "--model", str(model)]
    assert main([*args, "--out", str(out / "features.hdf"), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["features.hdf", "model.pt"]


def test_preset_and_aliases_on_the_command_line(cellcognition_file, tmp_path, capsys):
    model = tmp_path / "m.pt"
    args = ["train", str(cellcognition_file), "--train-on", "all", "--preset", "demo"]
    rc = main([*args, "--crop-size", "16", "--epochs", "1", "--out", str(model), "-q"])
    assert rc == 0, capsys.readouterr().err
    config = load_model(model).config
    # the preset's network and batch size, with the crop size and epochs given here
    assert (config.crop_size, config.epochs, config.batch_size) == (16, 1, 32)
    assert config.architecture == "c16.5r_p2_c32.3r_p2_d32.0s"
    assert main(["train", str(cellcognition_file), "--preset", "fast"]) == 2
    assert "invalid choice: 'fast'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["make-demo", "make-screen"])
def test_screen_makers_refuse_a_negative_seed_before_making_the_folder(tmp_path, capsys, command):
    # numpy refused it as 'expected non-negative integer', after creating the folder.
    out = tmp_path / "screen"
    assert main([command, str(out), "--seed", "-1"]) == 2
    usage_error(capsys.readouterr().err, command, "argument --seed: must be 0..4294967295, got -1")
    assert not out.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["make-demo", "{out}"],
        ["make-screen", "{out}"],
        ["train", "{ch5}", "--out", "{out}"],
        ["encode", "{ch5}", "--model", "{out}", "--out", "{out}.h5ad"],
    ],
)
def test_every_command_takes_seeds_by_one_rule(tmp_path, capsys, cellcognition_file, command):
    # train accepted up to 2**63 - 1, encode up to 2**32 - 1 (scikit-learn's), make-demo
    # any seed: one limit and one message for every command now
    out = tmp_path / "out"
    words = [w.format(out=out, ch5=cellcognition_file) for w in command]
    assert main([*words, "--seed", str(2**32)]) == 2
    usage_error(
        capsys.readouterr().err,
        command[0],
        "argument --seed: must be 0..4294967295, got 4294967296",
    )
    assert not out.exists()


def test_inputs_behind_a_loop_of_symbolic_links_are_one_line_errors(
    cellcognition_file, tmp_path, capsys
):
    # Checking the outputs against the inputs resolved each input: Python's RuntimeError
    # ('Symlink loop from ...') came out as a traceback.
    model = _train_tiny(cellcognition_file, tmp_path / "model.pt", capsys)
    loop = tmp_path / "loop.ch5"
    loop.symlink_to(loop)
    out = ["--out", str(tmp_path / "f.hdf"), "-q"]
    for args, needle in [
        (["encode", str(loop), "--model", str(model), *out], "loop of symbolic links"),
        (["encode", str(cellcognition_file), "--model", str(loop), *out], "does not exist"),
        (["hits", str(loop), "--out", str(tmp_path / "hits.csv")], "no such file"),
    ]:
        assert main(args) == 1, args
        one_line_error(capsys.readouterr().err, str(loop), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cellcognition", "loop.ch5", "model.pt"]


def test_running_out_of_memory_is_a_one_line_error(
    cellcognition_file, mapping_file, capsys, monkeypatch
):
    # A position of 10 million cells (a tiny damaged file can declare them) ended in
    # numpy's MemoryError traceback.
    import napari_cellae.core.crops as crops

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 4.77 GiB for an array with shape (10000000, 16)")

    monkeypatch.setattr(crops, "collect_crops", no_memory)
    args = ["train", str(cellcognition_file), "--mapping", str(mapping_file), *TINY, "-q"]
    assert main([*args, "--out", str(cellcognition_file.parent / "m.pt")]) == 1
    err = capsys.readouterr().err
    one_line_error(err, f"{cellcognition_file}: not enough memory (Unable to allocate 4.77 GiB")


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        # cellae train --input-size 1024 on the demo: 10.7 GB of resampled crops, and
        # torch's RuntimeError (not a MemoryError) ended in a traceback.
        (
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
            "allocate memory: you tried to allocate 10720641024 bytes. Error code 12",
            "not enough memory (could not get 10.0 GiB); smaller crops or batches need less",
        ),
        (
            "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)",
            "not enough GPU memory (could not get 2.00 GiB); smaller crops or batches",
        ),
    ],
)
def test_torch_running_out_of_memory_is_a_one_line_error(
    cellcognition_file, mapping_file, capsys, monkeypatch, raised, said
):
    import napari_cellae.core.crops as crops

    def no_memory(*args, **kwargs):
        raise RuntimeError(raised)

    monkeypatch.setattr(crops, "collect_crops", no_memory)
    args = ["train", str(cellcognition_file), "--mapping", str(mapping_file), *TINY, "-q"]
    assert main([*args, "--out", str(cellcognition_file.parent / "m.pt")]) == 1
    one_line_error(capsys.readouterr().err, f"{cellcognition_file}: {said}")
    assert not (cellcognition_file.parent / "m.pt").exists()


def test_other_runtime_errors_are_not_taken_for_memory(cellcognition_file, monkeypatch):
    import napari_cellae.core.crops as crops

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(crops, "collect_crops", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["train", str(cellcognition_file), *TINY, "-q", "--out", "m.pt"])


def test_options_that_change_nothing_are_noted(cellcognition_file, tmp_path, capsys):
    model = tmp_path / "m.pt"
    args = ["train", str(cellcognition_file), str(cellcognition_file), "--train-on", "all"]
    args += [*TINY, "--momentum", "0.5", "--mask", "none", "--morphology", "--out", str(model)]
    with pytest.warns(UserWarning, match=f"{cellcognition_file} is given twice"):
        assert main([*args, "-q"]) == 0
    err = capsys.readouterr().err
    assert "--momentum 0.5 is ignored: only Nesterov momentum uses it" in err
    assert "--morphology is ignored with --mask none" in err
    assert load_model(model).config.momentum == 0.5  # recorded as given, used by nobody


def test_a_control_token_without_a_mapping_is_noted(cellcognition_file, tmp_path, capsys):
    # Without --mapping no position is a control, whatever the token: it was dropped unsaid.
    said = "--control-token 'ctrl' ignored: it marks the negative controls of a --mapping"
    model = _train_tiny(cellcognition_file, tmp_path / "m.pt", capsys)
    out = tmp_path / "f.hdf"
    args = ["encode", str(cellcognition_file), "--model", str(model), "--out", str(out), "-q"]
    assert main([*args, "--control-token", "ctrl"]) == 0
    assert said in capsys.readouterr().err
    assert main([*args]) == 0  # the default token is said nowhere
    assert "--control-token" not in capsys.readouterr().err
    train = ["train", str(cellcognition_file), *TINY, "--out", str(tmp_path / "n.pt"), "-q"]
    assert main([*train, "--control-token", "ctrl"]) == 0
    assert said in capsys.readouterr().err


def test_train_keeps_a_features_file_given_as_the_model(
    cellcognition_file, tmp_path, capsys, request
):
    # `--out features.hdf` (a slip for encode's output) replaced the features with a model.
    request.getfixturevalue("no_work")
    import h5py

    features = tmp_path / "features.hdf"
    with h5py.File(features, "w") as f:
        f["data"] = [1, 2, 3]
    table = tmp_path / "hits.csv"
    table.write_text("rank,position\n1,A01\n")
    for existing, kind in ((features, "an HDF5 file"), (table, "not a napari-cellae model")):
        before = existing.read_bytes()
        args = ["train", str(cellcognition_file), "--train-on", "all", *TINY]
        assert main([*args, "--out", str(existing), "-q"]) == 1
        one_line_error(capsys.readouterr().err, f"refusing to replace {existing}", kind)
        assert existing.read_bytes() == before


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--out", ""],
        ["train", "FILE", "--out", " "],
        ["encode", "FILE", "--model", "", "--out", "f.hdf"],
        ["hits", "cells.h5ad", "--out", ""],
        ["train", ""],
    ],
)
def test_an_empty_path_is_refused_before_any_work(args, tmp_path, capsys, monkeypatch):
    # Path("") is ".": 'cellae demo --out ""' wrote into, and over, the working folder's
    # model.pt, features.hdf and embedding.png.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"mine")
    assert main(args) == 2
    assert "expected a path, got" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert (tmp_path / "model.pt").read_bytes() == b"mine"
