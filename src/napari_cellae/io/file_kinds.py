"""What a file given in the wrong place is, so that messages name it and say what to give.

A cells file (``.h5ad``), an Explorer ``.hdf``, a model (``.pt``) or a mapping text given
where a CellH5 file is expected was called "not a CellH5 file: it has no /sample group" or
"not an HDF5 file"; a text file given to ``cellae hits`` was "not a readable AnnData .h5ad
file (OSError: ... file signature not found)". :func:`file_kind` tells these files apart by
their content (not their suffix, which is often wrong), and :func:`not_cellh5` and
:func:`not_anndata` (and :func:`not_model`) word what the file is and what the command needs
instead. :func:`replace_problem` keeps an output from replacing a file of another kind.
"""

from __future__ import annotations

import codecs
import re
import zipfile
import zlib
from pathlib import Path

import h5py

from napari_cellae.io.mapping_text import column_name, header_kind

__all__ = [
    "KINDS",
    "file_kind",
    "hdf5_top",
    "is_hdf5",
    "model_problem",
    "not_anndata",
    "not_cellh5",
    "not_model",
    "replace_problem",
]

# What each kind is, in words (after "is" in a message).
KINDS = {
    "cellh5": "a CellH5 file",
    "anndata": "an AnnData file of cells (as 'cellae encode --out cells.h5ad' writes)",
    "explorer": (
        "a CellCognition Explorer .hdf file of features (napari-cellae writes it with"
        " 'cellae encode --out features.hdf')"
    ),
    "model": "a napari-cellae model (as 'cellae train --out model.pt' writes)",
    "zip": "a ZIP archive (an Excel .xlsx workbook?)",
    "mapping": "a position-mapping text file (a table of positions and conditions)",
    "hits": "a CSV text file of ranked hits (as 'cellae hits' writes)",
    "csv": "a CSV text file",
    "text": "a text file",
}
# Far more than a mapping's header and first rows; the rest is not read.
_HEAD_BYTES = 64 * 1024
# Wells as mapping files write them in their first column (A01, A01_01, B12-2).
_WELL = re.compile(r"^[A-Za-z]{1,2}\d{1,3}(?:[_-]\w+)?$")


def file_kind(path: Path) -> str | None:
    """What kind of file ``path`` is, by its content.

    Parameters
    ----------
    path : Path
        A file that could be read (checked by the caller).

    Returns
    -------
    str or None
        A key of :data:`KINDS`, ``"hdf5"`` for an HDF5 file of other data, or None when the
        file cannot be read or is none of these (binary data of another kind).
    """
    try:
        if h5py.is_hdf5(path):
            return _hdf5_kind(path)
        if zipfile.is_zipfile(path):
            return _zip_kind(path)
        with path.open("rb") as file:
            head = file.read(_HEAD_BYTES)
    except (OSError, ValueError, zipfile.BadZipFile):  # a ZIP's end record, its directory not
        return None
    return _text_kind(head)


# What each output may replace: a file of its own kind (an earlier run's). Models have their
# own check (core.model_file.check_replaceable).
_REPLACES = {
    "features file": "explorer",
    "AnnData file": "anndata",
    "hit table": "hits",
    "CellH5 file": "cellh5",
    "position mapping": "mapping",
    "plot": "png",
    "gallery": "png",
}
_PNG = b"\x89PNG\r\n\x1a\n"


def replace_problem(path: Path, what: str) -> str | None:
    """Why the ``what`` (as :func:`~napari_cellae.io.atomic.check_output` names outputs)
    must not replace the file at ``path``, or None.

    An output replaced any file of its name: ``cellae hits cells.h5ad --out mapping.csv``
    put a hit table where the screen's mapping was, without a word. A file of the output's
    own kind (an earlier run's), an empty file and a new name are written as before.
    """
    kind = _REPLACES.get(what)
    if kind is None or not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        with path.open("rb") as file:
            found = "png" if file.read(len(_PNG)) == _PNG else file_kind(path)
    except OSError:  # cannot be read, so cannot be told: written as before
        return None
    if found == kind or (found == "hdf5" and hdf5_top(path) is None):
        return None  # of its kind, or cut short or locked by a writer: cannot be told
    said = {**KINDS, "hdf5": "an HDF5 file of other data"}.get(found, "a file of another kind")
    return (
        f"refusing to replace {path} with the {what}: it is {said}; choose another file "
        "name, or remove that file first"
    )


