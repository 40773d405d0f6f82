"""Streaming encode (pipeline.streaming, export.explorer_stream): position by position into a
growing Explorer .hdf, equal to the in-memory encode; several inputs, folders of plates."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from cli_helpers import usage_error
from conftest import synthetic_position
from napari_cellae.cli import main
from napari_cellae.core.config import TrainConfig
from napari_cellae.core.features import cell_feature_names
from napari_cellae.core.model import ConvAutoencoder
from napari_cellae.core.model_file import TrainedModel, save_model
from napari_cellae.core.normalisation import Normalisation
from napari_cellae.export import explorer_stream
from napari_cellae.export.explorer import read_explorer_hdf
from napari_cellae.io.cellh5 import CellH5Error
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.pipeline.plates import plate_files
from napari_cellae.pipeline.runs import run_encode
from napari_cellae.pipeline.streaming import encode_serial, encode_stream, plan_encode

ARCH = "c4.3r_p2_d16.0s"


def random_model(
    channels=("rfp",), obj="primary__primary", high=255.0, mask="none"
) -> TrainedModel:
    """An untrained network: its features differ from cell to cell, which is all we need."""
    torch.manual_seed(0)
    model = ConvAutoencoder(ARCH, 16, len(channels)).eval()
    norm = Normalisation([0.0] * len(channels), [high] * len(channels))
    # scaled by one range for all cells (``high``), as the settings must then say
    config = TrainConfig(crop_size=16, architecture=ARCH, mask=mask, intensity="screen")
    return TrainedModel(model, config, norm, list(channels), obj)


def assert_same_file(a: Path, b: Path, atol: float = 1e-5) -> None:
    x, y = read_explorer_hdf(a), read_explorer_hdf(b)
    np.testing.assert_array_equal(x.bbox, y.bbox)
    np.testing.assert_array_equal(x.gallery, y.gallery)
    np.testing.assert_allclose(x.features, y.features, atol=atol, rtol=1e-5)
    assert x.feature_names == y.feature_names
    np.testing.assert_array_equal(x.feature_groups, y.feature_groups)
    assert x.image_size == y.image_size and x.colors == y.colors
    assert x.contour_channels == y.contour_channels
    assert len(x.contours) == len(y.contours)
    for p, q in zip(x.contours.ravel(), y.contours.ravel(), strict=True):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("flavour", ["cellcognition", "cellprofiler"])
def test_streamed_file_equals_the_in_memory_encode(flavour, request, mapping_file, tmp_path):
    if flavour == "cellcognition":
        ch5, trained, mapping = request.getfixturevalue("cellcognition_file"), random_model(), None
        mapping = mapping_file
    else:  # uint16, two channels: thumbnails scaled with the model's normalisation
        ch5 = request.getfixturevalue("cellprofiler_file")
        trained, mapping = random_model(("DNA", "GFP"), "Nuclei", 3000.0), None
    seen = []
    result = encode_stream(
        [ch5], trained, tmp_path / "s.hdf", mapping, progress=lambda d, t: seen.append((d, t))
    )
    run_encode(ch5, trained, tmp_path / "r.hdf", mapping)
    assert_same_file(tmp_path / "s.hdf", tmp_path / "r.hdf")
    assert seen == [(0, 2), (1, 2), (2, 2)]  # over positions
    assert (result.n_positions, result.n_plates) == (2, 1)
    assert result.n_cells == len(read_explorer_hdf(tmp_path / "s.hdf"))
    names = [f"ch1-{name}" for name in cell_feature_names(trained)]
    assert read_explorer_hdf(tmp_path / "s.hdf").feature_names == names  # by layer


def test_rows_are_flushed_in_whole_gallery_chunks(cellcognition_file, tmp_path, monkeypatch):
    monkeypatch.setattr(explorer_stream, "_GALLERY_CHUNK", 4)
    monkeypatch.setattr(explorer_stream, "_FLUSH_ROWS", 8)
    trained = random_model()
    encode_stream([cellcognition_file], trained, tmp_path / "s.hdf")
    run_encode(cellcognition_file, trained, tmp_path / "r.hdf")
    assert_same_file(tmp_path / "s.hdf", tmp_path / "r.hdf")
    import h5py

    with h5py.File(tmp_path / "s.hdf", "r") as h5:
        assert h5["data/gallery"].chunks == (16, 16, 1, 4)
        assert h5["data/gallery"].shape[3] == 30


def _plate(path: Path, wells: list[str], seed: int, split: bool, flavour: str) -> Path:
    positions = [synthetic_position(w, "0001", seed=seed + i) for i, w in enumerate(wells)]
    return write_cellh5(
        path,
        positions,
        channel_names=["rfp"],
        object_channels={"primary__primary": 0},
        flavour=flavour,
        split_files=split,
    )


@pytest.fixture
def screen(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A folder of three plates: a CellCognition folder, a single file, a CellProfiler
    master beside its parts."""
    root = tmp_path / "screen"
    (root / "p1" / "hdf5").mkdir(parents=True)
    plates = [
        _plate(
            root / "p1" / "hdf5" / "_all_positions.ch5", ["A01", "A02"], 10, True, "cellcognition"
        ),
        _plate(root / "p2.ch5", ["B01"], 20, False, "cellcognition"),
        _plate(root / "p3.ch5", ["C01", "C02"], 30, True, "cellprofiler"),
    ]
    return root, plates


