"""The input checks stay cheap where the input is sound: each takes its quick path for a
sound table, image, model or config, and still finds what it looks for (the performance
audit against b04d206: opening, model load and CLI start had grown slower)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from napari_cellae.core import config as config_module
from napari_cellae.core.config import TrainConfig, field_info
from napari_cellae.core.model import ConvAutoencoder
from napari_cellae.core.model_checks import check_weights
from napari_cellae.io.storage import external_trouble, never_written


class _CountingId:
    """A dataset id that counts the creation property lists asked of it."""

    def __init__(self, dsid: h5py.h5d.DatasetID) -> None:
        self.dsid, self.plists = dsid, 0

    def get_create_plist(self) -> h5py.h5p.PropDCID:
        self.plists += 1
        return self.dsid.get_create_plist()

    def get_storage_size(self) -> int:
        return self.dsid.get_storage_size()


def test_a_written_table_is_cleared_by_its_storage_size_alone(tmp_path: Path) -> None:
    # Asking for the creation property list first cost ~10 us a table, read per position.
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        f["written"] = np.arange(5)
        f.create_dataset("unwritten", shape=(5,), dtype="<i4")
        f.create_dataset("external", shape=(5,), dtype="<i4", external=[("raw.bin", 0, 20)])
    with h5py.File(path, "r") as f:
        written = _CountingId(f["written"].id)
        assert not never_written(written)
        assert written.plists == 0
        assert never_written(_CountingId(f["unwritten"].id))
        assert not never_written(_CountingId(f["external"].id))  # its values are elsewhere


def test_external_trouble_looks_no_further_than_a_dataset_without_external_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It took the dataset's file (~30 us a position image) before seeing there were none.
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        f["inside"] = np.arange(5)
        f.create_dataset("outside", shape=(5,), dtype="<i4", external=[("gone.bin", 0, 20)])
    with h5py.File(path, "r") as f:
        outside = external_trouble(f["outside"])
        assert outside is not None and "'gone.bin', which is missing" in outside
        monkeypatch.setattr(
            h5py.Dataset, "file", property(lambda self: pytest.fail("dataset.file taken"))
        )
        assert external_trouble(f["inside"]) is None


def _network() -> ConvAutoencoder:
    settings = TrainConfig()
    return ConvAutoencoder(settings.architecture, settings.network_size, 1)


def test_sound_weights_pass_without_a_mask_of_every_weight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # torch.isfinite's mask of every weight took ~2 ms of a 3.4 MB model's 10 ms load.
    model = _network()
    with monkeypatch.context() as patched:
        patched.setattr(torch, "isfinite", lambda t: pytest.fail("a mask of every weight"))
        check_weights(model)
    with torch.no_grad():  # finite, but their sum overflows: the exact check clears them
        next(iter(model.parameters())).fill_(3e38)
    check_weights(model)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_every_non_finite_weight_is_still_named(bad: float) -> None:
    model = _network()
    names = [name for name, _ in model.named_parameters()]
    with torch.no_grad():
        dict(model.named_parameters())[names[-1]].view(-1)[0] = bad
        dict(model.named_parameters())[names[1]].view(-1)[-1] = bad
    with pytest.raises(ValueError, match="hold NaN or infinite values") as info:
        check_weights(model)
    assert str(info.value) == f"weights {names[1]}, {names[-1]} hold NaN or infinite values"


def test_field_types_are_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # get_type_hints ran for every field_info call: 56 for the parser (~25 ms of each
    # cellae command's start) and 6 for each config checked (each model loaded).
    field_info("crop_size")
    calls = []
    real = config_module.get_type_hints
    monkeypatch.setattr(config_module, "get_type_hints", lambda cls: calls.append(cls) or real(cls))
    infos = [field_info(f.name) for f in fields(TrainConfig)]
    TrainConfig.from_dict({"crop_size": 32})
    assert calls == []
    assert field_info("crop_size")["type"] is int
    assert {info["type"] for info in infos} >= {int, float, bool, str}
