"""Turn crops into learned feature vectors, and feature vectors into pictures and scores.

Everything here keeps the object order of the input (CellH5 order of the
:class:`~napari_cellae.core.crops.CropSet`), so row ``i`` of every result belongs to
crop ``i``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from napari_cellae.core.class_separation import feature_matrix
from napari_cellae.core.morphology import MORPHOLOGY_NAMES

if TYPE_CHECKING:
    from napari_cellae.core.model_file import TrainedModel
    from napari_cellae.core.scale_check import ScaleCheck

__all__ = [
    "DEFAULT_EMBEDDING",
    "EMBEDDING_METHODS",
    "MAX_EMBED_FIT",
    "cell_feature_names",
    "embed_2d",
    "encode",
    "feature_names",
    "feature_settings",
    "pca_features",
    "with_outline",
]

EMBEDDING_METHODS = ("umap", "pca")
# The 2-D map of the command line and the AnnData output; "pca" is the fast option.
DEFAULT_EMBEDDING = "umap"
# Cells a 2-D map is fitted on; the rest are placed by the fitted map.
MAX_EMBED_FIT = 50_000
_BLOCK = 50_000  # cells projected at once
_UMAP_NEIGHBOURS = 15
_CPU_BATCH = 128  # crops a CPU encodes at once: 512 spill out of the caches (half the speed)
_UMAP_PCS = 50
# Fewer cells than this: no neighbourhood structure worth a UMAP, PCA is shown instead.
_UMAP_MIN_CELLS = 5
# Spectral initialisation needs a graph with more nodes than eigenvectors asked for.
_UMAP_SPECTRAL_MIN = 10

ProgressCallback = Callable[[int, int], None]


def feature_settings(
    trained: TrainedModel, readout: str | None = None, orientations: int | None = None
) -> tuple[str, int]:
    """The readout and orientation count to use: the arguments, else the model's settings
    (the default preset's shape, 8 for a model without them)."""
    config = getattr(trained, "config", None)
    if readout is None:
        readout = getattr(config, "readout", "shape")
    if orientations is None:
        orientations = getattr(config, "orientations", 8)
    return readout, int(orientations)


def feature_names(trained: TrainedModel, readout: str | None = None) -> list[str]:
    """Names of the columns :func:`encode` returns, saying where each comes from.

    The readout's names (:func:`napari_cellae.core.readout.readout_names`), plus
    ``brightness_<channel>`` per channel when the model scales every cell by its own
    intensity range (the features keep how bright the cell was as one number).
    """
    from napari_cellae.core.readout import readout_names

    readout, _ = feature_settings(trained, readout, None)
    names = readout_names(trained.model, readout)
    if trained.normalisation.per_cell:
        channels = list(getattr(trained, "channel_names", [])) or [
            str(i) for i in range(trained.normalisation.n_channels)
        ]
        names += [f"brightness_{name}" for name in channels]
    return names


def with_outline(trained: TrainedModel, features: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """A model's features of some cells, with their outline measurements appended when the
    model measures them (``config.measures_outline``).

    Parameters
    ----------
    trained : TrainedModel
    features : ndarray (n, F)
        The learned features (:func:`encode`).
    outline : ndarray (n, 5)
        The cells' ``CropSet.morphology``.

    Raises
    ------
    ValueError
        If the model measures outlines and the crops were cut without a mask (NaN).
    """
    if not trained.config.measures_outline:
        return features
    if not np.all(np.isfinite(outline)):
        raise ValueError(
            "the crops were cut without a mask, so their cells' outlines are unknown; crop "
            f"them with mask '{trained.config.mask}' as the model was trained"
        )
    return np.hstack([features, np.asarray(outline, features.dtype)])


def cell_feature_names(trained: TrainedModel) -> list[str]:
    """Names of a model's features of cells (:func:`with_outline`): the learned features'
    (:func:`feature_names`), then the outline measurements
    (:data:`~napari_cellae.core.morphology.MORPHOLOGY_NAMES`)."""
    names = feature_names(trained)
    return names + list(MORPHOLOGY_NAMES) if trained.config.measures_outline else names


def encode(
    trained: TrainedModel,
    crops: np.ndarray,
    batch_size: int = 512,
    progress: ProgressCallback | None = None,
    readout: str | None = None,
    orientations: int | None = None,
    scale_check: ScaleCheck | None = None,
) -> np.ndarray:
    """Encode every crop into a learned feature vector.

    Parameters
    ----------
    trained : TrainedModel
        The trained autoencoder with the intensity normalisation it was trained with.
    crops : ndarray, shape (N, C, S, S)
        Crops in their stored dtype (uint8, uint16, ...), as produced by
        :func:`napari_cellae.core.crops.extract_crops`. A ``CropSet`` is accepted too.
    batch_size : int
        Crops encoded at once (on a CPU at most 128); only affects speed and memory.
    progress : callable, optional
        Called as ``progress(done, total)`` after every batch.
    readout : {"relative", "shape", "pooled", "code"}, optional
        ``"pooled"``: the bottleneck plus the mean and maximum response of every
        convolution filter; ``"shape"``: that plus the size and elongation of every
        filter's response; ``"relative"``: ``"shape"`` with the means relative to the
        crop's mean intensity; ``"code"``: the bottleneck only (the original module's
        features). See :mod:`napari_cellae.core.readout`. Default: the model's setting.
    orientations : {1, 4, 8}, optional
        Average each cell's features over this many orientations of its crop, so that
        a turned or mirrored cell gets the same features (1: no averaging). Default: the
        model's setting.
    scale_check : ScaleCheck, optional
        The run's count of pixels on the model's scale: the crops are added to it and
        nothing is warned here; the caller warns once for the whole run
        (:meth:`~napari_cellae.core.scale_check.ScaleCheck.warn`), so that a screen
        encoded in one call, in batches or on workers is judged alike.

    Returns
    -------
    ndarray, shape (N, F), float32
        One row per crop, in input order.

    Raises
    ------
    ValueError
        If the crops do not fit the model (size or number of channels).

    Warns
    -----
    UserWarning
        Without ``scale_check``: if the model scales all cells alike (``intensity:
        screen``) and more than 5 % of a channel's pixels lie at or above the top of that
        scale, or its brightest pixel below an eighth of it: images brighter or far dimmer
        than the training images.
    """
    import torch

    array = getattr(crops, "crops", crops)
    array = np.asarray(array)
    if array.ndim != 4:
        raise ValueError(f"crops must have shape (N, C, S, S), got {array.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n, n_channels, height, width = array.shape
    if height != width:
        raise ValueError(f"crops must be square, got {height}x{width}")
    trained.check_compatible(height, n_channels)

    from napari_cellae.core.readout import encoding_model, readout_width
    from napari_cellae.core.readout import readout as read_features
    from napari_cellae.core.scale_check import ScaleCheck

    readout, orientations = feature_settings(trained, readout, orientations)
    model, device, fmt = encoding_model(trained.model)
    width = readout_width(model, readout)
    extra = n_channels if trained.normalisation.per_cell else 0
    out = np.empty((n, width + extra), dtype=np.float32)
    if n == 0:
        return out

    was_training = model.training
    model.eval()  # no dropout, no input corruption while encoding
    run_wide = scale_check is not None  # the caller warns for the whole run
    if scale_check is None:
        scale_check = ScaleCheck(trained.normalisation)
    try:
        with torch.inference_mode():
            step = min(batch_size, _CPU_BATCH) if device.type == "cpu" else batch_size
            for start in range(0, n, step):
                stop = min(start + step, n)
                scale_check.add(array[start:stop])
                batch = torch.from_numpy(np.ascontiguousarray(array[start:stop]))
                x = trained.normalisation.apply(batch)
                x = torch.as_tensor(x, dtype=torch.float32).to(device)
                x = x.contiguous(memory_format=fmt)
                z = read_features(model, x, readout, orientations)
                out[start:stop, :width] = z.reshape(stop - start, -1).float().cpu().numpy()
                if extra:
                    out[start:stop, width:] = trained.normalisation.brightness(array[start:stop])
                if progress is not None:
                    progress(stop, n)
    finally:
        model.train(was_training)
    if not run_wide:
        scale_check.warn(trained.channel_names)
    return out


def _pca_projection(
    x: np.ndarray, n_components: int, fit: np.ndarray | None, scaler=None
) -> np.ndarray:
    """Project on the leading principal axes of ``x[fit]`` (scikit-learn PCA, whose signs
    make each axis' largest loading positive: equal input gives an equal picture), after a
    fitted ``scaler`` where given. Cells are projected in blocks: float64 copies of a whole
    screen's features take 2 KB per cell each."""
    from sklearn.decomposition import PCA

    n, f = x.shape
    out = np.zeros((n, n_components), dtype=np.float64)
    ref = _scaled(x if fit is None else x[fit], scaler)
    k = min(n_components, len(ref) - 1, f)
    if k < 1:
        return out
    with np.errstate(invalid="ignore", divide="ignore"):  # constant features: 0/0 ratios
        pca = PCA(n_components=k, svd_solver="full").fit(ref)
    # Axes with (numerically) no variance would only show rounding noise.
    tol = max(pca.singular_values_[0], 1.0) * max(len(ref), f) * np.finfo(np.float64).eps
    for start in range(0, n, _BLOCK):
        proj = pca.transform(_scaled(x[start : start + _BLOCK], scaler))
        proj[:, pca.singular_values_ <= tol] = 0.0
        out[start : start + _BLOCK, :k] = proj
    return out


def _scaled(x: np.ndarray, scaler) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if scaler is None:
        return x
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(scaler.transform(x), copy=False)


def _scaler(x: np.ndarray, fit: np.ndarray | None):
    """Standardisation fitted on ``x[fit]``: features in pixels (the outline's) outweighed
    the learned ones, of about one unit."""
    from sklearn.preprocessing import StandardScaler

    ref = np.asarray(x if fit is None else x[fit], dtype=np.float64)
    return StandardScaler().fit(ref) if len(ref) else None


def embed_2d(
    features: np.ndarray,
    method: str = "pca",
    seed: int = 0,
    max_fit: int = MAX_EMBED_FIT,
) -> np.ndarray:
    """Embed feature vectors in two dimensions for plotting.

    Parameters
    ----------
    features : ndarray, shape (N, F)
        Feature vectors, one row per object.
    method : {"pca", "umap"}
        ``"pca"``: the first two principal components of the standardised features (fast).
        ``"umap"``: UMAP (umap-learn, seeded) of the standardised features reduced to at
        most 50 principal components; neighbourhoods of similar cells stay together, so
        phenotypes separate where PCA overlaps them. :data:`DEFAULT_EMBEDDING` is what the
        command line and the AnnData output use.
    seed : int
        Seed of the fitting subset and of UMAP's layout: equal input, equal picture.
    max_fit : int
        The map is fitted on at most this many cells (a seeded random subset); the others
        are placed by it: PCA projects them, UMAP puts each at the distance-weighted mean
        of its 15 nearest fitted cells (the start point of umap-learn's own ``transform``).

    Returns
    -------
    ndarray, shape (N, 2), float32
        Zeros where there is no variation (N = 1, constant features); never NaN.

    Raises
    ------
    ValueError
        For an unknown method, features that are not 2-D, NaN or infinite values.

    """
    x = np.asarray(features)  # float32 stays: converted block by block
    if x.ndim != 2:
        raise ValueError(f"features must have shape (N, F), got {x.shape}")
    if method not in EMBEDDING_METHODS:
        raise ValueError(
            f"unknown embedding method {method!r}; available: "
            + ", ".join(repr(m) for m in EMBEDDING_METHODS)
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or infinite values")
    if max_fit < 2:
        raise ValueError(f"max_fit must be at least 2, got {max_fit}")
    fit = None
    if len(x) > max_fit:
        fit = np.sort(np.random.default_rng(seed).choice(len(x), max_fit, replace=False))
    if method == "umap" and len(x) >= _UMAP_MIN_CELLS:
        return _umap(x, fit, seed)
    return _pca_projection(x, 2, fit, _scaler(x, fit)).astype(np.float32)


def _umap(x: np.ndarray, fit: np.ndarray | None, seed: int) -> np.ndarray:
    """UMAP of ``x`` fitted on ``x[fit]`` (all rows when None); see :func:`embed_2d`."""
    import warnings

    from sklearn.neighbors import KNeighborsRegressor, NearestNeighbors

    reduced = _pca_projection(x, min(_UMAP_PCS, x.shape[1]), fit, _scaler(x, fit))
    reduced = reduced.astype(np.float32)
    if not np.any(reduced):  # no variation at all: nothing to lay out
        return np.zeros((len(x), 2), np.float32)
    ref = reduced if fit is None else reduced[fit]
    k = min(_UMAP_NEIGHBOURS, len(ref) - 1)
    # Exact neighbours from scikit-learn: faster here than umap's own search, whose numba
    # kernels take longer to compile than the search itself takes (see bench_embedding.py).
    distances, indices = NearestNeighbors(n_neighbors=k).fit(ref).kneighbors(ref)
    with warnings.catch_warnings():
        # "n_jobs overridden by setting random_state": the seed is the point; and the
        # precomputed neighbours mean no transform() later, which we do not use.
        warnings.simplefilter("ignore", UserWarning)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the import's notes about optional TensorFlow
            import umap

        reducer = umap.UMAP(
            n_neighbors=k,
            random_state=seed,
            precomputed_knn=(indices, distances),
            init="spectral" if len(ref) > _UMAP_SPECTRAL_MIN else "random",
        )
        layout = reducer.fit_transform(ref)
    layout = np.nan_to_num(np.asarray(layout, dtype=np.float32))
    if fit is None:
        return layout
    out = np.empty((len(x), 2), np.float32)
    out[fit] = layout
    rest = np.ones(len(x), bool)
    rest[fit] = False
    place = KNeighborsRegressor(n_neighbors=k, weights="distance").fit(ref, layout)
    out[rest] = place.predict(reduced[rest])
    return out


def pca_features(
    features: np.ndarray, n_components: int, fit: np.ndarray | None = None
) -> np.ndarray:
    """Project features (e.g. raw pixels) on their first ``n_components`` principal axes.

    Parameters
    ----------
    features, n_components : ndarray (N, F), int
    fit : ndarray of int or bool, optional
        Rows whose principal axes are used (e.g. the training cells); all rows by default.

    Returns
    -------
    ndarray, shape (N, n_components), float32
    """
    return _pca_projection(feature_matrix(features), n_components, fit).astype(np.float32)
