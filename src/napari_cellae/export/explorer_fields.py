"""Values fitted to the fixed-size fields of a CellCognition Explorer ``.hdf`` file.

The Explorer's tables have fixed widths: ``file`` and ``treatment`` hold 128 bytes, the
outline corners are uint16. numpy cuts longer text without a word and wraps or clips
numbers, so two long conditions that differ only after byte 128 became one treatment (the
Explorer then pooled their cells). Here every distinct text keeps distinct bytes, and each
change is said in a warning:

* characters the Explorer's tables cannot show (control characters: NUL, which ends the
  text for C readers, tabs and line breaks) become spaces; text that is not valid Unicode
  (a file name's undecodable bytes) gets ``?``;
* text longer than the field is cut at a character boundary (never inside a UTF-8
  character);
* text whose bytes another text already has gets a suffix ``~2``, ``~3``, ... (cut to
  make room).

Numbers: integers beyond 32 bits are refused (:func:`int32_columns`), outline corners past
65535 px are cut and said (:func:`corner_contours`), and features must stay finite as
float32 (:func:`fits_float32`).
"""

from __future__ import annotations

import unicodedata
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_cellae.core.crops import CropSet

__all__ = ["FileFields", "FixedText", "corner_contours", "fits_float32", "int32_columns"]

# Outline corners are uint16 in the Explorer's format.
MAX_CORNER = int(np.iinfo(np.uint16).max)

_SHOWN = 3  # changed texts named in one warning


def _plain(text: str) -> str:
    plain = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    # 'KIF11\x00' is no other name than 'KIF11' with a trailing space.
    return plain.strip() if plain != text else text


def _cut(data: bytes, width: int) -> bytes:
    data = data[:width]
    while data:  # drop the bytes of a character cut in two
        try:
            data.decode("utf-8")
            return data
        except UnicodeDecodeError:
            data = data[:-1]
    return data


def _short(text: str | bytes) -> str:
    shown = repr(text[:40]) + ("..." if len(text) > 40 else "")
    return shown + (f" ({len(text)} bytes)" if isinstance(text, bytes) and len(text) > 40 else "")


class FixedText:
    """The text of one fixed-width bytes column (``file`` or ``treatment``).

    Every distinct text is given its bytes once, and keeps them in later calls (the rows
    of a streamed file arrive position by position), so one text is written alike in
    every row and two texts never share their bytes.

    Parameters
    ----------
    column : str
        The column's name, for warnings.
    width : int
        Bytes the column holds.
    where : str
        The file, for warnings.
    """

    def __init__(self, column: str, width: int, where: str = "the Explorer file") -> None:
        self.column = column
        self.width = int(width)
        self.where = where
        self._given: dict[str, bytes] = {}
        self._used: set[bytes] = set()

    def _fit(self, text: str) -> tuple[bytes, list[str]]:
        why = []
        plain = _plain(text)
        if plain != text:
            why.append("control characters (NUL, tab, line break) became spaces")
        data = plain.encode("utf-8", errors="replace")
        if data.decode("utf-8") != plain:
            why.append("characters that are not text became '?'")
        fitted = _cut(data, self.width)
        if fitted != data:
            why.append(f"{len(data)} bytes, longer than the {self.width} the column holds")
        k = 1
        base = fitted
        while fitted in self._used:  # another text has these bytes: make it distinct
            k += 1
            suffix = f"~{k}".encode()
            fitted = _cut(base, self.width - len(suffix)) + suffix
        if k > 1:
            why.append(f"{_short(base)} is already another {self.column}'s")
        return fitted, why

    def encode(self, values: Sequence[str]) -> np.ndarray:
        """The bytes of ``values`` as an array of ``S<width>``; warns of any text changed.

        Parameters
        ----------
        values : sequence of str

        Returns
        -------
        ndarray of bytes

        Warns
        -----
        UserWarning
            Naming each text first seen here that is written otherwise, and why.
        """
        changed = []
        out = []
        for value in values:
            value = str(value)
            if value not in self._given:
                fitted, why = self._fit(value)
                self._given[value] = fitted
                self._used.add(fitted)
                if why:
                    changed.append(f"{_short(value)} as {_short(fitted)} ({'; '.join(why)})")
            out.append(self._given[value])
        if changed:
            more = f"; and {len(changed) - _SHOWN} more" if len(changed) > _SHOWN else ""
            warnings.warn(
                f"{self.where}: the Explorer's '{self.column}' column cannot hold "
                f"{len(changed)} {self.column} name(s) as they are; written: "
                + "; ".join(changed[:_SHOWN])
                + more,
                UserWarning,
                stacklevel=3,
            )
        return np.array(out, dtype=f"S{self.width}")


