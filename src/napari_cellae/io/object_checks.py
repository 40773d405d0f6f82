"""Reading one object type's feature tables with checks whose errors name the table and
rows (:class:`ObjectChecker`), for :func:`napari_cellae.io.objects.read_object_table`."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from napari_cellae.io.hdf5 import CellH5Error, read_table

__all__ = ["ObjectChecker", "shown_number", "shown_rows"]

_SHOWN_ROWS = 8
_INT32 = np.iinfo(np.int32)


def shown_number(value: np.generic) -> str:
    """A stored number as written: integers exactly, whole floats without ``.0``."""
    value = value.item()
    if isinstance(value, float) and (abs(value) >= 1e15 or not value.is_integer()):
        return f"{value:g}"  # not 300 digits for 1e300; 80.7 as stored, not 80
    return str(int(value))


def shown_rows(indices: np.ndarray) -> str:
    """The first few object rows, with ``...`` where there are more."""
    shown = ", ".join(str(int(i)) for i in indices[:_SHOWN_ROWS])
    return shown + (" ..." if len(indices) > _SHOWN_ROWS else "")


class ObjectChecker:
    """Reads the feature tables of one object type and names them in errors."""

    def __init__(self, group: h5py.Group, object_name: str, source: Path, where: str) -> None:
        self.group, self.object_name, self.source, self.where = group, object_name, source, where

    def error(self, message: str) -> CellH5Error:
        return CellH5Error(f"{self.source}: {self.where}: {message}")

    def whole(self, values: np.ndarray, table: str, column: str) -> np.ndarray:
        """``values`` as whole numbers in their own width (float ones rounded, NaN or
        infinite ones refused), so range checks see the stored value, not a wrapped one."""
        if values.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(values))
            if len(bad):
                nan = np.isnan(values[bad])
                kinds = ("infinite", "missing (NaN) or infinite", "missing (NaN)")
                what = kinds[int(nan.any()) + int(nan.all())]
                raise self.error(
                    f"{column} is {what} for {len(bad)} object(s) in {table}, object"
                    f" row(s) {shown_rows(bad)}; export the file again or remove those objects"
                )
            # Ties up, not to even: x.5 alternating with x's parity put a cell moved by one
            # pixel one pixel off in its crop; up, an even crop's centre pixel (size // 2)
            # puts the window's middle on the centroid.
            nearest = np.rint(values)
            return nearest + (values - nearest == 0.5)
        if values.dtype.kind not in "iub":
            raise self.error(f"{table} column {column} holds {values.dtype}, not numbers")
        return values

    def frames(self, values: np.ndarray, table: str) -> np.ndarray:
        """``time_idx`` as whole numbers; a fractional frame index is refused: rounding it
        picked a frame without a word, the wrong one where the column means something else
        (a time in seconds or hours, not a frame count)."""
        whole = self.whole(values, table, "time_idx")
        self.exact(values, table, "time_idx", "a whole frame number (frames count 0, 1, 2 ...)")
        return whole

    def exact(self, values: np.ndarray, table: str, column: str, what: str) -> None:
        """Refuse fractional values in a column that counts (frames, label ids, classes):
        rounding one picked another frame, cell or class without a word."""
        if values.dtype.kind != "f":
            return
        fractional = np.flatnonzero(np.isfinite(values) & (np.rint(values) != values))
        if len(fractional):
            i = int(fractional[0])
            raise self.error(
                f"{column} {values[i]:g} of object {i} in {table} is not {what};"
                f" {len(fractional)} object(s) have a fractional one, object row(s)"
                f" {shown_rows(fractional)}"
            )

    def real(self, table: np.ndarray, column: str) -> np.ndarray:
        """Column ``column`` of the orientation table as float64 (NaN allowed: only shown)."""
        values = table[column]
        if values.dtype.kind not in "iubf":
            raise self.error(
                f"feature/{self.object_name}/orientation column {column} holds {values.dtype},"
                " not numbers"
            )
        return values.astype(np.float64)

    def integers(
        self, values: np.ndarray, table: str, column: str, *, clip: bool = False
    ) -> np.ndarray:
        """``values`` as int32; values beyond its range are refused (``astype`` would wrap
        them round silently), or clipped with ``clip``."""
        values = self.whole(values, table, column)
        beyond = (values < _INT32.min) | (values > _INT32.max)
        if beyond.any():
            if not clip:
                bad = np.flatnonzero(beyond)
                raise self.error(
                    f"{column} does not fit a 32-bit integer for {len(bad)} object(s) in"
                    f" {table}, object row(s) {shown_rows(bad)},"
                    f" e.g. {shown_number(values[bad[0]])};"
                    " export the file again or remove those objects"
                )
            # Via float64 (exact within the int32 range): np.clip of a uint64 column to a
            # negative bound raises.
            values = np.clip(values.astype(np.float64), _INT32.min, _INT32.max)
        return values.astype(np.int32)

    def rows(self, data: np.ndarray, path: str) -> np.ndarray:
        """``data`` if it holds one row per object; a scalar or 2-D table would index or
        broadcast wrongly further on."""
        if data.ndim != 1:
            raise self.error(
                f"{path} has shape {data.shape}; CellH5 tables hold one row per object"
                " (1-D); export the file again"
            )
        return data

    def table(self, name: str, fields: tuple[str, ...], n: int) -> np.ndarray | None:
        path = f"feature/{self.object_name}/{name}"
        data = read_table(self.group, path, self.source, self.where)
        if data is None:
            return None
        if data.dtype.names is None or not set(fields) <= set(data.dtype.names):
            raise self.error(f"{path} lacks {fields}")
        self.rows(data, path)
        if len(data) != n:
            raise self.error(f"{path} has {len(data)} rows, object/{self.object_name} has {n}")
        return data
