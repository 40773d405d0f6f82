"""The steps of a run (napari_cellae.pipeline.steps), without Qt."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import synthetic_position
from napari_cellae.core.config import TrainConfig
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.io.locate import input_files
from napari_cellae.io.mapping import read_mapping
from napari_cellae.pipeline import steps as pipeline


def _crops(path: Path):
    with CellH5(path) as ch5:
        return pipeline.collect(ch5, "primary__primary", 16, [0])


def test_select_training_controls_and_samples(cellcognition_file, mapping_file):
    with CellH5(cellcognition_file) as ch5:
        mapping = pipeline.load_mapping(mapping_file, ch5)
        assert pipeline.load_mapping(None, ch5) is None
        crops = pipeline.collect(ch5, "primary__primary", 16, [0])
    idx = pipeline.select_training(crops, mapping, "controls", samples=50000)
    assert len(idx) == 15
    assert {crops.positions[i].well for i in crops.position_index[idx]} == {"A01"}
    few = pipeline.select_training(crops, mapping, "all", samples=7, seed=1)
    assert len(few) == 7 and np.all(np.diff(few) > 0)
    np.testing.assert_array_equal(few, pipeline.select_training(crops, mapping, "all", 7, 1))
    assert len(pipeline.select_training(crops, None, "controls", samples=100)) == 30
    # the trainer remembers which crops it trains on, and draws no subset of its own
    config = TrainConfig(
        crop_size=16, architecture="c4.3r_p2_d8.0s", epochs=1, samples=10, train_on="controls"
    )
    trainer = pipeline.make_trainer(crops, mapping, config)
    np.testing.assert_array_equal(
        trainer.source_indices, pipeline.select_training(crops, mapping, "controls", 10)
    )
    np.testing.assert_array_equal(trainer._data.numpy(), crops.crops[trainer.source_indices])
    # Crops without signal (a channel of one value: images never acquired) are not trained
    # on; with nothing else left, training is refused.
    crops.blank[:10] = True
    idx = pipeline.select_training(crops, mapping, "all", samples=50000)
    assert len(idx) == 20 and idx.min() == 10
    crops.blank[:] = True
    with pytest.raises(ValueError, match="no cell to train on has signal"):
        pipeline.select_training(crops, mapping, "all", samples=50000)
    assert trainer.n_train + trainer.n_held_out == 10


def test_training_indices(cellcognition_file, mapping_file, tmp_path):
    crop_set = _crops(cellcognition_file)
    mapping = read_mapping(mapping_file)
    controls = pipeline.select_training(crop_set, mapping, "controls", 0)
    wells = {crop_set.positions[i].well for i in crop_set.position_index[controls]}
    assert wells == {"A01"}
    assert len(controls) == int((crop_set.position_index == 0).sum())
    everything = np.arange(len(crop_set))
    np.testing.assert_array_equal(pipeline.select_training(crop_set, mapping, "all", 0), everything)
    np.testing.assert_array_equal(
        pipeline.select_training(crop_set, None, "controls", 0), everything
    )
    no_controls = tmp_path / "no_controls.txt"
    no_controls.write_text(mapping_file.read_text().replace("\tneg\n", "\ttarget\n"))
    with pytest.raises(ValueError, match=r"no_controls\.txt: no control position") as info:
        pipeline.select_training(crop_set, read_mapping(no_controls), "controls", 0)
    # The token and the groups the mapping holds: "mark controls" alone left a Group
    # 'control' (or two-column controls named DMSO) without a way on.
    assert "control token 'neg' (its Groups: 'target')" in str(info.value)
    with pytest.raises(ValueError, match="train_on must be"):
        pipeline.select_training(crop_set, mapping, "some", 0)


def test_without_a_mapping_the_trainer_says_it_trains_on_all(cellcognition_file):
    crops = _crops(cellcognition_file)
    config = TrainConfig(crop_size=16, architecture="c4.3r_p2_d8.0s", epochs=1, train_on="controls")
    trainer = pipeline.make_trainer(crops, None, config)
    assert trainer.config.train_on == "all" and config.train_on == "controls"
    assert trainer.n_train + trainer.n_held_out == 30


def test_cell_conditions(cellcognition_file, mapping_file):
    crops = _crops(cellcognition_file)
    with_mapping = pipeline.cell_conditions(crops, read_mapping(mapping_file))
    assert with_mapping.shape == (30,)
    assert set(with_mapping[crops.position_index == 0]) == {"scrambled"}
    assert set(with_mapping[crops.position_index == 1]) == {"PLK1"}
    labels = pipeline.cell_conditions(crops, None)
    assert set(labels) == {p.label for p in crops.positions}


def test_two_plates_of_one_file_get_their_own_plates_conditions(tmp_path):
    # A mapping with a Plate column: A01 is the control well on P1, B02 on P2.
    positions = [
        synthetic_position(well, "1", plate=plate, seed=seed)
        for seed, (plate, well) in enumerate((p, w) for p in ("P1", "P2") for w in ("A01", "B02"))
    ]
    path = write_cellh5(tmp_path / "two.ch5", positions, ["rfp"], {"primary__primary": 0})
    mapping_path = tmp_path / "plates.txt"
    mapping_path.write_text(
        "Plate\tWell\tSite\tGene Symbol\tGroup\n"
        "P1\tA01\t1\tscrambled\tneg\nP1\tB02\t1\tPLK1\ttarget\n"
        "p2 \tA01\t1\tKIF11\ttarget\nP2\tB02\t1\tscrambled\tneg\n"
    )
    with CellH5(path) as ch5:
        mapping = pipeline.load_mapping(mapping_path, ch5)
        crops = pipeline.collect(ch5, "primary__primary", 16, [0])
    conditions = pipeline.cell_conditions(crops, mapping)
    by_position = {
        (p.plate, p.well): set(conditions[crops.position_index == i])
        for i, p in enumerate(crops.positions)
    }
    assert by_position == {
        ("P1", "A01"): {"scrambled"},
        ("P1", "B02"): {"PLK1"},
        ("P2", "A01"): {"KIF11"},
        ("P2", "B02"): {"scrambled"},
    }
    controls = pipeline.select_training(crops, mapping, "controls", 0)
    trained_on = {crops.positions[i] for i in crops.position_index[controls]}
    assert {(p.plate, p.well) for p in trained_on} == {("P1", "A01"), ("P2", "B02")}
    # the same table naming a plate the file lacks, and no rows for every plate: refused
    other = tmp_path / "other.txt"
    other.write_text(mapping_path.read_text().replace("P2", "P3").replace("p2 ", "P3"))
    with CellH5(path) as ch5, pytest.raises(ValueError, match=r"holds plate\(s\) 'P1', 'P2'"):
        pipeline.load_mapping(other, ch5)


def test_load_mapping_warns_once_about_positions_without_a_row(
    cellcognition_file, mapping_file, tmp_path
):

    # The control well's row only: B02's cells became a condition "B02_0001" of their own.
    controls_only = tmp_path / "controls_only.txt"
    controls_only.write_text("".join(mapping_file.read_text().splitlines(True)[:2]))
    with CellH5(cellcognition_file) as ch5:
        with pytest.warns(UserWarning) as caught:
            mapping = pipeline.load_mapping(controls_only, ch5)
        assert [str(w.message) for w in caught] == [
            f"{controls_only}: no row maps 1 of the 2 positions of {cellcognition_file}:"
            " B02_0001; they are kept as conditions of their own, not as negative controls"
            " (is a well misspelt, or a row missing?)"
        ]
        assert mapping.unmapped(ch5.positions) == [ch5.positions[1]]
        with warnings.catch_warnings():  # a run of several files warns once, for all
            warnings.simplefilter("error")
            pipeline.load_mapping(controls_only, ch5, warn=False)
            pipeline.load_mapping(mapping_file, ch5)  # every position mapped
            pipeline.load_mapping(None, ch5)


def test_check_outputs_refuses_inputs_in_any_spelling(cellcognition_file, mapping_file, tmp_path):
    inputs = [cellcognition_file, mapping_file]
    folder = cellcognition_file.parent
    (folder / "sub").mkdir()
    for clash in (
        cellcognition_file,
        folder / "sub" / ".." / cellcognition_file.name,
        mapping_file,
        input_files(cellcognition_file)[1],  # a linked position file
    ):
        with pytest.raises(ValueError, match="refusing to write the model"):
            pipeline.check_outputs([(clash, "model")], inputs)
    link = tmp_path / "alias.hdf"
    link.symlink_to(cellcognition_file)
    with pytest.raises(ValueError, match=r"alias\.hdf"):
        pipeline.check_outputs([(link, "features file")], inputs)
    with pytest.raises(ValueError, match="does not exist"):
        pipeline.check_outputs([(tmp_path / "no" / "m.pt", "model")], inputs)
    pipeline.check_outputs([(tmp_path / "fine.pt", "model")], [*inputs, None])


def test_check_model_fits(cellcognition_file, cellprofiler_file, tmp_path):
    from napari_cellae.pipeline.runs import run_train

    trained = run_train(cellcognition_file, _tiny(train_on="all")).trained
    with CellH5(cellcognition_file) as ch5:
        assert pipeline.check_model_fits(trained, ch5) == ("primary__primary", [0])
    with CellH5(cellprofiler_file) as ch5:
        with pytest.raises(ValueError, match=r"m\.pt.*primary__primary.*Nuclei"):
            pipeline.check_model_fits(trained, ch5, tmp_path / "m.pt")
        trained.object_name = "Nuclei"
        with pytest.raises(ValueError, match=r"rfp.*DNA, GFP"):
            pipeline.check_model_fits(trained, ch5)
        trained.channel_names = []  # a damaged model file: named, not "a channel is needed"
        with pytest.raises(ValueError, match=r"^model .*m\.pt names no image channel"):
            pipeline.check_model_fits(trained, ch5, tmp_path / "m.pt")


def _tiny(**kw) -> TrainConfig:
    base = dict(crop_size=16, architecture="c4.3r_p2_d16.0s", epochs=1, learning_rate=0.01)
    return TrainConfig(**{**base, **kw})


def test_crops_for_makes_crops_the_way_the_model_was_trained(cellcognition_file):
    plain = TrainConfig(crop_size=16, architecture="c4.3r_p2_d8.0s", mask="none")
    masked = TrainConfig(crop_size=16, architecture="c4.3r_p2_d8.0s", mask="cell")
    with CellH5(cellcognition_file) as ch5:
        a = pipeline.crops_for(ch5, "primary__primary", [0], plain)
        b = pipeline.crops_for(ch5, "primary__primary", [0], masked)
        c = pipeline.collect(ch5, "primary__primary", 16, [0], mask="cell")
    assert a.crops.shape[-1] == 16 and (a.mask, b.mask) == ("none", "cell")
    assert not np.array_equal(a.crops, b.crops)
    np.testing.assert_array_equal(b.crops, c.crops)


def test_a_network_input_size_resamples_the_cell_box(cellcognition_file: Path) -> None:
    from napari_cellae.core.resample import resample_crops
    from napari_cellae.pipeline.runs import run_train

    config = _tiny(crop_size=24, input_size=16, train_on="all", mask="cell")
    small = pytest.warns(UserWarning, match="small for the 24 px crop box .*fit 16 px")
    with small:  # these cells need no more than 16 px
        trained = run_train(cellcognition_file, config).trained
    assert (trained.config.crop_size, trained.model.crop_size) == (24, 16)
    with CellH5(cellcognition_file) as ch5, small:
        seen = pipeline.crops_for(ch5, "primary__primary", [0], trained.config)
        cut = pipeline.collect(ch5, "primary__primary", 24, [0], mask="cell")
    assert seen.crops.shape[-1] == 16 and cut.crops.shape[-1] == 24
    np.testing.assert_array_equal(seen.crops, resample_crops(cut.crops, 16))
    assert pipeline.encode_crops(trained, seen).shape[0] == len(cut)
    with pytest.raises(ValueError, match=r"input_size 31 px, the network's input: .*divisible"):
        _tiny(input_size=31)


def test_collect_warns_when_cells_are_larger_than_the_box(cellcognition_file: Path) -> None:
    with CellH5(cellcognition_file) as ch5:
        with pytest.warns(UserWarning, match=r"larger than the 8 px crop box.*about 16 px"):
            pipeline.collect(ch5, "primary__primary", 8, [0])


@pytest.mark.parametrize("value", [0, 255])
def test_a_channel_of_one_value_is_named_when_nothing_can_be_trained(tmp_path, value):
    """A second channel all zeros (never acquired) or all 255 (saturated) left every cell
    without signal, and the refusal said only that each cell had 'a channel of a single
    value': not which of the two."""
    positions = [synthetic_position(w, "1", n_channels=2, seed=i) for i, w in enumerate("AB")]
    for position in positions:
        position.image[1] = value
    path = write_cellh5(
        tmp_path / "two.ch5", positions, ["H2B", "tubulin"], {"primary__primary": 0}
    )
    with CellH5(path) as ch5, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crops = pipeline.collect(ch5, "primary__primary", 16, [0, 1])
    with pytest.raises(ValueError) as raised:
        pipeline.select_training(crops, None, "all", samples=50000)
    message = str(raised.value)
    assert str(path) in message
    assert f"channel 'tubulin' is {value} in every pixel of all 30" in message
    assert "'H2B'" not in message


@pytest.mark.parametrize("value", [0.0, 7.0])
def test_the_only_channel_of_one_value_is_not_to_be_left_out(tmp_path, value):
    """A file whose one channel is a constant (all zero: never written; or one value) was
    told to 'train without it', which would leave nothing to train on."""
    positions = [synthetic_position(w, "1", seed=i) for i, w in enumerate("AB")]
    for position in positions:
        position.image = np.full(position.image.shape, value, np.float32)
    path = write_cellh5(tmp_path / "one.ch5", positions, ["dna"], {"primary__primary": 0})
    with CellH5(path) as ch5, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crops = pipeline.collect(ch5, "primary__primary", 16, [0])
    with pytest.raises(ValueError) as raised:
        pipeline.select_training(crops, None, "all", samples=50000)
    message = str(raised.value)
    assert f"{path}: no cell to train on has signal: channel 'dna' is {value}" in message
    assert "train without it" not in message
    assert "check the images" in message
