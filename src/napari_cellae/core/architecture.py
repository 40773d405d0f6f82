"""The architecture grammar: parse and check an autoencoder's layer string (no torch).

Layers joined by ``_`` (as in CellCognition Explorer's deep learning module):

- ``cF.SA``: convolution with ``F`` filters of ``S x S`` pixels, 'same' padding, activation ``A``
- ``pK``: ``K x K`` max-pooling (stride ``K``)
- ``dN.DA``: dropout with rate ``0.D`` followed by a dense layer of ``N`` units, activation ``A``

Activations: ``r`` = ReLU, ``s`` = sigmoid. Convolutions and pools come before dense layers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["DEFAULT_ARCHITECTURE", "LayerSpec", "check_architecture", "parse_architecture"]

DEFAULT_ARCHITECTURE = "c16.5r_p2_c32.3r_p2_d256.1r_d64.0s"

_ACTIVATIONS = {"r": "relu", "s": "sigmoid"}
# Bounds that no cell network comes near: beyond them a typo (c1600 for c16) allocated
# gigabytes, was killed for memory or failed in torch's allocator with a traceback.
MAX_FILTERS = 1024
MAX_UNITS = 65536
MAX_WEIGHTS = 1_000_000_000  # 4 GB of float32: the default network at 1024 px needs 0.54e9
_CONV = re.compile(r"c(\d+)\.(\d+)([a-z])")
_POOL = re.compile(r"p(\d+)")
_DENSE = re.compile(r"d(\d+)\.(\d+)([a-z])")


@dataclass(frozen=True)
class LayerSpec:
    """One encoder layer parsed from an architecture string.

    Attributes
    ----------
    kind : {"conv", "pool", "dense"}
    size : int
        Filters (conv), pool size (pool) or units (dense).
    kernel : int
        Kernel edge length (conv only, else 0).
    dropout : float
        Dropout rate before the layer (dense only, else 0.0).
    activation : {"relu", "sigmoid", ""}
        Empty for pools.
    text : str
        The token it was parsed from.
    """

    kind: str
    size: int
    kernel: int = 0
    dropout: float = 0.0
    activation: str = ""
    text: str = ""


def _activation(letter: str, token: str, text: str) -> str:
    if letter not in _ACTIVATIONS:
        raise ValueError(
            f"architecture {text!r}: unknown activation {letter!r} in layer {token!r} "
            "(use r for ReLU or s for sigmoid)"
        )
    return _ACTIVATIONS[letter]


def parse_architecture(text: str) -> list[LayerSpec]:
    """Parse an architecture string into layer specs.

    Parameters
    ----------
    text : str
        E.g. ``"c16.5r_p2_c32.3r_p2_d256.1r_d64.0s"``.

    Returns
    -------
    list of LayerSpec
        Encoder layers in order.

    Raises
    ------
    ValueError
        With the offending token and the expected form.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("architecture string is empty; e.g. " + DEFAULT_ARCHITECTURE)
    text = text.strip()
    layers: list[LayerSpec] = []
    seen_dense = False
    for token in text.split("_"):
        if not token:
            raise ValueError(f"architecture {text!r}: empty layer (doubled or trailing '_')")
        if m := _CONV.fullmatch(token):
            filters, kernel = int(m.group(1)), int(m.group(2))
            if filters < 1 or kernel < 1:
                raise ValueError(
                    f"architecture {text!r}: layer {token!r} needs at least 1 filter of 1 px"
                )
            if filters > MAX_FILTERS:
                raise ValueError(
                    f"architecture {text!r}: layer {token!r} has {filters} filters; at most "
                    f"{MAX_FILTERS}"
                )
            if seen_dense:
                raise ValueError(
                    f"architecture {text!r}: convolution {token!r} after a dense layer; "
                    "put convolutions and pools before dense layers"
                )
            layers.append(
                LayerSpec("conv", filters, kernel, 0.0, _activation(m.group(3), token, text), token)
            )
        elif m := _POOL.fullmatch(token):
            k = int(m.group(1))
            if k < 2:
                raise ValueError(f"architecture {text!r}: pool {token!r} must be at least p2")
            if seen_dense:
                raise ValueError(
                    f"architecture {text!r}: pool {token!r} after a dense layer; "
                    "put convolutions and pools before dense layers"
                )
            layers.append(LayerSpec("pool", k, text=token))
        elif m := _DENSE.fullmatch(token):
            units = int(m.group(1))
            if units < 1:
                raise ValueError(f"architecture {text!r}: dense layer {token!r} needs >= 1 unit")
            if units > MAX_UNITS:
                raise ValueError(
                    f"architecture {text!r}: dense layer {token!r} has {units} units; at most "
                    f"{MAX_UNITS}"
                )
            dropout = float("0." + m.group(2))
            layers.append(
                LayerSpec("dense", units, 0, dropout, _activation(m.group(3), token, text), token)
            )
            seen_dense = True
        else:
            raise ValueError(
                f"architecture {text!r}: cannot parse layer {token!r}; expected cF.SA "
                "(conv: F filters, S x S kernel, activation r|s), pK (K x K max-pool) or "
                "dN.DA (dropout 0.D then N dense units, activation r|s)"
            )
    if not any(layer.kind in ("conv", "dense") for layer in layers):
        raise ValueError(f"architecture {text!r}: needs at least one conv or dense layer")
    return layers


