"""The cells as an AnnData ``.h5ad`` file, for scanpy, squidpy and the ``cellae hits`` command.

Layout::

    X                 float32 (cells, features): the learned features
    obs               one row per cell: plate, well, site, position, object_index, label_id,
                      frame, x, y, condition, group, control [, class_index, class]
                      [, novelty, novel, cluster]  (novelty needs control cells)
    var               one row per feature, named by the layer it is read from (code_<i>,
                      conv<k>_mean_<f>, conv<k>_max_<f>); column explorer_name gives the
                      name of the same feature in the CellCognition Explorer .hdf
    obsm              X_umap and/or X_pca: 2-D maps of the features
    uns["cellae"]     version, model settings, training summary, novelty settings, sources
    uns["condition_colors"], uns["class_colors"]
                      napari's colour per category, in the categories' order (scanpy's)

The CellCognition Explorer ``.hdf`` stays the Explorer's file
(:mod:`napari_cellae.export.explorer`); this one is for everything else.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae.export.palette import category_colours
from napari_cellae.io.atomic import atomic_output, check_output
from napari_cellae.io.centres import UNCLASSIFIED, UNCLASSIFIED_COLOUR
from napari_cellae.io.file_kinds import not_anndata
from napari_cellae.io.write_failure import lock_refused

if TYPE_CHECKING:
    import anndata
    import pandas as pd

__all__ = ["H5AD_SUFFIX", "build_anndata", "read_cells", "write_anndata"]

H5AD_SUFFIX = ".h5ad"


# What h5ad (HDF5 variable-length UTF-8 strings) cannot hold: NUL, and lone surrogates,
# which is how Python spells the bytes of a file name that is not UTF-8 ('caf\udce9.ch5').
_UNWRITABLE = re.compile("[\x00\ud800-\udfff]")


def _spelt(char: re.Match) -> str:
    code = ord(char.group())
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name: the byte itself
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _writable(text: str, where: str, changed: dict[str, str]) -> str:
    """``text`` with what h5ad cannot store spelt out (``\\x00``, ``\\xe9``); see ``changed``."""
    if not _UNWRITABLE.search(text):
        return text
    fixed = _UNWRITABLE.sub(_spelt, text)
    changed.setdefault(where, fixed)
    return fixed


def _plain(value: Any, changed: dict[str, str] | None = None, where: str = "uns['cellae']") -> Any:
    """A value h5ad can store: nested dicts of str / numbers / bools / arrays; None dropped.

    h5ad has no None, so keys holding None are left out (the JSON copy keeps them); an empty
    list stays an (empty) array; text h5ad cannot hold is spelt out (see :func:`_writable`).
    """
    changed = {} if changed is None else changed
    if isinstance(value, Mapping):
        return {
            _writable(str(k), f"{where} key", changed): _plain(v, changed, f"{where}[{k!r}]")
            for k, v in value.items()
            if v is not None
        }
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return _writable(value, where, changed)
    if isinstance(value, list | tuple):
        items = [_plain(v, changed, where) for v in value if v is not None]
        if not items or all(isinstance(v, str) for v in items):
            return np.array(items, dtype=object)
        if all(isinstance(v, bool | int | float | np.number) for v in items):
            return np.asarray(items)
        return {str(i): v for i, v in enumerate(items)}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _jsonable(value: Any) -> Any:
    """``value`` as strict JSON can hold it: NaN and infinities become null, arrays lists."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [_jsonable(v) for v in items]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _writable_frame(frame: pd.DataFrame, name: str, changed: dict[str, str]) -> pd.DataFrame:
    """A copy of ``frame`` whose index, column names and text values h5ad can store."""
    import pandas as pd

    out = frame.copy()
    out.index = pd.Index(
        [_writable(str(v), f"{name} name", changed) for v in out.index], dtype=object
    )
    out.columns = [_writable(str(c), f"{name} column", changed) for c in out.columns]
    for column in out.columns:
        values = out[column]
        where = f"{name}[{column!r}]"
        if isinstance(values.dtype, pd.CategoricalDtype):
            cats = values.cat.categories
            if cats.dtype == object or pd.api.types.is_string_dtype(cats.dtype):
                fixed = [_writable(v, where, changed) if isinstance(v, str) else v for v in cats]
                if fixed != list(cats):
                    out[column] = values.cat.rename_categories(fixed)
        elif values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            out[column] = values.map(
                lambda v, w=where: _writable(v, w, changed) if isinstance(v, str) else v
            )
    return out


