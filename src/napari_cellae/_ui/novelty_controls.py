"""The results tab's novelty boxes: the bar a cell must pass, and how it is scored.

The options of ``cellae encode`` / ``cellae hits`` a biologist changes after looking at a
run (``--novelty-percentile``, ``--neighbours``, ``--novelty``, ``--nu``), with the same
defaults and ranges (``tests/test_form_cli_parity.py``). Changing one asks the run's
findings to be made again (:mod:`~napari_cellae._ui.rescoring`), without encoding again.
"""

from __future__ import annotations

from dataclasses import replace

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QWidget,
)

from napari_cellae.cli.usage import MAX_NEIGHBOURS
from napari_cellae.pipeline.discovery import DiscoveryOptions

__all__ = ["METHODS", "NU_DECIMALS", "PERCENTILE_DECIMALS", "NoveltyControls"]

#: score methods offered: (label, DiscoveryOptions.method)
METHODS = (("nearest controls", "knn"), ("one-class SVM", "svm"))
PERCENTILE_DECIMALS = 1  # 97.5 is a bar people use
NU_DECIMALS = 3  # cellae takes any nu above 0 and below 1: the box from 0.001 to 0.999
#: said on the disabled boxes
NO_RUN = "Train or load a model first: the boxes re-score a run's cells."
NO_CONTROLS = (
    "Novelty needs negative controls: give a position mapping whose Group column marks "
    "them and train (or load a model) again."
)
_PERCENTILE_TIP = (
    "A cell is novel when its novelty score is above this percentile of the negative-"
    "control cells' scores. Raise it (95: the original hit lists' bar) for fewer, surer "
    "novel cells; lower bars count wells enriched in cells the controls also have (mitotic "
    "arrest) more reliably. Changing it only draws the bar again through the scores, and "
    "the hit table and phenotype groups follow. Command line: cellae encode / cellae hits "
    "--novelty-percentile P."
)
_METHOD_TIP = (
    "How a cell's novelty is scored against the negative-control cells. k nearest "
    "controls: the mean distance to its nearest control cells in standardised feature "
    "space (novelty AUROC 0.90 on a benchmark screen). One-class SVM: as the CellH5 "
    "outlier tool did, on the controls' principal components (AUROC 0.75). Changing it "
    "scores every cell again from the features (no new encoding). Command line: --novelty "
    "knn|svm."
)
_NEIGHBOURS_TIP = (
    "How many nearest control cells a cell's distance is averaged over: fewer follow small "
    "groups of odd control cells, more smooth the score. Scores every cell again. Command "
    "line: --neighbours K."
)
_NU_TIP = (
    "Share of the control cells the one-class SVM may leave outside its boundary: larger "
    "draws a tighter boundary. Scores every cell again. Command line: --nu."
)


class _Short(QDoubleSpinBox):
    """A spin box that shows 80, not 80.0, and 0.05, not 0.050 (97.5 as such)."""

    def textFromValue(self, value: float) -> str:
        """``value`` without trailing zeros."""
        return f"{round(value, self.decimals()):g}"


