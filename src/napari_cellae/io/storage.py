"""HDF5 storage troubles in words: a compression filter not installed, a table never written
or made of a virtual dataset whose source is gone.

HDF5 words a missing filter plugin by where it looked for it ("can't open directory
(/usr/local/lib/plugin)"), not by the filter, which read as damaged pixels or tables. A
dataset created but never written (a writer that stopped) reads as its fill value, zeros,
without an error: a table of zero centres or label ids that looked like cells.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

__all__ = ["missing_filter", "never_written", "read_into", "values_elsewhere_trouble"]


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


def _virtual_source_gone(dataset: Any) -> str | None:
    """What :func:`~napari_cellae.io.hdf5.virtual_trouble` says of a virtual ``dataset``:
    a source that is gone reads as zeros without an error (only image/channel was checked)."""
    try:
        dsid = _dataset_id(dataset)
        if dsid.get_storage_size() != 0 or dsid.get_create_plist().get_layout() != h5py.h5d.VIRTUAL:
            return None
    except (AttributeError, OSError, RuntimeError, ValueError, TypeError):
        return None
    from napari_cellae.io.hdf5 import virtual_trouble  # hdf5 imports this module

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
    from napari_cellae.io.hdf5 import external_trouble, virtual_trouble  # hdf5 imports us

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