def _say_changed(changed: dict[str, str]) -> None:
    if not changed:
        return
    shown = "; ".join(f"{where}: '{text}'" for where, text in list(changed.items())[:6])
    more = f" (and {len(changed) - 6} more)" if len(changed) > 6 else ""
    warnings.warn(
        "the AnnData file cannot hold NUL characters or bytes that are not UTF-8 (a file "
        f"name in another encoding); they are written spelt out as \\x.. in {shown}{more}",
        stacklevel=3,
    )


def build_anndata(
    features: np.ndarray,
    obs: pd.DataFrame,
    var_names: list[str],
    obsm: Mapping[str, np.ndarray] | None = None,
    uns: Mapping[str, Any] | None = None,
    explorer_names: list[str] | None = None,
    colours: Mapping[str, Mapping[str, str]] | None = None,
) -> anndata.AnnData:
    """Assemble the AnnData object of a run.

    Parameters
    ----------
    features : ndarray (N, F)
        Stored as float32 ``X``.
    obs : pandas.DataFrame
        The cell table (one row per cell, string index).
    var_names : list of str
        One unique name per feature.
    obsm : mapping of str to ndarray (N, d), optional
        E.g. ``{"X_umap": ..., "X_pca": ...}``.
    uns : mapping, optional
        Stored under ``uns["cellae"]``, plus its JSON text as ``uns["cellae_json"]`` (which
        keeps values h5ad cannot hold, such as None; strict JSON: NaN and infinities are
        null, arrays are lists).
    explorer_names : list of str, optional
        The features' names in the Explorer ``.hdf`` (``var["explorer_name"]``).
    colours : mapping of str to mapping of str to str, optional
        Per column, a colour per category (``{"class": the classifier's colours}``). The
        categorical ``condition`` and ``class`` get ``uns["<column>_colors"]``, as scanpy
        reads them, with the colours napari shows (:func:`~napari_cellae.export.palette.
        category_colours`).

    Returns
    -------
    anndata.AnnData

    Raises
    ------
    ValueError
        If the shapes or names do not fit together.
    """
    import anndata as ad
    import pandas as pd

    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or len(x) != len(obs):
        raise ValueError(f"features {x.shape} do not match the cell table ({len(obs)} cells)")
    if len(var_names) != x.shape[1] or len(set(var_names)) != len(var_names):
        raise ValueError(
            f"need {x.shape[1]} unique feature names, got {len(var_names)} "
            f"({len(set(var_names))} unique)"
        )
    changed: dict[str, str] = {}
    var = pd.DataFrame(index=pd.Index([str(v) for v in var_names], dtype=str))
    if explorer_names is not None:
        var["explorer_name"] = [str(v) for v in explorer_names]
    var = _writable_frame(var, "var", changed)
    if not var.index.is_unique:
        raise ValueError(f"the feature names are not unique once written: {changed}")
    maps = {}
    for key, value in (obsm or {}).items():
        value = np.asarray(value, dtype=np.float32)
        if value.ndim != 2 or len(value) != len(x):
            raise ValueError(f"obsm[{key!r}] has shape {value.shape}, expected ({len(x)}, d)")
        maps[key] = value
    info = dict(uns or {})
    adata = ad.AnnData(X=x, obs=_writable_frame(obs, "obs", changed), var=var, obsm=maps or None)
    adata.uns["cellae"] = _plain(info, changed)
    adata.uns["cellae_json"] = json.dumps(_jsonable(info), sort_keys=True, allow_nan=False)
    # Without them scanpy coloured conditions and classes with tab10 (green beside red).
    for column in ("condition", "class"):
        if column in adata.obs and isinstance(adata.obs[column].dtype, pd.CategoricalDtype):
            given = dict((colours or {}).get(column) or {})
            if column == "class":  # gray, as napari shows cells without a prediction
                given = {UNCLASSIFIED: UNCLASSIFIED_COLOUR, **given}
            hexes = category_colours(adata.obs[column], given)
            adata.uns[f"{column}_colors"] = np.array(hexes, dtype=object)
    _say_changed(changed)
    return adata


