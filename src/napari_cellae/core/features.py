"""Turn crops into learned feature vectors, and feature vectors into pictures and scores.

Everything here keeps the object order of the input (CellH5 order of the
:class:`~napari_cellae.core.crops.CropSet`), so row ``i`` of every result belongs to
crop ``i``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_cellae.core.training import TrainedModel

__all__ = [
    "embed_2d",
    "encode",
    "knn_accuracy",
    "novelty_scores",
    "pca_features",
    "standardise",
]

ProgressCallback = Callable[[int, int], None]


def _model_device_and_format(model) -> tuple:
    """Device and memory format the model's weights live in.

    Feeding input in the same memory format as the weights avoids a layout
    conversion per convolution (channels_last is markedly faster on CPU).
    """
    import torch

    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    fmt = torch.contiguous_format
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            w = m.weight
            # Unambiguous only when the two layouts differ (not for 1x1 / single-channel).
            if w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous():
                fmt = torch.channels_last
                break
    return device, fmt


def encode(
    trained: TrainedModel,
    crops: np.ndarray,
    batch_size: int = 512,
    progress: ProgressCallback | None = None,
    readout: str = "pooled",
    orientations: int = 8,
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
        Crops encoded at once; only affects speed and memory.
    progress : callable, optional
        Called as ``progress(done, total)`` after every batch.
    readout : {"pooled", "code"}
        ``"pooled"``: the bottleneck plus the mean and maximum response of every
        convolution filter; ``"code"``: the bottleneck only (the original module's
        features). See :mod:`napari_cellae.core.readout`.
    orientations : {1, 4, 8}
        Average each cell's features over this many orientations of its crop, so that
        a turned or mirrored cell gets the same features (1: no averaging).

    Returns
    -------
    ndarray, shape (N, F), float32
        One row per crop, in input order.

    Raises
    ------
    ValueError
        If the crops do not fit the model (size or number of channels).
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

    from napari_cellae.core.readout import readout as read_features
    from napari_cellae.core.readout import readout_width

    model = trained.model
    out = np.empty((n, readout_width(model, readout)), dtype=np.float32)
    if n == 0:
        return out

    device, fmt = _model_device_and_format(model)
    was_training = model.training
    model.eval()  # no dropout, no input corruption while encoding
    try:
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                batch = torch.from_numpy(np.ascontiguousarray(array[start:stop]))
                x = trained.normalisation.apply(batch)
                x = torch.as_tensor(x, dtype=torch.float32).to(device)
                x = x.contiguous(memory_format=fmt)
                z = read_features(model, x, readout, orientations)
                out[start:stop] = z.reshape(stop - start, -1).float().cpu().numpy()
                if progress is not None:
                    progress(stop, n)
    finally:
        model.train(was_training)
    return out


def standardise(features: np.ndarray) -> np.ndarray:
    """Scale every feature to zero mean and unit variance (constant features become 0).

    Parameters
    ----------
    features : ndarray, shape (N, F)

    Returns
    -------
    ndarray, shape (N, F), float32
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must have shape (N, F), got {x.shape}")
    if len(x) == 0:
        return x.astype(np.float32)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    # A constant feature carries no information; dividing by 1 keeps it at 0 without NaN.
    std[std <= 1e-12 * np.maximum(1.0, np.abs(mean))] = 1.0
    return ((x - mean) / std).astype(np.float32)


def _pca(x: np.ndarray, n_components: int, fit: np.ndarray | None = None) -> np.ndarray:
    """Project float64 data on the leading principal axes of ``x[fit]`` (deterministic signs)."""
    n, f = x.shape
    out = np.zeros((n, n_components), dtype=np.float64)
    ref = x if fit is None else x[fit]
    if len(ref) < 2 or f == 0:
        return out
    mean = ref.mean(axis=0)
    _, s, vt = np.linalg.svd(ref - mean, full_matrices=False)
    k = min(n_components, vt.shape[0])
    vt = vt[:k]
    # SVD signs are arbitrary: flip each axis so its largest-magnitude loading is positive,
    # giving the same picture on every run and platform.
    biggest = np.argmax(np.abs(vt), axis=1)
    signs = np.sign(vt[np.arange(k), biggest])
    signs[signs == 0] = 1.0
    vt = vt * signs[:, None]
    proj = (x - mean) @ vt.T
    # Axes with (numerically) no variance would only show rounding noise.
    tol = (s[0] if len(s) else 0.0) * max(len(ref), f) * np.finfo(np.float64).eps
    proj[:, s[:k] <= tol] = 0.0
    out[:, :k] = proj
    return out


def embed_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Embed feature vectors in two dimensions for plotting.

    Parameters
    ----------
    features : ndarray, shape (N, F)
        Feature vectors, one row per object.
    method : {"pca"}
        ``"pca"``: the first two principal components (numpy SVD on centred
        features; each axis' sign is fixed so that its largest loading is
        positive, so equal input gives an equal picture).
    seed : int
        Reserved for stochastic methods; PCA is deterministic.

    Returns
    -------
    ndarray, shape (N, 2), float32
        Zeros where there is no variation (N = 1, constant features); never NaN.
    """
    del seed  # PCA needs no randomness; kept so other methods can be added compatibly
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must have shape (N, F), got {x.shape}")
    if method != "pca":
        raise ValueError(f"unknown embedding method {method!r}; available: 'pca'")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or infinite values")
    return _pca(x, 2).astype(np.float32)


def pca_features(
    features: np.ndarray, n_components: int, fit: np.ndarray | None = None
) -> np.ndarray:
    """Project features (e.g. raw pixels) on their first ``n_components`` principal axes.

    Parameters
    ----------
    features : ndarray, shape (N, F)
    n_components : int
    fit : ndarray of int or bool, optional
        Rows whose principal axes are used (e.g. the training cells); all rows by default.

    Returns
    -------
    ndarray, shape (N, n_components), float32
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must have shape (N, F), got {x.shape}")
    return _pca(x, n_components, fit).astype(np.float32)


