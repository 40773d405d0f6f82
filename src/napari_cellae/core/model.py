"""Convolutional autoencoder built from an architecture string.

Grammar (as in CellCognition Explorer's deep learning module), layers joined by ``_``:

- ``cF.SA``: convolution with ``F`` filters of ``S x S`` pixels, 'same' padding, activation ``A``
- ``pK``: ``K x K`` max-pooling (stride ``K``)
- ``dN.DA``: dropout with rate ``0.D`` followed by a dense layer of ``N`` units, activation ``A``

Activations: ``r`` = ReLU, ``s`` = sigmoid. Convolutions and pools come before dense layers.
The decoder mirrors the encoder: dense layers reuse the encoder weights transposed (tied)
with their own biases, pools become nearest-neighbour upsampling, convolutions map back to
their input channel count. Each decoder layer uses the activation that produced the matching
tensor in the encoder; the last layer has one output per input channel and a sigmoid,
because pixels are scaled to [0, 1].
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from napari_cellae.core.architecture import DEFAULT_ARCHITECTURE, check_architecture

__all__ = [
    "ConvAutoencoder",
    "dropout",
    "keep_mask",
]


@functools.cache
def _phase_taps(kernel: int, scale: int) -> tuple[torch.Tensor, tuple[int, ...], int]:
    """Tap merging of ``conv(upsample(x, scale))`` into one small kernel per output phase.

    With left padding ``p = (kernel - 1) // 2`` (symmetric for odd kernels, PyTorch's
    'same' for even ones), output row ``scale * i + a`` reads input row
    ``i + (a + u - p) // scale`` for kernel tap ``u``. Returns ``M`` (scale, m, kernel) with
    ``M[a, d, u] = 1`` when tap ``u`` of phase ``a`` lands on offset ``lo[a] + d``, the
    offsets ``lo`` and the merged kernel size ``m``.
    """
    p = (kernel - 1) // 2
    offsets = [[(a + u - p) // scale for u in range(kernel)] for a in range(scale)]
    lo = tuple(min(o) for o in offsets)
    m = max(max(o) - low + 1 for o, low in zip(offsets, lo, strict=True))
    taps = torch.zeros(scale, m, kernel)
    for a in range(scale):
        for u in range(kernel):
            taps[a, offsets[a][u] - lo[a], u] = 1.0
    return taps, lo, m


def upsample_conv2d(x: torch.Tensor, scale: int, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(nearest_upsample(x, scale))`` computed without building the upsampled map.

    Each of the ``scale**2`` output phases is a convolution of ``x`` with a kernel whose taps
    are sums of the original taps; all phases run as one convolution with
    ``scale**2 * out_channels`` filters and are interleaved afterwards. The merged kernels are
    built from ``conv.weight`` inside autograd, so gradients reach the original parameters.

    Parameters
    ----------
    x : Tensor (n, c, h, w)
    scale : int
        Integer nearest-neighbour upsampling factor.
    conv : nn.Conv2d
        Stride 1, dilation 1, 'same' padding.

    Returns
    -------
    Tensor (n, conv.out_channels, h * scale, w * scale)
        In ``x``'s memory format.
    """
    kernel = conv.kernel_size[0]
    taps, lo, m = _phase_taps(kernel, scale)
    taps = taps.to(device=x.device, dtype=conv.weight.dtype)
    height, width = x.shape[-2:]
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1
    weight = torch.einsum("adu,oiuv,bev->aboide", taps, conv.weight, taps).reshape(
        scale * scale * conv.out_channels, conv.in_channels, m, m
    )
    if channels_last:
        weight = weight.contiguous(memory_format=torch.channels_last)
    bias = conv.bias.repeat(scale * scale) if conv.bias is not None else None
    pad_lo = -min(lo)
    pad_hi = max(lo) + m - 1
    if pad_lo == pad_hi:
        y = F.conv2d(x, weight, bias, padding=pad_lo)
    else:
        y = F.conv2d(F.pad(x, (pad_lo, pad_hi, pad_lo, pad_hi)), weight, bias)
    starts = tuple(low + pad_lo for low in lo)
    return _Interleave.apply(y, scale, starts, height, width)


