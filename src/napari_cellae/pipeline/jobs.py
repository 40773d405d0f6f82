"""The widget's background jobs as plain generators: train, or apply a saved model.

A job runs the pipeline steps in order (open the file, read the mapping, resolve the
object, cut the crops, build the trainer, train, encode, map by PCA), yields typed
:mod:`~napari_cellae.pipeline.messages` while it works and returns the one result type,
:class:`~napari_cellae.pipeline.results.RunResult`. Every heavy step happens here, in the
worker thread; the GUI receives small messages and ready arrays. No Qt: tests drive the
jobs with ``next()``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae.core.cores import usable_cores
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.pipeline.encode_chunks import encode_chunks
from napari_cellae.pipeline.messages import Alert, Encoded, EpochDone, Message, Status
from napari_cellae.pipeline.results import RunResult

if TYPE_CHECKING:
    from napari_cellae.core.config import TrainConfig
    from napari_cellae.core.model_file import TrainedModel
    from napari_cellae.core.trainer import EpochReport, Trainer
    from napari_cellae.pipeline.map_features import PlateScaling

__all__ = [
    "GALLERY_PAIRS",
    "JobFailed",
    "TrainRequest",
    "cell_pair",
    "encode_job",
    "epoch_status",
    "gallery_grid",
    "guarded",
    "train_job",
    "training_status",
    "warm_up",
]

GALLERY_PAIRS = 32  # 8 rows of 4 input|output pairs


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
        Position mapping; without one every cell is trained on.
    config : TrainConfig
        Training parameters.
    control_token : str
        What the mapping's Group (or, in a two-column mapping, condition) of the negative
        controls starts with.
    trainer : Trainer or None
        Set by the job once training starts.
    """

    path: Path
    object_name: str
    channel: int
    mapping_path: Path | None
    config: TrainConfig
    control_token: str = "neg"
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


class JobFailed(Exception):
    """A job failed with a RuntimeError (e.g. training diverged).

    superqt's generator workers treat a RuntimeError as "the worker was deleted": they
    swallow it and never emit ``errored`` or ``finished``, which would leave the widget
    busy forever. :func:`guarded` jobs therefore re-raise RuntimeErrors as this exception.
    """


def guarded(job: Callable[..., Generator[Any, None, Any]]) -> Callable[..., Any]:
    """Wrap a generator job so that its RuntimeErrors are raised as :class:`JobFailed`."""

    @functools.wraps(job)
    def run(*args: Any, **kwargs: Any) -> Generator[Any, None, Any]:
        try:
            return (yield from job(*args, **kwargs))
        except RuntimeError as err:
            raise JobFailed(str(err)) from err

    return run


def limit_threads() -> None:
    """Leave one core to the GUI thread, so the viewer stays responsive while a job works.

    Applies to torch and to the BLAS library of numpy and scipy (the 2-D embedding): with
    every core busy, BLAS threads that wait by spinning starve the GUI thread for seconds.
    """
    import torch
    from threadpoolctl import threadpool_limits

    cores = max(1, usable_cores() - 1)
    threads = max(1, min(torch.get_num_threads(), cores))
    if threads != torch.get_num_threads():  # resizing the pool that another thread may be
        torch.set_num_threads(threads)  # using (the viewer's, a map's) only when needed
    # threadpoolctl walks every library and resets BLAS pools the viewer's thread may be in
    # (a test run crashed once, mid-walk): only again when libraries were loaded since.
    with _BLAS_LOCK:
        loaded = _loaded_libraries()
        if loaded is None or loaded != _BLAS_LIMITED.get(cores):
            threadpool_limits(cores, user_api="blas")  # stays in force, like torch's setting
            _BLAS_LIMITED[cores] = loaded


_BLAS_LOCK, _BLAS_LIMITED = threading.Lock(), {}  # cores -> the libraries then loaded