def _pairwise_sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def knn_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    k: int = 5,
    folds: int = 5,
    seed: int = 0,
    standardise_features: bool = True,
) -> float:
    """Cross-validated k-nearest-neighbour accuracy: how well features separate known classes.

    Objects with a negative label (unknown class) are ignored.

    Parameters
    ----------
    features : ndarray, shape (N, F)
    labels : ndarray, shape (N,)
        Integer class of each object (e.g. CellH5 class predictions).
    k : int
        Neighbours that vote (ties go to the nearest neighbour's class).
    folds : int
        Number of cross-validation folds (stratified by shuffling with ``seed``).
    seed : int
        Seed of the fold assignment.
    standardise_features : bool
        Scale every feature to unit variance first (using the training folds) so no
        single large-valued feature dominates the distance.

    Returns
    -------
    float
        Fraction of objects whose class is predicted correctly, in [0, 1]; NaN if
        there are fewer than two labelled objects.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features {x.shape} and labels {y.shape} do not match")
    keep = y >= 0
    x, y = x[keep], y[keep]
    n = len(y)
    if n < 2:
        return float("nan")
    folds = max(2, min(folds, n))
    rng = np.random.default_rng(seed)
    fold_of = np.empty(n, dtype=np.int64)
    # Deal each class out round-robin over shuffled folds: stratified without sklearn.
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        fold_of[idx] = (np.arange(len(idx)) + rng.integers(folds)) % folds
    classes = np.unique(y)
    correct = 0
    for f in range(folds):
        test = fold_of == f
        train = ~test
        if not test.any() or not train.any():
            continue
        xtr, xte = x[train], x[test]
        if standardise_features:
            mean = xtr.mean(0)
            std = xtr.std(0)
            std[std <= 1e-12] = 1.0
            xtr = (xtr - mean) / std
            xte = (xte - mean) / std
        kk = min(k, len(xtr))
        ytr = y[train]
        pred = np.empty(int(test.sum()), dtype=np.int64)
        # Chunk the distance matrix so memory stays bounded for large screens.
        for s in range(0, len(xte), 1024):
            d = _pairwise_sq_dist(xte[s : s + 1024], xtr)
            nn = np.argsort(d, axis=1, kind="stable")[:, :kk]
            votes = np.zeros((len(nn), len(classes)))
            cls_idx = np.searchsorted(classes, ytr[nn])
            for j in range(kk):
                # Closer neighbours get a slightly larger vote: breaks ties by distance.
                np.add.at(votes, (np.arange(len(nn)), cls_idx[:, j]), 1.0 + 1e-6 * (kk - j))
            pred[s : s + len(nn)] = classes[np.argmax(votes, axis=1)]
        correct += int((pred == y[test]).sum())
    return correct / n


def novelty_scores(
    features: np.ndarray, reference: np.ndarray | None = None, k: int = 5
) -> np.ndarray:
    """Distance of every object to its k nearest reference objects (e.g. negative controls).

    High scores mark cells unlike anything in the reference population: candidate
    novel phenotypes. Features are standardised on the reference first.

    Parameters
    ----------
    features : ndarray, shape (N, F)
    reference : ndarray of bool or int, optional
        Mask or indices of the reference objects; all objects when omitted. A
        reference object's own distance (0) is excluded.
    k : int
        Number of neighbours averaged.

    Returns
    -------
    ndarray, shape (N,), float32
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must have shape (N, F), got {x.shape}")
    n = len(x)
    if reference is None:
        ref_idx = np.arange(n)
    else:
        ref = np.asarray(reference)
        ref_idx = np.flatnonzero(ref) if ref.dtype == bool else ref.astype(np.int64)
    if n == 0 or len(ref_idx) == 0:
        return np.zeros(n, dtype=np.float32)
    xr = x[ref_idx]
    mean, std = xr.mean(0), xr.std(0)
    std[std <= 1e-12] = 1.0
    xs, xr = (x - mean) / std, (xr - mean) / std
    is_ref = np.zeros(n, dtype=bool)
    is_ref[ref_idx] = True
    out = np.zeros(n, dtype=np.float64)
    for s in range(0, n, 1024):
        d = np.sqrt(_pairwise_sq_dist(xs[s : s + 1024], xr))
        rows = np.arange(s, min(s + 1024, n))
        d.sort(axis=1)
        # Reference objects see themselves at distance 0: skip that first neighbour.
        skip = is_ref[rows].astype(np.int64)
        for r, row in enumerate(rows):
            neigh = d[r, skip[r] : skip[r] + k]
            out[row] = neigh.mean() if len(neigh) else 0.0
    return out.astype(np.float32)
