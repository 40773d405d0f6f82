"""What ``cellae`` prints (napari_cellae.cli.output)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from napari_cellae.cli.output import CountBar, EpochBar, fail, fmt, loss_summary, training_summary
from napari_cellae.core.trainer import EpochReport
from napari_cellae.io.cellh5 import PositionKey


class _Crops(list):
    """Just what the summary reads of a CropSet: its length, object, channels, sizes and
    positions."""

    positions = (PositionKey("plate1", "A01", "1"), PositionKey("plate1", "A02", "1"))
    object_name = "Nuclei"
    channel_names = ("DNA", "GFP")
    box = 24
    crops = np.zeros((1, 1, 40, 40), np.uint8)  # resampled to a 40 px network


def _report(epoch: int, loss: float, held: float) -> EpochReport:
    return EpochReport(epoch, 4, loss, held, 1.0, 100.0)


def test_numbers_and_summaries():
    assert fmt(0.0123456) == "0.01235" and fmt(math.nan) == "n/a" and fmt(None) == "n/a"
    assert loss_summary([]) == "no epochs trained"
    reports = [_report(1, 0.5, 0.6), _report(2, 0.25, math.nan)]
    assert loss_summary(reports) == "2 epoch(s); final loss 0.25 (training), n/a (held out)"
    result = SimpleNamespace(
        crops=_Crops([0] * 100),
        n_cells=None,
        n_trained=40,
        n_held_out=10,
        reports=reports,
        trained=SimpleNamespace(config=SimpleNamespace(train_on="all")),
        mapping=None,
    )
    text = training_summary(result, "control")
    assert text.startswith("Trained on 40 control cells, 10 more held out (100 cells in the file")
    assert "object Nuclei, channel(s) DNA, GFP, 24 px resampled to 40 px crops): 2 epoch(s)" in text
    assert training_summary(result).startswith("Trained on 40 cells, 10 more held out")
    # the conditions taken as controls are named, so that a gene NEGR1 among them shows
    result.mapping = SimpleNamespace(control_conditions=["scrambled", "NEGR1"])
    assert "40 px crops; controls: 'scrambled', 'NEGR1'): 2 epoch(s)" in training_summary(
        result, "control"
    )
    assert "controls:" not in training_summary(result)  # trained on all cells
    result.mapping = None
    result.n_cells = 5000  # only the drawn cells were cropped
    assert "(5000 cells in the file" in training_summary(result)
    result.crops.positions = [*_Crops.positions, PositionKey("plate2", "A01", "1")]
    assert "(5000 cells in 2 plates" in training_summary(result)


def test_error_line_and_bars(capsys):
    assert fail("bad thing") == 1
    assert capsys.readouterr().err == "cellae: error: bad thing\n"
    with EpochBar(2, quiet=False) as bar:
        bar(_report(1, 0.5, 0.6))
    err = capsys.readouterr().err
    assert "training" in err and "1/2" in err and "loss=0.5" in err and "held_out=0.6" in err
    with CountBar("encoding", quiet=False) as count:
        count(10, 30)
        count(30, 30)
    assert "30/30" in capsys.readouterr().err
    # on an error the bar is cleared, so the error line stands alone
    with pytest.raises(RuntimeError), CountBar("encoding", quiet=False) as count:
        raise RuntimeError
    assert count.bar.leave is False


def test_info_names_each_position_with_its_plate_where_a_file_holds_several(tmp_path) -> None:
    # Two plates' A01_1 were both listed as 'A01_1', their object counts side by side
    # without saying which plate each came from.
    from conftest import synthetic_position
    from napari_cellae.cli.output import describe_cellh5
    from napari_cellae.io.cellh5 import CellH5
    from napari_cellae.io.cellh5_writer import write_cellh5

    positions = [
        synthetic_position("A01", "1", plate="plateA", n_frames=1, n_per_frame=3),
        synthetic_position("A01", "1", plate="plateB", n_frames=1, n_per_frame=4),
    ]
    path = write_cellh5(tmp_path / "two.ch5", positions, ["dna"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        text = describe_cellh5(ch5)
    assert "Positions: 2 (plateA/A01_1, plateB/A01_1)" in text
    assert "plateA/A01_1: 3  plateB/A01_1: 4" in text


def test_info_says_why_a_file_has_no_objects(tmp_path) -> None:
    # "Objects: 0" and nothing more, where train and encode name the malformed table.
    import h5py

    from conftest import synthetic_position
    from napari_cellae.cli.output import describe_cellh5
    from napari_cellae.io.cellh5 import CellH5
    from napari_cellae.io.cellh5_writer import write_cellh5

    path = write_cellh5(
        tmp_path / "t.ch5", [synthetic_position("A01", "1")], ["dna"], {"primary__primary": 0}
    )
    with h5py.File(path, "a") as f:
        name = "sample/0/plate/plate1/experiment/A01/position/1/object/primary__primary"
        rows = f[name][()]
        del f[name]
        f[name] = np.rec.fromarrays([rows["obj_label_id"]], names="obj_label_id")
    with CellH5(path) as ch5:
        text = describe_cellh5(ch5)
    assert "Objects: 0\n" in text
    assert "contains no segmented objects (object/primary__primary of position A01_1" in text


def _info(path) -> str:
    from napari_cellae.cli.output import describe_cellh5
    from napari_cellae.io.cellh5 import CellH5

    with CellH5(path) as ch5:
        return describe_cellh5(ch5)


@pytest.mark.filterwarnings("ignore:.*share their label id")
def test_info_gives_no_box_larger_than_the_images_for_whole_image_objects(tmp_path) -> None:
    # 80 px objects in 64 x 80 px images: 'cellae info' said 'a 64 px crop box holds them'
    from conftest import whole_image_objects

    path = whole_image_objects(tmp_path / "whole.ch5")
    text = _info(path)
    assert "size (bounding boxes): median 80 px, 95 % at most 80 px; they span (nearly)" in text
    assert "so no crop box holds them: check the segmentation" in text
    assert "crop box holds them (" not in text


def test_info_says_the_default_box_is_larger_than_tiny_images(tmp_path) -> None:
    # 12 x 12 px images of 1 px objects: no size line, so nothing said the 40 px box
    # cannot be cut from them
    from conftest import tiny_images

    text = _info(tiny_images(tmp_path / "tiny.ch5"))
    assert (
        "    crop box: the default 40 px crop box is larger than the images (their shorter "
        "side is 12 px); cellae train crops 12 px and resamples to the network's 40 px"
    ) in text


def test_info_says_nothing_of_the_box_without_sizes_where_the_images_hold_it(
    cellcognition_file,
) -> None:
    from napari_cellae.cli.output import _box_advice
    from napari_cellae.io.cellh5 import CellH5

    with CellH5(cellcognition_file) as ch5:  # 64 x 80 px images
        assert _box_advice(ch5, "primary__primary", None) is None