def test_a_folder_of_plates_and_several_inputs(screen, tmp_path):
    root, plates = screen
    assert plate_files([root]) == [p.absolute() for p in plates]
    trained = random_model()
    result = encode_stream([root], trained, tmp_path / "all.hdf")
    assert (result.n_plates, result.n_positions, result.n_cells) == (3, 5, 75)
    parts = []
    for i, plate in enumerate(plates):
        run_encode(plate, trained, tmp_path / f"{i}.hdf")
        parts.append(read_explorer_hdf(tmp_path / f"{i}.hdf"))
    whole = read_explorer_hdf(tmp_path / "all.hdf")
    alone = np.concatenate([p.bbox for p in parts])
    # Each plate's rows as encoded alone, but the Explorer's `file` (and the treatment of
    # unmapped positions) names the plate: all three plates are called plate1, and their
    # positions would have merged as one 'A01_0001' etc.
    for field in ("file", "treatment"):
        expected = [
            f"plate1 ({plate.relative_to(root)})/{label.decode()}".encode()
            for plate, part in zip(plates, parts, strict=True)
            for label in part.bbox[field]
        ]
        assert whole.bbox[field].tolist() == expected
    others = [f for f in alone.dtype.names if f not in ("file", "treatment")]
    np.testing.assert_array_equal(whole.bbox[others], alone[others])
    np.testing.assert_array_equal(whole.gallery, np.concatenate([p.gallery for p in parts], 3))
    np.testing.assert_allclose(
        whole.features, np.concatenate([p.features for p in parts]), atol=1e-5
    )
    # inputs in the order given; the same plate twice counts once
    result = encode_stream([plates[2], root / "p1", plates[2]], trained, tmp_path / "two.hdf")
    two = read_explorer_hdf(tmp_path / "two.hdf")
    np.testing.assert_array_equal(
        two.bbox[others], np.concatenate([parts[2].bbox, parts[0].bbox])[others]
    )
    assert len(set(two.bbox["file"].tolist())) == 4  # C01, C02 of one plate, A01, A02 of the other


def test_bad_inputs_are_named_before_any_output(screen, cellprofiler_file, tmp_path):
    root, _ = screen
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CellH5Error, match=r"empty: holds no plate"):
        encode_stream([empty], random_model(), tmp_path / "f.hdf")
    with pytest.raises(ValueError, match=r"refusing to write the features file.*p3_"):
        encode_stream([root], random_model(), next(root.glob("p3_*.ch5")))
    # a plate without the model's objects stops the run before anything is written
    with pytest.raises(ValueError, match=r"screen\.ch5: the model was trained on objects"):
        encode_stream([root, cellprofiler_file], random_model(), tmp_path / "f.hdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cellprofiler", "empty", "screen"]


