"""What is read out of the encoder as a cell's features, and how it is made orientation-free.

Four readouts:

- ``"code"``: the bottleneck (the last dense layer), as in the original module;
- ``"pooled"``: the bottleneck plus, for every convolution block, the mean and the maximum
  over the image of each filter's response (after its activation and the pool that follows
  it, if any). The pooled responses say *how much* of each learned pattern a cell shows
  (texture, edges, blobs at two scales) wherever it is in the crop, which the dense code
  mixes with position.
- ``"shape"``: ``"pooled"`` (same values, same order) followed, per block, by two
  statistics of where each filter responds: its *size* (how spread out the response is,
  the root of the summed second moments of the response map taken as a mass, in units of
  the map width) and its *elongation* (0 for a round response, towards 1 for a line;
  ``1 - sqrt(minor / major)`` of the moments' eigenvalues). Mean and maximum cannot tell a
  large dim cell from a small bright one or a round cell from an elongated one; these can.
- ``"relative"`` (default): ``"shape"`` with every mean response divided by the crop's mean
  intensity, which is added as one more feature (``input_mean``). A plain mean grows with
  the cell's size and brightness in every filter alike; relative, it says how much of the
  filter's pattern the cell's light holds.

Cells have no preferred orientation, so by default the features of a crop are averaged over
its 8 orientations (4 rotations by 90 degrees, each with and without mirroring): a cell
turned by 90 degrees gets the same features.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from napari_cellae.core.model import ConvAutoencoder

__all__ = [
    "ORIENTATIONS",
    "READOUTS",
    "block_outputs",
    "moment_features",
    "readout",
    "readout_names",
    "readout_width",
]

READOUTS = ("relative", "shape", "pooled", "code")
ORIENTATIONS = (1, 4, 8)
EPS = 1e-6  # keeps a dead filter (all-zero map) finite: size sqrt(EPS), elongation 0
LIGHT_FLOOR = 1e-3  # the least crop mean the "relative" means are divided by


def _check(kind: str, orientations: int) -> None:
    if kind not in READOUTS:
        raise ValueError(f"unknown readout {kind!r}; choose one of {', '.join(READOUTS)}")
    if orientations not in ORIENTATIONS:
        raise ValueError(
            f"orientations must be one of {', '.join(map(str, ORIENTATIONS))}, got {orientations}"
        )


def _conv_blocks(model: ConvAutoencoder) -> list[tuple[int, int]]:
    """(start, end) module indices of each conv block of the encoder: conv, activation and
    a directly following pool."""
    mods = list(model.encoder_maps)
    blocks = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            end = i + 2 if i + 1 < len(mods) else i + 1  # conv + activation
            if end < len(mods) and isinstance(mods[end], nn.MaxPool2d):
                end += 1
            blocks.append((i, end))
    return blocks


def readout_names(model: ConvAutoencoder, kind: str = "relative") -> list[str]:
    """Names of the readout's features, saying which layer each comes from.

    Parameters
    ----------
    model : ConvAutoencoder
    kind : {"relative", "shape", "pooled", "code"}

    Returns
    -------
    list of str
        ``code_<i>`` for bottleneck units; ``conv<k>_mean_<f>`` / ``conv<k>_max_<f>`` for the
        pooled response of filter ``f`` of convolution ``k`` (1-based, input side first);
        for ``"shape"`` then ``conv<k>_size_<f>`` / ``conv<k>_elongation_<f>`` per block.
        ``"relative"`` names its means ``conv<k>_relmean_<f>`` and ends with ``input_mean``.
    """
    _check(kind, 1)
    names = [f"code_{i}" for i in range(model.n_features)]
    if kind == "code":
        return names
    mods = list(model.encoder_maps)
    filters = [mods[start].out_channels for start, _ in _conv_blocks(model)]
    mean = "relmean" if kind == "relative" else "mean"
    stats = (mean, "max", "size", "elongation") if kind != "pooled" else (mean, "max")
    # The pooled statistics of all blocks first, so that "pooled" is a prefix of "shape".
    for pair in (stats[:2], stats[2:]):
        for k, count in enumerate(filters, start=1):
            names += [f"conv{k}_{stat}_{f}" for stat in pair for f in range(count)]
    return names + ["input_mean"] * (kind == "relative")


def readout_width(model: ConvAutoencoder, kind: str = "relative") -> int:
    """Number of features the readout gives per cell."""
    return len(readout_names(model, kind))


_WEIGHTS: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


def _moment_weights(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(6, size * size): rows 1, y, x, y^2, x^2, y*x of the normalised pixel coordinates
    (centred, in units of the map width), one column per pixel in row-major order."""
    key = (size, dtype, device)
    if key not in _WEIGHTS:
        # A normal tensor even when first made under inference_mode (encode), so that a
        # later readout with gradients can use it.
        with torch.inference_mode(False):
            c = (torch.arange(size, dtype=torch.float64) - (size - 1) / 2) / size
            y, x = (g.reshape(-1) for g in torch.meshgrid(c, c, indexing="ij"))
            rows = torch.stack([torch.ones_like(y), y, x, y * y, x * x, y * x])
            _WEIGHTS[key] = rows.to(dtype=dtype, device=device)
    return _WEIGHTS[key]


