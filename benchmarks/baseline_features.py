"""Features the learned ones are compared with: region properties and raw-pixel PCA.

* :func:`region_properties`: 12 classic measurements of each cell's mask (scikit-image
  ``regionprops``: area, perimeter, eccentricity, solidity, major / minor axis; mean, max
  and standard deviation of the background-subtracted intensity; fine-texture contrast and
  two grey-level co-occurrence measures). The mask is the file's label image
  (``image/region``) where it has one, else an Otsu threshold of the crop keeping the
  connected component under (or nearest to) the centre.
* :func:`raw_pca`: principal components of the crops' pixels (scikit-learn PCA).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.feature import graycomatrix, graycoprops
from skimage.filters import threshold_otsu
from skimage.measure import label as connected
from skimage.measure import regionprops
from sklearn.decomposition import PCA

from napari_cellae.io.cellh5 import CellH5

__all__ = ["REGION_NAMES", "label_crops", "raw_pca", "region_properties"]

REGION_NAMES = (
    "area",
    "perimeter",
    "eccentricity",
    "solidity",
    "major_axis",
    "minor_axis",
    "mean_intensity",
    "max_intensity",
    "std_intensity",
    "fine_texture",
    "glcm_contrast",
    "glcm_homogeneity",
)


def label_crops(ch5: CellH5, crops) -> tuple[np.ndarray, np.ndarray] | None:
    """Each crop's own mask and crowding from the file's label images (None if it has none).

    Parameters
    ----------
    ch5 : CellH5
        The open file the crops came from.
    crops : CropSet

    Returns
    -------
    masks : ndarray of bool (n, s, s)
        ``True`` where the crop's window shows pixels of its own object.
    crowding : ndarray of float (n,)
        Share of the window's in-image part covered by other objects (neighbours).
    """
    size = crops.crops.shape[-1]
    masks = np.zeros((len(crops), size, size), bool)
    crowding = np.zeros(len(crops))
    for p, key in enumerate(crops.positions):
        region = ch5.image(key).parent.get("region")
        if region is None:
            return None
        rows = np.flatnonzero(crops.position_index == p)
        for t in np.unique(crops.time_idx[rows]):
            plane = region[0, int(t), 0]
            height, width = plane.shape
            for i in rows[crops.time_idx[rows] == t]:
                # The crop's centred window, which may reach past the image at its border:
                # the in-image part read in place, no label (0) outside, so masks stay
                # aligned with the crop pixels.
                y, x = int(crops.origin_y[i]), int(crops.origin_x[i])
                top, left = max(y, 0), max(x, 0)
                bottom, right = min(y + size, height), min(x + size, width)
                window = np.zeros((size, size), plane.dtype)
                window[top - y : bottom - y, left - x : right - x] = plane[top:bottom, left:right]
                masks[i] = window == crops.label_id[i]
                others = (window > 0) & ~masks[i]
                crowding[i] = others.sum() / max((bottom - top) * (right - left), 1)
    return masks, crowding


def _otsu_mask(image: np.ndarray, cy: int, cx: int) -> np.ndarray:
    """Otsu foreground of a crop, only the component under (or nearest to) ``(cy, cx)``."""
    fg = image > threshold_otsu(image) if image.max() > image.min() else np.ones_like(image, bool)
    parts = connected(fg)
    if parts.max() == 0:
        return fg
    own = parts[cy, cx]
    if own == 0:  # centre on background (fragments): take the nearest component
        _, (iy, ix) = ndimage.distance_transform_edt(parts == 0, return_indices=True)
        own = parts[iy[cy, cx], ix[cy, cx]]
    return parts == own


def region_properties(crops, masks: np.ndarray | None = None) -> np.ndarray:
    """Twelve region properties per crop (first channel), see :data:`REGION_NAMES`.

    Parameters
    ----------
    crops : CropSet
    masks : ndarray of bool (n, s, s), optional
        Each crop's object mask (:func:`label_crops`); default: Otsu per crop.

    Returns
    -------
    ndarray of float64 (n, 12)
    """
    pixels = crops.crops[:, 0].astype(np.float64)
    centre_y = np.clip(crops.center_y - crops.origin_y, 0, pixels.shape[1] - 1)
    centre_x = np.clip(crops.center_x - crops.origin_x, 0, pixels.shape[2] - 1)
    out = np.zeros((len(pixels), len(REGION_NAMES)))
    for i, image in enumerate(pixels):
        if masks is not None and masks[i].any():
            mask = masks[i]
        else:
            mask = _otsu_mask(image, int(centre_y[i]), int(centre_x[i]))
        background = np.median(image[~mask]) if (~mask).any() else 0.0
        signal = image - background
        props = regionprops(mask.astype(np.uint8), intensity_image=signal)[0]
        inside = signal[mask]
        # fine texture: high-pass residue relative to the mean brightness
        residue = signal - ndimage.gaussian_filter(signal, 1.5)
        fine = residue[mask].std() / max(abs(inside.mean()), 1e-6)
        top, left, bottom, right = props.bbox
        patch = np.where(mask, signal, 0.0)[top:bottom, left:right]
        lo, hi = np.percentile(inside, [1, 99])
        # grey levels 1..31 inside the mask, 0 outside; pairs touching 0 are dropped
        levels = 1 + np.clip((patch - lo) / max(hi - lo, 1e-6) * 30, 0, 30).astype(np.uint8)
        levels[~mask[top:bottom, left:right]] = 0
        glcm = graycomatrix(levels, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=32)
        glcm[0, :] = 0
        glcm[:, 0] = 0
        out[i] = (
            props.area,
            props.perimeter,
            props.eccentricity,
            props.solidity,
            props.axis_major_length,
            props.axis_minor_length,
            inside.mean(),
            inside.max(),
            inside.std(),
            fine,
            graycoprops(glcm, "contrast").mean(),
            graycoprops(glcm, "homogeneity").mean(),
        )
    return out


def raw_pca(pixels: np.ndarray, n_components: int, seed: int = 0) -> np.ndarray:
    """Leading principal components of the flattened crops.

    Parameters
    ----------
    pixels : ndarray (n, ...)
        Crops, e.g. normalised like the network's input.
    n_components : int
        Capped at the number of crops and of pixels.
    seed : int
        For the randomised solver.

    Returns
    -------
    ndarray of float32 (n, n_components)
    """
    flat = pixels.reshape(len(pixels), -1).astype(np.float32)
    n = min(n_components, *flat.shape)
    return PCA(n_components=n, random_state=seed).fit_transform(flat).astype(np.float32)