class _Interleave(torch.autograd.Function):
    """Phase maps (n, s*s*c, h', w') -> interleaved (n, c, h*s, w*s), cropping each phase.

    Output pixel ``(s*i + a, s*j + b)`` of channel ``k`` is ``y[(a*s + b)*c + k,
    i + starts[a], j + starts[b]]``. Written as strided copies both ways; autograd of the
    equivalent slice/stack/permute chain would zero-fill one full-size gradient per phase.
    """

    @staticmethod
    def forward(
        ctx: Any, y: torch.Tensor, scale: int, starts: tuple[int, ...], height: int, width: int
    ) -> torch.Tensor:
        n, channels = y.shape[0], y.shape[1] // (scale * scale)
        fmt = (
            torch.channels_last
            if y.is_contiguous(memory_format=torch.channels_last) and channels > 1
            else torch.contiguous_format
        )
        out = torch.empty(
            (n, channels, height * scale, width * scale),
            dtype=y.dtype,
            device=y.device,
            memory_format=fmt,
        )
        for a in range(scale):
            for b in range(scale):
                g = (a * scale + b) * channels
                out[:, :, a::scale, b::scale] = y[
                    :,
                    g : g + channels,
                    starts[a] : starts[a] + height,
                    starts[b] : starts[b] + width,
                ]
        ctx.meta = (y.shape, scale, starts, height, width, channels)
        ctx.fmt = (
            torch.channels_last
            if y.is_contiguous(memory_format=torch.channels_last)
            else torch.contiguous_format
        )
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        shape, scale, starts, height, width, channels = ctx.meta
        covered = shape[2] == height and shape[3] == width  # every y pixel gets a gradient
        gy = torch.empty(shape, dtype=grad.dtype, device=grad.device, memory_format=ctx.fmt)
        if not covered:
            gy.zero_()
        for a in range(scale):
            for b in range(scale):
                g = (a * scale + b) * channels
                gy[
                    :,
                    g : g + channels,
                    starts[a] : starts[a] + height,
                    starts[b] : starts[b] + width,
                ] = grad[:, :, a::scale, b::scale]
        return gy, None, None, None, None


