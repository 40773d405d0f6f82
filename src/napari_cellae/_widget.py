"""The Deep Learning Module dock widget: train an autoencoder on cell crops, show results.

All heavy work (crop collection, training, encoding, saving) runs in napari thread
workers; the GUI thread only receives small epoch reports and updates a plot and a few
layers. The worker jobs are plain generators (:func:`train_job`, :func:`encode_job`) so
they can be run and tested without Qt.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.colormaps.standardize_color import transform_color
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from napari_cellae._reader import METADATA_KEY, position_labels
from napari_cellae.core.cores import usable_cores
from napari_cellae.core.guide import PARAMETER_GUIDE

if TYPE_CHECKING:
    import napari

    from napari_cellae.core.crops import CropSet
    from napari_cellae.core.training import EpochReport, TrainConfig, TrainedModel, Trainer
    from napari_cellae.io.mapping import PositionMapping

# Layer names of the results (reused, so repeated training replaces rather than piles up).
GALLERY_LAYER = "gallery (input | output)"
EMBEDDING_LAYER = "feature embedding"
SELECTED_LAYER = "selected cell (input | output)"
MARKER_LAYER = "selected cell"

_GALLERY_PAIRS = 32  # 8 rows of 4 input|output pairs
COLLAPSED_WARNING = (
    "Training got stuck: the network shows the same picture for every cell (the loss "
    "stopped falling), so its features will not tell cells apart. Stop, lower the learning "
    "rate (e.g. to a third) or change the seed, and train again."
)
_GALLERY_DELAY_MS = 40
_SPINNER_SPEED = 10  # percent of napari's activity-spinner frame rate while a job runs
_PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#7f7f7f",
]

_TIPS = {
    "file": "The CellH5 file (.ch5) written by CellCognition or CellProfiler's "
    "ExportToCellH5: images plus the segmented cells.",
    "object": "Which segmented objects to learn from, e.g. nuclei (primary) or whole "
    "cells (secondary).",
    "channel": "The fluorescence channel whose pixels the network learns from.",
    "mapping": "Optional table that says which treatment is in which well and which wells "
    "are negative controls (CellCognition position mapping).",
    # the training parameters: the same guidance as `cellae train --help`
    "cell_size": PARAMETER_GUIDE["crop_size"],
    **{
        name: PARAMETER_GUIDE[name]
        for name in (
            "train_on",
            "optimizer",
            "learning_rate",
            "momentum",
            "batch_size",
            "corruption",
            "epochs",
            "samples",
            "architecture",
        )
    },
}


# -- worker jobs (no Qt) -------------------------------------------------------------------
@dataclass
class TrainRequest:
    """What to train on, and a thread-safe way to stop the job.

    Attributes
    ----------
    path : Path
        CellH5 file.
    object_name : str
        Object type to crop around.
    channel : int
        Raw channel index.
    mapping_path : Path or None
        Position mapping.
    config : TrainConfig
        Training parameters.
    """

    path: Path
    object_name: str
    channel: int
    mapping_path: Path | None
    config: TrainConfig
    trainer: Trainer | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self) -> None:
        """Ask the job to stop: training before its next batch, or computing features
        before the next chunk of cells."""
        with self._lock:
            self._stopped.set()
            if self.trainer is not None:
                self.trainer.stop()

    def rearm(self) -> None:
        """Forget an earlier stop (training is over), so that a new one stops encoding."""
        with self._lock:
            self._stopped.clear()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopped.is_set()

    def attach(self, trainer: Trainer) -> None:
        """Remember the trainer (worker thread); stop it at once if stop came first."""
        with self._lock:
            self.trainer = trainer
            if self._stopped.is_set():
                trainer.stop()


@dataclass
class JobResult:
    """Everything the widget shows after training or encoding.

    ``features`` and ``embedding`` are None when computing the features was stopped.
    """

    trained: TrainedModel
    crops: CropSet
    features: np.ndarray | None
    embedding: np.ndarray | None
    mapping: PositionMapping | None
    stopped: bool = False


class JobFailed(Exception):
    """A worker job failed with a RuntimeError (e.g. training diverged).

    superqt's generator workers treat a RuntimeError as "the worker was deleted": they
    swallow it and never emit ``errored`` or ``finished``, which would leave the widget
    busy forever. Jobs therefore re-raise RuntimeErrors as this exception.
    """


def _guarded(job: Callable[..., Generator[Any, None, Any]]) -> Callable[..., Any]:
    """Wrap a generator job so that RuntimeErrors reach the worker's ``errored`` signal."""

    @functools.wraps(job)
    def run(*args: Any, **kwargs: Any) -> Generator[Any, None, Any]:
        try:
            return (yield from job(*args, **kwargs))
        except RuntimeError as err:
            raise JobFailed(str(err)) from err

    return run


def _limit_threads() -> None:
    # Leave one core to the GUI thread so the viewer stays responsive while torch works.
    import torch

    torch.set_num_threads(max(1, min(torch.get_num_threads(), usable_cores() - 1)))


