"""A small step after every optimiser step that keeps the encoder's filters apart.

Reconstruction training lets the filters of a convolution drift towards each other: several
come to answer the same pattern, and their features (mean, maximum, size and elongation of
the response) repeat one another, so a distance between cells counts that pattern several
times and the rest less. Untrained random filters do not have this problem, which is one
reason why a random network was as good a feature extractor as a trained one.

:func:`decorrelate_filters` descends the soft orthogonality penalty
``sum((U U^T - I)^2)`` of each encoder convolution, where the rows of ``U`` are the layer's
filters scaled to unit length: the penalty is zero when every two filters are orthogonal,
and its gradient only turns filters away from each other (their lengths change only to
second order). The step size is ``strength``; reconstruction still decides what the filters
learn. Measured on the three benchmark screens (``docs/quality.md``): at 0.01, logistic
regression F1 +0.9 points and 5-NN accuracy +0.5 on average over five trainings in the lab,
novelty level, for a few per cent of training time.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["decorrelate_filters"]


def decorrelate_filters(model: nn.Module, strength: float) -> None:
    """Turn the filters of every encoder convolution a little away from each other.

    Parameters
    ----------
    model : ConvAutoencoder
        Its ``encoder_maps`` convolutions are changed in place.
    strength : float
        Step size of the descent on the penalty (0: nothing changes).
    """
    if strength <= 0:
        return
    with torch.no_grad():
        for conv in model.encoder_maps:
            if not isinstance(conv, nn.Conv2d) or conv.out_channels < 2:
                continue
            flat = conv.weight.flatten(1)
            length = flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
            unit = flat / length
            gram = unit @ unit.T
            gram.diagonal().sub_(1.0)
            # The penalty's gradient, written out (4x faster than autograd at these sizes):
            # 4 (U U^T - I) U with respect to U, each row's part along itself removed (a
            # unit vector can only turn) and divided by the filter's length.
            d_unit = 4.0 * gram @ unit
            d_unit -= (d_unit * unit).sum(dim=1, keepdim=True) * unit
            conv.weight.sub_((strength * d_unit / length).reshape(conv.weight.shape))