def test_a_file_that_vanishes_mid_run_leaves_no_output(screen, tmp_path):
    root, plates = screen
    part = next(root.glob("p3_*.ch5"))

    def vanishing(tasks, trained, batch_size):
        part.unlink()  # after planning, before its position is read
        return encode_serial(tasks, trained, batch_size)

    with pytest.raises(ValueError, match=r"p3_"):
        encode_stream([root], random_model(), tmp_path / "f.hdf", runner=vanishing)
    assert not (tmp_path / "f.hdf").exists()
    assert not list(tmp_path.glob(".f.hdf*"))  # no temporary either
    plates[1].unlink()

    def gone(tasks, trained, batch_size):
        plates[0].unlink()
        return encode_serial(tasks, trained, batch_size)

    with pytest.raises(ValueError, match=r"_all_positions\.ch5: cannot be read on "):
        encode_stream([plates[0]], random_model(), tmp_path / "f.hdf", runner=gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["screen"]


def test_cellae_encode_several_inputs(screen, tmp_path, capsys):
    root, plates = screen
    model = save_model(random_model(), tmp_path / "m.pt")
    args = ["encode", str(plates[0]), str(root / "p2.ch5"), "--model", str(model)]
    assert main([*args, "--out", str(tmp_path / "f.hdf")]) == 0
    out = capsys.readouterr().out
    assert "Encoded 45 cells of 3 position(s) on 2 plate(s) into" in out
    assert len(read_explorer_hdf(tmp_path / "f.hdf")) == 45
    assert main([*args, "--out", str(tmp_path / "f.h5ad")]) == 0  # AnnData streams too
    assert "Encoded 45 cells of 3 position(s) on 2 plates into" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "g.hdf"), "--workers", "0", "-q"]) == 2
    usage_error(capsys.readouterr().err, "encode", "argument --workers: must be at least 1")


def test_local_workers_beyond_the_cores_are_noted_or_refused(screen, tmp_path, capsys, monkeypatch):
    import napari_cellae.core.cores as cores

    monkeypatch.setattr(cores, "usable_cores", lambda: 1)
    _, plates = screen
    model = save_model(random_model(), tmp_path / "m.pt")
    args = ["encode", str(plates[0]), "--model", str(model), "--out", str(tmp_path / "f.hdf")]
    # --workers 100000 started that many processes, each loading torch; a bad command line
    # like --workers 0 (status 2), not the status 1 of a damaged file
    assert main([*args, "--workers", "5", "-q"]) == 2
    usage_error(
        capsys.readouterr().err,
        "encode",
        "argument --workers: 5 starts 5 local processes where 1 core(s) may be used; give at "
        "most 1, or run workers on other machines",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "screen"]
    assert main([*args, "--workers", "2", "-q"]) == 0
    assert "--workers 2 starts 2 local processes where 1 core(s) may be used" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("more", [[], ["--workers", "1"]])
@pytest.mark.parametrize("out", ["f.hdf", "f.h5ad"])
def test_a_batch_size_below_one_is_refused_before_any_work(screen, tmp_path, capsys, more, out):
    # It failed at the first position as 'batch_size', on Dask after starting the cluster
    # ("position A01 of ... failed on a Dask worker").
    _, plates = screen
    model = save_model(random_model(), tmp_path / "m.pt")
    args = ["encode", str(plates[0]), "--model", str(model), "--out", str(tmp_path / out)]
    assert main([*args, "--batch-size", "0", "-q", *more]) == 2
    usage_error(
        capsys.readouterr().err, "encode", "argument --batch-size: must be at least 1, got 0"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "screen"]


def test_a_plate_without_objects_among_several_is_skipped_with_a_warning(screen, tmp_path):
    _, plates = screen
    bare = write_cellh5(
        tmp_path / "bare.ch5", [synthetic_position("E05", "1", n_frames=1)], ["rfp"],
        {"primary__primary": 0},
    )  # fmt: skip
    with h5py.File(bare, "r+") as f:  # keep the object type, drop all its rows
        position = f["sample/0/plate/plate1/experiment/E05/position/1"]
        tables = []
        position.visititems(
            lambda name, node: (
                tables.append(name)
                if isinstance(node, h5py.Dataset) and "primary__primary" in name
                else None
            )
        )
        for name in tables:
            rows = position[name][:0]
            del position[name]
            position[name] = rows
    with pytest.warns(UserWarning, match=r"bare\.ch5: no 'primary__primary' objects in any"):
        result = encode_stream([plates[0], bare], random_model(), tmp_path / "f.hdf")
    assert (result.n_plates, result.n_cells) == (1, 30)  # plates that gave cells, as .h5ad
    with pytest.raises(CellH5Error, match=r"bare\.ch5: no 'primary__primary' objects found"):
        encode_stream([bare], random_model(), tmp_path / "g.hdf")  # alone: nothing to encode