def gallery_grid(inputs: np.ndarray, outputs: np.ndarray, columns: int = 4) -> np.ndarray:
    """Tile input|output pairs of single-channel crops into one image.

    Parameters
    ----------
    inputs, outputs : ndarray (n, s, s)
        Crops scaled to [0, 1].
    columns : int
        Pairs per row.

    Returns
    -------
    ndarray float32
        Rows of ``columns`` pairs; a 1-pixel gap inside a pair, 3 pixels between pairs
        (gaps are NaN-free zeros).
    """
    n, s = inputs.shape[0], inputs.shape[-1]
    rows = max(1, -(-n // columns))
    pair_w = 2 * s + 1
    gap = 3
    out = np.zeros((rows * (s + gap) - gap, columns * (pair_w + gap) - gap), np.float32)
    for i in range(n):
        r, c = divmod(i, columns)
        y, x = r * (s + gap), c * (pair_w + gap)
        out[y : y + s, x : x + s] = inputs[i]
        out[y : y + s, x + s + 1 : x + pair_w] = outputs[i]
    return out


def _encode_chunks(
    trained: TrainedModel, crops: CropSet, chunk: int = 2048
) -> Iterator[tuple[int, np.ndarray | None]]:
    """Encode in chunks, yielding progress; the last item carries the features."""
    from napari_cellae.pipeline.steps import encode_crops

    n = len(crops)
    parts = []
    for start in range(0, n, chunk):
        part = crops.subset(np.arange(start, min(n, start + chunk)))
        parts.append(encode_crops(trained, part))
        yield min(n, start + chunk), None
    yield n, np.concatenate(parts) if parts else np.zeros((0, trained.model.n_features))


def train_job(request: TrainRequest) -> Generator[tuple[Any, ...], None, JobResult | None]:
    """Collect crops, train, encode and embed; a generator for a napari thread worker.

    Yields
    ------
    tuple
        ``("status", text)``, ``("epoch", EpochReport, gallery ndarray)``,
        ``("warning", text)`` (the network collapsed) or ``("encode", done, total)``.

    Returns
    -------
    JobResult or None
        None when stopped before training began.
    """
    from napari_cellae.pipeline import steps as pipeline

    _limit_threads()
    config = request.config
    yield ("status", "Reading cells from the file…")
    with pipeline.open_cellh5(request.path) as ch5:
        mapping = pipeline.load_mapping(request.mapping_path, ch5)
        obj = pipeline.resolve_object(ch5, request.object_name)
        crops = pipeline.collect(ch5, obj, config.crop_size, [request.channel])
    if request.stopped:
        return None
    trainer = pipeline.make_trainer(crops, mapping, config)
    request.attach(trainer)
    train_idx = trainer.source_indices
    rng = np.random.default_rng(config.seed)
    shown = np.sort(rng.choice(train_idx, min(_GALLERY_PAIRS, len(train_idx)), replace=False))
    shown_crops = crops.crops[shown]
    yield ("status", f"Training on {len(train_idx)} of {len(crops)} cells…")
    last: EpochReport | None = None
    warned = False
    for report in trainer.run():
        last = report
        trained = trainer.result()
        inputs, outputs = _reconstruct_gallery(trained, shown_crops)
        yield ("epoch", report, gallery_grid(inputs, outputs))
        if report.collapsed and not warned:
            warned = True
            yield ("warning", COLLAPSED_WARNING)
    trained = trainer.result()
    stopped = bool(last is not None and last.stopped) or request.stopped
    # Stopping training still shows the features of what was learnt; a Stop from now on
    # skips them (on a large screen encoding takes a while).
    request.rearm()
    pair = yield from _features_and_embedding(
        trained, crops, config.seed, aborted=lambda: request.stopped
    )
    if pair is None:
        return JobResult(trained, crops, None, None, mapping, stopped=True)
    return JobResult(trained, crops, *pair, mapping, stopped)


def encode_job(
    path: Path, trained: TrainedModel, mapping_path: Path | None, model_path: Path | None = None
) -> Generator[tuple[Any, ...], None, JobResult]:
    """Apply a loaded model to every cell of a file; a generator for a thread worker.

    Yields
    ------
    tuple
        ``("status", text)`` or ``("encode", done, total)``.
    """
    from napari_cellae.pipeline import steps as pipeline

    _limit_threads()
    yield ("status", "Reading cells from the file…")
    with pipeline.open_cellh5(path) as ch5:
        mapping = pipeline.load_mapping(mapping_path, ch5)
        obj, channels = pipeline.check_model_fits(trained, ch5, model_path)
        crops = pipeline.collect(ch5, obj, trained.config.crop_size, channels)
    # (Stopped through the worker itself: it quits at the next progress message.)
    pair = yield from _features_and_embedding(trained, crops, trained.config.seed)
    assert pair is not None
    return JobResult(trained, crops, *pair, mapping)


def _features_and_embedding(
    trained: TrainedModel,
    crops: CropSet,
    seed: int,
    aborted: Callable[[], bool] | None = None,
) -> Generator[tuple[Any, ...], None, tuple[np.ndarray, np.ndarray] | None]:
    """Encode every cell in chunks (yielding progress), then embed the features in 2-D;
    None when ``aborted()`` turns true before a chunk."""
    from napari_cellae.core.features import embed_2d

    yield ("status", "Computing features of all cells…")
    features = None
    chunks = _encode_chunks(trained, crops)
    while not (aborted is not None and aborted()):
        try:
            done, result = next(chunks)
        except StopIteration:
            assert features is not None
            return features, embed_2d(features)
        yield ("encode", done, len(crops))
        features = result
    return None


def _reconstruct_gallery(trained: TrainedModel, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First-channel inputs and reconstructions in [0, 1], (n, s, s) each."""
    inputs = np.asarray(trained.normalisation.apply(crops), np.float32)[:, 0]
    outputs = np.clip(trained.reconstruct(crops)[:, 0], 0, 1)
    return inputs, outputs


# -- loss plot -------------------------------------------------------------------------------
class LossPlot(QWidget):
    """Training and held-out loss per epoch, drawn with QPainter on a log scale.

    A few hundred points at most: painting takes about a millisecond, so the plot can be
    redrawn after every epoch without stalling the viewer (matplotlib took ~0.3 s).
    """

    TRAIN_COLOUR = "#4fc3f7"
    HELD_COLOUR = "#ffb74d"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.epochs: list[int] = []
        self.train: list[float] = []
        self.held: list[float] = []

    def clear(self) -> None:
        """Forget all points."""
        self.epochs.clear()
        self.train.clear()
        self.held.clear()
        self.update()

    def add(self, epoch: int, train_loss: float, held_out_loss: float) -> None:
        """Append one epoch and schedule a repaint."""
        self.epochs.append(epoch)
        self.train.append(train_loss)
        self.held.append(held_out_loss)
        self.update()

    def paintEvent(self, event: Any) -> None:
        """Draw axes, both curves and a legend."""
        from qtpy.QtCore import QPointF, QRectF
        from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF

        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        w, h = self.width(), self.height()
        painter.fillRect(0, 0, w, h, QColor("#262930"))
        font = painter.font()
        font.setPointSizeF(8)
        painter.setFont(font)
        text, axis = QColor("#d1d2d4"), QColor("#8f9196")
        left, right, top, bottom = 58, 10, 22, 26
        plot = QRectF(left, top, max(10, w - left - right), max(10, h - top - bottom))
        painter.setPen(QPen(axis))
        painter.drawRect(plot)
        painter.setPen(QPen(text))
        painter.drawText(QRectF(left, h - bottom + 4, plot.width(), 16), Qt.AlignHCenter, "epoch")
        values = [v for v in self.train + self.held if np.isfinite(v) and v > 0]
        if not self.epochs or not values:
            painter.drawText(plot, Qt.AlignCenter, "loss per epoch appears here")
            painter.end()
            return
        lo, hi = np.log10(min(values)), np.log10(max(values))
        if hi - lo < 0.1:
            lo, hi = lo - 0.05, hi + 0.05
        n = max(self.epochs[-1], 2)

        def point(epoch: float, value: float) -> QPointF:
            x = plot.left() + (epoch - 1) / (n - 1) * plot.width()
            y = plot.bottom() - (np.log10(value) - lo) / (hi - lo) * plot.height()
            return QPointF(x, y)

        # y labels at the ends (log scale), x labels first/last epoch
        painter.drawText(QRectF(0, plot.top() - 7, left - 4, 14), Qt.AlignRight, f"{10**hi:.1e}")
        painter.drawText(QRectF(0, plot.bottom() - 7, left - 4, 14), Qt.AlignRight, f"{10**lo:.1e}")
        painter.drawText(QRectF(left - 20, plot.bottom() + 2, 40, 14), Qt.AlignHCenter, "1")
        painter.drawText(
            QRectF(plot.right() - 20, plot.bottom() + 2, 40, 14), Qt.AlignHCenter, str(n)
        )
        for series, colour, label, dx in (
            (self.train, self.TRAIN_COLOUR, "training cells", 0),
            (self.held, self.HELD_COLOUR, "held-out cells", 110),
        ):
            pen = QPen(QColor(colour))
            pen.setWidthF(1.8)
            painter.setPen(pen)
            pts = [point(e, v) for e, v in zip(self.epochs, series, strict=True) if v > 0]
            if len(pts) > 1:
                painter.drawPolyline(QPolygonF(pts))
            for p in pts[-1:] if len(pts) > 1 else pts:
                painter.drawEllipse(p, 2.5, 2.5)
            painter.drawLine(int(left + dx), 11, int(left + dx + 16), 11)
            painter.setPen(QPen(text))
            painter.drawText(QRectF(left + dx + 20, 3, 100, 16), Qt.AlignLeft, label)
        painter.end()


# -- the widget ---------------------------------------------------------------------------------
class DeepLearningWidget(QWidget):
    """Learn features of single cells from their pixels with a denoising autoencoder.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer to show images, reconstructions and the feature embedding in.
    """

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        from napari_cellae.core.architecture import DEFAULT_ARCHITECTURE

        self.viewer = napari_viewer
        self._worker: Any = None
        self._request: TrainRequest | None = None
        self._progress: Any = None
        self._trained: TrainedModel | None = None
        self.result: JobResult | None = None
        # linking (arrays, not dicts: a real screen has ~10^6 cells)
        self._linked: list[Any] = []  # centres layers linked to the crops
        self._crop_layer = np.zeros(0, np.int64)  # per crop: index into _linked or -1
        self._crop_row = np.zeros(0, np.int64)  # per crop: row in that layer
        self._row_to_crop: dict[int, np.ndarray] = {}  # id(layer) -> crop per row or -1
        self._watched: list[Any] = []
        self._syncing = False

        # inputs
        self.file = FileEdit(
            label="CellH5 file", mode="r", filter="CellH5 (*.ch5 *.h5 *.hdf5)", nullable=True
        )
        self.object = ComboBox(label="Objects", choices=[])
        self.channel = ComboBox(label="Channel", choices=[])
        self.cell_size = SpinBox(label="Cell size (px)", min=16, max=256, value=40)
        self.mapping = FileEdit(
            label="Position mapping", mode="r", filter="Mapping (*.txt *.tsv *.csv)", nullable=True
        )
        self.train_on = ComboBox(
            label="Train on",
            choices=[("control wells", "controls"), ("all cells", "all")],
            value="controls",
        )
        self.optimizer = ComboBox(
            label="Optimizer",
            choices=[("AdaGrad", "adagrad"), ("Nesterov momentum", "nesterov")],
            value="adagrad",
        )
        self.learning_rate = FloatSpinBox(
            label="Learning rate", min=0.001, max=1.0, step=0.01, value=0.05
        )
        self.momentum = FloatSpinBox(label="Momentum", min=0.0, max=0.99, step=0.05, value=0.9)
        self.batch_size = SpinBox(label="Cells per batch", min=4, max=1000, value=128)
        self.corruption = FloatSpinBox(label="Corruption", min=0.0, max=0.9, step=0.05, value=0.0)
        self.epochs = SpinBox(label="Epochs", min=1, max=1000, value=64)
        self.samples = SpinBox(
            label="Training cells", min=10, max=10_000_000, step=1000, value=50_000
        )
        self.architecture = LineEdit(label="Network", value=DEFAULT_ARCHITECTURE)
        for name, tip in _TIPS.items():
            getattr(self, name).tooltip = tip

        data_box = Container(
            widgets=[self.file, self.object, self.channel, self.cell_size, self.mapping]
        )
        train_box = Container(
            widgets=[
                self.train_on,
                self.optimizer,
                self.learning_rate,
                self.momentum,
                self.batch_size,
                self.corruption,
                self.epochs,
                self.samples,
                self.architecture,
            ]
        )
        self.train_button = PushButton(text="Train")
        self.train_button.tooltip = "Cut out every cell, train the network, then compute features."
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.stop_button.tooltip = "Stop after the current batch; the model learnt so far is kept."
        buttons = Container(widgets=[self.train_button, self.stop_button], layout="horizontal")
        self.save_features_button = PushButton(text="Save features…", enabled=False)
        self.save_features_button.tooltip = (
            "Write the features of all cells as a CellCognition Explorer .hdf file."
        )
        self.save_model_button = PushButton(text="Save model…", enabled=False)
        self.save_model_button.tooltip = "Save the trained network to reuse it on other plates."
        self.load_model_button = PushButton(text="Load model…")
        self.load_model_button.tooltip = (
            "Load a saved network and compute features of the cells in this file."
        )
        results = Container(
            widgets=[self.save_features_button, self.save_model_button, self.load_model_button],
            layout="horizontal",
        )
        for container in (data_box, train_box, buttons, results):
            container.margins = (0, 0, 0, 0)

        self.status = QLabel("Choose a file and press Train.")
        self.status.setWordWrap(True)
        # fixed height: a new message per epoch must not re-layout (and repaint) the window
        self.status.setFixedHeight(3 * self.status.fontMetrics().lineSpacing() + 4)
        self.status.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.position_label = QLabel("")
        self.loss_plot = LossPlot()
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.RichText)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        for title, box in (("Cells", data_box), ("Training", train_box)):
            group = QGroupBox(title)
            inner = QVBoxLayout(group)
            inner.setContentsMargins(4, 4, 4, 4)
            inner.addWidget(box.native)
            layout.addWidget(group)
        layout.addWidget(buttons.native)
        layout.addWidget(self.status)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.legend)
        layout.addWidget(self.position_label)
        layout.addWidget(results.native)
        layout.addStretch(1)
        self.setMinimumWidth(330)

        self.optimizer.changed.connect(self._on_optimizer)
        self.file.changed.connect(self._on_file_changed)
        self.object.changed.connect(self._on_object_changed)
        # lambdas: a button's signal carries its checked state, which must not reach the
        # methods' optional arguments
        self.train_button.changed.connect(lambda: self.start_training())
        self.stop_button.changed.connect(lambda: self.stop())
        self.save_features_button.changed.connect(lambda: self._ask_save_features())
        self.save_model_button.changed.connect(lambda: self._ask_save_model())
        self.load_model_button.changed.connect(lambda: self._ask_load_model())
        self.viewer.dims.events.current_step.connect(self._on_step)
        self._on_optimizer()

        if len(self.viewer.layers) == 0:
            self._open_demo()
        self._adopt_open_file()

    # -- inputs --------------------------------------------------------------------------------
    def _open_demo(self) -> None:
        try:
            self.viewer.open_sample("napari-cellae", "demo_screen")
        except Exception as err:  # the widget stays usable with a user's file
            show_error(f"Could not open the demo screen: {err}")

    def _cellae_layers(self, kind: str | None = None) -> list[Any]:
        out = []
        for layer in self.viewer.layers:
            meta = layer.metadata.get(METADATA_KEY) if hasattr(layer, "metadata") else None
            if meta and (kind is None or meta.get("kind") == kind):
                out.append(layer)
        return out

    def _adopt_open_file(self) -> None:
        """Preset file (and mapping) from the CellH5 layers already in the viewer."""
        layers = self._cellae_layers()
        if not layers:
            return
        meta = layers[0].metadata[METADATA_KEY]
        self.file.value = Path(meta["path"])  # also presets the mapping, see below

    def _on_optimizer(self) -> None:
        self.momentum.visible = self.optimizer.value == "nesterov"

    def _on_file_changed(self) -> None:
        path = self.file.value
        self.object.choices = []
        self.channel.choices = []
        if path is None or str(path) in ("", "."):
            return
        from napari_cellae.io.cellh5 import CellH5

        try:
            with CellH5(path) as ch5:
                objects = list(ch5.object_names)
                default = ch5.default_object
                channels = [(c.name, c.index) for c in ch5.channels]
                object_channel = {o: ch5.object_channel(o) for o in objects}
                smallest = min(min(ch5.image_shape(p)[-2:]) for p in ch5.positions)
        except (ValueError, OSError) as err:
            show_error(str(err))
            self.status.setText(f"Cannot use this file: {err}")
            return
        self._object_channel = object_channel
        self._channel_index = dict(channels)
        self.channel.choices = channels
        self.object.choices = objects
        self.object.value = default
        self.cell_size.max = max(16, min(256, smallest))
        self.status.setText(f"{Path(path).name}: press Train to learn features of its cells.")
        self._preset_mapping(Path(path))
        if not any(
            Path(m.metadata[METADATA_KEY]["path"]) == Path(path) for m in self._cellae_layers()
        ):
            try:
                self.viewer.open(str(path), plugin="napari-cellae")
            except Exception as err:
                show_error(f"Could not show {path}: {err}")

    def _preset_mapping(self, path: Path) -> None:
        """Preset the mapping remembered with the file's layers (e.g. the demo's).

        A mapping that was preset for another file is cleared rather than kept.
        """
        known = [
            m.metadata[METADATA_KEY].get("mapping")
            for m in self._cellae_layers()
            if Path(m.metadata[METADATA_KEY]["path"]) == path
        ]
        mapping = next((Path(m) for m in known if m), None)
        if mapping is not None:
            self.mapping.value = mapping
            self._mapping_preset = mapping
        elif self.mapping.value is not None and self.mapping.value == getattr(
            self, "_mapping_preset", None
        ):
            self.mapping.value = None
            self._mapping_preset = None

    def _on_object_changed(self) -> None:
        obj = self.object.value
        channel = getattr(self, "_object_channel", {}).get(obj)
        if channel is not None and channel in self.channel.choices:
            self.channel.value = channel

    def config(self) -> TrainConfig:
        """The training parameters currently entered.

        Raises
        ------
        ValueError
            If a value is out of range or the network does not fit the cell size.
        """
        from napari_cellae.core.training import TrainConfig

        # TrainConfig validates ranges and that the network fits the cell size
        return TrainConfig(
            crop_size=int(self.cell_size.value),
            architecture=str(self.architecture.value).strip(),
            optimizer=self.optimizer.value,
            learning_rate=float(self.learning_rate.value),
            momentum=float(self.momentum.value),
            batch_size=int(self.batch_size.value),
            corruption=float(self.corruption.value),
            epochs=int(self.epochs.value),
            samples=int(self.samples.value),
            train_on=self.train_on.value,
        )

    def _set_running(self, running: bool) -> None:
        self.train_button.enabled = not running
        self.load_model_button.enabled = not running
        self.stop_button.enabled = running
        has_result = self.result is not None and not running
        self.save_features_button.enabled = has_result
        self.save_model_button.enabled = self._trained is not None and not running

    # -- training ------------------------------------------------------------------------------
    def start_training(self, start: bool = True) -> Any:
        """Start a training worker with the current inputs.

        Parameters
        ----------
        start : bool
            False returns the worker unstarted (call ``worker.start()``), so that a caller
            can connect to its signals first.

        Returns
        -------
        GeneratorWorker or None
            None if the inputs are unusable (a notification says why).
        """
        if self._worker is not None:
            return None
        path = self.file.value
        if path is None or not Path(path).is_file():
            show_error(f"Choose a CellH5 file first (got {path}).")
            return None
        if self.object.value is None or self.channel.value is None:
            show_error(f"{path}: no objects or channels to learn from.")
            return None
        try:
            config = self.config()
        except ValueError as err:
            show_error(str(err))
            return None
        mapping = self.mapping.value
        mapping = Path(mapping) if mapping and str(mapping) not in ("", ".") else None
        self._request = TrainRequest(
            Path(path), self.object.value, int(self.channel.value), mapping, config
        )
        self.loss_plot.clear()
        # Add the (blank) gallery now: adding a layer costs napari a few hundred ms, which
        # the user expects at the click, not as a stall in the middle of training.
        active = self.viewer.layers.selection.active
        blank = np.zeros((_GALLERY_PAIRS, config.crop_size, config.crop_size), np.float32)
        new_gallery = GALLERY_LAYER not in self.viewer.layers
        self._show_gallery(gallery_grid(blank, blank))
        self._embedding_layer()  # empty until the features are computed
        if active is not None and active in self.viewer.layers:
            self.viewer.layers.selection.active = active  # keep the user's layer controls
        if new_gallery:
            self.viewer.reset_view()
        self._progress = progress(total=config.epochs, desc="Training autoencoder")
        worker = create_worker(
            _guarded(train_job),
            self._request,
            _start_thread=False,
            _connect={"errored": self._on_errored},
        )
        self._start(worker, start)
        return worker

    def _start(self, worker: Any, start: bool = True) -> None:
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._set_running(True)
        self._throttle_spinners(True)
        if start:
            worker.start()

    def stop(self) -> None:
        """Stop training after the current batch (the model learnt so far is kept)."""
        if self._request is not None:
            self._request.stop()
            self.status.setText("Stopping…")
        elif self._worker is not None:
            self._worker.quit()

    def _on_yielded(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "status":
            self.status.setText(message[1])
        elif kind == "epoch":
            report, gallery = message[1], message[2]
            self.loss_plot.add(report.epoch, report.train_loss, report.held_out_loss)
            if self._progress is not None and not report.stopped:
                self._progress.update(1)
            self.status.setText(
                f"Epoch {report.epoch}/{report.epochs}: loss {report.train_loss:.2e} "
                f"(held-out {report.held_out_loss:.2e}), "
                f"{report.samples_per_second:.0f} cells/s"
                + (" — stopped" if report.stopped else "")
            )
            # The gallery redraws the canvas: do it in a later event-loop turn so that the
            # two repaints (dock, canvas) do not add up into one long stall.
            self._later(lambda: self._show_gallery(gallery))
        elif kind == "warning":
            show_warning(message[1])
            self.status.setText(message[1])
        elif kind == "encode":
            done, total = message[1], message[2]
            self.status.setText(f"Computing features: {done}/{total} cells")

    def _later(self, action: Callable[[], Any]) -> None:
        """Run a cosmetic update in a later event-loop turn (timer owned by the widget)."""
        timer = QTimer(self)
        timer.setSingleShot(True)

        def run() -> None:
            timer.deleteLater()
            # KeyError: napari's canvas forgot the layers because the viewer closed meanwhile
            with contextlib.suppress(KeyError):
                action()

        timer.timeout.connect(run)
        timer.start(_GALLERY_DELAY_MS)

    def _on_returned(self, result: JobResult | None) -> None:
        if result is None:
            self.status.setText("Stopped before training began.")
            return
        if result.features is None:
            # Features of an earlier run would not belong to this model: drop them.
            self.result = None
            self._trained = result.trained
            self.status.setText(
                "Stopped while computing features. The trained model is kept: save it, or "
                "load it later to compute the features."
            )
            return
        self.result = result
        self._trained = result.trained
        self._show_embedding(result)
        n = len(result.crops)
        what = "stopped early; " if result.stopped else ""
        self.status.setText(
            f"Done ({what}{n} cells). Click a point in '{EMBEDDING_LAYER}' to see that cell."
        )

    def _on_errored(self, err: BaseException) -> None:
        if self._request is not None and self._request.trainer is not None:
            # e.g. divergence: the trainer kept its last good weights
            with contextlib.suppress(Exception):
                self._trained = self._request.trainer.result()
        self.status.setText(f"Failed: {err}")
        show_error(str(err))

    def _throttle_spinners(self, slow: bool) -> None:
        # napari's "in progress" spinner is a GIF at ~38 frames/s; without a GPU (remote
        # desktops, Xvfb) every frame repaints the window around the OpenGL canvas and
        # starves the event loop. A slower spinner keeps the viewer responsive.
        for label in self.window().findChildren(QLabel):
            movie = label.movie()
            if movie is not None:
                movie.setSpeed(_SPINNER_SPEED if slow else 100)

    def _on_finished(self) -> None:
        self._throttle_spinners(False)
        self._worker = None
        self._request = None
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self._set_running(False)

    # -- result layers --------------------------------------------------------------------------
    def _image_box(self) -> tuple[float, float, float, float]:
        """World (y0, x0, y1, x1) of the file's images, to place result layers beside."""
        boxes = [layer.extent.world[:, -2:] for layer in self._cellae_layers("image")]
        if not boxes:
            return 0.0, 0.0, 256.0, 256.0
        lo = np.min([b[0] for b in boxes], axis=0)
        hi = np.max([b[1] for b in boxes], axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def _upsert_image(self, name: str, data: np.ndarray, **kwargs: Any) -> Any:
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            if layer.data.shape == data.shape and layer.data.dtype == data.dtype:
                # same size: overwrite the pixels, cheaper than a new data array
                layer.data[...] = data
                layer.refresh()
            else:
                layer.data = data
            for key, value in kwargs.items():
                # each change re-slices the layer: skip unchanged placement
                if not np.allclose(getattr(layer, key), value):
                    setattr(layer, key, value)
            return layer
        return self.viewer.add_image(
            data, name=name, colormap="gray", contrast_limits=(0, 1), **kwargs
        )

    def _show_gallery(self, gallery: np.ndarray) -> None:
        y0, x0, y1, x1 = self._image_box()
        scale = (x1 - x0) / gallery.shape[1]
        gap = 0.04 * (y1 - y0)
        self._upsert_image(GALLERY_LAYER, gallery, translate=(y1 + gap, x0), scale=(scale, scale))

    def _show_embedding(self, result: JobResult) -> None:
        crops, emb = result.crops, result.embedding
        y0, _x0, y1, x1 = self._image_box()
        side = y1 - y0
        gap = 0.04 * side
        span = np.ptp(emb, axis=0)
        span[span == 0] = 1.0
        unit = (emb - emb.min(axis=0)) / span
        # y grows downwards in napari: flip the second axis so "up" is larger
        coords = np.stack([y0 + (1 - unit[:, 1]) * side, x1 + gap + unit[:, 0] * side], axis=1)
        conditions = self._conditions(result)
        features = {
            "embedding_1": emb[:, 0],
            "embedding_2": emb[:, 1],
            "condition": conditions,
            "position": np.asarray(position_labels(crops.positions), dtype=object)[
                crops.position_index
            ],
            "position_index": crops.position_index,
            "object_index": crops.object_index,
            "time": crops.time_idx,
        }
        unique = list(dict.fromkeys(conditions))
        colours = {c: _PALETTE[i % len(_PALETTE)] for i, c in enumerate(unique)}
        face = np.array([transform_color(colours[c])[0] for c in conditions]).reshape(-1, 4)
        layer = self._embedding_layer()
        # update in place: removing a layer costs napari a garbage collection (~0.3 s)
        layer.selected_data = set()
        layer.data = coords
        layer.features = features
        layer.face_color = face
        layer.size = max(2.0, side / 90)
        layer.metadata[METADATA_KEY] = {"kind": "embedding", "colours": colours}
        self.legend.setText(
            "Embedding colours: "
            + " ".join(
                f'<span style="color:{col}">■</span>&nbsp;{cond}' for cond, col in colours.items()
            )
        )
        self._link(result, layer)
        # zoom out to show image, gallery and embedding, in a later turn (another repaint)
        self._later(self.viewer.reset_view)

    def _embedding_layer(self) -> Any:
        """The embedding points layer, created empty if missing."""
        if EMBEDDING_LAYER in self.viewer.layers:
            return self.viewer.layers[EMBEDDING_LAYER]
        return self.viewer.add_points(
            np.zeros((0, 2)), name=EMBEDDING_LAYER, border_width=0, opacity=0.8
        )

    @staticmethod
    def _position_conditions(result: JobResult) -> list[str]:
        """Condition of each position of the crops (its label if not mapped)."""
        crops, mapping = result.crops, result.mapping
        names = []
        for key, label in zip(crops.positions, position_labels(crops.positions), strict=True):
            info = mapping.lookup(key) if mapping is not None else None
            names.append(info.condition if info is not None else label)
        return names

    def _conditions(self, result: JobResult) -> list[str]:
        names = self._position_conditions(result)
        return [names[i] for i in result.crops.position_index]

    # -- linking -------------------------------------------------------------------------------
    def _link(self, result: JobResult, embedding: Any) -> None:
        """Map crops to rows of the centres layers of the same file and object."""
        for emitter, callback in self._watched:
            with contextlib.suppress(Exception):
                emitter.disconnect(callback)
        self._watched = []
        crops = result.crops
        n = len(crops)
        self._linked = []
        self._crop_layer = np.full(n, -1, np.int64)
        self._crop_row = np.full(n, -1, np.int64)
        self._row_to_crop = {}
        # match (position, object index) pairs through sorted integer keys
        crop_pos = {key: i for i, key in enumerate(crops.positions)}
        centres = [
            layer
            for layer in self._cellae_layers("centres")
            if Path(layer.metadata[METADATA_KEY]["path"]).resolve() == Path(crops.source).resolve()
            and layer.metadata[METADATA_KEY].get("object") == crops.object_name
            and len(layer.data) > 0
        ]
        stride = 1 + max(
            [int(crops.object_index.max()) if n else 0]
            + [int(np.max(layer.features["object_index"])) for layer in centres]
        )
        crop_keys = crops.position_index.astype(np.int64) * stride + crops.object_index
        order = np.argsort(crop_keys, kind="stable")
        sorted_keys = crop_keys[order]
        for layer in centres:
            positions = layer.metadata[METADATA_KEY]["positions"]
            to_crop_pos = np.array([crop_pos.get(p, -1) for p in positions], np.int64)
            pos = to_crop_pos[np.asarray(layer.features["position_index"], np.int64)]
            keys = pos * stride + np.asarray(layer.features["object_index"], np.int64)
            j = np.clip(np.searchsorted(sorted_keys, keys), 0, max(n - 1, 0))
            hit = (pos >= 0) & (sorted_keys[j] == keys) if n else np.zeros(len(keys), bool)
            row_to_crop = np.where(hit, order[j] if n else -1, -1)
            rows = np.flatnonzero(hit)
            self._crop_layer[row_to_crop[rows]] = len(self._linked)
            self._crop_row[row_to_crop[rows]] = rows
            self._row_to_crop[id(layer)] = row_to_crop
            self._linked.append(layer)
            callback = self._make_centre_callback(layer)
            layer.selected_data.events.items_changed.connect(callback)
            self._watched.append((layer.selected_data.events.items_changed, callback))
        embedding.selected_data.events.items_changed.connect(self._on_embedding_selection)
        self._watched.append(
            (embedding.selected_data.events.items_changed, self._on_embedding_selection)
        )

    def _make_centre_callback(self, layer: Any) -> Any:
        def on_change(event: Any = None) -> None:
            if self._syncing or EMBEDDING_LAYER not in self.viewer.layers:
                return
            row_to_crop = self._row_to_crop.get(id(layer))
            rows = np.fromiter(layer.selected_data, np.int64)
            if row_to_crop is None:
                return
            rows = rows[rows < len(row_to_crop)]  # points the user added are not cells
            crops = [int(c) for c in row_to_crop[rows] if c >= 0]
            with self._syncing_guard():
                self.viewer.layers[EMBEDDING_LAYER].selected_data = set(crops)
            if len(crops) == 1:
                self._show_selected(crops[0])

        return on_change

    @contextlib.contextmanager
    def _syncing_guard(self) -> Iterator[None]:
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    def _on_embedding_selection(self, event: Any = None) -> None:
        if self._syncing or EMBEDDING_LAYER not in self.viewer.layers:
            return
        chosen = sorted(self.viewer.layers[EMBEDDING_LAYER].selected_data)
        if len(chosen) == 1:
            self.focus_cell(chosen[0])
        elif chosen:
            idx = np.asarray(chosen, np.int64)
            idx = idx[idx < len(self._crop_layer)]
            with self._syncing_guard():
                for k, layer in enumerate(self._linked):
                    rows = self._crop_row[idx[self._crop_layer[idx] == k]]
                    layer.selected_data = {int(r) for r in rows}

    def focus_cell(self, index: int) -> None:
        """Select cell ``index`` (crop order) everywhere and bring it into view.

        Selects its centre point, moves the position/time sliders to it, centres the
        camera on it and shows its crop beside its reconstruction.
        """
        if self.result is None:
            return
        if 0 <= index < len(self._crop_layer) and self._crop_layer[index] >= 0:
            layer = self._linked[int(self._crop_layer[index])]
            row = int(self._crop_row[index])
            with self._syncing_guard():
                layer.selected_data = {row}
            world = np.asarray(layer.data_to_world(layer.data[row]), float)
            offset = self.viewer.dims.ndim - layer.ndim
            for axis in range(layer.ndim - 2):
                self.viewer.dims.set_point(offset + axis, world[axis])
            self.viewer.camera.center = tuple(world[-2:])
            self._mark(layer, layer.data[row])
        self._show_selected(index)

    def _mark(self, centres: Any, point: np.ndarray) -> None:
        size = float(self.result.crops.crops.shape[-1]) if self.result else 40.0
        if MARKER_LAYER in self.viewer.layers:
            marker = self.viewer.layers[MARKER_LAYER]
            if marker.ndim == len(point):
                marker.data = point[np.newaxis]
                return
            self.viewer.layers.remove(marker)
        self.viewer.add_points(
            point[np.newaxis],
            name=MARKER_LAYER,
            size=size,
            face_color="transparent",
            border_color="cyan",
            border_width=0.08,
            symbol="square",
            axis_labels=centres.axis_labels,
        )
        self.viewer.layers.selection.active = self.viewer.layers[EMBEDDING_LAYER]

    def _show_selected(self, index: int) -> None:
        result = self.result
        if result is None:
            return
        crop = result.crops.crops[index : index + 1]
        inputs = np.asarray(result.trained.normalisation.apply(crop), np.float32)[:, 0]
        outputs = np.clip(result.trained.reconstruct(crop)[:, 0], 0, 1)
        pair = gallery_grid(inputs, outputs, columns=1)
        y0, _x0, y1, x1 = self._image_box()
        side = y1 - y0
        gap = 0.04 * side
        scale = 0.5 * side / pair.shape[1]
        self._upsert_image(
            SELECTED_LAYER, pair, translate=(y1 + gap, x1 + gap), scale=(scale, scale)
        )
        p = result.crops.position_index[index]
        condition = self._position_conditions(result)[p]
        self.status.setText(
            f"Selected cell: position {position_labels(result.crops.positions)[p]}, frame "
            f"{int(result.crops.time_idx[index])}, object {int(result.crops.object_index[index])}"
            f" — {condition}"
        )

    def _on_step(self, event: Any = None) -> None:
        """Show which well/site the position slider points at."""
        for layer in self._cellae_layers("image"):
            meta = layer.metadata[METADATA_KEY]
            if not meta.get("stacked"):
                continue
            axis = self.viewer.dims.ndim - layer.ndim
            step = int(np.clip(round(self.viewer.dims.point[axis]), 0, len(meta["positions"]) - 1))
            label = position_labels(meta["positions"])[step]
            self.position_label.setText(f"Shown position: {label}")
            return

    # -- saving and loading ---------------------------------------------------------------------
    def _ask_path(self, title: str, filt: str, save: bool) -> Path | None:
        ask = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
        name, _ = ask(self, title, "", filt)
        return Path(name) if name else None

    def _ask_save_features(self) -> None:
        path = self._ask_path("Save features", "CellCognition Explorer (*.hdf)", save=True)
        if path is not None:
            self.save_features(path)

    def _ask_save_model(self) -> None:
        path = self._ask_path("Save model", "napari-cellae model (*.pt)", save=True)
        if path is not None:
            self.save_model(path)

    def _ask_load_model(self) -> None:
        path = self._ask_path("Load model", "napari-cellae model (*.pt)", save=False)
        if path is not None:
            self.load_model(path)

    def save_features(self, path: str | os.PathLike, start: bool = True) -> Any:
        """Write the features of all cells as a CellCognition Explorer ``.hdf`` (in a worker).

        ``start=False`` returns the worker unstarted, as in :meth:`start_training`.
        """
        if self.result is None:
            show_error("Train or load a model first: there are no features to save.")
            return None
        from napari_cellae.pipeline.steps import write_features

        result = self.result
        path = Path(path)
        n = len(result.crops)
        worker = create_worker(
            write_features,
            path,
            result.crops,
            result.features,
            result.mapping,
            result.trained,
            _start_thread=False,
            _connect={
                "returned": lambda p: show_info(f"Saved features of {n} cells to {p}"),
                "errored": lambda err: show_error(str(err)),
            },
        )
        if start:
            worker.start()
        return worker

    def save_model(self, path: str | os.PathLike) -> Path | None:
        """Save the trained network (small; done on the GUI thread)."""
        if self._trained is None:
            show_error("There is no trained model to save yet.")
            return None
        from napari_cellae.pipeline.steps import save_model

        try:
            out = save_model(self._trained, path)
        except ValueError as err:
            show_error(str(err))
            return None
        show_info(f"Saved model to {out}")
        return out

    def load_model(self, path: str | os.PathLike, start: bool = True) -> Any:
        """Load a saved network and compute features of the current file's cells.

        ``start=False`` returns the worker unstarted, as in :meth:`start_training`.
        """
        from napari_cellae.core.training import load_model

        if self._worker is not None:
            return None
        file = self.file.value
        if file is None or not Path(file).is_file():
            show_error("Choose the CellH5 file to apply the model to first.")
            return None
        try:
            trained = load_model(path)
        except (ValueError, OSError) as err:
            show_error(str(err))
            return None
        self._trained = trained
        self.cell_size.value = trained.config.crop_size
        self.architecture.value = trained.config.architecture
        # Show the objects and channel the model reads (the features are computed from them).
        if trained.object_name in self.object.choices:
            self.object.value = trained.object_name
        channel_index = getattr(self, "_channel_index", {})
        if len(trained.channel_names) == 1 and trained.channel_names[0] in channel_index:
            self.channel.value = channel_index[trained.channel_names[0]]
        mapping = self.mapping.value
        mapping = Path(mapping) if mapping and str(mapping) not in ("", ".") else None
        worker = create_worker(
            _guarded(encode_job),
            Path(file),
            trained,
            mapping,
            Path(path),
            _start_thread=False,
            _connect={"errored": self._on_errored},
        )
        self._start(worker, start)
        return worker

    def closeEvent(self, event: Any) -> None:
        """Stop a running job when the dock closes."""
        self.stop()
        super().closeEvent(event)