def _raw_moments(h: torch.Tensor) -> torch.Tensor:
    """(n, 6, F) sums of each map times 1, y, x, y^2, x^2, y*x (see _moment_weights)."""
    n, filters, s, _ = h.shape
    if h.dtype in (torch.float16, torch.bfloat16):
        h = h.float()  # E[c^2] - E[c]^2 cancels too much at half precision
    weights = _moment_weights(s, h.dtype, h.device)  # (6, s * s)
    # One matmul, laid out so that no map is copied: one GEMM over (n * F, s * s) rows, or
    # per crop (6, s * s) @ (s * s, F) for a channels_last map (5x faster there than
    # letting matmul transpose each crop's block).
    if h.is_contiguous():
        return (h.reshape(n, filters, s * s) @ weights.t()).transpose(1, 2)
    return weights @ h.permute(0, 2, 3, 1).reshape(n, s * s, filters)


def _size_and_elongation(raws: list[torch.Tensor], eps: float) -> torch.Tensor:
    """(n, 2 * total F): per block, the sizes then the elongations of its maps, from the
    :func:`_raw_moments` of each block."""
    squares = []  # per block: size^2, then (1 - elongation)^2
    for raw in raws:
        mass = raw[:, 0] + eps
        cy, cx = raw[:, 1] / mass, raw[:, 2] / mass
        yy = raw[:, 3] / mass - cy * cy
        xx = raw[:, 4] / mass - cx * cx
        xy = raw[:, 5] / mass - cx * cy
        half_trace = (xx + yy) / 2
        # sqrt(half_trace^2 - det) without the subtraction: for a round response the two
        # nearly cancel and the sqrt magnified float32 rounding to ~1e-5 in elongation.
        disc = torch.hypot((xx - yy) / 2, xy)
        # Cancellation can leave tiny negative eigenvalues of a (near) dead map: clamp.
        l1 = torch.clamp(half_trace + disc, min=0)
        l2 = torch.clamp(half_trace - disc, min=0)
        squares += [l1 + l2 + eps, (l2 + eps) / (l1 + eps)]
    if torch.is_grad_enabled():  # the in-place operations below record no gradients
        return torch.cat(
            [q.sqrt() if i % 2 == 0 else 1 - q.sqrt() for i, q in enumerate(squares)], 1
        )
    # One sqrt for all blocks: torch runs it in parallel even on these small tensors, and
    # each parallel operation costs milliseconds when other jobs hold the cores.
    out = torch.cat(squares, dim=1).sqrt_()
    start = 0
    for size_sq in squares[::2]:
        width = size_sq.shape[1]
        out[:, start + width : start + 2 * width].neg_().add_(1)
        start += 2 * width
    return out