def test_crops_are_resampled_to_the_network_input_as_in_memory(cellcognition_file, tmp_path):
    # A 24 px cell box seen by a 16 px network: every encode path resamples the same way.
    trained = random_model()
    trained.config = TrainConfig(crop_size=24, input_size=16, architecture=ARCH)
    with pytest.warns(UserWarning) as caught:  # 9 px cells in a 24 px box
        encode_stream([cellcognition_file], trained, tmp_path / "s.hdf")
    small = [w for w in caught if "small for the 24 px crop box" in str(w.message)]
    assert len(small) == 1  # one warning for the two positions
    with pytest.warns(UserWarning, match="small for the 24 px crop box"):
        run_encode(cellcognition_file, trained, tmp_path / "r.hdf")
    assert_same_file(tmp_path / "s.hdf", tmp_path / "r.hdf")


def test_cells_cut_off_by_the_models_box_are_warned_about(large_cells_file, tmp_path):
    trained = random_model(channels=("dna",))  # a 16 px box: the 41 px cells are cut
    with pytest.warns(UserWarning) as caught:
        encode_stream([large_cells_file], trained, tmp_path / "s.hdf")
    cut = [str(w.message) for w in caught if "crop box" in str(w.message)]
    assert len(cut) == 1
    assert cut[0].startswith(f"{large_cells_file}: ")
    assert "objects are larger than the 16 px crop box" in cut[0] and "about 48 px" in cut[0]


def test_plan_names_mapping_plates_no_input_holds(tmp_path):
    positions = [
        synthetic_position(w, "1", plate="P1", seed=i) for i, w in enumerate(["A01", "B02"])
    ]
    path = write_cellh5(tmp_path / "p1.ch5", positions, ["rfp"], {"primary__primary": 0})
    mapping = tmp_path / "map.txt"
    mapping.write_text(
        "Plate\tWell\tSite\tGene Symbol\tGroup\n"
        "\tA01\t1\tscrambled\tneg\n\tB02\t1\tPLK1\ttarget\nP9\tB02\t1\tKIF11\ttarget\n"
    )
    with pytest.warns(UserWarning, match="names plate\\(s\\) 'P9' that no input of this run"):
        plan = plan_encode([path], random_model(), tmp_path / "out.hdf", mapping)
    assert plan.mapping.lookup(plan.tasks[1].position).condition == "PLK1"  # plate-less row


