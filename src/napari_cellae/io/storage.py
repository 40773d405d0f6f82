"""HDF5 storage troubles in words: a compression filter not installed, a table never
written, values kept in a virtual dataset's source or an external raw file that is gone.

HDF5 words a missing filter plugin by where it looked for it ("can't open directory
(/usr/local/lib/plugin)"), not by the filter, which read as damaged pixels or tables. A
dataset created but never written (a writer that stopped) reads as its fill value, zeros,
without an error: a table of zero centres or label ids that looked like cells.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

__all__ = [
    "external_target",
    "external_trouble",
    "missing_filter",
    "never_written",
    "read_into",
    "values_elsewhere_trouble",
    "virtual_trouble",
]

# What h5py raises for a dataset whose storage it cannot look up.
_LOOKUP_ERRORS = (KeyError, RuntimeError, OSError, ValueError, TypeError)


def _dataset_id(dataset: Any) -> Any:
    return dataset.id if isinstance(dataset, h5py.Dataset) else dataset


def missing_filter(dataset: Any) -> str | None:
    """Say which filter of ``dataset``'s pipeline cannot be applied here, if any.

    Parameters
    ----------
    dataset : h5py.Dataset or h5py.h5d.DatasetID
        Any dataset; anything else (a numpy array) has no filters.

    Returns
    -------
    str or None
        E.g. "it is compressed with the HDF5 filter 'blosc' (id 32001), which is not
        installed here (...)"; None where every filter is available.
    """
    try:
        plist = _dataset_id(dataset).get_create_plist()
        for i in range(plist.get_nfilters()):
            code, _flags, _values, name = plist.get_filter(i)
            if not h5py.h5z.filter_avail(code):
                label = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
                label = f"'{label}' (id {code})" if label else f"id {code}"
                return (
                    f"it is compressed with the HDF5 filter {label}, which is not installed"
                    " here (install that filter's HDF5 plugin, e.g. from the hdf5plugin"
                    " package, and set HDF5_PLUGIN_PATH to its folder)"
                )
    except (AttributeError, OSError, RuntimeError, ValueError, TypeError):
        return None
    return None


def never_written(dataset: Any) -> bool:
    """Whether HDF5 holds no values at all for a chunked or contiguous ``dataset``.

    Virtual datasets and datasets kept in external raw files hold none in the file itself,
    so they are never said to be unwritten.
    """
    try:
        dsid = _dataset_id(dataset)
        if dsid.get_storage_size() != 0:  # a written table, decided without its plist (~10x)
            return False
        plist = dsid.get_create_plist()
        if plist.get_layout() not in (h5py.h5d.CHUNKED, h5py.h5d.CONTIGUOUS):
            return False
        return plist.get_external_count() == 0
    except (AttributeError, OSError, RuntimeError, ValueError, TypeError):
        return False


def external_target(filename: str, holder: Path) -> Path:
    """Where HDF5 finds an external link's (or virtual dataset's) file: beside the file
    holding the link, else relative to the working folder (CellCognition writes bare names,
    CellProfiler absolute paths)."""
    target = Path(filename)
    if target.is_absolute():
        return target
    beside = holder.parent / target
    return beside if beside.exists() or not target.exists() else target


def virtual_trouble(dataset: h5py.Dataset) -> str | None:
    """Say which source of a virtual dataset cannot be read, if any.

    HDF5 reads the parts of a virtual dataset whose source file or dataset is missing as its
    fill value (zeros) without an error, so a moved source file would turn pixels into a
    blank image without a word.

    Parameters
    ----------
    dataset : h5py.Dataset
        Any dataset; one that is not virtual has no trouble.

    Returns
    -------
    str or None
        The first missing or unreadable source file, or source dataset, in words.
    """
    try:
        if not dataset.is_virtual:
            return None
        sources = sorted({(m.file_name, m.dset_name) for m in dataset.virtual_sources()})
        holder = Path(dataset.file.filename)
    except _LOOKUP_ERRORS:
        return None
    for name, path in sources:
        target = holder if name == "." else external_target(name, holder)  # "." is itself
        if not target.is_file():
            return f"its source file '{name}' is missing ({target})"
        try:
            with h5py.File(target, "r") as source:
                present = isinstance(source.get(path), h5py.Dataset)
        except OSError as err:
            return f"its source file {target} cannot be read as HDF5 ({err})"
        if not present:
            return f"its source file {target} has no dataset {path}"
    return None


def external_trouble(dataset: h5py.Dataset) -> str | None:
    """Say which external raw file of a dataset is missing, if any.

    A dataset may keep its values in plain files outside the HDF5 file (external storage).
    HDF5 looks for them from the working folder (or ``HDF5_EXTFILE_PREFIX``), not beside
    the file, and a missing one failed every read as "unable to open external raw data
    file", which read like damaged pixels.

    Parameters
    ----------
    dataset : h5py.Dataset
        Any dataset; one without external storage has no trouble.

    Returns
    -------
    str or None
        The first missing file in words, with where it was looked for.
    """
    try:
        files = dataset.external
        if not files:  # nearly every dataset: skip dataset.file, ~30 us a position image
            return None
        holder = Path(dataset.file.filename)
    except _LOOKUP_ERRORS:
        return None
    prefix = os.environ.get("HDF5_EXTFILE_PREFIX", "").replace("${ORIGIN}", str(holder.parent))
    for name, *_ in files:
        raw = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        target = Path(prefix) / raw if prefix else Path(raw)
        if target.is_file():
            continue
        beside = holder.parent / raw
        hint = (
            f"; one is beside {holder.name}, but HDF5 looks from the folder a program runs "
            f"in: run it from {holder.parent}"
            if beside.is_file()
            else ""
        )
        missing = f"'{raw}', which is missing ({target.absolute()})"
        return f"keeps its values in the external file {missing}{hint}"
    return None


def _virtual_source_gone(dataset: Any) -> str | None:
    """What :func:`virtual_trouble` says of a virtual ``dataset``:
    a source that is gone reads as zeros without an error (only image/channel was checked)."""
    try:
        dsid = _dataset_id(dataset)
        if dsid.get_storage_size() != 0 or dsid.get_create_plist().get_layout() != h5py.h5d.VIRTUAL:
            return None
    except (AttributeError, OSError, RuntimeError, ValueError, TypeError):
        return None
    return virtual_trouble(dataset if isinstance(dataset, h5py.Dataset) else h5py.Dataset(dsid))


def values_elsewhere_trouble(dataset: h5py.Dataset, what: str) -> str | None:
    """Say, of pixels kept outside the file, which source is gone, starting with ``what``.

    A virtual dataset whose source file or dataset is missing reads as zeros without an
    error (label images looked like a segmentation without the objects' labels), and a
    missing external raw file failed every read in HDF5's words.

    Parameters
    ----------
    dataset : h5py.Dataset
        Any dataset; one kept in the file itself has no trouble.
    what : str
        How the message names the dataset, e.g. "image/region of position A01_1".

    Returns
    -------
    str or None
        The trouble in words, or None.
    """
    if trouble := virtual_trouble(dataset):
        return f"{what} is a virtual dataset and {trouble}; HDF5 would read those pixels as zeros"
    if trouble := external_trouble(dataset):
        return f"{what} {trouble}"
    return None


def read_into(dataset: Any, out: np.ndarray) -> str | None:
    """Read all of ``dataset`` (an h5py dataset or its low-level id) into ``out``.

    Returns
    -------
    str or None
        None once read; else what is wrong, worded to follow the table's name: "was never
        written ...", "cannot be read: it is compressed with ...", "is damaged ...".
    """
    if never_written(dataset):
        return (
            f"was never written: the file holds no values for its {len(out)} row(s), which"
            " would all read as HDF5's fill value (the program writing it stopped?)"
        )
    if (gone := _virtual_source_gone(dataset)) is not None:
        return f"is a virtual dataset and {gone}; HDF5 would read its values as zeros"
    try:
        _dataset_id(dataset).read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    except OSError as err:
        missing = missing_filter(dataset)  # HDF5's words name only where it looked
        if missing:
            return f"cannot be read: {missing} ({err})"
        return f"is damaged and cannot be read ({err})"
    return None