def _loaded_libraries() -> frozenset[str] | None:
    """The shared libraries mapped into this process (Linux); None where unknown."""
    with contextlib.suppress(OSError), open("/proc/self/maps", errors="replace") as maps:
        return frozenset(line.split()[-1] for line in maps if ".so" in line)
    return None


def warm_up() -> None:
    """Load the engine (torch, what the first optimizer and the embedding load) and start
    the process that makes UMAP maps (:mod:`napari_cellae.pipeline.map_process`).

    The imports take a second or two and hold Python's global lock for up to 200 ms at a
    time (torch registers its operators). Run in a background thread when the widget
    opens, they do not stall the viewer in the first training, or when results appear.
    """
    import torch

    import napari_cellae.core.trainer  # noqa: F401  (the import is the point)
    from napari_cellae.core.features import embed_2d
    from napari_cellae.pipeline.map_process import warm_up_maps

    torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    embed_2d(np.arange(12, dtype=np.float32).reshape(4, 3) ** 2)
    # UMAP compiles in the process that makes the maps; were it made here, embed_2d's
    # catch_warnings() would swap the warning filters: jobs start once this is done.
    warm_up_maps()
    limit_threads()  # now that every thread pool is loaded


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
        (gaps are zeros).
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


def reconstruct_gallery(trained: TrainedModel, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First-channel inputs and reconstructions in [0, 1], (n, s, s) each.

    Parameters
    ----------
    trained : TrainedModel
    crops : ndarray (n, C, s, s)
        Raw crops in their stored dtype.
    """
    inputs = np.asarray(trained.normalisation.apply(crops), np.float32)[:, 0]
    outputs = np.clip(trained.reconstruct(crops)[:, 0], 0, 1)
    return inputs, outputs


def cell_pair(trained: TrainedModel, crop: np.ndarray) -> np.ndarray:
    """One cell's crop beside its reconstruction, ``(s, 2 s + 1)`` float32 in [0, 1].

    Parameters
    ----------
    trained : TrainedModel
    crop : ndarray (1, C, s, s)
    """
    return gallery_grid(*reconstruct_gallery(trained, crop), columns=1)


def training_status(
    n_trained: int, n_held_out: int, n_cells: int, has_mapping: bool, train_on: str
) -> str:
    """The sentence shown when training starts: which cells, how many, how many held out.

    Parameters
    ----------
    n_trained, n_held_out : int
        Cells the network learns from, and cells kept aside for the held-out loss.
    n_cells : int
        All cells of the file.
    has_mapping : bool
        Without a position mapping no controls are known: every cell is a candidate.
    train_on : {"controls", "all"}
    """
    counts = f"{n_trained} cells ({n_held_out} held out) of {n_cells}"
    if not has_mapping:
        return f"No position mapping, so training on all cells: {counts}…"
    if train_on == "controls":
        return f"Training on control wells: {counts}…"
    return f"Training on {counts}…"


def epoch_status(report: EpochReport) -> str:
    """One line on an epoch: its number, both losses and the speed."""
    return (
        f"Epoch {report.epoch}/{report.epochs}: loss {report.train_loss:.2e} "
        f"(held-out {report.held_out_loss:.2e}), {report.samples_per_second:.0f} cells/s"
        + (" — stopped" if report.stopped else "")
    )


def train_job(request: TrainRequest) -> Generator[Message, None, RunResult | None]:
    """Collect crops, train, encode and embed; a generator for a thread worker.

    Yields
    ------
    Status, EpochDone, Alert or Encoded

    Returns
    -------
    RunResult or None
        None when stopped before training began. ``features`` and ``embedding`` are None
        when the features were skipped by a stop after training.
    """
    from napari_cellae.core.config import COLLAPSE_ADVICE
    from napari_cellae.pipeline import steps
    from napari_cellae.pipeline.plates import warn_empty
    from napari_cellae.pipeline.selection import check_every_position

    limit_threads()
    config = request.config
    yield Status("Reading cells from the file…")
    with CellH5(request.path) as ch5:
        mapping = steps.load_mapping(request.mapping_path, ch5, request.control_token)
        obj = steps.resolve_object(ch5, request.object_name)
        channels = check_every_position(ch5, [request.channel])  # the form's may be stale
        crops = steps.crops_for(ch5, obj, channels, config)
        empty = warn_empty(mapping, ch5.positions, crops.positions)  # a dead well: a hit?
    if request.stopped:
        return None
    trainer = steps.make_trainer(crops, mapping, config)
    request.attach(trainer)
    rng = np.random.default_rng(config.seed)
    train_idx = trainer.source_indices
    shown = np.sort(rng.choice(train_idx, min(GALLERY_PAIRS, len(train_idx)), replace=False))
    shown_crops = crops.crops[shown]
    yield Status(
        training_status(
            trainer.n_train, trainer.n_held_out, len(crops), mapping is not None, config.train_on
        )
    )
    reports = []
    warned = False
    for report in trainer.run():
        reports.append(report)
        inputs, outputs = reconstruct_gallery(trainer.result(), shown_crops)
        yield EpochDone(report, gallery_grid(inputs, outputs))
        if report.collapsed and not warned:
            warned = True
            yield Alert(f"Training got stuck: {COLLAPSE_ADVICE}")
    result = RunResult(
        trainer.result(),
        crops,
        mapping,
        reports=reports,
        n_trained=trainer.n_train,
        n_held_out=trainer.n_held_out,
        stopped=bool(reports and reports[-1].stopped) or request.stopped,
        empty=empty,
    )
    # Stopping training still shows the features of what was learnt; a Stop from now on
    # skips them (on a large screen encoding takes a while).
    request.rearm()
    done = yield from _features_and_embedding(result, aborted=lambda: request.stopped)
    if done is None:
        result.stopped = True
    else:
        result.features, result.embedding, result.map_scaling = done
    return result


def encode_job(
    path: Path,
    trained: TrainedModel,
    mapping_path: Path | None,
    model_path: Path | None = None,
    control_token: str = "neg",
) -> Generator[Message, None, RunResult]:
    """Apply a loaded model to every cell of a file; a generator for a thread worker.

    Stopped through the worker itself (it quits at the next message).

    Yields
    ------
    Status or Encoded
    """
    from napari_cellae.pipeline import steps
    from napari_cellae.pipeline.plates import warn_empty

    limit_threads()
    yield Status("Reading cells from the file…")
    with CellH5(path) as ch5:
        mapping = steps.load_mapping(mapping_path, ch5, control_token)
        obj, channels = steps.check_model_fits(trained, ch5, model_path)
        crops = steps.crops_for(ch5, obj, channels, trained.config)
        empty = warn_empty(mapping, ch5.positions, crops.positions)
    result = RunResult(trained, crops, mapping, model_path=model_path, empty=empty)
    done = yield from _features_and_embedding(result)
    assert done is not None  # never aborted
    result.features, result.embedding, result.map_scaling = done
    return result


def _features_and_embedding(
    result: RunResult, aborted: Callable[[], bool] | None = None
) -> Generator[Message, None, tuple[np.ndarray, np.ndarray, PlateScaling] | None]:
    """Encode every cell in chunks (yielding progress), then its PCA map (plates scaled as
    in the .h5ad: :mod:`.map_features`; UMAP comes later, with the scaling returned last);
    None when ``aborted()`` first."""
    from napari_cellae.core.features import embed_2d
    from napari_cellae.pipeline.map_features import plate_scaling

    crops = result.crops
    yield Status("Computing features of all cells…")
    features = None
    chunks = encode_chunks(result.trained, crops)
    while not (aborted is not None and aborted()):
        try:
            done, part = next(chunks)
        except StopIteration:
            assert features is not None
            scaling = plate_scaling(features, crops, result.mapping)
            return features, embed_2d(scaling.apply(features), "pca"), scaling
        yield Encoded(done, len(crops))
        features = part
    return None
