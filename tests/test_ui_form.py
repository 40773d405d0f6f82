"""The dock widget's form: labels and help from the one TrainConfig, inputs to a request."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from qtpy.QtCore import Qt

from napari_cellae._ui.form import (
    CROP_FIELDS,
    TRAINING_FIELDS,
    FileInfo,
    ParameterForm,
    read_file_info,
)
from napari_cellae._ui.parameter_widgets import RANGES
from napari_cellae.core.config import TrainConfig, field_info


@pytest.fixture
def form(qtbot) -> ParameterForm:
    widget = ParameterForm()
    qtbot.addWidget(widget)
    return widget


def test_parameters_come_from_the_config(form):
    defaults = TrainConfig()
    for name in ("crop_size", *CROP_FIELDS, *TRAINING_FIELDS):
        widget = getattr(form, name)
        info = field_info(name)
        assert widget.label == info["label"]
        if not info["choices"]:  # choices: named as the box shows them, see below
            assert widget.tooltip == info["help"]
        if name != "train_on":  # follows the mapping, see below
            assert widget.value == getattr(defaults, name)
    assert form.config() == TrainConfig(train_on="all")
    assert form.file.tooltip and form.mapping.tooltip
    form.mask.value, form.intensity.value = "none", "screen"  # the original module's crops
    assert (form.config().mask, form.config().intensity) == ("none", "screen")


def test_choice_tooltips_name_the_choices_shown(form):
    # The help is cellae train's, naming the command line's values: the Hide box shows
    # 'all but the cell' and its tooltip explained 'cell', Brightness 'per cell' and 'cell'.
    assert "'all but the cell': only the cell" in form.mask.tooltip
    assert "'nothing': the box as it is" in form.mask.tooltip
    assert "'cell'" not in form.mask.tooltip and "'none'" not in form.mask.tooltip
    assert "'per cell': every crop" in form.intensity.tooltip
    assert "'whole screen': one scale" in form.intensity.tooltip
    assert "'control wells': learn only" in form.train_on.tooltip
    assert "'all cells': learn from every cell" in form.train_on.tooltip
    assert "Nesterov momentum can be faster" in form.optimizer.tooltip  # words kept


def test_momentum_only_for_nesterov(form):
    assert form.momentum.native.isHidden()
    form.optimizer.value = "nesterov"
    assert not form.momentum.native.isHidden()


def test_bad_setting_raises_from_config(form):
    form.crop_size.value = 16
    form.architecture.value = "c16.5r_p2_p2_p2_p2_p2_d8.0s"  # pools 16 px away
    with pytest.raises(ValueError, match="invalid training setting"):
        form.config()


def test_train_on_follows_the_mapping_until_chosen(form, mapping_file):
    from napari_cellae.core.config import field_info

    assert form.train_on.value == "all"  # no mapping: no known controls
    form.mapping.value = mapping_file
    assert form.train_on.value == field_info("train_on")["default"]  # the configured default
    form.mapping.value = None
    assert form.train_on.value == "all" and not form.train_on_chosen
    form.train_on.value = "controls"  # the user's choice now sticks
    form.mapping.value = mapping_file
    form.mapping.value = None
    assert form.train_on.value == "controls" and form.train_on_chosen


def test_a_mapping_is_checked_when_chosen(form, monkeypatch, cellcognition_file, mapping_file):
    import napari.utils.notifications as notifications

    shown: list[str] = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    form.file.value = cellcognition_file
    form.mapping.value = mapping_file
    assert form.mapping_problem() is None and shown == []
    other_plate = mapping_file.with_name("other_plate.txt")
    other_plate.write_text("Well\tGene Symbol\tGroup\nC05\tscrambled\tneg\n", encoding="utf-8")
    form.mapping.value = other_plate
    assert len(shown) == 1 and str(other_plate) in shown[0] and "C05" in shown[0]
    junk = mapping_file.with_name("junk.txt")
    junk.write_bytes(b"\x00\xff\x10 not a table")
    form.mapping.value = junk
    assert len(shown) == 2 and str(junk) in shown[1]
    form.file.value = None  # no file: only the mapping itself is read
    form.mapping.value = mapping_file
    assert form.mapping_problem() is None and len(shown) == 2


def test_request_from_the_inputs(form, cellcognition_file, mapping_file, tmp_path):
    with pytest.raises(ValueError, match="Choose a CellH5 file"):
        form.request()
    form.file.value = cellcognition_file
    with pytest.raises(ValueError, match="no objects or channels"):
        form.request()
    form.show_file(read_file_info(cellcognition_file))
    form.crop_size.value = 16
    request = form.request()
    assert request.path == cellcognition_file and request.mapping_path is None
    assert request.object_name == "primary__primary" and request.channel == 0
    assert request.config.train_on == "all" and request.config.crop_size == 16
    form.train_on.value = "controls"
    with pytest.raises(ValueError, match="needs a position mapping"):
        form.request()
    form.mapping.value = mapping_file
    assert form.request().mapping_path == mapping_file


def test_file_info_and_model_fill_the_form(form, cellprofiler_file):
    info = read_file_info(cellprofiler_file)
    assert info.objects == ["Nuclei"] and info.channels == [("DNA", 0), ("GFP", 1)]
    assert info.object_channel == {"Nuclei": 0} and info.smallest_side == 64
    assert info.cell_boxes == {}  # 9 px nuclei: the default box holds them
    form.show_file(info)
    assert form.object.value == "Nuclei" and form.channel.value == 0
    assert form.crop_size.max == 64

    model = SimpleNamespace(
        config=TrainConfig(crop_size=24, input_size=16, architecture="c4.3r_p2_d16.0s"),
        object_name="Nuclei",
        channel_names=["GFP"],
    )
    form.show_model(model)
    assert form.crop_size.value == 24 and form.architecture.value == "c4.3r_p2_d16.0s"
    assert form.input_size.value == 16 and form.config().network_size == 16
    assert form.channel.value == 1
    form.clear_file()
    assert form.object.choices == () and form.channel.choices == ()


def test_a_model_of_two_channels_shows_them_until_one_is_chosen(form, cellprofiler_file):
    # Load model of a DNA + GFP model left the Channel box at the DNA chosen before, though
    # the features used both channels.
    from napari_cellae._ui.form import _TIPS

    form.file.value = cellprofiler_file
    form.show_file(read_file_info(cellprofiler_file))
    form.channel.value = 0
    config = TrainConfig(crop_size=24, input_size=16, architecture="c4.3r_p2_d16.0s")
    both = SimpleNamespace(config=config, object_name="Nuclei", channel_names=["DNA", "GFP"])
    form.show_model(both)
    assert form.channel.current_choice == "DNA + GFP"
    assert "learnt from channels DNA, GFP" in form.channel.tooltip
    form.fold(False)
    assert form.sections[0].header.text().endswith("Nuclei, DNA + GFP, 24 px")
    with pytest.raises(ValueError, match=r"learnt from channels DNA \+ GFP.*choose it"):
        form.request()  # training anew: on which one channel is the user's to say
    form.channel.value = 1  # chosen: the box is the training's again
    assert form.channel.choices == (0, 1) and form.channel.tooltip == _TIPS["channel"]
    assert form.request().channel == 1
    form.show_model(both)
    form.show_model(SimpleNamespace(config=config, object_name="Nuclei", channel_names=["DNA"]))
    assert form.channel.choices == (0, 1) and form.channel.value == 0
    form.show_model(both)
    form.show_file(read_file_info(cellprofiler_file))  # another file: the model is not on it
    assert form.channel.choices == (0, 1) and form.channel.tooltip == _TIPS["channel"]


def test_cell_size_follows_the_cells_until_chosen(form, large_cells_file, cellprofiler_file):
    info = read_file_info(large_cells_file)
    assert info.cell_boxes == {"primary__primary": 48}  # 41 px cells cut by 40 px
    form.show_file(info)
    assert (form.crop_size.value, form.input_size.value) == (48, 40)
    assert form.config().network_size == 40
    assert "48 px holds 95 % of them" in form.crop_size.tooltip
    form.show_file(read_file_info(cellprofiler_file))  # back to the defaults
    assert (form.crop_size.value, form.input_size.value) == (40, 0)
    assert "Set for this file" not in form.crop_size.tooltip
    form.crop_size.value = 56  # the user's choice stays
    form.show_file(info)
    assert (form.crop_size.value, form.input_size.value) == (56, 0)


def test_unreadable_file_is_a_value_error(tmp_path):
    bad = tmp_path / "broken.ch5"
    bad.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(ValueError, match=r"broken\.ch5"):
        read_file_info(bad)


def test_the_folded_section_names_the_channel(form):
    # Its title bar said "Cells: f, Cells, 1, 40 px" for Actin and left DNA (index 0) out.
    info = FileInfo(["Nuclei", "Cells"], "Nuclei", [("DNA", 0), ("Actin", 1)], {}, 200, {})
    form.file.value = "/data/DefaultOut.ch5"
    form.show_file(info)
    for channel, name in ((1, "Actin"), (0, "DNA")):
        form.channel.value = channel
        form.fold(False)
        assert form.sections[0].header.text() == f"Cells: DefaultOut, Nuclei, {name}, 40 px"


def test_images_smaller_than_the_box_are_cropped_whole(form):
    # 12 x 12 px images: the fitted 12 px box was raised to the spin box's least, 16, and
    # failed; the tooltip said that 12 px 'holds 95 %' of cells it was not fitted to.
    info = FileInfo(["Nuclei"], "Nuclei", [("DNA", 0)], {}, 12, {"Nuclei": 12})
    form.show_file(info)
    assert (form.crop_size.value, form.input_size.value) == (12, 40)
    assert form.config().crop_size == 12
    assert "its images (12 px shorter side) are smaller than 40 px" in form.crop_size.tooltip
    # cells larger than the images allow: the box is theirs, and said so
    form.show_file(FileInfo(["Nuclei"], "Nuclei", [("DNA", 0)], {}, 64, {"Nuclei": 64}))
    assert (form.crop_size.value, form.crop_size.min) == (64, RANGES["crop_size"]["min"])
    assert "64 px is the largest its images allow" in form.crop_size.tooltip


def test_controls_named_otherwise_are_found_with_the_controls_field(
    form, monkeypatch, cellcognition_file, tmp_path
):
    # DMSO controls in a two-column mapping: the widget had no way to say so (the command
    # line's --control-token), so no novelty and no hits, and "Train on: controls" failed.
    import napari.utils.notifications as notifications

    warned: list[str] = []
    monkeypatch.setattr(notifications, "show_warning", warned.append)
    dmso = tmp_path / "dmso.txt"
    dmso.write_text("A01\tDMSO\nB02\tPLK1\n", encoding="utf-8")
    form.file.value = cellcognition_file
    form.show_file(read_file_info(cellcognition_file))
    form.mapping.value = dmso
    assert len(warned) == 1 and "'DMSO'" in warned[0] and "'Controls'" in warned[0]
    form.controls.native.editingFinished.emit()  # focus passing through, nothing typed
    assert len(warned) == 1  # the mapping is not read (and warned of) again
    form.controls.value = "dmso"
    form.controls.native.editingFinished.emit()  # typed in, then Enter or another field
    assert len(warned) == 1  # found now: nothing more to say
    request = form.request()
    assert request.control_token == "dmso"
    from napari_cellae.io.mapping import read_mapping

    assert read_mapping(dmso, request.control_token).control_conditions == ["DMSO"]
    form.controls.value = "  "
    assert form.control_token() == "neg"  # left empty: the default


def test_a_model_of_one_channel_after_one_of_two_leaves_no_stale_channels(form, cellprofiler_file):
    # A DNA + GFP model, then a model of one channel this file lacks (or any model with no
    # file chosen): the box kept showing 'DNA + GFP' and its tooltip, the first model's.
    from napari_cellae._ui.form import _TIPS, MODEL_CHANNELS

    form.show_file(read_file_info(cellprofiler_file))
    config = TrainConfig(crop_size=24, input_size=16, architecture="c4.3r_p2_d16.0s")
    both = SimpleNamespace(config=config, object_name="Nuclei", channel_names=["DNA", "GFP"])
    other = SimpleNamespace(config=config, object_name="Nuclei", channel_names=["RFP"])
    form.show_model(both)
    form.show_model(other)
    assert form.channel.choices == (0, 1) and form.channel.value != MODEL_CHANNELS
    assert form.channel.tooltip == _TIPS["channel"]
    form.clear_file()
    form.show_model(both)  # no file: the box holds only the model's channels
    assert form.channel.current_choice == "DNA + GFP"
    form.show_model(other)
    assert form.channel.choices == () and form.channel.tooltip == _TIPS["channel"]
    dna = SimpleNamespace(config=config, object_name="Nuclei", channel_names=["DNA"])
    form.show_model(dna)  # the last file's channel: set in an empty box, it raised
    assert form.channel.choices == ()


def test_network_input_0_says_as_cut(form, qtbot):
    # 0 means no resampling: the box showed a bare 0 (superqt's spin box has no special text)
    box = form.input_size.native
    assert form.input_size.value == 0 and box.text() == "as cut"
    assert form.config().input_size == 0
    form.input_size.value = 40
    assert box.text() == "40" and form.config().input_size == 40
    assert isinstance(form.input_size.value, int)
    assert form.input_size.max == RANGES["input_size"]["max"]
    form.input_size.value = 0
    assert box.text() == "as cut" and form.config() == TrainConfig(train_on="all")
    form.input_size.value = 40
    box.selectAll()  # 0 typed in reads as the words
    qtbot.keyClicks(box, "0")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert form.input_size.value == 0 and box.text() == "as cut"
    form.input_size.value = 40
    model = SimpleNamespace(config=TrainConfig(crop_size=24), object_name="", channel_names=[])
    form.show_model(model)
    assert form.input_size.value == 0 and box.text() == "as cut"


def test_without_magicgui_s_private_spin_box_base_the_box_is_a_plain_one(monkeypatch, qtbot):
    # The words need magicgui's private Qt ranged-widget base; where a magicgui moved it,
    # importing it failed and with it the whole widget.
    import builtins

    from napari_cellae._ui import parameter_widgets

    real_import = builtins.__import__

    def without_base(name, *args, **kwargs):
        if name == "magicgui.backends._qtpy.widgets":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_base)
    box = parameter_widgets.special_spin_box("as cut", value=0, min=0, max=256)
    assert box.value == 0 and box.max == 256 and box.native.text() != "as cut"
    box.value = 40
    assert box.value == 40


def test_the_folded_training_section_names_the_preset(form):
    # The preset decides the settings without a box: the folded title says which it is.
    form.fold(False)
    assert form.sections[1].header.text() == "Training: 30 epochs, 50000 cells"  # the default
    form.preset.value = "classic"
    form.epochs.value = 10
    assert form.sections[1].header.text() == "Training: 10 epochs, 50000 cells, classic"
    form.optimizer.value = "nesterov"  # no preset's: named
    assert form.sections[1].header.text().endswith("cells, classic, Nesterov momentum")


@pytest.mark.parametrize(
    "settings",
    [
        {"learning_rate": 0.00005},  # below the box's least: Load model raised
        {"learning_rate": 0.01234},  # more decimals than the box's four
        {"momentum": 0.9995, "optimizer": "nesterov"},  # above the box's 0.999
        {"corruption": 0.9995},
        {"corruption": 0.1234},
    ],
)
def test_a_loaded_model_s_values_the_boxes_cannot_hold_are_trained_with(form, settings):
    # cellae train takes these; Load model raised ValueError (outside the box's range) in
    # the middle of showing the run, or rounded them, so Train after it trained otherwise.
    model = TrainConfig.from_preset("recommended", train_on="all", **settings)
    form.show_model(SimpleNamespace(config=model, object_name="", channel_names=[]))
    assert form.config() == model
    name = next(iter(settings))
    box = getattr(form, name)
    box.value = 0.5 if name != "learning_rate" else 0.02  # a value typed: that one
    assert getattr(form.config(), name) == box.value
    form.show_model(SimpleNamespace(config=model, object_name="", channel_names=[]))
    form.preset.value = "classic"  # a preset chosen: its values, no longer the model's
    assert form.config() == TrainConfig.from_preset("classic", train_on="all")
