"""The features the 2-D maps are made of: each plate scaled as ``cellae encode``'s.

``cellae encode --out cells.h5ad`` centres and scales each plate's features on the control
cells novelty scales it on (:func:`napari_cellae.pipeline.cells.embeddings`, by
:func:`~napari_cellae.core.novelty.plate_references`) before its PCA and UMAP maps. The
widget made its maps of the features as they are, so that for a file of several plates its
maps (and the ``obsm`` of its "Save AnnData") differed from the command line's, a plate
imaged a little otherwise lying apart. :func:`map_features` gives the widget the very
scaling of the ``.h5ad`` path; :class:`PlateScaling` holds it, so that a run's PCA (the
job) and its UMAP (asked for later) are made with one scaling, built once. No Qt, no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from napari_cellae.pipeline.cell_flags import without_signal

if TYPE_CHECKING:
    import pandas as pd

    from napari_cellae.core.crops import CropSet
    from napari_cellae.io.mapping import PositionMapping

__all__ = ["PlateScaling", "map_features", "map_references", "plate_scaling"]


class PlateScaling(NamedTuple):
    """Each plate's cells and the centre and scale the 2-D maps standardise them with; no
    plates (the default): the features as they are.

    Attributes
    ----------
    rows : tuple of ndarray of int
        Each plate's cells.
    centre, scale : tuple of ndarray (F,) of float64
        Subtracted from, then divided into, those cells' features.
    """

    rows: tuple[np.ndarray, ...] = ()
    centre: tuple[np.ndarray, ...] = ()
    scale: tuple[np.ndarray, ...] = ()

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        plates: np.ndarray,
        controls: np.ndarray | None,
        wells: np.ndarray | None,
    ) -> PlateScaling:
        """Each plate on the control cells novelty scales it on
        (:func:`napari_cellae.core.novelty.plate_references`); a plate without two such
        cells on its own cells."""
        from napari_cellae.core.novelty import plate_references

        controls = np.zeros(len(plates), bool) if controls is None else np.asarray(controls, bool)
        rows, centre, scale = [], [], []
        for _, mine, reference, _ in plate_references(controls, plates, wells):
            # no controls to align on (fewer than two in all): the plate's own cells
            ref = features[reference if len(reference) >= 2 else mine].astype(np.float64)
            spread = ref.std(axis=0)
            rows.append(mine)
            centre.append(ref.mean(axis=0))
            scale.append(np.where(spread > 0, spread, 1.0))
        return cls(tuple(rows), tuple(centre), tuple(scale))

    def apply(self, features: np.ndarray) -> np.ndarray:
        """``features`` scaled: a float32 copy, or ``features`` itself without plates."""
        if not self.rows:
            return features
        out = np.empty(features.shape, np.float32)
        for rows, centre, scale in zip(self.rows, self.centre, self.scale, strict=True):
            out[rows] = (features[rows] - centre) / scale
        return out


def map_references(obs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plates, control cells (those whose crops hold a signal) and wells of a cell
    table: what the 2-D maps scale each plate on
    (:func:`napari_cellae.pipeline.cells.embeddings`, the widget's maps)."""
    from napari_cellae.pipeline.cell_ids import well_ids

    controls = obs["control"].to_numpy(bool) & ~without_signal(obs)
    return obs["plate"].to_numpy(), controls, well_ids(obs)


def plate_scaling(
    features: np.ndarray, crops: CropSet, mapping: PositionMapping | None
) -> PlateScaling:
    """How :func:`map_features` scales a run's features: each plate on its control cells
    where the cells come from several plates, else none (the features as they are).

    Parameters
    ----------
    features : ndarray (N, F)
        The run's features, in the order of ``crops``.
    crops : CropSet
        The run's cells (their plates, positions and blank channels).
    mapping : PositionMapping, optional
        Which positions are controls.

    Returns
    -------
    PlateScaling
    """
    from napari_cellae.pipeline.discovery import cell_table

    if len({key.plate for key in crops.positions}) < 2:  # the cell table would say one too
        return PlateScaling()
    plates, controls, wells = map_references(cell_table(crops, mapping))  # as the .h5ad's
    if len(np.unique(plates)) < 2:  # cells of one plate only (the other's positions empty)
        return PlateScaling()
    return PlateScaling.fit(features, plates, controls, wells)


def map_features(
    features: np.ndarray,
    crops: CropSet,
    mapping: PositionMapping | None,
    scaling: PlateScaling | None = None,
) -> np.ndarray:
    """``features`` as the ``.h5ad`` maps are made of them: each plate standardised on its
    control cells where the cells come from several plates, else as they are.

    Parameters
    ----------
    features, crops, mapping
        As for :func:`plate_scaling`.
    scaling : PlateScaling, optional
        :func:`plate_scaling` of these features, where it was built already (the run's
        PCA map built it); default: built here.

    Returns
    -------
    ndarray (N, F)
        ``features`` itself for one plate; a float32 copy for several.
    """
    if scaling is None:
        scaling = plate_scaling(features, crops, mapping)
    return scaling.apply(features)