def keep_mask(
    shape: torch.Size | tuple[int, ...],
    rate: float,
    generator: torch.Generator | None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Random boolean mask, False with probability ``round(rate * 65536) / 65536``.

    Draws 16 random bits per element, 64 at a time: a quarter of the generator calls of
    ``bernoulli_`` (which cost 3 % of a training step). ``rate`` is kept to within 1e-5.
    """
    numel = math.prod(shape)
    words = -(-numel // 4)
    bits = torch.randint(
        -(2**63), 2**63 - 1, (words,), dtype=torch.int64, device=device, generator=generator
    )
    return bits.view(torch.int16)[:numel].view(shape) >= round(float(rate) * 65536) - 32768


def dropout(h: torch.Tensor, rate: float, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout whose mask comes from ``generator`` (reproducible per thread).

    Units are dropped as in :func:`keep_mask` and the kept ones scaled so that the
    expectation is unchanged.
    """
    dropped = round(float(rate) * 65536)
    if dropped <= 0:
        return h
    keep = keep_mask(h.shape, rate, generator, h.device)
    return torch.where(keep, h * (65536 / (65536 - dropped)), 0.0)


def _act(name: str) -> nn.Module:
    return nn.ReLU(inplace=True) if name == "relu" else nn.Sigmoid()


def _conv(cin: int, cout: int, kernel: int) -> nn.Conv2d:
    # Odd kernels get symmetric padding (faster than padding="same", which pads explicitly
    # for even kernels).
    padding: int | str = kernel // 2 if kernel % 2 else "same"
    return nn.Conv2d(cin, cout, kernel, padding=padding)


class ConvAutoencoder(nn.Module):
    """Denoising convolutional autoencoder with a mirrored, weight-tied decoder.

    Parameters
    ----------
    architecture : str
        Architecture string (see module docstring).
    crop_size : int
        Edge length of the square input crops.
    in_channels : int
        Number of image channels per crop.

    Attributes
    ----------
    n_features : int
        Length of the code returned by :meth:`encode`.
    """

    def __init__(
        self, architecture: str = DEFAULT_ARCHITECTURE, crop_size: int = 40, in_channels: int = 1
    ) -> None:
        super().__init__()
        layers = check_architecture(architecture, crop_size)
        if int(in_channels) < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        self.architecture = architecture.strip()
        self.crop_size = int(crop_size)
        self.in_channels = int(in_channels)

        # Encoder feature-map part; remember each layer's input channels and the activation
        # that produced its input (needed to mirror it).
        enc: list[nn.Module] = []
        dec: list[nn.Module] = []
        channels, spatial = self.in_channels, self.crop_size
        prev_act = "sigmoid"  # the decoder's last layer reproduces [0, 1] pixels
        for layer in layers:
            if layer.kind == "conv":
                enc += [_conv(channels, layer.size, layer.kernel), _act(layer.activation)]
                dec = [_conv(layer.size, channels, layer.kernel), _act(prev_act), *dec]
                channels, prev_act = layer.size, layer.activation
            elif layer.kind == "pool":
                enc.append(nn.MaxPool2d(layer.size))
                dec = [nn.Upsample(scale_factor=layer.size, mode="nearest"), *dec]
                spatial //= layer.size
        self.encoder_maps = nn.Sequential(*enc)
        self.decoder_maps = nn.Sequential(*dec)
        self._map_shape = (channels, spatial, spatial)
        # Equal but cheaper evaluation orders (same function, same parameters):
        # - max-pool before a monotone activation (ReLU, sigmoid) instead of after it, so
        #   the activation and its backward run on the pooled, 4x smaller map;
        # - nearest upsampling followed by a convolution as one polyphase convolution on the
        #   small map (several times fewer FLOPs, and the 16 -> 1 5x5 output convolution
        #   becomes 16 -> 4 3x3, a far better shape for oneDNN).
        # - dropout masks drawn more cheaply (the same distribution to 1e-5, see dropout())
        #   from a generator the caller passes.
        # Set False to run the layers literally (used by the tests as the reference).
        self.fast_paths = True
        self._decoder_conv = next(
            (i for i, m in enumerate(self.decoder_maps) if isinstance(m, nn.Conv2d)), None
        )

        # Dense part: encoder Linear layers; the decoder reuses their weights transposed.
        width = channels * spatial * spatial
        self.dropouts = nn.ModuleList()
        self.dense = nn.ModuleList()
        self._dense_acts: list[str] = []
        self._decoder_acts: list[str] = []
        decoder_bias = []
        for layer in layers:
            if layer.kind != "dense":
                continue
            self.dropouts.append(nn.Dropout(layer.dropout))
            self.dense.append(nn.Linear(width, layer.size))
            self._dense_acts.append(layer.activation)
            self._decoder_acts.append(prev_act)
            decoder_bias.append(nn.Parameter(torch.zeros(width)))
            width, prev_act = layer.size, layer.activation
        # Stored in encoder order; applied in reverse.
        self.decoder_bias = nn.ParameterList(decoder_bias)
        self.n_features = width

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Map crops (n, C, S, S) in [0, 1] to codes (n, n_features).

        ``generator`` draws the dropout masks in training mode (default: torch's global one).
        """
        return self.encode_dense(self.encode_maps(x), generator)

    def encode_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution and pooling part of the encoder: crops to feature maps."""
        mods = list(self.encoder_maps)
        h, i = x, 0
        while i < len(mods):
            m = mods[i]
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            if (
                self.fast_paths
                and isinstance(m, nn.ReLU | nn.Sigmoid)
                and isinstance(nxt, nn.MaxPool2d)
            ):
                h = m(nxt(h))  # max(act(x)) == act(max(x)) for monotone activations
                i += 2
            else:
                h = m(h)
                i += 1
        return h

    def encode_dense(
        self, maps: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The dense part of the encoder: feature maps (n, C', s, s) to codes (n, n_features)."""
        h = maps.flatten(1)
        for drop, lin, act in zip(self.dropouts, self.dense, self._dense_acts, strict=True):
            if not self.fast_paths:
                h = drop(h)  # torch's own dropout, from the global generator
            elif self.training and drop.p > 0:
                h = dropout(h, drop.p, generator)
            h = lin(h)
            h = F.relu(h, inplace=True) if act == "relu" else torch.sigmoid(h)
        return h

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Map codes (n, n_features) back to crops (n, C, S, S) in [0, 1]."""
        for i in reversed(range(len(self.dense))):
            # Tied weights: the transposed encoder matrix, own bias.
            h = F.linear(h, self.dense[i].weight.t(), self.decoder_bias[i])
            h = F.relu(h, inplace=True) if self._decoder_acts[i] == "relu" else torch.sigmoid(h)
        return self.decode_maps(h.reshape(h.shape[0], *self._map_shape))

    def decode_maps(self, h: torch.Tensor) -> torch.Tensor:
        """Map encoder feature maps (n, C', s, s) back to crops (n, C, S, S) in [0, 1]."""
        if self._decoder_conv is not None and self.decoder_maps[
            self._decoder_conv
        ].weight.is_contiguous(memory_format=torch.channels_last):
            # Keep the decoder maps in the model's memory format (no conversion per layer).
            h = h.contiguous(memory_format=torch.channels_last)
        mods = list(self.decoder_maps)
        i = 0
        while i < len(mods):
            m = mods[i]
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            if self.fast_paths and isinstance(m, nn.Upsample) and isinstance(nxt, nn.Conv2d):
                h = upsample_conv2d(h, int(m.scale_factor), nxt)
                i += 2
            else:
                h = m(h)
                i += 1
        return h

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reconstruct crops: ``decode(encode(x))``, same shape as ``x``.

        ``generator`` draws the dropout masks in training mode (default: torch's global one).
        """
        expected = (self.in_channels, self.crop_size, self.crop_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"expected input of shape (n, {', '.join(map(str, expected))}), "
                f"got {tuple(x.shape)}"
            )
        return self.decode(self.encode(x, generator))
