"""The one result type of a run, shared by the ``cellae`` command and the napari widget."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # no torch import here: the widget's Qt modules read this type
    import numpy as np

    from napari_cellae.core.crops import CropSet
    from napari_cellae.core.model_file import TrainedModel
    from napari_cellae.core.trainer import EpochReport
    from napari_cellae.io.mapping import PositionMapping
    from napari_cellae.pipeline.map_features import PlateScaling

__all__ = ["RunResult", "run_sources"]


@dataclass
class RunResult:
    """What a training and/or encoding run produced.

    Attributes
    ----------
    trained : TrainedModel
        The model (trained now, or loaded).
    crops : CropSet
        Every cell's crop and identity, in CellH5 order (a training run asked to crop only
        the cells it draws holds just those).
    mapping : PositionMapping or None
        The position mapping used, if any.
    features : ndarray (N, F) float32 or None
        Features of every cell; None when encoding was skipped or stopped.
    embedding : ndarray (N, 2) float32 or None
        2-D map of the features for plotting.
    reports : list of EpochReport
        One per trained epoch (empty for a loaded model).
    n_cells : int or None
        Cells in the file, when ``crops`` holds only some of them.
    n_trained, n_held_out : int
        Cells the network learnt from, and cells kept aside to measure the held-out loss.
    model_path, features_path : Path or None
        Where the model / features were written.
    stopped : bool
        The user stopped the run (Stop button, Ctrl-C) before it finished.
    empty : str
        The file's positions without a cell, as named for the user ("" when none).
    map_scaling : PlateScaling or None
        How ``features`` were scaled for ``embedding`` (each plate on its control cells),
        kept for the maps asked for later; None where not built.
    """

    trained: TrainedModel
    crops: CropSet
    mapping: PositionMapping | None = None
    features: np.ndarray | None = None
    embedding: np.ndarray | None = None
    reports: list[EpochReport] = field(default_factory=list)
    n_cells: int | None = None
    n_trained: int = 0
    n_held_out: int = 0
    model_path: Path | None = None
    features_path: Path | None = None
    stopped: bool = False
    empty: str = ""
    map_scaling: PlateScaling | None = None


def run_sources(result: RunResult) -> list[Path]:
    """The files a run read, as ``cellae encode`` lists them in the ``.h5ad``
    (``uns["cellae"]["sources"]``): the CellH5 file and the files it links to, the mapping,
    and the model file applied (none for a model trained in the run), each once.

    The widget's open file, mapping box and last loaded model may be others by the time
    its run is saved; these are the run's own.
    """
    from napari_cellae.io.locate import input_files

    files = input_files(result.crops.source)
    if result.mapping is not None and result.mapping.path is not None:
        files.append(Path(result.mapping.path))
    if result.model_path is not None:
        files.append(Path(result.model_path))
    return list(dict.fromkeys(files))
