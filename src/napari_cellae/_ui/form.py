"""The dock widget's form: which cells to learn from, and the training parameters.

Each training parameter's box comes from :mod:`napari_cellae._ui.parameter_widgets`; the
Preset box above them (:mod:`napari_cellae._ui.preset_choice`) fills them and decides the
settings without a box.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from napari_cellae._ui.file_info import FileInfo, path_or_none, read_file_info, read_mapping_for
from napari_cellae._ui.form_texts import TIPS as _TIPS
from napari_cellae._ui.form_texts import size_tip
from napari_cellae._ui.parameter_widgets import RANGES, parameter_widget
from napari_cellae._ui.preset_choice import (
    FROM_MODEL,
    matching_preset,
    preset_box,
    preset_only,
    show_choice,
    show_values,
)
from napari_cellae._ui.section import Section
from napari_cellae.core.config import DEFAULT_PRESET, TrainConfig, field_info
from napari_cellae.pipeline.jobs import TrainRequest

if TYPE_CHECKING:
    from napari_cellae.core.model_file import TrainedModel
    from napari_cellae.io.mapping import PositionMapping

__all__ = [
    "BOX_FIELDS",
    "CROP_FIELDS",
    "PRESET_ONLY",
    "TRAINING_FIELDS",
    "FileInfo",
    "ParameterForm",
    "read_file_info",
]

#: how cells are cut out, shown with the cell size
CROP_FIELDS = ("mask", "intensity")
#: training parameters shown in the form, in this order (the others: the preset's or the model's)
TRAINING_FIELDS = (
    "train_on",
    "optimizer",
    "learning_rate",
    "momentum",
    "batch_size",
    "corruption",
    "epochs",
    "samples",
    "architecture",
    "input_size",
)
#: every TrainConfig field with a box
BOX_FIELDS = ("crop_size", *CROP_FIELDS, *TRAINING_FIELDS)
#: the fields a preset (or a loaded model) decides without a box: readout, orientations, ...
PRESET_ONLY = preset_only(BOX_FIELDS)

#: the Channel box's value for a loaded model's channels, where it learnt from several: the
#: box names them (it kept showing the last channel chosen), but no one channel to train on
MODEL_CHANNELS = -1


class ParameterForm(QWidget):
    """The inputs of a run in two boxes, "Cells" and "Training".

    Parameter widgets are attributes named like the :class:`TrainConfig` fields
    (``crop_size``, ``learning_rate``, ...), plus ``file``, ``object``, ``channel``,
    ``mapping`` and ``preset``.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.file = FileEdit(
            label="CellH5 file", mode="r", filter="CellH5 (*.ch5 *.h5 *.hdf5)", nullable=True
        )
        self.object = ComboBox(label="Objects", choices=[])
        self.channel = ComboBox(label="Channel", choices=[])
        self.crop_size = parameter_widget("crop_size")
        self.mapping = FileEdit(
            label="Position mapping", mode="r", filter="Mapping (*.txt *.tsv *.csv)", nullable=True
        )
        self.controls = LineEdit(label="Controls", value="neg")
        for name, tip in _TIPS.items():
            getattr(self, name).tooltip = tip
        self.preset = preset_box()
        self.mask = parameter_widget("mask")
        self.intensity = parameter_widget("intensity")
        self.train_on = parameter_widget("train_on")
        self.optimizer = parameter_widget("optimizer")
        self.learning_rate = parameter_widget("learning_rate")
        self.momentum = parameter_widget("momentum")
        self.batch_size = parameter_widget("batch_size")
        self.corruption = parameter_widget("corruption")
        self.epochs = parameter_widget("epochs")
        self.samples = parameter_widget("samples")
        self.architecture = parameter_widget("architecture")
        self.input_size = parameter_widget("input_size")
        self._object_channel: dict[str, int] = {}
        self._info: FileInfo | None = None
        # What the chosen preset (or loaded model) decides without a box, its box size and
        # its Train on: the boxes' values go on top, as options on cellae train --preset.
        default = TrainConfig.from_preset(DEFAULT_PRESET)
        self._without_box = {k: v for k, v in default.to_dict().items() if k not in BOX_FIELDS}
        self._network, self._default_train_on = default.crop_size, default.train_on
        self._exact: dict[tuple[str, float], float] = {}  # (box, shown) -> the model's value
        self._smallest_side = RANGES["crop_size"]["max"]  # the file's, once one is shown
        self.channel_index: dict[str, int] = {}  # channel name -> raw index
        # "Train on" follows the mapping (controls with one, all cells without) until the
        # user picks it; an explicit "controls" without a mapping is then an error.
        self.train_on_chosen = False
        self._setting_train_on = False
        # Likewise the cell size follows the file's cells (a fitted box) until the user sets it.
        self.size_chosen = False
        self._setting_size = False
        self._token_read = ""  # the controls' token the mapping was last read with

        cells = [self.file, self.object, self.channel, self.crop_size, self.mask, self.intensity]
        cells += [self.mapping, self.controls]
        training = [self.preset, *(getattr(self, name) for name in TRAINING_FIELDS)]
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.sections: list[Section] = []
        for title, widgets in (("Cells", cells), ("Training", training)):
            box = Container(widgets=widgets)
            box.margins = (0, 0, 0, 0)
            self.sections.append(Section(title, box.native))
            layout.addWidget(self.sections[-1])
            for widget in widgets:
                widget.changed.connect(self._summarise)
        # never squeezed below its natural height (text would be cut); the results take the rest
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

        self.preset.changed.connect(self._on_preset)
        self.optimizer.changed.connect(self._on_optimizer)
        self.channel.changed.connect(self._on_channel)
        self.object.changed.connect(self._on_object)
        self.mapping.changed.connect(self._on_mapping)
        # read when typed in (each keystroke's half word would warn of no controls)
        self.controls.native.editingFinished.connect(self._on_controls)
        self.train_on.changed.connect(self._on_train_on)
        self.crop_size.changed.connect(self._on_size)
        self.input_size.changed.connect(self._on_size)
        self._on_optimizer()
        self._on_mapping()

    def fold(self, expanded: bool) -> None:
        """Open (True) or fold (False) both sections; folded, each says in its title bar
        what it holds, and the results below get the room."""
        self._summarise()
        for section in self.sections:
            section.set_expanded(expanded)

    def _summarise(self) -> None:
        file = self.file_path()
        # the channel's name: its value is the index (channel 0 was left out, 1 said "1")
        cells = [file.stem if file else "no file", self.object.value, self.channel.current_choice]
        cells.append(f"{self.crop_size.value} px")
        self.sections[0].set_summary(", ".join(str(c) for c in cells if c))
        # what differs from the defaults only: at 1440 px the dock elided a longer line
        training = [f"{self.epochs.value} epochs", f"{self.samples.value} cells"]
        training += [self.preset.value] * (self.preset.value != DEFAULT_PRESET)
        training += [self.optimizer.current_choice] * (self.optimizer.value != "adagrad")
        self.sections[1].set_summary(", ".join(training))

    # -- values --------------------------------------------------------------------------------
    def file_path(self) -> Path | None:
        """The chosen CellH5 file, None if none."""
        return path_or_none(self.file.value)

    def mapping_path(self) -> Path | None:
        """The chosen position mapping, None if none."""
        return path_or_none(self.mapping.value)

    def control_token(self) -> str:
        """What the controls' Group (or condition) starts with; "neg" when left empty."""
        return str(self.controls.value).strip() or "neg"

    def config(self) -> TrainConfig:
        """The training parameters entered, over the chosen preset's (or loaded model's)
        settings that have no box: ``cellae train --preset NAME`` with the boxes as options.

        Raises
        ------
        ValueError
            If a value is out of range or the network does not fit the crop size.
        """
        values = {**self._without_box, "crop_size": int(self.crop_size.value)}
        for name in (*CROP_FIELDS, *TRAINING_FIELDS):
            value = getattr(self, name).value
            value = self._exact.get((name, value), value)  # a loaded model's, as the box shows it
            values[name] = value.strip() if isinstance(value, str) else value
        return TrainConfig(**values)

    def request(self) -> TrainRequest:
        """What to train on, from the values entered.

        Raises
        ------
        ValueError
            Saying what is missing or wrong: no file, no objects, a bad parameter, or
            training on control wells without a mapping that marks them.
        """
        path, mapping = self.file_path(), self.mapping_path()
        if path is None or not path.is_file():
            raise ValueError(f"Choose a CellH5 file first (got {path}).")
        if self.object.value is None or self.channel.value is None:
            raise ValueError(f"{path}: no objects or channels to learn from.")
        config = self.config()
        if config.train_on == "controls" and mapping is None:
            raise ValueError(
                "Training on control wells needs a position mapping that marks them: choose "
                "the mapping file, or train on all cells."
            )
        if self.channel.value == MODEL_CHANNELS:
            raise ValueError(
                f"The loaded model learnt from channels {self.channel.current_choice}; the "
                "widget trains on one: choose it in 'Channel' (cellae train --channel ... "
                "--channel ... learns from several)."
            )
        channel, token = int(self.channel.value), self.control_token()
        return TrainRequest(path, self.object.value, channel, mapping, config, token)

    # -- filling in ------------------------------------------------------------------------------
    def clear_file(self) -> None:
        """Forget the objects and channels of the previous file."""
        self.object.choices = []
        self.channel.choices = []
        self.channel_index = {}  # kept, Load model of two channels then failed on it
        self._on_channel()

    def show_file(self, info: FileInfo) -> None:
        """Offer the objects and channels of a file; preselect its default object."""
        self._object_channel = info.object_channel
        self._info = info
        # The box goes from the config's least (4 px) to the smallest image side: images
        # smaller than a box are cropped whole. Set before the choices, whose change fits
        # the size.
        self._smallest_side = info.smallest_side
        least = RANGES["crop_size"]["min"]
        self._setting_size = True  # a value the new range clamps is no choice of the user's
        try:
            self.crop_size.min = least
            self.crop_size.max = max(least, min(RANGES["crop_size"]["max"], info.smallest_side))
        finally:
            self._setting_size = False
        self.channel_index = dict(info.channels)
        self.channel.choices = info.channels
        self._on_channel()  # a loaded model's channels were the last file's
        self.object.choices = info.objects
        self.object.value = info.default_object
        self._fit_size()

    def show_model(self, trained: TrainedModel) -> None:
        """Show a loaded model's settings, objects and channel.

        Every box shows the model's value; the Preset box the preset whose settings without
        a box are the model's (:func:`matching_preset`), else :data:`FROM_MODEL`, with the
        model's own: Train then trains the model's way. Several channels stand in the
        Channel box as one choice, until a channel to train on is chosen (or another file).
        """
        name = matching_preset(config := trained.config, PRESET_ONLY)
        show_choice(self.preset, name)
        kept = (*PRESET_ONLY, "train_on", "seed", "held_out_fraction", "augment")  # no device
        own = {field: getattr(config, field) for field in kept}
        self._show_settings(TrainConfig.from_preset(name or DEFAULT_PRESET, **own), config)
        self.size_chosen = True
        for name in ("crop_size", "input_size"):
            box, value = getattr(self, name), getattr(trained.config, name)
            # the cell size's box stops at the file's image side: a model cut larger (and
            # encoded with its own size) failed to load, the box refusing its value
            box.min, box.max = min(box.min, value), max(box.max, value)
            box.value = value
        if trained.object_name in self.object.choices:
            self.object.value = trained.object_name
        names = trained.channel_names
        if len(names) == 1 and names[0] in self.channel_index:
            self.channel.value = self.channel_index[names[0]]
        elif len(names) > 1:  # the features use them all: say so, until a channel is chosen
            self.channel.choices = [
                *self.channel_index.items(),
                (" + ".join(names), MODEL_CHANNELS),
            ]
            self.channel.value = MODEL_CHANNELS
            self.channel.tooltip = (
                f"The loaded model learnt from channels {', '.join(names)}, and its features "
                "use them all. Choose one channel to train a new model on."
            )
        else:  # an earlier model's channels are not this one's
            self._drop_model_channels()

    def _show_settings(self, source: TrainConfig, shown: TrainConfig) -> None:
        """Take the settings without a box, box size and Train on from ``source``; show
        ``shown``'s values in the other boxes (the sizes are the callers')."""
        self._without_box = {k: v for k, v in source.to_dict().items() if k not in BOX_FIELDS}
        self._network, self._default_train_on = source.crop_size, source.train_on
        boxes = [n for n in (*CROP_FIELDS, *TRAINING_FIELDS) if n not in ("train_on", "input_size")]
        self._exact = show_values({n: getattr(self, n) for n in boxes}, shown)
        self.train_on_chosen = False  # follows the mapping again, with this default
        self._follow_mapping()

    # -- reactions ------------------------------------------------------------------------------
    def _on_preset(self) -> None:
        name = self.preset.value
        if name == FROM_MODEL:  # shown by show_model only
            return
        show_choice(self.preset, name)  # the model's settings are gone: so is its choice
        preset = TrainConfig.from_preset(name)
        self._show_settings(preset, preset)
        self.size_chosen = False  # the preset's box, fitted to the file's cells
        self._fit_size()

    def _on_optimizer(self) -> None:
        self.momentum.visible = self.optimizer.value == "nesterov"

    def _on_channel(self) -> None:
        # a channel chosen (or another file): the loaded model's channels leave the box
        if self.channel.value != MODEL_CHANNELS:
            self._drop_model_channels()

    def _drop_model_channels(self) -> None:
        if MODEL_CHANNELS in self.channel.choices:
            self.channel.choices = list(self.channel_index.items())
        self.channel.tooltip = _TIPS["channel"]

    def _on_object(self) -> None:
        channel = self._object_channel.get(self.object.value)
        if channel is not None and channel in self.channel.choices:
            self.channel.value = channel
        self._fit_size()

    def _fit_size(self) -> None:
        """Cell size and network input for the chosen object: a box fitted to its cells
        and resampled to the default size, or the defaults when those suit them."""
        if self.size_chosen:
            return
        network = self._network
        box = self._info.boxes(network).get(self.object.value) if self._info else None
        self._setting_size = True
        try:
            self.crop_size.value = box or network
            self.input_size.value = network if box else field_info("input_size")["default"]
        finally:
            self._setting_size = False
        self.crop_size.tooltip = size_tip(box, network, self._smallest_side)

    def _on_size(self) -> None:
        if not self._setting_size:
            self.size_chosen = True

    def _on_controls(self) -> None:
        # Qt says editing finished at every Enter and focus change, typed or not
        if self.control_token() != self._token_read:
            self._on_mapping()

    def _on_mapping(self) -> None:
        from napari.utils.notifications import show_error, show_warning

        problem, mapping = self._read_mapping()
        if problem is not None:
            show_error(problem)
        elif mapping is not None and not mapping.control_conditions:
            # no novelty nor hits without controls, and training on them would fail
            show_warning(f"{mapping.path.name}: {mapping.controls_hint()}.")
        self._follow_mapping()

    def _follow_mapping(self) -> None:
        if self.train_on_chosen:
            return
        self._setting_train_on = True
        try:
            # The preset's, but never "controls" without a mapping to name them.
            self.train_on.value = self._default_train_on if self.mapping_path() else "all"
        finally:
            self._setting_train_on = False

    def mapping_problem(self) -> str | None:
        """Why the chosen mapping cannot serve the chosen CellH5 file, or None.

        Asked when a mapping is chosen, so that a file that is no mapping, or another
        plate's, is named at once rather than when Train is pressed. A CellH5 file that
        does not open is left to the file's own checks.
        """
        return self._read_mapping()[0]

    def _read_mapping(self) -> tuple[str | None, PositionMapping | None]:
        # (what is wrong, None) or (None, the mapping read with the controls' token)
        self._token_read = token = self.control_token()
        return read_mapping_for(self.mapping_path(), self.file_path(), token)

    def _on_train_on(self) -> None:
        if not self._setting_train_on:
            self.train_on_chosen = True