def moment_features(h: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Size and elongation of each response map, taken as a mass distribution.

    Parameters
    ----------
    h : Tensor (n, F, s, s)
        Non-negative maps (after ReLU or sigmoid), any memory format.
    eps : float
        Added to the mass and the eigenvalues, so that an all-zero map gives size
        ``sqrt(eps)`` and elongation 0 rather than NaN.

    Returns
    -------
    size, elongation : Tensor (n, F)
        ``sqrt(l1 + l2 + eps)`` and ``1 - sqrt((l2 + eps) / (l1 + eps))``, with
        ``l1 >= l2 >= 0`` the eigenvalues of the second central moments of the map
        (coordinates centred and divided by ``s``).
    """
    both = _size_and_elongation([_raw_moments(h)], eps)
    return both[:, : h.shape[1]], both[:, h.shape[1] :]


def block_outputs(
    model: ConvAutoencoder, x: torch.Tensor
) -> tuple[list[tuple[nn.Conv2d, torch.Tensor]], torch.Tensor]:
    """Each convolution block's output and the encoder's final maps.

    Parameters
    ----------
    model : ConvAutoencoder
    x : Tensor (n, C, S, S)
        Normalised crops.

    Returns
    -------
    blocks : list of (Conv2d, Tensor (n, filters, s, s))
        Every convolution of the encoder with its block's output: after its activation and
        the pool that follows it, if any.
    maps : Tensor
        The last block's output, the input of the dense layers.
    """
    mods = list(model.encoder_maps)
    blocks: list[tuple[nn.Conv2d, torch.Tensor]] = []
    h, conv = x, None  # conv: the block's convolution, until its output is complete
    for i, m in enumerate(mods):
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if isinstance(m, nn.ReLU | nn.Sigmoid) and isinstance(nxt, nn.MaxPool2d):
            continue  # applied after the pool below: max(act(x)) == act(max(x)), 4x cheaper
        h = m(h)
        if isinstance(m, nn.MaxPool2d) and i > 0 and isinstance(mods[i - 1], nn.ReLU | nn.Sigmoid):
            h = mods[i - 1](h)
        if isinstance(m, nn.Conv2d):
            conv = m
        elif conv is not None and (nxt is None or isinstance(nxt, nn.Conv2d)):
            blocks.append((conv, h))
            conv = None
    return blocks, h


def _features(model: ConvAutoencoder, x: torch.Tensor, kind: str) -> torch.Tensor:
    blocks, maps = block_outputs(model, x)
    # "relative": each filter's mean response per unit of the crop's mean intensity (its
    # light), which is kept as one feature. A plain mean repeats the cell's size and
    # brightness in every filter; relative, it says how much of the pattern the cell's
    # light shows (novelty AUROC +0.8 to +1.3 points on three benchmark screens).
    # The light is floored at LIGHT_FLOOR: a filter's bias answers a nearly black crop
    # (a speck, a cell painted out but for a few pixels) too, and divided by almost no
    # light its mean reached 1e5 against about 5, which stretched the controls' spread of
    # that feature for every cell. Cells give 0.03 and more (a crop's mean after scaling).
    light = x.mean(dim=(1, 2, 3))[:, None] if kind == "relative" else None
    stats = []
    for _, h in blocks:
        mean = h.mean(dim=(2, 3))
        relative = light is not None
        stats += [mean / light.clamp_min(LIGHT_FLOOR) if relative else mean, h.amax(dim=(2, 3))]
    if kind != "pooled":
        stats.append(_size_and_elongation([_raw_moments(h) for _, h in blocks], EPS))
    if light is not None:
        stats.append(light)
    return torch.cat([model.encode_dense(maps), *stats], dim=1)


def _orientation(x: torch.Tensor, index: int) -> torch.Tensor:
    """Orientation ``index`` (0-7) of the crops: rotation by ``index % 4`` quarter turns,
    mirrored for ``index >= 4``."""
    view = torch.rot90(x, index % 4, dims=(2, 3)) if index % 4 else x
    return view.flip(3) if index >= 4 else view


def readout(
    model: ConvAutoencoder, x: torch.Tensor, kind: str = "relative", orientations: int = 8
) -> torch.Tensor:
    """Features of normalised crops (eval mode, no gradients needed).

    Parameters
    ----------
    model : ConvAutoencoder
    x : Tensor (n, C, S, S)
        Crops scaled like the training input.
    kind : {"relative", "shape", "pooled", "code"}
    orientations : {1, 4, 8}
        Average the features over this many orientations of every crop (1: as is; 4: the
        rotations by 90 degrees; 8: rotations and their mirror images).

    Returns
    -------
    Tensor (n, readout_width(model, kind)) float32
    """
    _check(kind, orientations)
    fmt = (
        torch.channels_last
        if x.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )
    total = None
    # One orientation at a time: stacking all 8 along the batch multiplies the activation
    # memory by 8 and ran 2x slower per crop (caches).
    for index in range(orientations):
        view = _orientation(x, index).contiguous(memory_format=fmt)
        if kind == "code":
            feats = model.encode(view)
        else:
            feats = _features(model, view, kind)
        total = feats if total is None else total.add_(feats)
    return total / orientations if orientations > 1 else total


def encoding_model(model: ConvAutoencoder) -> tuple:
    """The model to encode with, its device and the memory format to feed it.

    On the CPU this is a channels_last copy of the model (:meth:`Trainer.result` and
    :func:`load_model` give it in the plain layout): oneDNN's channels_last convolutions
    encoded 1.2-1.9x faster (``benchmarks/bench_encode.py``), and the caller's model is
    left as it is.

    Parameters
    ----------
    model : ConvAutoencoder

    Returns
    -------
    (ConvAutoencoder, torch.device, torch.memory_format)
        Input must come in that format, else every convolution converts it.
    """
    params = list(model.parameters())
    if params and params[0].device.type == "cpu":
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    return (model, *_model_device_and_format(model))


def _model_device_and_format(model) -> tuple:
    """Device and memory format the model's weights live in.

    Feeding input in the same memory format as the weights avoids a layout
    conversion per convolution (channels_last is markedly faster on CPU).
    """
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