def write_anndata(
    path: str | os.PathLike,
    adata: anndata.AnnData,
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Write an ``.h5ad`` file (temporary name, then rename).

    Parameters
    ----------
    path : path-like
        Must end in ``.h5ad``.
    adata : anndata.AnnData
    inputs : iterable of path-like, optional
        The run's input files; writing over one of them is refused.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        Naming the path: wrong suffix, it is an input or a folder, or writing failed.
    """
    path = check_output(path, inputs, "AnnData file")
    if path.suffix.lower() != H5AD_SUFFIX:
        raise ValueError(f"cannot write {path} as AnnData: the file name must end in .h5ad")
    with atomic_output(path) as tmp:
        try:
            adata.write_h5ad(tmp)
        except (OSError, RuntimeError):  # a full disk and the like: atomic_output says it
            raise
        except Exception as exc:  # anndata's words named neither the file nor where
            raise ValueError(f"cannot write {path} as AnnData: {_reason(exc)}") from exc
    return path


def _reason(exc: Exception) -> str:
    """What anndata or h5ad could not write, and where (anndata adds that as a note)."""
    where = [n for n in getattr(exc, "__notes__", []) if "writing key" in n]
    text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return f"{text} ({where[-1].strip()})" if where else text


def read_cells(path: str | os.PathLike, features: bool = True) -> anndata.AnnData:
    """Read an ``.h5ad`` file of cells, with messages that name the file.

    Parameters
    ----------
    path : path-like
    features : bool
        Load ``X``. False: the cell table alone (``obs``, ``var``, ``uns``), ``X`` left on
        disk; what ``cellae hits`` needs when the file holds its novelty. A screen's ``X``
        is 1 KB per cell (a million cells: 1 GB), its table a small part of that.

    Returns
    -------
    anndata.AnnData
        Loaded into memory (``X`` included, or None without ``features``).

    Raises
    ------
    ValueError
        If the file is missing, a folder or another non-regular file, unreadable, locked by
        a writer, or not an AnnData file.
    """
    import anndata as ad

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; expected an AnnData .h5ad file")
    if path.exists() and not path.is_file():  # /dev/null, a pipe: "no such file" misled
        raise ValueError(f"{path}: is not a regular file; expected an AnnData .h5ad file")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        adata = ad.read_h5ad(path) if features else _cell_table(path)
    except Exception as exc:  # h5py, anndata and OS errors alike: say which file
        refused = _refused(path, exc)
        if refused:
            raise ValueError(f"{path}: {refused}") from None
        # anndata's words were "AnnData.__init__() got an unexpected keyword" for a CellH5
        # file and "file signature not found" for a mapping or model: say what it is.
        if (other := not_anndata(path)) is not None:
            raise ValueError(other) from None
        raise ValueError(
            f"{path}: not a readable AnnData .h5ad file ({type(exc).__name__}: {exc})"
        ) from None
    _warn_pooled(adata.obs, path)
    return adata


def _refused(path: Path, exc: Exception) -> str | None:
    """Why the file could not be opened, in words, when the file system or a lock refused
    it (HDF5 named the reason only inside "not a readable AnnData file (...errno = 11...)");
    None when it was opened and its content is the trouble."""
    if lock_refused(exc):
        return (
            "its file system refuses HDF5's file locks; set the environment variable "
            "HDF5_USE_FILE_LOCKING=FALSE and run again"
        )
    if "unable to lock file" in str(exc).lower():
        return (
            "the file is locked by a program that is writing it; run again when that "
            "program has finished (or closed the file)"
        )
    if not os.access(path, os.R_OK):
        return "cannot read it (permission denied)"
    return None


def _cell_table(path: Path) -> anndata.AnnData:
    """The file's ``obs``, ``var`` and ``uns`` without ``X``: opened backed, so that ``X``
    stays on disk, and closed once the table is copied out."""
    import anndata as ad

    backed = ad.read_h5ad(path, backed="r")
    try:
        return ad.AnnData(obs=backed.obs.copy(), var=backed.var.copy(), uns=dict(backed.uns))
    finally:
        backed.file.close()


def _warn_pooled(obs: pd.DataFrame, path: Path) -> None:
    """Warn when cells repeat (same plate, position and object): two runs joined.

    ``ad.concat`` of two runs whose plates are named alike (every demo plate is
    ``demo_plate``) merges their categories, so ``cellae hits`` pooled the two runs' wells
    into one row each (twice the cells, the first run's condition), without a word.
    """
    key = [c for c in ("plate", "position", "object_index") if c in obs]
    if len(key) < 3 or obs.empty:
        return
    repeated = obs.duplicated(subset=key, keep=False).to_numpy()
    if repeated.any():
        first = obs[repeated].iloc[0]
        warnings.warn(
            f"{path}: {int(repeated.sum())} cells share their plate, position and object "
            f"with another (e.g. {first['plate']}/{first['position']}/{first['object_index']}):"
            " the file seems to join runs whose plates are named alike, and their wells are "
            "counted together; name each run's plate apart first (e.g. obs['plate'] = "
            "run + '/' + plate)",
            stacklevel=2,
        )