def hdf5_top(path: Path) -> list[str] | None:
    """The names at the top level of an HDF5 file; None if it cannot be opened."""
    try:
        with h5py.File(path, "r") as h5:
            return sorted(h5)
    except Exception:  # damaged, locked or no HDF5: the caller's own message says it
        return None


def _hdf5_kind(path: Path) -> str:
    try:
        with h5py.File(path, "r") as h5:
            top, training_sets = set(h5), "training_data" in h5.attrs
    except Exception:  # damaged or locked: callers tell it by hdf5_top's None
        return "hdf5"
    if "sample" in top:
        return "cellh5"
    if "obs" in top:
        return "anndata"
    # napari-cellae writes /data; CellCognition Explorer /data_<time> beside /settings,
    # both named in the attribute training_data
    if top == {"data"} or training_sets:
        return "explorer"
    return "hdf5"


def _zip_kind(path: Path) -> str:
    """torch.save writes a zip whose entries sit in one folder and include data.pkl."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        return "model"
    return "zip"


def _text_kind(head: bytes) -> str | None:
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    try:
        text = head.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError as err:
        if utf16 or err.start < len(head) - 4:  # not just a letter cut at _HEAD_BYTES
            return None
        text = head[: err.start].decode("utf-8-sig")
    if "\x00" in text or not text.strip():
        return None if "\x00" in text else "text"
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:  # comments only (a template not filled in): lines[0] raised
        return "text"
    first = lines[0]
    delimiter = next((d for d in ("\t", ";", ",") if d in first), None)
    if delimiter is None:
        return "text"
    names = [column_name(cell) for cell in first.split(delimiter)]
    # Without a plate column (a cells file that has none) it starts rank,position: that was
    # taken for a mapping, and 'give it with --mapping' was the advice.
    if names[0] == "rank" and names[1:2] in (["plate"], ["condition"], ["position"]):
        return "hits"
    rows = [line.split(delimiter)[0].strip() for line in lines[:20]]
    if header_kind(names) or sum(map(bool, map(_WELL.match, rows))) > len(rows) // 2:
        return "mapping"
    # A table repeats its columns: prose with a comma in its first line (a README) is text.
    counts = [line.count(delimiter) for line in lines[:20]]
    tabular = len(counts) >= 2 and counts.count(counts[0]) >= 0.8 * len(counts)
    return "csv" if delimiter == "," and tabular else "text"


# What to give instead of each kind where a CellH5 file is expected.
_INSTEAD_OF_CELLH5 = {
    "anndata": (
        "it holds features already made ('cellae hits' reads it); give the CellH5 (.ch5)"
        " file of the screen"
    ),
    "explorer": (
        "it holds features already made (CellCognition Explorer opens it); give the CellH5"
        " (.ch5) file of the screen"
    ),
    "model": "give it with --model, and the CellH5 (.ch5) file of the screen as the input",
    "mapping": "give it with --mapping, and the CellH5 (.ch5) file of the screen as the input",
}


def not_cellh5(path: Path) -> str | None:
    """Why ``path``, given where a CellH5 file is expected, is not one: what it is instead
    and what to give; None when the file is of no kind known here."""
    kind = file_kind(path)
    if kind is None or kind in ("cellh5", "hdf5"):
        return None
    instead = _INSTEAD_OF_CELLH5.get(kind, "give a CellH5 (.ch5) file")
    if kind in ("anndata", "explorer"):
        return f"{path}: is {KINDS[kind]}, not a CellH5 file; {instead}"
    return f"{path}: not an HDF5 file but {KINDS[kind]}, so not a CellH5 file; {instead}"


_MAKE_CELLS = "'cellae encode FILE.ch5 --model M --mapping MAP --out cells.h5ad'"
# What to give instead of each kind where a cells file (.h5ad) is expected.
_INSTEAD_OF_ANNDATA = {
    "cellh5": f"make the cells file with {_MAKE_CELLS}",
    "explorer": f"it has no cell table; make the cells file with {_MAKE_CELLS}",
    "model": f"give the cells file it encoded ({_MAKE_CELLS} writes one)",
    "mapping": (
        "give the mapping to 'cellae encode' (--mapping), and hits the cells file it writes:"
        f" {_MAKE_CELLS}"
    ),
}


def not_anndata(path: Path) -> str | None:
    """Why ``path``, given where an AnnData cells file is expected, is not one: what it is
    instead and what ``cellae hits`` needs; None for an AnnData file or a file of no kind
    known here."""
    kind = file_kind(path)
    if kind is None or kind == "anndata":
        return None
    if kind == "hdf5":
        top = hdf5_top(path)
        if top is None:  # cut short: it was "an HDF5 file of other data (top level: nothing)"
            return (
                f"{path}: the HDF5 file is damaged or cut short and cannot be read (an "
                f"interrupted copy or write?); copy it again or write it anew with {_MAKE_CELLS}"
            )
        what = f"an HDF5 file of other data (top level: {', '.join(top[:8]) or 'nothing'})"
    else:
        what = KINDS[kind]
    instead = _INSTEAD_OF_ANNDATA.get(kind, f"give the cells file made with {_MAKE_CELLS}")
    return f"{path}: not an AnnData .h5ad file but {what}; {instead}"


def not_model(path: Path) -> str:
    """Why ``path``, given as a model but no whole ZIP archive, is no model: empty, cut
    short, or a file of another kind (a truncated or empty model was called "not a
    napari-cellae model file (not an archive ...)", which sent users looking for another
    file)."""
    with path.open("rb") as file:
        head = file.read(4)
    again = "copy it again or train anew"
    if not head:
        return f"{path}: the model file is empty (an interrupted copy or save?); {again}"
    if head == b"PK\x03\x04":  # the start of torch.save's archive, its end missing
        return (
            f"{path}: damaged napari-cellae model file: it is cut short (an interrupted "
            f"copy or save?); {again}"
        )
    kind = file_kind(path)
    if kind in KINDS:  # a mapping or CSV given as --model
        return (
            f"{path} is not a napari-cellae model file but {KINDS[kind]}; give the .pt file "
            "that 'cellae train' wrote"
        )
    return f"{path} is not a napari-cellae model file (not an archive as torch.save writes)"


def is_hdf5(path: Path) -> bool:
    """Whether the file is HDF5, by h5py's signature check; False if it cannot be read."""
    try:
        return h5py.is_hdf5(path)
    except OSError:
        return False


