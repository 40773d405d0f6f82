"""The one training configuration: defaults, presets, validation, help texts (no torch)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from napari_cellae.core.architecture import check_architecture
from napari_cellae.core.config import (
    COLLAPSE_ADVICE,
    DEFAULT_PRESET,
    PARAMETER_GUIDE,
    PRESETS,
    TrainConfig,
    field_info,
)


def test_config_defaults_round_trip_and_validation() -> None:
    cfg = TrainConfig()
    assert cfg.crop_size == 40 and cfg.optimizer == "adagrad" and cfg.held_out_fraction == 0.2
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown training settings: bogus"):
        TrainConfig.from_dict({"bogus": 1})
    bad = {
        "learning_rate": 0.0,
        "optimizer": "adam",
        "batch_size": 0,
        "corruption": 1.0,
        "epochs": 0,
        "train_on": "everything",
        "device": "tpu",
        "held_out_fraction": 0.95,
        "momentum": 1.0,
        "crop_size": 2,
        "input_size": 3,
    }
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name):
            TrainConfig(**{name: value})
    with pytest.raises(ValueError, match="divisible by 4"):
        TrainConfig(crop_size=42)
    # The network is built for the input size: a cell size it cannot take is fine there.
    assert TrainConfig(crop_size=42, input_size=40).network_size == 40
    with pytest.raises(ValueError, match=r"input_size 42 px, the network's input: .*divisible"):
        TrainConfig(input_size=42)
    with pytest.raises(ValueError, match="input_size must be an integer"):
        TrainConfig(input_size=40.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot parse layer"):
        TrainConfig(architecture="c16.5r_x")
    with pytest.raises(ValueError, match="augment"):
        TrainConfig(augment="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epochs must be an integer"):
        TrainConfig(epochs=2.5)  # type: ignore[arg-type]


def test_classic_preset_is_the_original_module() -> None:
    classic = TrainConfig.from_preset("classic")
    assert (classic.mask, classic.readout, classic.orientations) == ("none", "code", 1)
    assert (
        classic.crop_size,
        classic.architecture,
        classic.optimizer,
        classic.learning_rate,
        classic.momentum,
        classic.batch_size,
        classic.corruption,
        classic.epochs,
    ) == (40, "c16.5r_p2_c32.3r_p2_d256.1r_d64.0s", "adagrad", 0.05, 0.9, 128, 0.0, 64)


def test_recommended_preset_is_the_default() -> None:
    assert DEFAULT_PRESET == "recommended"
    assert TrainConfig() == TrainConfig.from_preset("recommended")
    recommended = TrainConfig()
    assert (
        recommended.mask,
        recommended.intensity,
        recommended.readout,
        recommended.orientations,
        recommended.train_on,
    ) == ("cell", "cell", "relative", 8, "all")


def test_recommended_and_demo_presets_read_relative_features() -> None:
    for name in ("recommended", "demo"):
        cfg = TrainConfig.from_preset(name)
        assert (cfg.readout, cfg.orientations) == ("relative", 8), name
    # "shape" and "pooled" stay selectable (models saved with them encode as before)
    assert TrainConfig(readout="pooled").readout == "pooled"
    choices = [v for v, _ in field_info("readout")["choices"]]
    assert choices == ["relative", "shape", "pooled", "code"]
    text = field_info("readout")["help"]
    assert "how spread out" in text and "how far from round" in text


def test_every_preset_is_a_valid_described_config() -> None:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for name, preset in PRESETS.items():
        assert preset.description, name
        assert set(preset.settings) <= names, name
        cfg = TrainConfig.from_preset(name)
        check_architecture(cfg.architecture, cfg.crop_size)
        for key, value in preset.settings.items():
            assert getattr(cfg, key) == value, (name, key)


def test_preset_with_overrides_and_errors() -> None:
    demo = TrainConfig.from_preset("demo", epochs=3, seed=7)
    assert (demo.crop_size, demo.batch_size, demo.epochs, demo.seed) == (32, 32, 3, 7)
    assert demo.architecture == PRESETS["demo"].settings["architecture"]
    with pytest.raises(ValueError, match=r"unknown preset 'fast'; presets: classic, demo"):
        TrainConfig.from_preset("fast")
    with pytest.raises(ValueError, match="unknown training settings: speed"):
        TrainConfig.from_preset("classic", speed=2)
    with pytest.raises(ValueError, match="crop_size"):
        TrainConfig.from_preset("demo", crop_size=2)
    # presets cannot be changed by accident through a config built from them
    with pytest.raises(TypeError):
        PRESETS["classic"].settings["epochs"] = 1  # type: ignore[index]


def test_every_field_is_explained_with_label_group_and_type() -> None:
    for f in dataclasses.fields(TrainConfig):
        info = field_info(f.name)
        assert len(info["help"]) > 30 and info["label"] and info["group"], f.name
        assert info["default"] == getattr(TrainConfig(), f.name)
        assert isinstance(info["default"], info["type"]), f.name
        assert PARAMETER_GUIDE[f.name] == info["help"]
    assert [v for v, _ in field_info("optimizer")["choices"]] == ["adagrad", "nesterov"]
    assert [v for v, _ in field_info("train_on")["choices"]] == ["controls", "all"]
    assert field_info("crop_size")["label"] == "Cell size (px)"
    assert "--size" in field_info("crop_size")["aliases"]
    with pytest.raises(KeyError, match="no field 'size'"):
        field_info("size")
    assert "lower learning rate" in COLLAPSE_ADVICE


def test_guide_texts_say_when_to_change_a_setting() -> None:
    assert "0.01-0.1 is a good range" in PARAMETER_GUIDE["learning_rate"]
    assert "one whole cell with a little margin" in PARAMETER_GUIDE["crop_size"]
    assert "negative-control positions" in PARAMETER_GUIDE["train_on"]


def test_importable_without_torch() -> None:
    code = (
        "import sys; import napari_cellae.core.config as c; c.TrainConfig(); "
        "import napari_cellae.cli.parser as p; p.build_parser(); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        # torch refused it in the first epoch: 'Nesterov momentum requires a momentum and
        # zero dampening', naming no option
        ({"optimizer": "nesterov", "momentum": 0.0}, "momentum must be above 0 with"),
        # torch's generators overflowed after the first epoch: 'Overflow when unpacking
        # long long'
        ({"seed": 2**63}, "seed must be 0..4294967295, got 9223372036854775808"),
        # beyond scikit-learn's 32-bit seeds: encode refused them, train took them
        ({"seed": 2**32}, "seed must be 0..4294967295, got 4294967296"),
        ({"seed": 10**23}, "seed must be 0.."),
        # passed as CUDA devices and failed in torch ('Invalid device string')
        ({"device": "cudajunk"}, "device must be 'auto', 'cpu' or 'cuda[:N]'"),
        ({"device": "cuda:-1"}, "device must be 'auto', 'cpu' or 'cuda[:N]'"),
        # equal to 1, so a model file's 'orientations: true' loaded as orientations 1
        ({"orientations": True}, "orientations must be 8 or 4 or 1, got True"),
        ({"orientations": 4.0}, "orientations must be 8 or 4 or 1, got 4.0"),
    ],
)
def test_settings_torch_refused_late_are_refused_by_name(settings: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid training setting: ") as info:
        TrainConfig(**settings)
    assert problem in str(info.value)


def test_the_largest_seed_cuda_devices_and_adagrad_without_momentum_stay_valid() -> None:
    TrainConfig(seed=2**32 - 1)
    TrainConfig(device="cuda:1")
    TrainConfig(device="cuda")
    TrainConfig(optimizer="adagrad", momentum=0.0)
    TrainConfig(optimizer="nesterov", momentum=0.5)


def test_settings_that_do_nothing_beside_the_others_are_named() -> None:
    from napari_cellae.cli.run_args import ignored_settings

    adagrad = TrainConfig(optimizer="adagrad", momentum=0.5)
    (said,) = ignored_settings(adagrad, {"momentum": 0.5})
    assert "--momentum 0.5 is ignored" in said and "--optimizer nesterov" in said
    # The preset's momentum, not given by the user, is not worth a word.
    assert ignored_settings(adagrad, {}) == []
    assert ignored_settings(TrainConfig(optimizer="nesterov"), {"momentum": 0.5}) == []
    unmasked = TrainConfig(mask="none", morphology=True)
    (said,) = ignored_settings(unmasked, {"morphology": True})
    assert "--morphology is ignored with --mask none" in said
    assert ignored_settings(unmasked, {"morphology": False}) == []
    assert ignored_settings(TrainConfig(mask="cell"), {"morphology": True}) == []


@pytest.mark.parametrize(
    ("settings", "fields"),
    [
        ({"epochs": 0}, ("epochs",)),
        ({"optimizer": "nesterov", "momentum": 0.0}, ("momentum", "optimizer")),
        ({"architecture": "junk"}, ("architecture",)),
        ({"crop_size": 18}, ("crop_size", "architecture")),
        ({"input_size": 18}, ("input_size", "architecture")),
    ],
)
def test_an_invalid_setting_names_the_settings_involved(settings: dict, fields: tuple) -> None:
    # Front ends name their own spelling of them: the command line its options.
    from napari_cellae.core.config_checks import SettingError

    with pytest.raises(SettingError, match=r"^invalid training setting: ") as info:
        TrainConfig(**settings)
    assert info.value.fields == fields
    assert str(info.value) == f"invalid training setting: {info.value.problem}"


def test_an_infinite_learning_rate_is_not_said_to_be_below_zero() -> None:
    # 'learning_rate must be > 0, got inf'
    with pytest.raises(ValueError, match="learning_rate must be a finite number above 0, got inf"):
        TrainConfig(learning_rate=float("inf"))


def test_samples_beyond_a_billion_are_refused() -> None:
    # --samples 1e23 trained, and the .h5ad of its cells failed after encoding the whole
    # screen: 'Object dtype dtype('O') has no native HDF5 equivalent ... key 'samples''.
    TrainConfig(samples=1_000_000_000)
    with pytest.raises(ValueError, match=r"samples must be 1\.\.1000000000, got 10{23}"):
        TrainConfig(samples=10**23)


def test_a_model_trained_with_a_seed_beyond_the_limit_still_loads() -> None:
    # seeds up to 2**63 - 1 were accepted before every command took 0..2**32 - 1
    config = TrainConfig.from_dict({"seed": 2**40 + 5})
    assert config.seed == 5
    with pytest.raises(ValueError, match=r"seed must be 0\.\.4294967295"):
        TrainConfig.from_dict({"seed": 2**63})
