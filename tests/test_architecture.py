"""Tests for napari_cellae.core.architecture: parsing and checking layer strings."""

from __future__ import annotations

import pytest

from napari_cellae.core.architecture import (
    DEFAULT_ARCHITECTURE,
    LayerSpec,
    check_architecture,
    parse_architecture,
)


def test_parse_default() -> None:
    layers = parse_architecture(DEFAULT_ARCHITECTURE)
    assert [layer.kind for layer in layers] == ["conv", "pool", "conv", "pool", "dense", "dense"]
    assert layers[0] == LayerSpec("conv", 16, 5, 0.0, "relu", "c16.5r")
    assert layers[1].size == 2
    assert layers[4] == LayerSpec("dense", 256, 0, 0.1, "relu", "d256.1r")
    assert layers[5].dropout == 0.0 and layers[5].activation == "sigmoid"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("c16.5r__p2", "empty layer"),
        ("c16.5x", "unknown activation 'x'"),
        ("c16r", "cannot parse layer 'c16r'"),
        ("q3", "cannot parse layer 'q3'"),
        ("p1_c4.3r", "at least p2"),
        ("d16.0r_c4.3r", "after a dense layer"),
        ("d16.0r_p2", "after a dense layer"),
        ("c0.3r", "at least 1 filter"),
        ("p2", "at least one conv or dense"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_architecture(text)


def test_crop_size_must_fit_pools() -> None:
    check_architecture(DEFAULT_ARCHITECTURE, 40)
    with pytest.raises(ValueError, match=r"divisible by 4.*try 40 px or 44 px"):
        check_architecture(DEFAULT_ARCHITECTURE, 42)
    with pytest.raises(ValueError, match="divisible by 4"):
        check_architecture(DEFAULT_ARCHITECTURE, 18)
    # 4 px is divisible by 4 but too small for the first 5 px kernel: it was suggested for
    # 5 px crops ('try 4 px or 8 px') and then refused in turn.
    with pytest.raises(
        ValueError, match=r"divisible by 4 \(the product of its pool sizes\); try 8 px$"
    ):
        check_architecture(DEFAULT_ARCHITECTURE, 5)
    # 12 px leaves 3 px maps for the 3 px kernel of the second convolution: both fit.
    with pytest.raises(ValueError, match=r"try 12 px or 16 px$"):
        check_architecture(DEFAULT_ARCHITECTURE, 13)
    # Neither multiple of 2 beside 5 px fits the 7 px kernel: the smallest larger one that
    # does is offered (6 px was, and then refused).
    with pytest.raises(ValueError, match=r"try 8 px$"):
        check_architecture("c4.7r_p2_d16.0s", 5)
    check_architecture("c4.7r_p2_d16.0s", 8)


def test_kernels_larger_than_their_maps_are_refused() -> None:
    check_architecture("c4.5r_p2_c8.5r_p2_d16.0s", 20)  # 5 px kernel on a 10 px map: fine
    with pytest.raises(ValueError, match=r"'c16\.99r' has a 99 px kernel.*only 16 x 16 px"):
        check_architecture("c16.99r_p2_d16.0s", 16)
    # After two pools a 16 px crop leaves 4 px maps for the third convolution.
    with pytest.raises(ValueError, match=r"'c8\.5r' has a 5 px kernel.*only 4 x 4 px"):
        check_architecture("c4.3r_p2_c4.3r_p2_c8.5r_d16.0s", 16)


@pytest.mark.parametrize(
    ("text", "size", "problem"),
    [
        # each was built: killed for memory after a minute, or a traceback from torch's
        # allocator ('you tried to allocate 2560000000000 bytes')
        ("c100000.5r_p2_d64.0s", 40, "layer 'c100000.5r' has 100000 filters; at most 1024"),
        ("c16.5r_p2_d100000000.0s", 40, "has 100000000 units; at most 65536"),
        ("c99999999999999999999999.5r_p2_d64.0s", 40, "at most 1024"),
        ("c1024.5r_d64.0s", 512, "weights (at most 1,000,000,000)"),
    ],
)
def test_networks_too_large_to_build_are_refused(text: str, size: int, problem: str) -> None:
    with pytest.raises(ValueError, match=rf"^architecture '{text}'") as info:
        check_architecture(text, size)
    assert problem in str(info.value)


def test_the_default_network_still_fits_the_largest_crop() -> None:
    check_architecture(DEFAULT_ARCHITECTURE, 1024)
    check_architecture("c1024.5r_p4_c1024.3r_p4_d65536.0s", 16)
