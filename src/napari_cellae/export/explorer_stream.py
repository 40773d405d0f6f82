"""Write the CellCognition Explorer ``.hdf`` incrementally, one position (or batch) at a time.

The file has the layout of :func:`napari_cellae.export.explorer.write_explorer_hdf` (the rows
are built by the same code), but its datasets are resizable and grow as cells arrive, so a
whole screen is written without holding its cells in memory. The file is written under a
temporary name and renamed only when :class:`ExplorerWriter` closes without an error; an
error (or Ctrl-C) removes it, so the final path never holds a partial file.

Typical use::

    with ExplorerWriter(path, mapping, normalisation=trained.normalisation) as writer:
        for crops, features in encoded_positions:
            writer.append(crops, features)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import h5py
import numpy as np

from napari_cellae.export.explorer import (
    BBOX_DTYPE,
    FEATURE_GROUP_DTYPE,
    GALLERY_COLOR,
    application_name,
    build_arrays,
    checked_features,
    outline_channels,
    source_image_size,
)
from napari_cellae.export.explorer_fields import FileFields, fits_float32
from napari_cellae.export.explorer_names import feature_names
from napari_cellae.io.atomic import atomic_hdf5, check_output

if TYPE_CHECKING:
    from napari_cellae.core.crops import CropSet
    from napari_cellae.core.normalisation import Normalisation
    from napari_cellae.io.mapping import PositionMapping

__all__ = ["ExplorerWriter"]

# Thumbnails per gallery chunk (as write_explorer_hdf); rows are flushed in whole chunks so
# no compressed chunk is written twice.
_GALLERY_CHUNK = 256
_FLUSH_ROWS = 16 * _GALLERY_CHUNK


class ExplorerWriter:
    """Append cells to a CellCognition Explorer ``.hdf`` file; a context manager.

    Parameters
    ----------
    path : path-like
        The final file; checked against ``inputs`` at once, written under a temporary name.
    mapping : PositionMapping or None
        Gives each position's condition (``treatment``).
    normalisation : Normalisation, optional
        The model's scaling, used to make 8-bit thumbnails of wider crops (8-bit crops are
        stored unchanged). Required unless every appended crop is uint8.
    image_size : (int, int), optional
        (height, width) of the source images; default: read from the first appended
        crops' CellH5 file.
    inputs : iterable of path-like, optional
        The run's input files; writing over one of them is refused.
    names : sequence of str, optional
        The features' own names, written as ``ch1-<name>``
        (:func:`~napari_cellae.export.explorer_names.feature_names`).

    Raises
    ------
    ValueError
        If ``path`` is an input, a folder, or its folder is missing.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        mapping: PositionMapping | None = None,
        *,
        normalisation: Normalisation | None = None,
        image_size: tuple[int, int] | None = None,
        inputs: Iterable[str | os.PathLike | None] = (),
        names: Sequence[str] | None = None,
    ) -> None:
        self.path = check_output(path, list(inputs), "features file")
        self.mapping = mapping
        self.normalisation = normalisation
        self.image_size = image_size
        self.names = names
        self.fields = FileFields(str(self.path))  # one name per text over all appends
        self.n_rows = 0
        self.n_features: int | None = None
        self._stack: contextlib.ExitStack | None = None
        self._h5: h5py.File | None = None
        # The growing datasets, open until the file closes: a dataset freed after each
        # write flushed its cached chunks while being freed, where a full disk's error
        # cannot be raised (h5py printed tracebacks, and the process crashed later).
        self._datasets: dict[str, h5py.Dataset] = {}
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_rows = 0

    # -- context manager ---------------------------------------------------------------
    def __enter__(self) -> ExplorerWriter:
        stack = contextlib.ExitStack()
        try:
            self._h5 = stack.enter_context(atomic_hdf5(self.path))
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, kind: type[BaseException] | None, value, traceback) -> bool:
        stack, self._stack = self._stack, None
        if stack is None:
            return False
        if kind is None:
            try:
                self._finish()
            except BaseException as exc:
                # The temporary file is removed by atomic_hdf5 on the way out.
                if not stack.__exit__(type(exc), exc, exc.__traceback__):
                    raise
                return False
        return bool(stack.__exit__(kind, value, traceback))

    # -- writing ---------------------------------------------------------------------------
    def append(
        self, crops: CropSet, features: np.ndarray, file_labels: Sequence[str] | None = None
    ) -> None:
        """Add the cells of ``crops`` (in order) with their features.

        Parameters
        ----------
        crops : CropSet
            Cells to add; ``crops.crops`` are the crops or already their uint8 thumbnails.
        features : ndarray (len(crops), F)
        file_labels : sequence of str, optional
            The ``file`` column's name of each of ``crops.positions`` (see
            :func:`~napari_cellae.export.explorer.build_arrays`): a stream of several plates
            names the plate too, which one position's cells alone do not show.

        Raises
        ------
        ValueError
            If the features do not match the crops or earlier rows, or are not finite.
        """
        if self._h5 is None:
            raise RuntimeError("ExplorerWriter.append() outside its 'with' block")
        n = len(crops)
        features = checked_features(self.path, features, n)
        if self.n_features is not None and features.shape[1] != self.n_features:
            raise ValueError(
                f"cannot write {self.path}: {features.shape[1]} features per cell, but the "
                f"cells before had {self.n_features}"
            )
        if features.shape[1] == 0:
            raise ValueError(f"cannot write {self.path}: features have no columns")
        if not fits_float32(features):
            where = f"{crops.source}" + (f", position {crops.positions[0].label}" if n else "")
            raise ValueError(
                f"cannot write {self.path}: features of {where} contain NaN or infinite values "
                "(or values too large for the file's 32-bit floats)"
            )
        if n == 0:
            return
        if self.normalisation is None and crops.crops.dtype != np.uint8:
            # Scaling chosen per batch would make thumbnails of one file incomparable.
            raise ValueError(
                f"cannot write {self.path}: {crops.crops.dtype} crops need the model's "
                "normalisation to become 8-bit thumbnails"
            )
        if self.image_size is None:
            self.image_size = source_image_size(crops)
        if self.n_features is None and self.names is not None:
            # Said once: names that do not fit are dropped for every append.
            generic = feature_names(features.shape[1])
            if feature_names(features.shape[1], self.names) == generic:
                self.names = None
        self.n_features = features.shape[1]
        self._pending.append(
            build_arrays(
                crops,
                features,
                self.mapping,
                self.normalisation,
                self.names,
                file_labels,
                fields=self.fields,
            )
        )
        self._pending_rows += n
        if self._pending_rows >= _FLUSH_ROWS:
            self._flush(final=False)

    def _create(self, first: dict[str, np.ndarray]) -> None:
        h5 = self._h5
        h5.attrs["training_data"] = np.array([b"data"])
        h5.attrs["application"] = np.bytes_(application_name().encode("utf-8"))
        data = h5.create_group("data")
        rows = 4096
        sets = self._datasets
        sets["bbox"] = data.create_dataset(
            "bbox", shape=(0,), maxshape=(None,), dtype=BBOX_DTYPE, chunks=(rows,)
        )
        feat_dtype = first["features"].dtype
        sets["features"] = data.create_dataset(
            "features", shape=(0,), maxshape=(None,), dtype=feat_dtype, chunks=(rows,)
        )
        sets["groups"] = data.create_dataset(
            "feature_groups", data=first["groups"].astype(FEATURE_GROUP_DTYPE)
        )
        s, _, c, _ = first["gallery"].shape
        contours = data.create_group("contours")
        contours.attrs["channels"] = np.array([name.encode() for name in outline_channels(c)])
        for name in outline_channels(c):  # the same outline for every colour
            sets[f"contours/{name}"] = contours.create_dataset(
                name,
                shape=(0, 2),
                maxshape=(None, 2),
                dtype=h5py.vlen_dtype(np.uint16),
                chunks=(rows, 2),
            )
        sets["gallery"] = gds = data.create_dataset(
            "gallery",
            shape=(s, s, c, 0),
            maxshape=(s, s, c, None),
            dtype=np.uint8,
            chunks=(s, s, c, _GALLERY_CHUNK),
            compression="gzip",
            compression_opts=1,
        )
        gds.attrs["colors"] = np.array([GALLERY_COLOR] * c)

    def _flush(self, final: bool) -> None:
        """Write the pending rows: all of them at the end, else whole gallery chunks."""
        if not self._pending:
            return
        if not self._datasets:
            self._create(self._pending[0])
        merged = {
            "bbox": np.concatenate([p["bbox"] for p in self._pending]),
            "features": np.concatenate([p["features"] for p in self._pending]),
            "contours": np.concatenate([p["contours"] for p in self._pending]),
            "gallery": np.concatenate([p["gallery"] for p in self._pending], axis=3),
        }
        total = len(merged["bbox"])
        take = total if final else total - (self.n_rows + total) % _GALLERY_CHUNK
        sets = self._datasets
        start, stop = self.n_rows, self.n_rows + take
        for name in ("bbox", "features"):
            sets[name].resize((stop,))
            sets[name][start:stop] = merged[name][:take]
        for name in (key for key in sets if key.startswith("contours/")):
            sets[name].resize((stop, 2))
            sets[name][start:stop] = merged["contours"][:take]
        gallery = sets["gallery"]
        gallery.resize(stop, axis=3)
        gallery[:, :, :, start:stop] = merged["gallery"][..., :take]
        self.n_rows = stop
        rest = total - take
        self._pending = [] if rest == 0 else [{k: _tail(k, v, take) for k, v in merged.items()}]
        self._pending_rows = rest

    def _finish(self) -> None:
        self._flush(final=True)
        if self.n_rows == 0:
            raise ValueError(f"cannot write {self.path}: there are no cells to write")
        gallery = self._datasets["gallery"]
        gallery.attrs["image_size"] = np.array(self.image_size, dtype=np.int64)


def _tail(name: str, values: np.ndarray, start: int) -> np.ndarray:
    return np.ascontiguousarray(values[..., start:] if name == "gallery" else values[start:])
