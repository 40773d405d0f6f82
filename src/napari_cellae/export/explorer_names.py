"""The names of the feature columns in a CellCognition Explorer ``.hdf`` file.

The Explorer matches the ``ch1`` prefix of a feature's name to the contour channel
``Channel_1``; what follows the dash is the feature's own name, as CellCognition's own
features (``ch1-n2_avg``, ``ch1-roisize``) have theirs. The original module named its
features ``ch1-deep_learning_feature_<i>``; with the readout's names the Explorer's feature
list says which layer and statistic every column comes from (``ch1-conv2_mean_7``,
``ch1-mask_area``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["CHANNEL_PREFIX", "FEATURE_PREFIX", "MAX_NAME_BYTES", "feature_names"]

CHANNEL_PREFIX = "ch1-"
FEATURE_PREFIX = f"{CHANNEL_PREFIX}deep_learning_feature_"
# /data/feature_groups stores each name in 64 bytes.
MAX_NAME_BYTES = 64
_NOT_PLAIN = re.compile(r"[^A-Za-z0-9_.]+")


def feature_names(n_features: int, names: Sequence[str] | None = None) -> list[str]:
    """The Explorer names of ``n_features`` feature columns.

    Parameters
    ----------
    n_features : int
        Number of columns.
    names : sequence of str, optional
        The columns' own names (:func:`napari_cellae.core.morphology.cell_feature_names`).
        Characters other than ASCII letters, digits, ``_`` and ``.`` (a channel's name
        can hold any) become ``_``.

    Returns
    -------
    list of str
        ``ch1-<name>`` for every column; the original module's
        ``ch1-deep_learning_feature_<i>`` when no names are given, or when they do not fit
        the file (a different count, a name too long, or two alike once made plain).
    """
    generic = [f"{FEATURE_PREFIX}{i}" for i in range(n_features)]
    if names is None or len(names) != n_features:
        return generic
    named = [CHANNEL_PREFIX + _NOT_PLAIN.sub("_", str(name)).strip("_") for name in names]
    too_long = any(len(name) > MAX_NAME_BYTES or name == CHANNEL_PREFIX for name in named)
    if too_long or len(set(named)) != len(named):
        return generic
    return named
