"""The Deep Learning Module dock widget: train an autoencoder on cell crops, show results.

This module only assembles the pieces in :mod:`napari_cellae._ui` (form, buttons, loss
plot, job runner, and the results: embedding, hit table, selection linking) and tells the
user what happened. The heavy work runs in :mod:`napari_cellae.pipeline.jobs` in a thread
worker; the GUI thread receives typed messages and ready arrays.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QLabel, QTabWidget, QVBoxLayout, QWidget

from napari_cellae._ui import files
from napari_cellae._ui.buttons import ActionButtons
from napari_cellae._ui.form import ParameterForm, read_file_info
from napari_cellae._ui.loss_plot import LossPlot
from napari_cellae._ui.result_layers import (
    EMBEDDING_LAYER,
    GALLERY_LAYER,
    SELECTED_LAYER,
    ResultLayers,
)
from napari_cellae._ui.results import Results
from napari_cellae._ui.runner import JobRunner, Outcome, warm_up_engine
from napari_cellae._ui.scroll import VerticalScroll
from napari_cellae._ui.status import StatusLine
from napari_cellae.pipeline import jobs
from napari_cellae.pipeline.messages import Alert, Encoded, EpochDone, Message, Status

if TYPE_CHECKING:
    import napari

    from napari_cellae.core.model_file import TrainedModel
    from napari_cellae.pipeline.results import RunResult

__all__ = ["EMBEDDING_LAYER", "GALLERY_LAYER", "SELECTED_LAYER", "DeepLearningWidget"]


class DeepLearningWidget(QWidget):
    """Learn features of single cells from their pixels with a denoising autoencoder.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer to show images, reconstructions and the feature embedding in.
    """

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.result: RunResult | None = None
        self._trained: TrainedModel | None = None
        self._model_path: Path | None = None  # a loaded model: an input of later saves
        self._request: jobs.TrainRequest | None = None
        self._mapping_preset: Path | None = None
        self.runner = JobRunner(self, on_owner_deleted=self._abandon)
        self.layers = ResultLayers(napari_viewer)

        self.form = ParameterForm()
        self.buttons = ActionButtons()
        self.status = StatusLine("Choose a file and press Train.")
        self.loss_plot = LossPlot(napari_viewer)
        self.position_label = QLabel("")
        self.position_label.setWordWrap(True)  # one position per shown file
        self.results = Results(napari_viewer, self.layers, self.status.setText, self._failed)
        self.panel, self.link = self.results.panel, self.results.link

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(6, 6, 6, 6)
        for part in (self.form, self.buttons.run_row.native, self.status):
            layout.addWidget(part)
        # the loss while training, then the findings: one at a time, the dock is short
        self.tabs = QTabWidget()
        self.tabs.addTab(self.loss_plot, "Loss")
        self.tabs.addTab(self.panel, "Embedding and hits")
        layout.addWidget(self.tabs, 1)
        for part in (self.buttons.file_row.native, self.position_label):
            layout.addWidget(part)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(VerticalScroll(content))
        content.setMinimumWidth(330)

        self.form.file.changed.connect(self._on_file_changed)
        # lambdas: a button's signal carries its checked state, which must not reach the
        # methods' optional arguments
        buttons = self.buttons
        buttons.train.changed.connect(lambda: self.start_training())
        buttons.stop.changed.connect(lambda: self.stop())
        for button, *ask in (
            (buttons.save_features, "Save features", files.FEATURES_FILTER, self.save_features),
            (buttons.save_anndata, "Save AnnData", files.ANNDATA_FILTER, self.save_anndata),
            (buttons.save_model, "Save model", files.MODEL_FILTER, self.save_model),
            (buttons.load_model, "Load model", files.MODEL_FILTER, self.load_model),
        ):
            button.changed.connect(lambda _checked, ask=ask: self._ask(*ask))
        self._unfollow = files.follow_shown_position(self.viewer, self._on_step)

        warm_up_engine()
        if len(self.viewer.layers) == 0:
            try:
                self.viewer.open_sample("napari-cellae", "demo_screen")
            except Exception as err:  # the widget stays usable with a user's file
                show_error(f"Could not open the demo screen: {err}")
        path = files.shown_file(self.viewer)  # preset from the CellH5 layers already open
        if path is not None:
            self.form.file.value = path

    @property
    def _worker(self) -> Any:
        return self.runner.worker

    # -- inputs --------------------------------------------------------------------------------
    def _on_file_changed(self) -> None:
        path = self.form.file_path()
        self.form.clear_file()
        if path is None:
            return
        try:
            self.form.show_file(read_file_info(path))
        except (ValueError, OSError) as err:
            show_error(str(err))
            self.status.setText(f"Cannot use this file: {err}")
            return
        if not self.runner.running:  # the run's progress stays: Train is for after it
            self.status.setText(f"{path.name}: press Train to learn features of its cells.")
        # Preset the mapping remembered with the file's layers (e.g. the demo's); clear a
        # mapping that was preset for another file.
        mapping = files.remembered_mapping(self.viewer, path)
        if mapping is not None or self.form.mapping_path() == self._mapping_preset:
            self.form.mapping.value = mapping
            self._mapping_preset = mapping
        try:
            files.open_file(self.viewer, path)  # hides other files' layers
            self._on_step()
        except ValueError as err:
            show_error(str(err))

    def _set_running(self, running: bool) -> None:
        self.buttons.show_state(running, self.result is not None, self._trained is not None)
        self.panel.setEnabled(not running)  # the findings shown are the last run's

    # -- running jobs ------------------------------------------------------------------------------
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
        if self.runner.running:
            return None
        try:
            self._request = request = self.form.request()
        except ValueError as err:
            self._failed(err)  # the status line must not keep saying "Done" from a last run
            return None
        config = request.config
        self.loss_plot.clear()
        self.loss_plot.reveal(self.tabs)  # also scrolled into view on a short screen
        blank = np.zeros((jobs.GALLERY_PAIRS, config.network_size, config.network_size), np.float32)
        self.layers.prepare(jobs.gallery_grid(blank, blank))
        return self._run(
            start,
            jobs.train_job,
            request,
            total=config.epochs,
            description="Training autoencoder",
        )

    def load_model(self, path: str | os.PathLike, start: bool = True) -> Any:
        """Load a saved network and compute features of the current file's cells.

        ``start=False`` returns the worker unstarted, as in :meth:`start_training`.
        """
        from napari_cellae.core.model_load import load_model

        if self.runner.running:
            return None
        file = self.form.file_path()
        if file is None or not file.is_file():
            show_error("Choose the CellH5 file to apply the model to first.")
            return None
        try:
            trained = load_model(path)
        except (ValueError, OSError) as err:
            self._failed(err)  # not "press Train" from the file chosen before
            return None
        mapping, token = self.form.mapping_path(), self.form.control_token()
        return self._run(start, jobs.encode_job, file, trained, mapping, Path(path), token)

    def _run(
        self, start: bool, job: Any, *args: Any, total: int | None = None, description: str = ""
    ) -> Any:
        worker = self.runner.start(
            job,
            *args,
            on_message=self._on_yielded,
            on_outcome=self._on_returned,
            on_error=self._on_errored,
            on_finished=self._on_finished,
            total=total,
            description=description,
            start=False,
            discovery=self.results.rescoring.options(),  # the novelty boxes'
        )
        self._set_running(True)
        if start:
            self.runner.launch(worker)
        return worker

    def stop(self) -> None:
        """Stop training after the current batch (the model learnt so far is kept)."""
        if self._request is not None:
            self._request.stop()
            self.status.setText("Stopping…")
        else:
            self.runner.quit()

    def _on_yielded(self, message: Message) -> None:
        match message:
            case Status(text=text):
                self.status.setText(text)
            case EpochDone(report=report, gallery=gallery):
                self.loss_plot.add(report.epoch, report.train_loss, report.held_out_loss)
                if not report.stopped:
                    self.runner.advance()
                self.status.setText(jobs.epoch_status(report))
                self.runner.later(lambda: self.layers.show_gallery(gallery))
            case Alert(text=text):
                show_warning(text)
                self.status.setText(text)
            case Encoded(done=done, total=total):
                self.status.setText(f"Computing features: {done}/{total} cells")
                self.results.view.prepare(total)

    def _on_returned(self, outcome: Outcome) -> None:
        result = outcome.result
        if result is None:  # nothing to show: the blank gallery and map prepared go too
            self.layers.drop_blank()
            return self.status.setText("Stopped before training began.")
        self._trained = result.trained  # not before: a model that does not fit kept none
        if result.model_path is not None:  # loaded: an input, whose object and channel show
            self._model_path = result.model_path
            self.form.show_model(result.trained)
        if result.features is None or outcome.table is None:
            # Features of an earlier run would not belong to this model: drop them.
            self.result = None
            self.results.clear()
            self.status.setText(
                "Stopped while computing features. The trained model is kept: save it, or "
                "load it later to compute the features."
            )
            return
        self.result = result
        self.results.show(outcome)
        self.tabs.setCurrentWidget(self.panel)
        self.form.fold(False)  # the hit table gets the room (a laptop's 900 px)
        # zoom out to show image, gallery and embedding, in a later turn (another repaint)
        self.runner.later(self.viewer.reset_view)
        what = "stopped early; " if result.stopped else ""
        if result.n_trained:
            what += f"learnt from {result.n_trained}, {result.n_held_out} held out; "
        findings = outcome.findings
        hits = " or a row of the hit table" if findings is not None and findings.hits else ""
        self.status.setText(
            f"Done ({what}features of {len(result.crops)} cells). Click a point in "
            f"'{EMBEDDING_LAYER}'{hits} to see its cells."
        )

    def _on_errored(self, err: BaseException) -> None:
        if self._request is not None and self._request.trainer is not None:
            # e.g. divergence: the trainer kept its last good weights
            with contextlib.suppress(Exception):  # the error shown below is what matters
                self._trained = self._request.trainer.result()
        self._failed(err)

    def _failed(self, err: BaseException) -> None:
        self.status.setText(f"Failed: {err}")
        self.layers.drop_blank()  # the empty results the click added for this run
        show_error(str(err))

    def _on_finished(self) -> None:
        self._request = None
        self._set_running(False)

    # -- the selected cell ------------------------------------------------------------------------
    def focus_cell(self, index: int) -> None:
        """Select cell ``index`` (crop order) everywhere and bring it into view."""
        self.results.focus_cell(index)

    def _on_step(self, event: Any = None) -> None:
        label = files.shown_position(self.viewer)  # "" for a file of one position
        self.position_label.setText(f"Shown position: {label}" if label else "")

    # -- saving and loading ------------------------------------------------------------------------
    def _inputs(self) -> list[Path | None]:
        """Files this session reads: outputs must not replace them."""
        source = self.result.crops.source if self.result is not None else None
        return [self.form.file_path(), self.form.mapping_path(), self._model_path, source]

    def _ask(self, title: str, filt: str, then: Any) -> None:
        path = files.ask_path(self, title, filt, save=not title.startswith("Load"))
        if path is not None:
            then(path)

    def save_features(self, path: str | os.PathLike, start: bool = True) -> Any:
        """Write the features of all cells as a CellCognition Explorer ``.hdf`` (in a worker).

        An output that is an input (CellH5 file, mapping, loaded model) is refused with an
        error notification. ``start=False`` returns the worker unstarted.
        """
        result = self.result
        if result is None:
            show_error("Train or load a model first: there are no features to save.")
            return None
        try:
            out = files.suffixed_output(path, ".hdf", "features file", self._inputs())
        except ValueError as err:
            show_error(str(err))
            return None
        worker = files.features_writer(result, out, self._inputs())
        done = f"Saved features of {len(result.crops)} cells to"
        return files.announced(worker, done, start, show_info, show_error)

    def save_anndata(self, path: str | os.PathLike, start: bool = True) -> Any:
        """Write all cells as ``.h5ad`` (in a worker): features, cell table with novelty,
        novel and cluster (with controls) and the 2-D maps computed so far. Refused as
        :meth:`save_features`, and when not ending in ``.h5ad``.
        """
        try:
            worker = self.results.anndata_writer(path, self._inputs())
        except ValueError as err:
            show_error(str(err))
            return None
        done = f"Saved {len(self.results.table)} cells to"
        return files.announced(worker, done, start, show_info, show_error)

    def save_model(self, path: str | os.PathLike) -> Path | None:
        """Save the trained network (small; on the GUI thread); refused if an input."""
        from napari_cellae.core.model_file import save_model

        if self._trained is None:
            show_error("There is no trained model to save yet.")
            return None
        try:
            out = files.suffixed_output(path, ".pt", "model", self._inputs())
            out = save_model(self._trained, out, self._inputs())
        except ValueError as err:
            show_error(str(err))
            return None
        show_info(f"Saved model to {out}")
        return out

    def event(self, event: QEvent) -> bool:
        """On close, or when napari's ✕ takes the widget out of its dock, stop a running
        job and let nothing of it (nor of the background maps) be drawn afterwards; docked
        again, follow the viewer and link the shown run's cells again."""
        kind = event.type()
        if kind == QEvent.Type.Close or (kind == QEvent.Type.ParentChange and not self.parent()):
            self._abandon()
            if self.runner.detach():  # quits the job; its late signals reach nobody
                self._on_finished()  # buttons as after a run, should it be docked again
                self.status.setText("Stopped: the Deep Learning Module was closed.")
            with contextlib.suppress(RuntimeError, KeyError, ValueError):  # viewer closing
                self._unfollow()
                self.layers.drop_blank()  # what the abandoned run had added for its results
        elif kind == QEvent.Type.ParentChange and self.results.closed:
            self._unfollow = files.follow_shown_position(self.viewer, self._on_step)
            self.results.reopen()
        return super().event(event)

    def _abandon(self) -> None:
        # closed, or deleted with the viewer: the trainer ends within a batch, the map goes
        if self._request is not None:
            self._request.stop()
        self.results.close()