def model_problem(path: Path) -> str | None:
    """Why ``path``, given as a model, is none before torch reads it (None: no problem seen).

    A folder, a missing, unreadable or HDF5 file, no whole ZIP archive, or an archive whose
    checksums fail: torch does not check them, so a flipped bit changed weights (features)
    without a word, or was called "not a napari-cellae model file".
    """
    if path.is_dir():  # 'does not exist' sent users looking for a missing file
        return f"{path}: is a folder; expected a model file (.pt)"
    if path.exists() and not path.is_file():  # /dev/null, a pipe: 'does not exist' misled
        return f"{path}: is not a regular file; expected a model file (.pt)"
    if not path.is_file():
        return f"model file {path} does not exist"
    try:  # an unreadable file: is_zipfile below would call it "not an archive"
        with path.open("rb"):
            pass
    except OSError as err:
        return f"model file {path} cannot be read ({err.strerror or err})"
    if is_hdf5(path):  # a cells file given for the model: torch said 'UnpicklingError'
        return (
            f"{path} is an HDF5 file (a CellH5, .h5ad or Explorer .hdf file?), not a "
            "napari-cellae model file; give the .pt file that 'cellae train' wrote"
        )
    if not zipfile.is_zipfile(path):  # e.g. a bare pickle: torch warned, then refused it
        return not_model(path)
    try:  # an entry whose bytes fail their CRC is named; other damage torch.load reports
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError):
        return None
    if broken is None:
        return None
    return (
        f"{path}: damaged napari-cellae model file: its part {broken} fails its checksum (a "
        "damaged copy or disk?); copy it again or train anew"
    )
