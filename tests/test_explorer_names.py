"""Explorer feature names: the features' own names behind ch1-, the original's as fallback."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellae.export.explorer_names import FEATURE_PREFIX, MAX_NAME_BYTES, feature_names


def test_without_names_the_original_modules_names():
    assert feature_names(3) == [f"{FEATURE_PREFIX}{i}" for i in range(3)]
    assert feature_names(3)[0] == "ch1-deep_learning_feature_0"
    assert feature_names(0) == []


def test_names_say_which_layer_and_statistic():
    names = ["code_0", "conv1_mean_0", "conv2_max_3", "brightness_DNA", "mask_area"]
    assert feature_names(5, names) == [f"ch1-{name}" for name in names]


def test_channel_names_are_made_plain():
    # A channel may be called anything; the field name keeps letters, digits, _ and .
    got = feature_names(2, ["brightness_H2B-mCherry (561 nm)", "brightness_Kanal ä"])
    assert got == ["ch1-brightness_H2B_mCherry_561_nm", "ch1-brightness_Kanal"]
    assert all(name.isascii() for name in got)


def test_names_that_do_not_fit_fall_back_to_numbers():
    generic = feature_names(2)
    # ... and say why: a channel's long or look-alike name dropped every layer's name
    # without a word.
    with pytest.warns(UserWarning, match="1 names for 2 features"):
        assert feature_names(2, ["a"]) == generic  # count differs
    with pytest.warns(UserWarning, match="'brightness_a b' and 'brightness_a_b' are both"):
        assert feature_names(2, ["brightness_a b", "brightness_a_b"]) == generic
    with pytest.warns(UserWarning, match="68 bytes, longer than 64"):
        assert feature_names(2, ["x" * MAX_NAME_BYTES, "y"]) == generic  # too long for S64
    with pytest.warns(UserWarning, match="no letter or digit"):
        assert feature_names(2, ["", "y"]) == generic  # nothing left after the prefix
    assert feature_names(2, np.array(["u", "v"])) == ["ch1-u", "ch1-v"]
