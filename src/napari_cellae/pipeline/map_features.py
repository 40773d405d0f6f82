"""The features the widget's 2-D maps are made of: each plate scaled as ``cellae encode``'s.

``cellae encode --out cells.h5ad`` centres and scales each plate's features on the control
cells novelty scales it on (:func:`napari_cellae.pipeline.cells.embeddings`, by
:func:`~napari_cellae.core.novelty.plate_references`) before its PCA and UMAP maps. The
widget made its maps of the features as they are, so that for a file of several plates its
maps (and the ``obsm`` of its "Save AnnData") differed from the command line's, a plate
imaged a little otherwise lying apart. :func:`map_features` gives the widget the very
scaling of the ``.h5ad`` path. No Qt, no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_cellae.core.crops import CropSet
    from napari_cellae.io.mapping import PositionMapping

__all__ = ["map_features"]


def map_features(
    features: np.ndarray, crops: CropSet, mapping: PositionMapping | None
) -> np.ndarray:
    """``features`` as the ``.h5ad`` maps are made of them: each plate standardised on its
    control cells where the cells come from several plates, else as they are.

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
    ndarray (N, F)
        ``features`` itself for one plate; a float32 copy for several.
    """
    from napari_cellae.pipeline.cells import map_references, plates_aligned
    from napari_cellae.pipeline.discovery import cell_table

    if len({key.plate for key in crops.positions}) < 2:  # the cell table would say one too
        return features
    plates, controls, wells = map_references(cell_table(crops, mapping))  # as the .h5ad's
    if len(np.unique(plates)) < 2:  # cells of one plate only (the other's positions empty)
        return features
    return plates_aligned(features, plates, controls, wells)
