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
import warnings
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
        The columns' own names (:func:`napari_cellae.core.features.cell_feature_names`).
        Characters other than ASCII letters, digits, ``_`` and ``.`` (a channel's name
        can hold any) become ``_``.

    Returns
    -------
    list of str
        ``ch1-<name>`` for every column; the original module's
        ``ch1-deep_learning_feature_<i>`` when no names are given, or when they do not fit
        the file (a different count, a name too long, or two alike once made plain).

    Warns
    -----
    UserWarning
        When names are given but do not fit, saying why.
    """
    generic = [f"{FEATURE_PREFIX}{i}" for i in range(n_features)]
    if names is None:
        return generic
    why = _misfit(n_features, names)
    if why is None:
        return [CHANNEL_PREFIX + _plain(name) for name in names]
    warnings.warn(
        f"the Explorer file's feature columns are named {FEATURE_PREFIX}<i> (as the "
        f"original module's), not by layer and statistic: {why}",
        UserWarning,
        stacklevel=3,
    )
    return generic


def _plain(name: object) -> str:
    return _NOT_PLAIN.sub("_", str(name)).strip("_")


def _misfit(n_features: int, names: Sequence[str]) -> str | None:
    """Why ``names`` cannot name the columns, or None where they can."""
    if len(names) != n_features:
        return f"{len(names)} names for {n_features} features"
    seen: dict[str, str] = {}
    for name in names:
        plain = CHANNEL_PREFIX + _plain(name)
        if plain == CHANNEL_PREFIX:
            return f"the name {str(name)!r} has no letter or digit"
        if len(plain) > MAX_NAME_BYTES:
            return f"{plain[:40]!r}... is {len(plain)} bytes, longer than {MAX_NAME_BYTES}"
        if plain in seen:
            return f"{seen[plain]!r} and {str(name)!r} are both {plain!r}"
        seen[plain] = str(name)
    return None
