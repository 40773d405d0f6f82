"""Model files (napari_cellae.core.model_file): round trip, errors, atomic writes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_cellae.core.features import encode
from napari_cellae.core.model_file import save_model
from napari_cellae.core.model_load import load_model
from napari_cellae.core.trainer import Trainer
from training_helpers import blob_crops, config


def test_save_load_round_trip(tmp_path: Path) -> None:
    crops = blob_crops(64, channels=2)
    trainer = Trainer(config(epochs=1), crops, channel_names=["a", "b"], object_name="obj")
    list(trainer.run())
    trained = trainer.result()
    path = trained.save(tmp_path / "model.pt")
    assert path.exists() and not list(tmp_path.glob(".*tmp"))
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "napari-cellae-model" and raw["version"] == 5  # outline measures
    loaded = load_model(path)
    assert loaded.config == trained.config
    assert loaded.normalisation == trained.normalisation
    assert loaded.channel_names == ["a", "b"] and loaded.object_name == "obj"
    np.testing.assert_array_equal(loaded.reconstruct(crops), trained.reconstruct(crops))
    loaded.check_compatible(16, 2)
    # the same model saved twice, under another name, is the same bytes
    again = trained.save(tmp_path / "again.pt")
    assert again.read_bytes() == path.read_bytes()
    with pytest.raises(ValueError, match=r"model\.pt was trained on 16 px crops with 2"):
        loaded.check_compatible(40, 2)
    with pytest.raises(ValueError, match="2 channel"):
        loaded.check_compatible(16, 1)


def test_version_1_files_keep_the_original_features(tmp_path: Path) -> None:
    import json

    crops = blob_crops(32)
    trained = Trainer(config(epochs=1), crops).result()
    path = trained.save(tmp_path / "model.pt")
    raw = torch.load(path, weights_only=True)
    meta = json.loads(raw["config"])
    for name in ("mask", "readout", "orientations"):
        del meta["config"][name]
    raw["config"], raw["version"] = json.dumps(meta), 1
    torch.save(raw, tmp_path / "old.pt")
    # napari-cellae gave version 1 models pooled features by default for a while (and cut
    # border cells off-centre): features written then need not match, and it says so
    with pytest.warns(UserWarning, match=r"old\.pt: a version 1 model file, applied "):
        old = load_model(tmp_path / "old.pt")
    assert (old.config.mask, old.config.readout, old.config.orientations) == ("none", "code", 1)
    with warnings.catch_warnings():  # today's files load without a word
        warnings.simplefilter("error")
        load_model(path)


def test_the_version_1_warning_counts_the_features_the_file_gives(tmp_path: Path) -> None:
    # It counted the network's code features whatever the file held: a hand-edited version
    # 1 file with a pooled readout, scaled per cell, gave 16 + filter responses + brightness
    # features per cell and was said to give 16.
    import json

    from napari_cellae.core.features import cell_feature_names
    from napari_cellae.core.morphology import MORPHOLOGY_NAMES

    trained = Trainer(config(epochs=1), blob_crops(32)).result()
    raw = torch.load(trained.save(tmp_path / "model.pt"), weights_only=True)
    meta = json.loads(raw["config"])
    raw["version"] = 1
    for name, settings in (
        ("newer", {**meta["config"], "readout": "pooled", "mask": "cell"}),
        ("first", {**meta["config"], "readout": "code", "mask": "none", "orientations": 1}),
    ):
        scale = {**meta["normalisation"], "per_cell": name == "newer"}
        settings["intensity"] = "cell" if name == "newer" else "screen"
        raw["config"] = json.dumps({**meta, "config": settings, "normalisation": scale})
        torch.save(raw, tmp_path / f"{name}.pt")
        with pytest.warns(UserWarning, match="a version 1 model file") as said:
            old = load_model(tmp_path / f"{name}.pt")
        n = len(cell_feature_names(old))
        features = encode(old, blob_crops(4))
        assert features.shape[1] + len(MORPHOLOGY_NAMES) * old.config.measures_outline == n
        text = str(said[0].message)
        if name == "newer":
            assert n > old.model.n_features + len(MORPHOLOGY_NAMES), n
            assert f"with the newer settings it holds ({n} features per cell: " in text, text
            assert "readout 'pooled'" in text and "original module" not in text, text
        else:
            assert f"applied as the original module (its {n} code features per cell)" in text


def test_settings_older_files_lack_are_read_as_they_were_made(tmp_path: Path) -> None:
    # Version 2 files written before 'intensity' (b2c0569) and version 2-3 files written
    # before 'revive' (e742743) lack those keys: they were read with today's defaults, so
    # a screen-scaled model said 'intensity: cell' and 'revive: True' (in the .h5ad too).
    import json

    trained = Trainer(config(epochs=1, intensity="screen"), blob_crops(32)).result()
    path = trained.save(tmp_path / "model.pt")
    raw = torch.load(path, weights_only=True)
    meta = json.loads(raw["config"])
    for name in ("intensity", "revive", "morphology", "input_size"):
        meta["config"].pop(name, None)
    raw["config"], raw["version"] = json.dumps(meta), 2
    torch.save(raw, tmp_path / "old.pt")
    old = load_model(tmp_path / "old.pt")
    assert (old.config.intensity, old.config.revive) == ("screen", False)
    assert not old.normalisation.per_cell
    # a per-cell scale (models from b60b3f1 on, which also store 'intensity') says 'cell'
    meta["normalisation"]["per_cell"] = True
    raw["config"] = json.dumps(meta)
    torch.save(raw, tmp_path / "cell.pt")
    assert load_model(tmp_path / "cell.pt").config.intensity == "cell"
    # a file that names them keeps them
    assert load_model(path).config.intensity == "screen" and load_model(path).config.revive


def test_outline_measurements_are_kept_and_older_files_have_none(tmp_path: Path) -> None:
    import json

    from napari_cellae.core.features import cell_feature_names
    from napari_cellae.core.morphology import MORPHOLOGY_NAMES

    trained = Trainer(config(epochs=1), blob_crops(32)).result()
    assert trained.config.measures_outline
    assert cell_feature_names(trained)[-5:] == list(MORPHOLOGY_NAMES)
    path = trained.save(tmp_path / "model.pt")
    raw = torch.load(path, weights_only=True)
    meta = json.loads(raw["config"])
    assert load_model(path).config.morphology and raw["version"] == 5
    # a version 4 file (no such setting) is applied as it was made: without them
    del meta["config"]["morphology"]
    raw["config"], raw["version"] = json.dumps(meta), 4
    torch.save(raw, tmp_path / "old.pt")
    old = load_model(tmp_path / "old.pt")
    assert not old.config.morphology
    assert not any(name.startswith("mask_") for name in cell_feature_names(old))
    # switched off, a model stays a version 4 file that older releases read
    plain = Trainer(config(epochs=1, morphology=False), blob_crops(32)).result()
    path = plain.save(tmp_path / "plain.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["version"] == 4 and "morphology" not in json.loads(raw["config"])["config"]
    assert not load_model(path).config.morphology


def test_decorrelation_is_kept_beside_the_config_older_readers_check(tmp_path: Path) -> None:
    import json

    trained = Trainer(config(epochs=1, decorrelation=0.02), blob_crops(32)).result()
    path = trained.save(tmp_path / "model.pt")
    raw = torch.load(path, weights_only=True)
    meta = json.loads(raw["config"])
    # a training setting: not among the fields older releases read and would refuse
    assert "decorrelation" not in meta["config"] and meta["training"]["decorrelation"] == 0.02
    assert raw["version"] == 5
    assert load_model(path).config.decorrelation == 0.02
    del meta["training"]  # a file from before: trained without it
    raw["config"] = json.dumps(meta)
    torch.save(raw, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").config.decorrelation == 0.0
    meta["training"] = 5  # damaged
    raw["config"] = json.dumps(meta)
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad\.pt: damaged napari-cellae model file"):
        load_model(tmp_path / "bad.pt")


def test_input_size_is_kept_and_older_files_have_none(tmp_path: Path) -> None:
    import json

    trained = Trainer(config(epochs=1, crop_size=24, input_size=16), blob_crops(32)).result()
    assert trained.model.crop_size == 16
    path = trained.save(tmp_path / "model.pt")
    loaded = load_model(path)
    assert (loaded.config.crop_size, loaded.config.input_size, loaded.model.crop_size) == (
        24,
        16,
        16,
    )
    raw = torch.load(path, weights_only=True)
    meta = json.loads(raw["config"])
    del meta["config"]["input_size"], meta["config"]["crop_size"]
    meta["crop_size"] = 16  # a file written before the setting: the network saw the cell box
    raw["config"] = json.dumps({**meta, "config": {**meta["config"], "crop_size": 16}})
    torch.save(raw, tmp_path / "old.pt")
    old = load_model(tmp_path / "old.pt")
    assert (old.config.input_size, old.config.network_size, old.model.crop_size) == (0, 16, 16)


def test_shape_models_stay_version_3_files_older_releases_read(tmp_path: Path) -> None:
    import json

    # (without the outline measurements, which only version 5 files hold)
    trained = Trainer(config(epochs=1, readout="shape", morphology=False), blob_crops(32)).result()
    raw = torch.load(trained.save(tmp_path / "shape.pt"), weights_only=True)
    assert raw["version"] == 3
    assert "input_size" not in json.loads(raw["config"])["config"]  # unknown to them
    assert load_model(tmp_path / "shape.pt").config == trained.config


def test_pooled_models_stay_version_2_files_and_encode_as_before(tmp_path: Path) -> None:
    from napari_cellae.core.features import encode, feature_names

    crops = blob_crops(32)
    trained = Trainer(config(epochs=1, readout="pooled", morphology=False), crops).result()
    path = trained.save(tmp_path / "pooled.pt")
    assert torch.load(path, weights_only=True)["version"] == 2  # older releases read it
    loaded = load_model(path)
    assert loaded.config.readout == "pooled"
    assert feature_names(loaded) == feature_names(trained)
    assert not any("_size_" in name for name in feature_names(loaded))
    np.testing.assert_array_equal(encode(loaded, crops), encode(trained, crops))


@pytest.mark.parametrize("preset", ["recommended", "demo"])
def test_presets_train_save_and_encode_shape_features(preset: str, tmp_path: Path) -> None:
    from napari_cellae.core.config import TrainConfig
    from napari_cellae.core.features import encode, feature_names

    cfg = TrainConfig.from_preset(preset, epochs=1, device="cpu")
    size = cfg.crop_size
    crops = np.random.default_rng(0).integers(0, 255, (24, 1, size, size)).astype(np.uint8)
    crops[0] = 0  # an empty crop: every filter dead
    trainer = Trainer(cfg, crops)
    assert np.isfinite(list(trainer.run())[-1].train_loss)
    path = trainer.result().save(tmp_path / "model.pt")
    assert torch.load(path, weights_only=True)["version"] == 5  # the outline measurements
    loaded = load_model(path)
    assert loaded.config.measures_outline
    names = feature_names(loaded)
    assert loaded.config.readout == "relative"
    assert "conv1_size_0" in names and "conv2_elongation_31" in names
    assert "conv1_relmean_0" in names and "input_mean" in names
    feats = encode(loaded, crops[:6])
    assert feats.shape == (6, len(names)) and np.all(np.isfinite(feats))


def test_load_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt is not a napari-cellae model"):
        load_model(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match=r"other\.pt is not a napari-cellae model"):
        load_model(other)
    with pytest.raises(ValueError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=rf"^{tmp_path}: is a folder; expected a model file"):
        load_model(tmp_path)
    # was "model file /dev/null does not exist"
    with pytest.raises(ValueError, match=r"^/dev/null: is not a regular file; expected a model"):
        load_model("/dev/null")
    # weights of another architecture than the stored config says
    trainer = Trainer(config(epochs=1), blob_crops(16))
    path = trainer.result().save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    wrong = Trainer(config(epochs=1, architecture="c8.3r_p2_d16.0s"), blob_crops(16))
    payload["state_dict"] = wrong.result().model.state_dict()
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"m\.pt: damaged napari-cellae model file") as info:
        load_model(path)
    assert "\n" not in str(info.value)  # torch's list of mismatched weights, on one line


def test_save_refuses_inputs_and_cleans_stale_temporaries(tmp_path: Path) -> None:
    trained = Trainer(config(epochs=1), blob_crops(16)).result()
    screen = tmp_path / "screen.ch5"
    screen.write_bytes(b"pixels")
    for alias in (screen, tmp_path / "sub" / ".." / "screen.ch5"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(ValueError, match="refusing to write the model"):
            save_model(trained, alias, [screen])
    link = tmp_path / "link.pt"
    link.symlink_to(screen)
    with pytest.raises(ValueError, match=r"link\.pt.*input"):
        save_model(trained, link, [screen])
    assert screen.read_bytes() == b"pixels"
    with pytest.raises(ValueError, match="folder"):
        save_model(trained, tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        save_model(trained, tmp_path / "missing" / "m.pt")
    # a killed run's temporary file (dead pid) is removed by the next save
    stale = tmp_path / ".m.pt.999999999.cellae-tmp"
    stale.write_bytes(b"half")
    path = save_model(trained, tmp_path / "m.pt")
    assert path.is_file() and not stale.exists() and trained.path == path
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "link.pt",
        "m.pt",
        "screen.ch5",
        "sub",
    ]


def test_a_failing_write_names_the_model_file(tmp_path: Path, monkeypatch) -> None:
    # torch's writer raises RuntimeError (a full disk, say): a traceback after training.
    trained = Trainer(config(epochs=1), blob_crops(16)).result()

    def full_disk(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(ValueError, match=r"^cannot write .*m\.pt: \[enforce fail"):
        save_model(trained, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def _damaged(tmp_path: Path, meta_change: dict, nan_weights: bool = False) -> Path:
    import json

    path = Trainer(config(epochs=1), blob_crops(16)).result().save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"] = json.dumps({**json.loads(payload["config"]), **meta_change})
    if nan_weights:
        next(iter(payload["state_dict"].values())).fill_(float("nan"))
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("meta_change", "nan_weights", "problem"),
    [
        ({"channel_names": None}, False, "channel_names must be a list of names, got None"),
        ({"channel_names": 3}, False, "channel_names must be a list of names, got 3"),
        # str() made names the file was said to lack: "trained on channel(s) ['H2B']"
        ({"channel_names": [["a"]]}, False, "channel_names must be a list of names, got [['a']]"),
        ({"object_name": None}, False, "object_name must be a name, got None"),
        (
            {"normalisation": {"low": [0, 0], "high": [1, 1], "per_cell": False}},
            False,
            "the intensity scale has 2 channel(s), the network 1",
        ),
        ({}, True, "hold NaN or infinite values"),
        # Built before its weights were loaded: gigabytes, or a crop box the settings lack.
        ({"crop_size": 100_000}, False, "the network takes 100000 px crops, the settings 16"),
        ({"channel_names": ["a", "b"]}, False, "it names 2 channel(s), the network takes 1"),
        # int() raised OverflowError (a traceback) on Infinity, and made 1.5 channels 1
        ({"crop_size": float("inf")}, False, "crop_size must be a whole number, got inf"),
        ({"in_channels": 1.5}, False, "in_channels must be a whole number, got 1.5"),
    ],
)
def test_inconsistent_model_files_are_named_when_loaded(
    tmp_path: Path, meta_change: dict, nan_weights: bool, problem: str
) -> None:
    # These crashed with a TypeError traceback, failed on the first crops in numpy's words
    # naming no file, or encoded NaN features that were blamed on the data.
    path = _damaged(tmp_path, meta_change, nan_weights)
    with pytest.raises(ValueError) as info:
        load_model(path)
    assert str(info.value).startswith(f"{path}: damaged napari-cellae model file: ")
    assert problem in str(info.value)


def _tiny_with(tmp_path: Path, meta_change: dict, settings_change: dict) -> Path:
    """A tiny model file whose stored metadata or settings were edited afterwards."""
    import json

    trained = Trainer(config(epochs=1, architecture="c4.3r_d8.0s"), blob_crops(16)).result()
    path = trained.save(tmp_path / "m.pt")
    assert load_model(path).model.n_features == 8  # as written, it loads
    payload = torch.load(path, weights_only=True)
    meta = {**json.loads(payload["config"]), **meta_change}
    meta["config"] = {**meta["config"], **settings_change}
    payload["config"] = json.dumps(meta)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("meta_change", "settings_change", "problem"),
    [
        # These two loaded without a word: the stored description was never compared.
        (
            {"n_features": 16},
            {},
            "it says 16 features, but its settings and weights (architecture 'c4.3r_d8.0s') give 8",
        ),
        (
            {"architecture": "c8.3r_d16.0s"},
            {},
            "it says architecture 'c8.3r_d16.0s', but its settings and weights 'c4.3r_d8.0s'",
        ),
        # These were torch's "Error(s) in loading state_dict for ConvAutoencoder: size
        # mismatch for dense.0.weight: copying a param with shape torch.Size([8, 1024])
        # from checkpoint, the shape in current model is ..." for every mismatched weight.
        (
            {},
            {"architecture": "c4.3r_d16.0s"},
            "its weights do not fit its settings' architecture 'c4.3r_d16.0s':"
            " dense.0.weight is 8 x 1024 in the file, 16 x 1024 for that architecture",
        ),
        (
            {},
            {"architecture": "c4.3r_c4.3r_d8.0s"},
            "its weights do not fit its settings' architecture 'c4.3r_c4.3r_d8.0s':"
            " the file lacks encoder_maps.2.weight, encoder_maps.2.bias, decoder_maps.2.weight"
            " (and 1 more); decoder_maps.0.weight is 1 x 4 x 3 x 3 in the file, 4 x 4 x 3 x 3"
            " for that architecture",
        ),
    ],
)
def test_stored_settings_that_disagree_with_the_weights_are_damage(
    tmp_path: Path, meta_change: dict, settings_change: dict, problem: str
) -> None:
    path = _tiny_with(tmp_path, meta_change, settings_change)
    with pytest.raises(ValueError) as info:
        load_model(path)
    assert str(info.value).startswith(f"{path}: damaged napari-cellae model file: {problem}")
    assert "\n" not in str(info.value) and "torch.Size" not in str(info.value)


@pytest.mark.parametrize("version", [0, -1, True, "5", 5.0, None])
def test_a_version_that_is_no_version_is_damage(tmp_path: Path, version: object) -> None:
    # 0, -1 and True loaded as version-1 files; '5' and 5.0 were called 'newer than 5'
    path = Trainer(config(epochs=1), blob_crops(16)).result().save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["version"] = version
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"m\.pt: damaged napari-cellae model file: version"):
        load_model(path)
    payload["version"] = 6
    torch.save(payload, path)
    with pytest.raises(ValueError, match="version 6 is newer than this napari-cellae"):
        load_model(path)


def test_a_missing_entry_is_named_as_missing(tmp_path: Path) -> None:
    import json

    path = Trainer(config(epochs=1), blob_crops(16)).result().save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    meta = json.loads(payload["config"])
    del meta["normalisation"]
    payload["config"] = json.dumps(meta)
    torch.save(payload, path)
    # was "m.pt: damaged napari-cellae model file: 'normalisation'"
    with pytest.raises(ValueError, match=r"model file: no 'normalisation' entry$"):
        load_model(path)


def test_an_unreadable_model_file_is_said_to_be_unreadable(tmp_path: Path, monkeypatch) -> None:
    # Was "not a napari-cellae model file (not an archive ...)": zipfile.is_zipfile answers
    # False when it cannot open the file. (Simulated: root reads files of any mode.)
    path = Trainer(config(epochs=1), blob_crops(16)).result().save(tmp_path / "m.pt")
    real_open = Path.open

    def refuse(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(ValueError, match=r"m\.pt cannot be read \(Permission denied\)$"):
        load_model(path)


def test_a_cells_file_or_foreign_pickle_given_as_model(tmp_path: Path, recwarn) -> None:
    import pickle

    import h5py

    cells = tmp_path / "features.h5ad"
    with h5py.File(cells, "w") as f:
        f["X"] = np.zeros((2, 2))
    # was "is not a napari-cellae model file (cannot be read by torch.load: UnpicklingError)"
    with pytest.raises(ValueError, match=r"features\.h5ad is an HDF5 file \(a CellH5, \.h5ad"):
        load_model(cells)
    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(pickle.dumps(print, protocol=4))
    with pytest.raises(ValueError, match=r"foreign\.pt is not a napari-cellae model file"):
        load_model(foreign)
    # torch's 'Detected pickle protocol 4 ... please file an issue' came out as a warning
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]


def test_a_model_is_written_over_a_model_or_an_empty_file_only(tmp_path):
    from napari_cellae.core.model_file import check_replaceable

    (tmp_path / "empty.pt").touch()
    check_replaceable(tmp_path / "empty.pt")
    check_replaceable(tmp_path / "new.pt")
    (tmp_path / "notes.txt").write_text("my notes")
    with pytest.raises(ValueError, match=r"refusing to replace .*notes\.txt with a model"):
        check_replaceable(tmp_path / "notes.txt")


def test_an_empty_cut_short_or_text_model_file_is_said_to_be_so(tmp_path: Path) -> None:
    # All three were "X is not a napari-cellae model file (not an archive as torch.save
    # writes)": a model cut short by an interrupted copy sent users looking for another file.
    path = Trainer(config(epochs=1), blob_crops(16)).result().save(tmp_path / "m.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cut\.pt: damaged napari-cellae model file: it is cut"):
        load_model(cut)
    empty = tmp_path / "empty.pt"
    empty.touch()
    with pytest.raises(ValueError, match=r"^.*empty\.pt: the model file is empty"):
        load_model(empty)
    mapping = tmp_path / "mapping.txt"
    mapping.write_text("Well\tSite\tGene Symbol\tGroup\nA01\t1\tscrambled\tneg\n")
    with pytest.raises(ValueError, match=r"mapping\.txt is not a napari-cellae model file but a "):
        load_model(mapping)


def test_settings_and_scale_that_disagree_on_intensity_are_damage(tmp_path: Path) -> None:
    # Encoding scales as the normalisation says: a file whose settings said 'screen' over a
    # per-cell scale (or a scale that lost per_cell) was applied so, the settings shown
    import json

    path = Trainer(config(epochs=1), blob_crops(16)).result().save(tmp_path / "m.pt")
    meta = json.loads(torch.load(path, weights_only=True)["config"])
    scale = meta["normalisation"]
    flipped = "screen" if scale["per_cell"] else "cell"
    for change in (
        {"config": {**meta["config"], "intensity": flipped}},
        {"normalisation": {**scale, "per_cell": not scale["per_cell"]}},
    ):
        with pytest.raises(ValueError, match="the settings say intensity") as info:
            load_model(_damaged(tmp_path, change))
        assert str(info.value).startswith(f"{path}: damaged napari-cellae model file: ")


def test_save_refuses_a_model_its_own_load_would_refuse(tmp_path: Path) -> None:
    # A model built with intensity 'screen' over a per-cell scale (as tests/test_streaming's
    # random_model once was) was written, and load_model then called the file damaged.
    import dataclasses

    trained = Trainer(config(epochs=1), blob_crops(16)).result()
    flipped = "screen" if trained.normalisation.per_cell else "cell"
    odd = dataclasses.replace(
        trained, config=dataclasses.replace(trained.config, intensity=flipped)
    )
    path = tmp_path / "m.pt"
    with pytest.raises(ValueError, match="the settings say intensity") as info:
        save_model(odd, path)
    said = str(info.value)
    assert said.startswith(f"{path}: not written: ") and "could not be loaded" in said
    assert list(tmp_path.iterdir()) == [] and odd.path is None
    assert load_model(save_model(trained, path)).config == trained.config  # the right one is


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_weights_that_are_no_floats_are_damage(tmp_path: Path, dtype: torch.dtype) -> None:
    # They were cast to float32 without a word (complex ones with torch's warning)
    path = Trainer(config(epochs=1), blob_crops(16)).result().save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = payload["state_dict"][name].to(dtype)
    torch.save(payload, path)
    with pytest.raises(ValueError, match=rf"weights {name} \({dtype}\) are not floating-point"):
        load_model(path)


def test_a_model_file_with_a_flipped_bit_is_damaged(tmp_path: Path) -> None:
    # torch.load does not check the archive's checksums: a bit flipped in the weights
    # (a bad disk or copy) encoded other features without a word
    trained = Trainer(config(epochs=1), blob_crops(16)).result()
    path = trained.save(tmp_path / "m.pt")
    raw = bytearray(path.read_bytes())
    weights = next(iter(trained.model.state_dict().values())).numpy().tobytes()
    raw[raw.index(weights) + 5] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"m\.pt: damaged napari-cellae model file: its part "):
        load_model(path)


def test_a_torch_archive_torch_cannot_read_is_damaged(tmp_path: Path) -> None:
    # An archive of torch's layout missing a part (or with its directory damaged) was
    # called "not a napari-cellae model file (... RuntimeError)": users sought another file
    import zipfile

    path = Trainer(config(epochs=1), blob_crops(16)).result().save(tmp_path / "m.pt")
    part = tmp_path / "part.pt"
    with zipfile.ZipFile(path) as whole, zipfile.ZipFile(part, "w") as cut:
        for name in whole.namelist():
            if not name.endswith("/data/0"):
                cut.writestr(name, whole.read(name))
    with pytest.raises(ValueError, match=r"part\.pt: damaged napari-cellae model file: torch "):
        load_model(part)
