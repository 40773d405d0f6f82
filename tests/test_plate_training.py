"""pipeline.plate_training: several plates share one draw of training cells, only those
cut; plates that do not fit are named."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import synthetic_position, whole_image_objects
from napari_cellae.core.config import TrainConfig
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import write_cellh5
from napari_cellae.pipeline import steps
from napari_cellae.pipeline.plate_training import plate_training_crops
from napari_cellae.pipeline.runs import run_train
from napari_cellae.pipeline.sampling import draw_training, sampled_training_crops

ARCH = "c4.3r_p2_d16.0s"


def _plate(path: Path, wells: list[str], seed: int, channels=("rfp",), plate="plate1") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    positions = [
        synthetic_position(w, "1", plate=plate, n_channels=len(channels), seed=seed + i)
        for i, w in enumerate(wells)
    ]
    return write_cellh5(path, positions, list(channels), {"primary__primary": 0})


def _mapping(path: Path, groups: dict[str, str]) -> Path:
    rows = "".join(f"{well}\tgene{i}\t{group}\n" for i, (well, group) in enumerate(groups.items()))
    path.write_text("Well\tGene Symbol\tGroup\n" + rows, encoding="utf-8")
    return path


def _two_plates(tmp_path: Path) -> list[Path]:
    """Two files whose plates are both named plate1: 30 and 15 cells."""
    return [
        _plate(tmp_path / "run1" / "plate.ch5", ["A01", "B01"], 1),
        _plate(tmp_path / "run2" / "plate.ch5", ["A01"], 5),
    ]


def _every_crop(plates: list[Path], config: TrainConfig):
    """Every cell of the plates, cropped plate by plate and joined in order."""
    parts = []
    for plate in plates:
        with CellH5(plate) as ch5:
            parts.append(steps.crops_for(ch5, "primary__primary", [0], config).crops)
    return np.concatenate(parts)


def test_one_draw_over_every_plate(tmp_path):
    plates = _two_plates(tmp_path)
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=20, seed=2, mask="cell")
    drawn, mapping, n_cells = plate_training_crops(plates, config)
    assert mapping is None and n_cells == 45 and len(drawn) == 20
    every = _every_crop(plates, config)
    expected = draw_training(np.arange(45), 20, 2)
    np.testing.assert_array_equal(drawn.crops, every[expected])
    # both plates contribute, and their alike-named plates stay apart
    names = {drawn.positions[i].plate for i in drawn.position_index}
    assert names == {"plate1 (run1/plate.ch5)", "plate1 (run2/plate.ch5)"}
    assert len(drawn.positions) == 3 and drawn.source == tmp_path


def test_every_candidate_of_small_plates_is_cut(tmp_path):
    plates = _two_plates(tmp_path)
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=1000)
    drawn, _, n_cells = plate_training_crops(plates, config)
    every = _every_crop(plates, config)
    assert n_cells == 45
    np.testing.assert_array_equal(drawn.crops, every)


def test_controls_of_every_plate(tmp_path):
    plates = [  # one mapping for both: each plate holds the wells it names
        _plate(tmp_path / "a.ch5", ["A01", "B01"], 1),
        _plate(tmp_path / "b.ch5", ["B01", "A01"], 5, plate="plate2"),
    ]
    mapping = _mapping(tmp_path / "mapping.txt", {"A01": "neg", "B01": "target"})
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=1000, train_on="controls")
    drawn, read, _ = plate_training_crops(plates, config, mapping)
    assert read is not None and len(drawn) == 30  # the two A01 wells, 15 cells each
    assert {drawn.positions[i].well for i in drawn.position_index} == {"A01"}
    assert len({drawn.positions[i].plate for i in drawn.position_index}) == 2
    unmarked = _mapping(tmp_path / "unmarked.txt", {"A01": "target"})
    with (
        pytest.warns(UserWarning, match=r"unmarked\.txt: no row maps 2 of the 4 positions"),
        pytest.raises(ValueError, match=r"unmarked.txt: no control position.*4 positions"),
    ):
        plate_training_crops(plates, config, unmarked)


def test_positions_without_a_row_are_warned_about_once_for_all_plates(tmp_path):
    import warnings

    plates = [
        _plate(tmp_path / "a.ch5", ["A01", "B01", "C01"], 1),
        _plate(tmp_path / "b.ch5", ["A01", "B01", "C01"], 5, plate="plate2"),
    ]
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=1000, train_on="controls")
    # no rows for C01: its cells on both plates are a condition of their own, not controls
    mapping = _mapping(tmp_path / "mapping.txt", {"A01": "neg", "B01": "target"})
    with pytest.warns(UserWarning) as caught:
        drawn, _, n_cells = plate_training_crops(plates, config, mapping)
    assert [str(w.message) for w in caught] == [
        f"{mapping}: no row maps 2 of the 6 positions of the inputs: C01_1 of plate 'plate1',"
        " C01_1 of plate 'plate2'; they are kept as conditions of their own, not as negative"
        " controls (is a well misspelt, or a row missing?)"
    ]
    assert n_cells == 90 and {drawn.positions[i].well for i in drawn.position_index} == {"A01"}
    # two files of one plate name: every position counts, each name is shown once
    same_name = [plates[0], _plate(tmp_path / "c.ch5", ["A01", "B01", "C01"], 9)]
    with pytest.warns(UserWarning, match=r"no row maps 2 of the 6 positions of the inputs: C01_1;"):
        plate_training_crops(same_name, config, mapping)
    complete = _mapping(tmp_path / "complete.txt", {"A01": "neg", "B01": "t", "C01": "t"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plate_training_crops(plates, config, complete)


def test_a_plate_that_does_not_fit_is_named(tmp_path):
    first = _plate(tmp_path / "a.ch5", ["A01", "B01"], 1)
    other_channel = _plate(tmp_path / "b.ch5", ["A01"], 5, channels=("gfp",))
    config = TrainConfig(crop_size=16, architecture=ARCH)
    with pytest.raises(ValueError, match=r"b\.ch5: .*a\.ch5 gave the training channel\(s\) rfp, "):
        plate_training_crops([first, other_channel], config)
    # a channel named '2' is matched by name in the other plates, never taken as number 2
    # (k.ch5 is read first, in plate_order, and gives the channel)
    named = _plate(tmp_path / "k.ch5", ["A01"], 1, channels=("1", "2"))
    lettered = _plate(tmp_path / "l.ch5", ["A01"], 1, channels=("a", "b", "c"))
    with pytest.raises(ValueError, match=r"l\.ch5: .*channel\(s\) 2, which .*: a, b, c\)"):
        plate_training_crops([named, lettered], config, channels=["2"])
    mapping = _mapping(tmp_path / "mapping.txt", {"A01": "neg", "B01": "target"})
    # a plate imaged in part (its mapped wells only) is named, and trained on
    fewer_wells = _plate(tmp_path / "c.ch5", ["A01"], 5)
    with pytest.warns(UserWarning, match=r"mapping names 1 position.*not in .*c\.ch5: B01"):
        assert len(plate_training_crops([first, fewer_wells], config, mapping)[0])
    # one whose wells the mapping does not name either is another layout's: refused
    other_wells = _plate(tmp_path / "d.ch5", ["A01", "C07"], 5)
    with pytest.raises(ValueError, match=r"mapping names 1 position.*not in .*d\.ch5: B01"):
        plate_training_crops([first, other_wells], config, mapping)
    with pytest.raises(ValueError, match=r"a\.ch5: has no object 'nucleus'"):
        plate_training_crops([first, fewer_wells], config, object_name="nucleus")
    nuclei = synthetic_position("A01", "1", object_name="nucleus")
    other_object = write_cellh5(tmp_path / "e.ch5", [nuclei], ["rfp"], {"nucleus": 0})
    with pytest.raises(ValueError, match=r"e\.ch5: has no object 'primary__primary'"):
        plate_training_crops([first, other_object], config)


def test_channels_are_matched_by_name_in_every_plate(tmp_path):
    first = _plate(tmp_path / "a.ch5", ["A01"], 1, channels=("rfp", "gfp"))
    swapped = _plate(tmp_path / "b.ch5", ["A01"], 1, channels=("gfp", "rfp"))
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=1000)
    drawn, _, _ = plate_training_crops([first, swapped], config, channels=["gfp"])
    with CellH5(first) as a, CellH5(swapped) as b:
        gfp_a = steps.crops_for(a, "primary__primary", [1], config).crops
        gfp_b = steps.crops_for(b, "primary__primary", [0], config).crops
    np.testing.assert_array_equal(drawn.crops, np.concatenate([gfp_a, gfp_b]))


def test_run_train_on_several_plates(tmp_path):
    plates = _two_plates(tmp_path)
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=40, epochs=1, seed=1)
    result = run_train(plates, config, out=tmp_path / "model.pt")
    assert (len(result.crops), result.n_cells) == (40, 45)
    assert result.n_trained + result.n_held_out == 40
    assert result.model_path == tmp_path / "model.pt" and result.model_path.exists()
    never_overwritten = r"run2/plate\.ch5.*is an input"
    with pytest.raises(ValueError, match=never_overwritten):
        run_train(plates, config, out=plates[1])
    folder = run_train([tmp_path], config)  # a folder of plates: the same plates
    assert folder.n_cells == 45


def _small_images(path: Path) -> Path:
    """One position of 20 x 24 px images holding one cell."""
    small = synthetic_position("A01", "1", n_frames=1, n_per_frame=1, centers_yx=[[10, 12]])
    small.image = small.image[..., :20, :24].copy()
    small.labels = small.labels[..., :20, :24].copy()
    return write_cellh5(path, [small], ["rfp"], {"primary__primary": 0})


def test_a_plate_of_smaller_images_is_refused_whatever_is_drawn(tmp_path):
    # Only the drawn cells were cut, and only cutting compared the box with the images: a
    # plate of smaller images passed when the draw missed its cells, failed when it did not.
    plates = [_plate(tmp_path / "a.ch5", ["A01", "B01"], 1), _small_images(tmp_path / "b.ch5")]
    for seed in range(4):
        config = TrainConfig(crop_size=32, architecture=ARCH, samples=3, seed=seed)
        with pytest.raises(ValueError, match=r"b\.ch5, position A01_1: crop size 32 px is larg"):
            plate_training_crops(plates, config)
    with CellH5(plates[1]) as ch5, pytest.raises(ValueError, match=r"b\.ch5, position A01_1"):
        sampled_training_crops(ch5, "primary__primary", [0], None, config)


def test_a_plate_without_objects_is_named(tmp_path):
    # It was left out without a word, and the summary spoke of 'the file'.
    good = _plate(tmp_path / "a.ch5", ["A01"], 1)
    nothing = synthetic_position("A01", "1", n_frames=1, n_per_frame=1)
    table = nothing.objects["primary__primary"]
    nothing.objects["primary__primary"] = type(table)(
        **{name: v[:0] for name, v in vars(table).items() if isinstance(v, np.ndarray)}
    )
    empty = write_cellh5(tmp_path / "empty.ch5", [nothing], ["rfp"], {"primary__primary": 0})
    config = TrainConfig(crop_size=16, architecture=ARCH)
    with pytest.warns(UserWarning, match=r"1 of the 2 plates hold no 'primary__primary' .*empt"):
        drawn, _, n_cells = plate_training_crops([empty, good], config)
    assert n_cells == len(drawn) == 15


def test_plates_of_different_bit_depths_on_one_scale_are_warned_of(tmp_path, recwarn):
    # One scale spanned an 8-bit and a 16-bit plate without a word: the 8-bit plate's
    # cells reached the network at a twelfth of the brightness of the others.
    eight = _plate(tmp_path / "a.ch5", ["A01"], 1)
    deep = synthetic_position("A01", "1", dtype="uint16", peak=3000.0)
    sixteen = write_cellh5(tmp_path / "b.ch5", [deep], ["rfp"], {"primary__primary": 0})
    config = TrainConfig(crop_size=16, architecture=ARCH, intensity="screen")
    with pytest.warns(UserWarning, match=r"uint8 \(.*a\.ch5\), uint16 \(.*b\.ch5\);"):
        plate_training_crops([eight, sixteen], config)
    plate_training_crops([eight, sixteen], replace(config, intensity="cell"))  # no matter
    plate_training_crops([eight, _plate(tmp_path / "c.ch5", ["A01"], 5)], config)  # one type
    assert not [w for w in recwarn if "pixel types" in str(w.message)]


@pytest.mark.filterwarnings("ignore:.*share their label id")
def test_objects_filling_the_images_of_several_plates_get_no_box_beyond_them(tmp_path):
    # The joined crops of several plates name a folder, not a file: the advice read no image
    # side there and named 'about 88 px' for 80 px objects in 64 x 80 px images.
    plates = []
    for i in range(2):
        (tmp_path / f"run{i}").mkdir()
        plates.append(whole_image_objects(tmp_path / f"run{i}" / "whole.ch5", ("A01",)))
    config = TrainConfig(crop_size=64, architecture=ARCH, mask="cell")
    with pytest.warns(UserWarning, match=r"shorter side is 64 px\), so no crop box holds") as said:
        plate_training_crops(plates, config)
    assert not any("88 px" in str(w.message) for w in said)


def _assert_same_model(a, b) -> None:
    """Two TrainedModels of equal weights, bit for bit, and equal scaling."""
    import torch

    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "weights differ"
    assert a.normalisation == b.normalisation


def _three_plates(tmp_path: Path) -> list[Path]:
    """Two files of one name (and one plate name) in two folders, and a third plate, of
    45, 15 and 30 cells."""
    return [
        _plate(tmp_path / "run1" / "plate.ch5", ["A01", "B01", "C01"], 1),
        _plate(tmp_path / "run2" / "plate.ch5", ["A01"], 5),
        _plate(tmp_path / "other.ch5", ["B02", "A02"], 9, plate="plate2"),
    ]


def test_plates_given_in_any_order_train_one_model(tmp_path):
    # The draw, the cut and the trainer followed the plates' order as given: 'cellae train
    # a.ch5 b.ch5' and 'cellae train b.ch5 a.ch5' (same seed) trained two models.
    plates = _three_plates(tmp_path)
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=50, epochs=1, seed=3)
    runs = [run_train(given, config) for given in (plates, plates[::-1], [tmp_path])]
    first = runs[0]
    assert (len(first.crops), first.n_cells) == (50, 90)
    for other in runs[1:]:
        assert other.crops.positions == first.crops.positions
        np.testing.assert_array_equal(other.crops.crops, first.crops.crops)
        np.testing.assert_array_equal(other.crops.object_index, first.crops.object_index)
        _assert_same_model(first.trained, other.trained)
        assert other.trained.channel_names == first.trained.channel_names
        # so every cell gets the same features
        np.testing.assert_array_equal(
            steps.encode_crops(other.trained, first.crops),
            steps.encode_crops(first.trained, first.crops),
        )
    names = {first.crops.positions[i].plate for i in first.crops.position_index}
    assert names == {"plate1 (run1/plate.ch5)", "plate1 (run2/plate.ch5)", "plate2"}


def test_plates_are_read_by_their_real_paths(tmp_path):
    from napari_cellae.pipeline.plate_training import plate_order
    from napari_cellae.pipeline.runs import training_plates

    plates = _three_plates(tmp_path)
    expected = [plates[2], plates[0], plates[1]]  # other.ch5, run1/..., run2/...
    assert training_plates(plates[::-1]) == expected == training_plates([tmp_path])
    assert training_plates([plates[1], plates[2], plates[0]]) == expected
    # another spelling of a file sorts as the file: each path is kept as given
    spelt = tmp_path / "run2" / ".." / "run1" / "plate.ch5"
    assert plate_order([plates[1], spelt, plates[2]]) == [plates[2], spelt, plates[1]]


def test_the_first_plate_in_order_gives_the_crop_box(tmp_path):
    # fit_to_cells takes the first plate with objects for all: given first, a plate of
    # larger cells set the box of a run the other way round.
    from napari_cellae.pipeline.cell_size import fit_to_cells
    from napari_cellae.pipeline.runs import training_plates

    small = _plate(tmp_path / "a.ch5", ["A01"], 1)
    large = whole_image_objects(tmp_path / "b.ch5", ("A01",))
    config = TrainConfig(crop_size=16, architecture=ARCH)
    boxes = {
        fit_to_cells(training_plates(given), config)[0].crop_size
        for given in ([small, large], [large, small])
    }
    assert len(boxes) == 1


def test_one_plate_trains_on_its_cells_in_the_files_order(tmp_path):
    # The order is the one a file has always been read in: one plate's model is the one
    # built by hand from its crops in CellH5 order (positions naturally sorted, each
    # position's rows as stored), through steps alone.
    from napari_cellae.core.trainer import Trainer

    wells = ["B01", "A10", "A2", "A01"]  # written out of order: read A01, A2, A10, B01
    plate = _plate(tmp_path / "plate.ch5", wells, 1)
    config = TrainConfig(crop_size=16, architecture=ARCH, samples=40, epochs=1, seed=4)
    for only_drawn in (False, True):
        result = run_train(plate, config, only_drawn=only_drawn)
        with CellH5(plate) as ch5:
            assert [k.well for k in ch5.positions] == ["A01", "A2", "A10", "B01"]
            every = steps.crops_for(ch5, "primary__primary", [0], config)
        train_on = replace(config, train_on="all")
        idx = steps.select_training(every, None, "all", config.samples, config.seed)
        by_hand = Trainer(train_on, np.ascontiguousarray(every.crops[idx]))
        for _ in by_hand.run():
            pass
        _assert_same_model(result.trained, by_hand.result())