class FileFields:
    """What the fixed-width fields of one Explorer file keep over several calls: the
    ``file`` and ``treatment`` texts (:class:`FixedText`), and whether cut outlines were
    said (:func:`corner_contours`).

    Parameters
    ----------
    where : str
        The file, for warnings.
    """

    def __init__(self, where: str = "the Explorer file") -> None:
        self.where = where
        self.corners_cut = False  # outlines past 65535 px said (corner_contours)
        self.file = FixedText("file", 128, where)
        self.treatment = FixedText("treatment", 128, where)


def corner_contours(
    origin_x: np.ndarray, origin_y: np.ndarray, size: int, fields: FileFields | None = None
) -> np.ndarray:
    """The uint16 outline of each crop square: x corners and y corners, shape (N, 2).

    Corners before the image are cut at 0; corners past 65535 px (the largest uint16)
    are cut there, which draws those cells' outlines wrongly: a warning says so, once per
    file (``fields``, the file's :class:`FileFields`).

    Parameters
    ----------
    origin_x, origin_y : ndarray (N,)
        Top-left corner of each crop window in image pixels.
    size : int
        Edge of the window.
    fields : FileFields, optional
        The file's; names it in the warning and remembers that it was given.

    Returns
    -------
    ndarray (N, 2) of object
        uint16 arrays.

    Warns
    -----
    UserWarning
        If some crop squares reach past 65535 px.
    """
    x0 = np.asarray(origin_x, dtype=np.int64)
    y0 = np.asarray(origin_y, dtype=np.int64)
    xs = np.stack([x0, x0 + size, x0 + size, x0], axis=1)
    ys = np.stack([y0, y0, y0 + size, y0 + size], axis=1)
    fields = fields if fields is not None else FileFields()
    beyond = (xs > MAX_CORNER).any(axis=1) | (ys > MAX_CORNER).any(axis=1)
    if beyond.any() and not fields.corners_cut:
        fields.corners_cut = True
        first = int(np.argmax(beyond))
        warnings.warn(
            f"{fields.where}: cells lie beyond {MAX_CORNER} px (the first crop starts at "
            f"x={int(x0[first])}, y={int(y0[first])}), which the Explorer's uint16 outlines "
            "cannot hold: their outlines are cut at that edge (features, positions and "
            "thumbnails are right)",
            UserWarning,
            stacklevel=3,
        )
    xs = np.clip(xs, 0, MAX_CORNER).astype(np.uint16)
    ys = np.clip(ys, 0, MAX_CORNER).astype(np.uint16)
    contours = np.empty((len(x0), 2), dtype=object)
    for i in range(len(x0)):
        contours[i, 0] = xs[i]
        contours[i, 1] = ys[i]
    return contours


def int32_columns(crops: CropSet) -> dict[str, np.ndarray]:
    """``label``, ``x``, ``y`` and the box (``left`` ... ``bottom``) of ``crops`` as int32.

    Parameters
    ----------
    crops : CropSet

    Returns
    -------
    dict of str to ndarray (N,) of int32

    Raises
    ------
    ValueError
        Where a value does not fit 32 bits (numpy's cast wrapped it: x=2**31+5 was
        written as -2147483643), naming the column and value.
    """
    box = np.asarray(crops.bbox).reshape(len(crops), 4)
    columns = {"label": crops.label_id, "x": crops.center_x, "y": crops.center_y}
    columns.update(zip(("left", "right", "top", "bottom"), box.T, strict=True))
    info = np.iinfo(np.int32)
    out = {}
    for name, values in columns.items():
        values = np.asarray(values)
        if values.size and (values.min() < info.min or values.max() > info.max):
            bad = values.max() if values.max() > info.max else values.min()
            raise ValueError(
                f"{crops.source}: '{name}' {int(bad)} does not fit the Explorer file's 32 bits"
            )
        out[name] = values.astype(np.int32)
    return out


def fits_float32(features: np.ndarray) -> bool:
    """Whether every value is finite and stays finite as float32 (1e39 becomes inf).

    Parameters
    ----------
    features : ndarray

    Returns
    -------
    bool
    """
    features = np.asarray(features)
    if not np.all(np.isfinite(features)):
        return False
    if features.dtype.kind == "f" and features.dtype.itemsize > 4 and features.size:
        return bool(np.abs(features).max() <= np.finfo(np.float32).max)
    return True
