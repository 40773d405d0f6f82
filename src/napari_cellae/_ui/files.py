"""The CellH5 file in the viewer (its layers, mapping, shown position), file dialogs, and
checked outputs.

Functions here raise ``ValueError`` with a message for the user; the widget shows it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QFileDialog, QWidget

from napari_cellae._reader import METADATA_KEY, read_centres
from napari_cellae._ui.background import side_task
from napari_cellae._ui.file_info import path_or_none
from napari_cellae._ui.lifetime import weakly
from napari_cellae._ui.result_layers import cellae_layers
from napari_cellae.io.atomic import resolved
from napari_cellae.io.centres import position_labels

if TYPE_CHECKING:
    import napari

    from napari_cellae._ui.findings import Findings
    from napari_cellae.pipeline.results import RunResult

__all__ = [
    "ANNDATA_FILTER",
    "FEATURES_FILTER",
    "MODEL_FILTER",
    "anndata_path",
    "anndata_writer",
    "announced",
    "ask_path",
    "checked_output",
    "features_writer",
    "open_file",
    "remembered_mapping",
    "show_centres",
    "shown_file",
    "shown_position",
    "suffixed_output",
]

FEATURES_FILTER = "CellCognition Explorer (*.hdf)"
MODEL_FILTER = "napari-cellae model (*.pt)"
ANNDATA_FILTER = "AnnData (*.h5ad)"
_writing: set[Path] = set()  # outputs that a save's worker is writing now


def _writes(worker: Any, path: Path) -> Any:
    """Mark ``path`` as being written by ``worker`` until its ``finished`` signal.

    Two saves to one file at once (Save pressed twice) wrote one temporary file and
    failed with HDF5's "unable to truncate a file which is already open" and "No such
    file or directory" beside a "Saved"; :func:`checked_output` refuses the second.
    """
    key = resolved(path)
    _writing.add(key)
    worker.finished.connect(lambda: _writing.discard(key))
    return worker


def announced(
    worker: Any,
    done: str,
    start: bool,
    info: Callable[[str], Any],
    error: Callable[[str], Any],
) -> Any:
    """``worker`` (a save), which tells ``info`` "``done`` <path>" or ``error`` its error
    when it ends; started if ``start``."""
    worker.returned.connect(lambda path: info(f"{done} {path}"))
    worker.errored.connect(lambda err: error(str(err)))
    if start:
        worker.start()
    return worker


def ask_path(parent: QWidget, title: str, filt: str, save: bool) -> Path | None:
    """Ask for a file to save to (``save``) or to open; None when cancelled."""
    ask = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
    name, _ = ask(parent, title, "", filt)
    return path_or_none(name)


def checked_output(
    path: str | os.PathLike, what: str, inputs: Iterable[str | os.PathLike | None]
) -> Path:
    """``path`` if it may be written: not one of ``inputs`` (a CellH5 file counts with
    the files it links to), not a folder, in an existing writable folder.

    Raises
    ------
    ValueError
        Saying why not, naming the path; also while an earlier save writes it.
    """
    from napari_cellae.pipeline.steps import check_outputs

    if resolved(Path(path)) in _writing:
        raise ValueError(f"{path} is still being saved: wait until that save has finished")
    check_outputs([(path, what)], inputs)
    return Path(path)


def features_writer(
    result: RunResult, path: Path, inputs: Iterable[str | os.PathLike | None]
) -> Any:
    """An unstarted thread worker that writes the Explorer ``.hdf`` of a run's features.

    Its ``returned`` signal carries the written path; :func:`checked_output` refuses
    ``path`` until it has finished.
    """
    from napari_cellae.pipeline.steps import write_features

    worker = side_task(
        write_features,
        path,
        result.crops,
        result.features,
        result.mapping,
        result.trained,
        list(inputs),
    )
    return _writes(worker, path)


def suffixed_output(
    path: str | os.PathLike, suffix: str, what: str, inputs: Iterable[str | os.PathLike | None]
) -> Path:
    """The file to write: ``path``, with ``suffix`` added when it has none.

    Raises
    ------
    ValueError
        If ``path`` has another suffix (a model saved over a features file), or may not be
        written (:func:`checked_output`).
    """
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(suffix)
    path = checked_output(path, what, inputs)  # first: an input is never written
    if path.suffix.lower() != suffix:
        raise ValueError(f"cannot write {path} as the {what}: the file name must end in {suffix}")
    return path


def anndata_path(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> Path:
    """The ``.h5ad`` file to write (:func:`suffixed_output`)."""
    from napari_cellae.export.anndata import H5AD_SUFFIX

    return suffixed_output(path, H5AD_SUFFIX, "AnnData file", inputs)


def anndata_writer(
    result: RunResult,
    findings: Findings,
    maps: dict[str, np.ndarray],
    path: Path,
    inputs: Iterable[str | os.PathLike | None],
) -> Any:
    """An unstarted thread worker that writes a run's cells as ``.h5ad``: features, the
    cell table with novelty and groups, and the 2-D maps (``obsm["X_<method>"]``).

    Its ``returned`` signal carries the written path; :func:`checked_output` refuses
    ``path`` until it has finished.
    """
    obsm = {f"X_{method}": np.asarray(xy, np.float32) for method, xy in maps.items()}
    worker = side_task(
        _write_cells,
        path,
        result,
        findings.obs,
        findings.discovery,
        obsm,
        list(inputs),
        findings.class_colours,  # scanpy colours the classes as napari does
    )
    return _writes(worker, path)


def _write_cells(*args: Any) -> Path:
    # imported here, in the worker: anndata takes a second to load
    from napari_cellae.pipeline.cells import write_cells

    return write_cells(*args)


def shown_file(viewer: napari.Viewer) -> Path | None:
    """The CellH5 file whose layers are open (the first one), None if there is none."""
    layers = cellae_layers(viewer)
    return Path(layers[0].metadata[METADATA_KEY]["path"]) if layers else None


def remembered_mapping(viewer: napari.Viewer, path: Path) -> Path | None:
    """The mapping the layers of ``path`` were opened with (e.g. the demo's), if any."""
    for layer in cellae_layers(viewer):
        meta = layer.metadata[METADATA_KEY]
        if Path(meta["path"]) == path and meta.get("mapping"):
            return Path(meta["mapping"])
    return None


def open_file(viewer: napari.Viewer, path: Path) -> None:
    """Show a CellH5 file's images and centres, opening them unless they are open already.

    The layers of other CellH5 files are hidden (not removed): every file's images lie at
    the same coordinates, and another plate's cells, added to this one's, were taken for
    its own. Layers whose names another file's layers hold already (``rfp``, which napari
    made ``rfp [1]``) are named after the file's plate(s): ``rfp (plate2)``.

    Raises
    ------
    ValueError
        If napari cannot open it.
    """
    own = [m for m in _file_layers(viewer) if Path(m.metadata[METADATA_KEY]["path"]) == path]
    if own:
        if not any(layer.visible for layer in own):  # hidden when another file was chosen
            for layer in _file_layers(viewer):
                layer.visible = any(layer is mine for mine in own)
        return
    before = {id(layer) for layer in viewer.layers}
    others = {layer.name for layer in _file_layers(viewer)}
    try:
        viewer.open(str(path), plugin="napari-cellae")
    except Exception as err:  # napari wraps reader errors in its own types
        raise ValueError(f"Could not show {path}: {err}") from err
    for layer in _file_layers(viewer):  # not the results (embedding), which the next run reuses
        if id(layer) not in before:
            name = re.sub(r" \[\d+\]$", "", layer.name)  # napari's numbering of clashes
            if name in others:
                layer.name = f"{name} ({_file_tag(layer.metadata[METADATA_KEY], path)})"
        elif Path(layer.metadata[METADATA_KEY]["path"]) != path:
            layer.visible = False


def show_centres(viewer: napari.Viewer, path: str | os.PathLike, obj: str) -> None:
    """Add the centres of a file's ``obj`` objects unless a layer shows them: the reader
    shows the default object's only, and selecting a cell of others (Cells, where Nuclei
    are the default) found no centre to go to, leaving the image at another position.

    Raises
    ------
    ValueError
        If the file's object tables cannot be read.
    """
    for layer in cellae_layers(viewer, "centres"):
        meta = layer.metadata[METADATA_KEY]
        if meta.get("object") == obj and resolved(Path(meta["path"])) == resolved(Path(path)):
            return
    data, kwargs, _ = read_centres(path, obj)
    active = viewer.layers.selection.active  # the embedding, to click cells in
    own = [viewer.layers.index(layer) for layer in _file_layers(viewer)]
    layer = viewer.add_points(data, **kwargs)
    viewer.layers.move(viewer.layers.index(layer), max(own) + 1 if own else 0)  # over its images
    if active is not None:
        viewer.layers.selection.active = active


def _file_layers(viewer: napari.Viewer) -> list[Any]:
    """The image and centres layers of CellH5 files (not the widget's result layers)."""
    return cellae_layers(viewer, "image") + cellae_layers(viewer, "centres")


def _file_tag(meta: dict[str, Any], path: Path) -> str:
    """What tells a file's layers from another file's: its plate(s), else its name."""
    plates = sorted({p.shown_plate for p in meta["positions"]})
    if plates and len(plates) <= 2:
        return ", ".join(plates)
    return path.name


def shown_position(viewer: napari.Viewer) -> str | None:
    """Label of the well/site the position slider points at; None without one.

    Only shown layers count (another file's hidden layers do not). A file's positions
    share one slider, whatever their image sizes (the reader pads them into one canvas);
    should layers of several files be shown, each one's position is named with its image
    layer (``A01_1 (DAPI), A01_1 (DAPI (plate2))``).
    """
    shown: dict[tuple[str, tuple[Any, ...]], tuple[str, str]] = {}
    stacked = False
    for layer in cellae_layers(viewer, "image"):
        meta = layer.metadata[METADATA_KEY]
        group = (str(meta["path"]), tuple(meta["positions"]))  # the channels share it
        if not layer.visible or group in shown:
            continue
        step = 0
        if meta.get("stacked"):
            stacked = True
            axis = viewer.dims.ndim - layer.ndim
            last = len(meta["positions"]) - 1
            step = int(np.clip(round(viewer.dims.point[axis]), 0, last))
        shown[group] = (position_labels(meta["positions"], shown=True)[step], layer.name)
    if not stacked:
        return None
    if len(shown) == 1:
        return next(iter(shown.values()))[0]
    return ", ".join(f"{label} ({name})" for label, name in shown.values())


def follow_shown_position(
    viewer: napari.Viewer, callback: Callable[..., Any]
) -> Callable[[], None]:
    """Call ``callback`` whenever :func:`shown_position` may change: the sliders move, or a
    layer is added, removed, shown or hidden (a found cell shows its file's layers again,
    a user hides a file's layers: the slider alone left the label naming another file).

    Returns
    -------
    callable
        Stops following (to call when the widget closes).
    """

    # the method weakly, as napari's events hold it: a closed viewer that something still
    # referenced (a script's `viewer`) kept the widget, its run's cells and network
    follower = weakly(callback)

    def added(event: Any) -> None:
        if (call := follower()) is not None:
            event.value.events.visible.connect(call)
            call()

    def removed(event: Any) -> None:
        if (call := follower()) is not None:
            event.value.events.visible.disconnect(call)
            call()

    for layer in viewer.layers:
        layer.events.visible.connect(callback)
    viewer.dims.events.current_step.connect(callback)
    viewer.layers.events.inserted.connect(added)
    viewer.layers.events.removed.connect(removed)

    def stop() -> None:
        viewer.dims.events.current_step.disconnect(callback)
        viewer.layers.events.inserted.disconnect(added)
        viewer.layers.events.removed.disconnect(removed)
        for layer in viewer.layers:
            layer.events.visible.disconnect(callback)

    return stop