class NoveltyControls(QWidget):
    """*Novel above* [P th percentile of controls]; *Scored by* [method]; *Neighbours* [k]
    (or the SVM's *nu*).

    Signals
    -------
    changed
        The user changed an option (not sent by :meth:`show_options`).
    """

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        default = DiscoveryOptions()
        self.percentile = _Short()
        self.percentile.setDecimals(PERCENTILE_DECIMALS)
        self.percentile.setSuffix("th percentile of controls")
        self.percentile.setRange(0.0, 100.0)
        self.percentile.setSingleStep(1.0)
        self.percentile.setValue(default.percentile)
        self.percentile.setToolTip(_PERCENTILE_TIP)
        self.method = QComboBox()
        for label, method in METHODS:
            self.method.addItem(label, method)
        self.method.setToolTip(_METHOD_TIP)
        # napari's style keeps a combo box at least 120 px wide: the dock is narrow
        self.method.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.method.setMinimumContentsLength(6)
        self.neighbours = QSpinBox()
        self.neighbours.setRange(1, MAX_NEIGHBOURS)
        self.neighbours.setValue(default.k)
        self.neighbours.setToolTip(_NEIGHBOURS_TIP)
        self.nu = _Short()
        self.nu.setDecimals(NU_DECIMALS)
        self.nu.setRange(10**-NU_DECIMALS, 1 - 10**-NU_DECIMALS)
        self.nu.setSingleStep(0.01)
        self.nu.setValue(default.nu)
        self.nu.setToolTip(_NU_TIP)
        for box in (self.percentile, self.neighbours, self.nu):
            box.setKeyboardTracking(False)  # typing 95 asks once, not for 9 and 95
        self.state = QLabel("")  # "re-scoring…"
        self._seed, self._groups = default.seed, default.groups  # a run's, kept

        # the method's setting: a row of its own (the dock is narrow), the SVM's nu or k
        self.setting = QLabel("")
        setting = QHBoxLayout()
        setting.setContentsMargins(0, 0, 0, 0)
        setting.addWidget(self.neighbours)
        setting.addWidget(self.nu)
        setting.addStretch(1)
        rows = QFormLayout(self)
        rows.setContentsMargins(0, 0, 0, 0)
        rows.addRow("Novel above", self.percentile)
        rows.addRow("Scored by", self.method)
        rows.addRow(self.setting, setting)
        rows.addRow(self.state)
        self.state.setVisible(False)
        self._show_method()
        self._quiet = False
        self.percentile.valueChanged.connect(self._changed)
        self.neighbours.valueChanged.connect(self._changed)
        self.nu.valueChanged.connect(self._changed)
        self.method.currentIndexChanged.connect(self._on_method)
        self.set_available(False, NO_RUN)

    def options(self) -> DiscoveryOptions:
        """The options the boxes show (the groups and seed of the run shown, else the
        defaults: ``cellae encode``'s without those options)."""
        return DiscoveryOptions(
            method=str(self.method.currentData()),
            k=int(self.neighbours.value()),
            nu=float(self.nu.value()),
            percentile=float(self.percentile.value()),
            groups=self._groups,
            seed=self._seed,
        )

    def show_options(self, options: DiscoveryOptions) -> None:
        """Show ``options`` (a run's) without sending ``changed``."""
        self._quiet = True
        try:
            self.method.setCurrentIndex(self.method.findData(options.method))
            self.neighbours.setValue(options.k)
            self.nu.setValue(options.nu)
            self.percentile.setValue(options.percentile)
        finally:
            self._quiet = False
        self._seed, self._groups = options.seed, options.groups
        self._show_method()

    def set_available(self, available: bool, why: str = "") -> None:
        """Enable the boxes, or disable them saying ``why`` (as the tooltip)."""
        for box in (self.percentile, self.method, self.neighbours, self.nu):
            box.setEnabled(available)
        self.setToolTip("" if available else why)

    def set_state(self, text: str) -> None:
        """Say what the re-scoring does ("" hides it)."""
        self.state.setText(text)
        self.state.setVisible(bool(text))

    def same_scores(self, options: DiscoveryOptions) -> bool:
        """Whether the boxes' options score the cells as ``options`` do (only the bar may
        differ)."""
        return replace(self.options(), percentile=options.percentile) == options

    def _on_method(self, _index: int) -> None:
        self._show_method()
        self._changed()

    def _show_method(self) -> None:
        knn = self.method.currentData() == "knn"
        self.neighbours.setVisible(knn)  # nu is the SVM's only
        self.nu.setVisible(not knn)
        self.setting.setText("Neighbours" if knn else "nu")
        self.setting.setToolTip(_NEIGHBOURS_TIP if knn else _NU_TIP)

    def _changed(self, *_: object) -> None:
        if not self._quiet:
            self.changed.emit()