def test_plan_warns_once_about_positions_the_mapping_lacks(tmp_path):
    import warnings

    files = [
        write_cellh5(
            tmp_path / f"{plate}.ch5",
            [synthetic_position(w, "1", plate=plate, seed=i) for i, w in enumerate(["A01", "A02"])],
            ["rfp"],
            {"primary__primary": 0},
        )
        for plate in ("P1", "P2", "P3")
    ]
    mapping = tmp_path / "map.txt"  # A02 has a row on P1 only
    mapping.write_text(
        "Plate\tWell\tSite\tGene Symbol\tGroup\n\tA01\t\tscr\tneg\nP1\tA02\t\tPLK1\tt\n"
    )
    with pytest.warns(UserWarning) as caught:
        plan = plan_encode(files, random_model(), tmp_path / "out.hdf", mapping)
    assert [str(w.message) for w in caught] == [
        f"{mapping}: no row maps 2 of the 6 positions of the inputs: A02_1 of plate 'P2',"
        " A02_1 of plate 'P3'; they are kept as conditions of their own, not as negative"
        " controls (is a well misspelt, or a row missing?)"
    ]
    assert [plan.mapping.lookup(t.position) is None for t in plan.tasks].count(True) == 2
    # one file: named (beside the unused P1 rows); all its positions mapped: quiet
    with pytest.warns(UserWarning) as caught:
        plan_encode(files[1:2], random_model(), tmp_path / "out.hdf", mapping)
    unmapped = [str(w.message) for w in caught if "no row maps" in str(w.message)]
    assert len(caught) == 2 and len(unmapped) == 1
    assert f"no row maps 1 of the 2 positions of {files[1]}: A02_1;" in unmapped[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan_encode(files[:1], random_model(), tmp_path / "out.hdf", mapping)


@pytest.mark.parametrize("bright_wells", [1, 5])
def test_every_way_of_encoding_judges_the_whole_run_on_the_models_scale(tmp_path, bright_wells):
    # On a screen-scaled model, encode() judged the pixels of each call: the default
    # serial run (two calls over the screen) said nothing while --batch-size 7 and
    # --workers 2 (a call per few cells or per position) warned about saturated pixels,
    # which lay in one position. Now every path sums the run and judges it once.
    from napari_cellae.pipeline.distributed import encode_recording

    wells = ["A01", "A02", "A03", "A04", "B01", "B02", "B03", "B04"]
    positions = [
        synthetic_position(
            w, "1", n_frames=1, n_per_frame=8, seed=i, peak=250.0 if i < bright_wells else 40.0
        )
        for i, w in enumerate(wells)
    ]
    path = write_cellh5(tmp_path / "p.ch5", positions, ["rfp"], {"primary__primary": 0})
    trained = random_model(high=100.0)  # the bright blobs' cores lie above its top

    def per_position(tasks, trained, batch_size):  # as Dask workers do, without a cluster
        return (encode_recording(task, trained, batch_size) for task in tasks)

    runs = {"serial": {}, "batch 7": {"batch_size": 7}, "workers": {"runner": per_position}}
    for name, how in runs.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            encode_stream([path], trained, tmp_path / f"{name}.hdf", **how)
        said = [str(w.message) for w in caught if "top of the model's intensity" in str(w.message)]
        assert len(said) == (bright_wells > 2), (name, said)  # 15 % in a bright position
        assert not [w for w in caught if "reach less than" in str(w.message)]


def test_position_files_of_one_plate_are_counted_as_one_plate(tmp_path):
    # 'cellae encode A01_1.ch5 ... A02_1.ch5' said "on 2 plate(s)": it counted files
    from test_plates import _position_files

    files = _position_files(tmp_path / "hdf5", ["A01", "A02"])
    result = encode_stream(files, random_model(), tmp_path / "all.hdf")
    assert (result.n_plates, result.n_positions) == (1, 2)


def test_a_plate_stored_otherwise_gives_the_same_cells_and_features(tmp_path):
    # Metamorphic: one plate as one file, as CellCognition's master of position files, as
    # those position files given one by one, and with every position's objects listed in
    # reverse: the same rows, thumbnails and (within rounding: other batches) features.
    positions = [synthetic_position(w, "0001", seed=i) for i, w in enumerate(("A01", "A02"))]
    write = {"channel_names": ["rfp"], "object_channels": {"primary__primary": 0}}
    one = write_cellh5(tmp_path / "one.ch5", positions, **write)
    (tmp_path / "cc").mkdir()
    master = write_cellh5(
        tmp_path / "cc" / "_all_positions.ch5", positions, **write, split_files=True
    )
    for position in positions:  # the objects of each position from last to first
        table = position.objects["primary__primary"]
        for name, column in vars(table).items():
            if isinstance(column, np.ndarray):
                setattr(table, name, column[::-1])
    reversed_ = write_cellh5(tmp_path / "reversed.ch5", positions, **write)
    trained = random_model(mask="cell")

    def cells(inputs: list[Path], name: str):
        encode_stream(inputs, trained, tmp_path / name)
        got = read_explorer_hdf(tmp_path / name)
        # no frame in the Explorer's rows: the corner cell of every frame by its angle
        at = np.lexsort([got.bbox[f] for f in ("angle", "label", "y", "x", "file")])
        return got.bbox[at], got.gallery[..., at], got.features[at]

    expected = cells([one], "one.hdf")
    assert len(np.unique(expected[0])) == len(expected[0]) == 30  # each cell told apart
    parts = sorted((tmp_path / "cc").glob("A0*.ch5"))
    for inputs in ([master], parts, [reversed_]):
        rows, gallery, features = cells(inputs, "other.hdf")
        np.testing.assert_array_equal(rows, expected[0])
        np.testing.assert_array_equal(gallery, expected[1])
        np.testing.assert_allclose(features, expected[2], atol=1e-5)