def check_architecture(text: str, crop_size: int) -> list[LayerSpec]:
    """Check that an architecture parses and fits a crop size.

    Parameters
    ----------
    text : str
        Architecture string.
    crop_size : int
        Crop edge length in pixels.

    Returns
    -------
    list of LayerSpec
        The parsed layers.

    Raises
    ------
    ValueError
        If the string does not parse, ``crop_size`` is not divisible by the product of the
        pool sizes (the message suggests the nearest sizes that work), a convolution's
        kernel is larger than the maps it sees, or the network would hold more than
        ``MAX_WEIGHTS`` weights.
    """
    layers = parse_architecture(text)
    crop_size = int(crop_size)
    if crop_size < 1:
        raise ValueError(f"crop size must be positive, got {crop_size}")
    factor = math.prod(layer.size for layer in layers if layer.kind == "pool")
    if crop_size % factor:
        lower = (crop_size // factor) * factor
        # Only sizes whose maps every kernel fits: 'try 4 px' for 5 px crops of a network
        # that starts with a 5 px kernel was refused in turn.
        options = [s for s in (lower, lower + factor) if s > 0 and _too_small(layers, s) is None]
        if not options:  # the smallest larger multiple that every kernel fits
            size = lower + factor
            while _too_small(layers, size) is not None:
                size += factor
            options = [size]
        raise ValueError(
            f"crop size {crop_size} px does not fit architecture {text!r}: it must be "
            f"divisible by {factor} (the product of its pool sizes); try "
            + " or ".join(f"{s} px" for s in options)
        )
    small = _too_small(layers, crop_size)
    if small is not None:
        layer, side = small
        raise ValueError(
            f"architecture {text!r}: convolution {layer.text!r} has a {layer.kernel} px "
            f"kernel but sees maps of only {side} x {side} px with {crop_size} px crops; "
            f"use a kernel of at most {side} px, fewer pools before it or a larger crop"
        )
    weights = _weight_count(layers, crop_size)
    if weights > MAX_WEIGHTS:
        raise ValueError(
            f"architecture {text!r}: with {crop_size} px crops the network would hold "
            f"{weights:,} weights (at most {MAX_WEIGHTS:,}); "
            "use fewer filters or units, or pool more before the dense layers"
        )
    return layers


def _too_small(layers: list[LayerSpec], crop_size: int) -> tuple[LayerSpec, int] | None:
    """The first convolution whose kernel is larger than the maps it sees with
    ``crop_size`` px crops, and the side of those maps; None if every kernel fits."""
    side = crop_size  # of the maps a layer sees
    for layer in layers:
        if layer.kind == "conv" and layer.kernel > side:
            return layer, side
        if layer.kind == "pool":
            side //= layer.size
    return None


def _weight_count(layers: list[LayerSpec], crop_size: int) -> int:
    """About how many weights the autoencoder of ``layers`` holds for one input channel: a
    convolution's twice (the decoder mirrors it), a dense layer's once (tied weights)."""
    side, channels, total = crop_size, 1, 0
    for layer in layers:
        if layer.kind == "conv":
            total += 2 * layer.size * layer.kernel**2 * channels
            channels = layer.size
        elif layer.kind == "pool":
            side //= layer.size
        else:
            total += channels * side * side * layer.size
            channels, side = layer.size, 1
    return total
