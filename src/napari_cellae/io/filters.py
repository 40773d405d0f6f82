"""Name an HDF5 compression filter a dataset needs but this HDF5 installation lacks.

HDF5 words a missing filter plugin by where it looked for it ("can't open directory
(/usr/local/lib/plugin)"), not by the filter, which read as damaged pixels or tables.
"""

from __future__ import annotations

from typing import Any

import h5py

__all__ = ["missing_filter"]


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
        dsid = dataset.id if isinstance(dataset, h5py.Dataset) else dataset
        plist = dsid.get_create_plist()
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
