"""What is read out of the encoder as a cell's features, and how it is made orientation-free.

Two readouts:

- ``"code"``: the bottleneck (the last dense layer), as in the original module;
- ``"pooled"`` (default): the bottleneck plus, for every convolution block, the mean and the
  maximum over the image of each filter's response (after its activation and the pool that
  follows it, if any). The pooled responses say *how much* of each learned pattern a cell
  shows (texture, edges, blobs at two scales) wherever it is in the crop, which the dense
  code mixes with position.

Cells have no preferred orientation, so by default the features of a crop are averaged over
its 8 orientations (4 rotations by 90 degrees, each with and without mirroring): a cell
turned by 90 degrees gets the same features.
"""

from __future__ import annotations

import torch
from torch import nn

from napari_cellae.core.model import ConvAutoencoder

__all__ = ["ORIENTATIONS", "READOUTS", "readout", "readout_names", "readout_width"]

READOUTS = ("pooled", "code")
ORIENTATIONS = (1, 4, 8)


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


def readout_names(model: ConvAutoencoder, kind: str = "pooled") -> list[str]:
    """Names of the readout's features, saying which layer each comes from.

    Parameters
    ----------
    model : ConvAutoencoder
    kind : {"pooled", "code"}

    Returns
    -------
    list of str
        ``code_<i>`` for bottleneck units, ``conv<k>_mean_<f>`` / ``conv<k>_max_<f>`` for the
        pooled response of filter ``f`` of convolution ``k`` (1-based, input side first).
    """
    _check(kind, 1)
    names = [f"code_{i}" for i in range(model.n_features)]
    if kind == "pooled":
        mods = list(model.encoder_maps)
        for k, (start, _) in enumerate(_conv_blocks(model), start=1):
            filters = mods[start].out_channels
            names += [f"conv{k}_mean_{f}" for f in range(filters)]
            names += [f"conv{k}_max_{f}" for f in range(filters)]
    return names


def readout_width(model: ConvAutoencoder, kind: str = "pooled") -> int:
    """Number of features the readout gives per cell."""
    return len(readout_names(model, kind))


def _pooled_and_code(model: ConvAutoencoder, x: torch.Tensor) -> torch.Tensor:
    mods = list(model.encoder_maps)
    stats: list[torch.Tensor] = []
    h, pending = x, False  # pending: a conv block's output has not been pooled into stats yet
    for i, m in enumerate(mods):
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if isinstance(m, nn.ReLU | nn.Sigmoid) and isinstance(nxt, nn.MaxPool2d):
            continue  # applied after the pool below: max(act(x)) == act(max(x)), 4x cheaper
        h = m(h)
        if isinstance(m, nn.MaxPool2d) and i > 0 and isinstance(mods[i - 1], nn.ReLU | nn.Sigmoid):
            h = mods[i - 1](h)
        pending = pending or isinstance(m, nn.Conv2d)
        if pending and not isinstance(m, nn.Conv2d) and (nxt is None or isinstance(nxt, nn.Conv2d)):
            stats += [h.mean(dim=(2, 3)), h.amax(dim=(2, 3))]
            pending = False
    code = model.encode_dense(h)
    return torch.cat([code, *stats], dim=1)


def _orientation(x: torch.Tensor, index: int) -> torch.Tensor:
    """Orientation ``index`` (0-7) of the crops: rotation by ``index % 4`` quarter turns,
    mirrored for ``index >= 4``."""
    view = torch.rot90(x, index % 4, dims=(2, 3)) if index % 4 else x
    return view.flip(3) if index >= 4 else view


def readout(
    model: ConvAutoencoder, x: torch.Tensor, kind: str = "pooled", orientations: int = 8
) -> torch.Tensor:
    """Features of normalised crops (eval mode, no gradients needed).

    Parameters
    ----------
    model : ConvAutoencoder
    x : Tensor (n, C, S, S)
        Crops scaled like the training input.
    kind : {"pooled", "code"}
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
        feats = _pooled_and_code(model, view) if kind == "pooled" else model.encode(view)
        total = feats if total is None else total.add_(feats)
    return total / orientations if orientations > 1 else total
