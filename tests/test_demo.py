"""The bundled demo screen: reproducible, readable, mapped and with the designed phenotypes."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_cellae.demo import screen as demo
from napari_cellae.demo.screen import (
    CH5_NAME,
    CLASS_LABELS,
    DEMO_LAYOUT,
    DEMO_SEED,
    MAPPING_NAME,
    demo_paths,
    make_demo,
)
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.mapping import read_mapping
from napari_cellae.io.mapping_fit import check_fit

SMALL = {"layout": DEMO_LAYOUT[:2], "size": (160, 192), "n_frames": 2, "n_cells": 105}
BUNDLED = Path(demo.__file__).resolve().parent.parent / "sample_data"


def datasets(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file (external links are not used by the demo)."""
    out: dict[str, np.ndarray] = {}

    def visit(name: str, obj: h5py.HLObject) -> None:
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def assert_same_arrays(a: Path, b: Path) -> None:
    left, right = datasets(a), datasets(b)
    assert sorted(left) == sorted(right)
    for name in left:
        assert left[name].dtype == right[name].dtype, name
        assert np.array_equal(left[name], right[name]), name


def test_small_variant_is_reproducible_and_seed_dependent(tmp_path: Path) -> None:
    first = make_demo(tmp_path / "a", **SMALL)
    second = make_demo(tmp_path / "b", **SMALL)
    other = make_demo(tmp_path / "c", seed=DEMO_SEED + 1, **SMALL)
    assert first[0].name == CH5_NAME and first[1].name == MAPPING_NAME
    assert_same_arrays(first[0], second[0])
    assert first[1].read_bytes() == second[1].read_bytes()
    with CellH5(first[0]) as a, CellH5(other[0]) as c:
        key = a.positions[0]
        assert a.image_shape(key) == (1, 2, 1, 160, 192)
        assert not np.array_equal(a.image(key)[()], c.image(key)[()])


def test_bundled_demo_equals_regeneration(tmp_path: Path) -> None:
    ch5, mapping = demo_paths()
    assert ch5 == BUNDLED / CH5_NAME, "the bundled sample_data files are missing"
    regenerated, regenerated_mapping = make_demo(tmp_path)
    assert_same_arrays(ch5, regenerated)
    assert mapping.read_bytes() == regenerated_mapping.read_bytes()


@pytest.fixture(scope="module")
def bundled() -> tuple[Path, Path]:
    return demo_paths()


def test_bundled_demo_reads_and_is_mapped(bundled: tuple[Path, Path]) -> None:
    ch5_path, mapping_path = bundled
    mapping = read_mapping(mapping_path)
    with CellH5(ch5_path) as ch5:
        assert len(ch5.positions) == len(DEMO_LAYOUT)
        check_fit(mapping, ch5.positions, ch5_path)
        assert all(mapping.lookup(key) is not None for key in ch5.positions)
        assert [c.name for c in ch5.channels] == ["H2B"]
        assert ch5.default_object == "primary__primary"
        labels = ch5.class_labels("primary__primary")
        assert [(c.label, c.name, c.color) for c in labels] == CLASS_LABELS
        total = controls = 0
        for key in ch5.positions:
            shape = ch5.image_shape(key)
            assert shape == (1, 3, 1, 512, 512)
            assert ch5.dtype(key) == np.uint8
            table = ch5.objects(key, "primary__primary")
            assert table.angle is not None and table.class_idx is not None
            left, right, top, bottom = table.bbox.T
            assert np.all((left <= table.center_x) & (table.center_x <= right))
            assert np.all((top <= table.center_y) & (table.center_y <= bottom))
            assert np.all((table.eccentricity >= 0) & (table.eccentricity < 1))
            total += len(table)
            controls += len(table) * mapping.lookup(key).is_control
            # objects touching the border exist, so crops have to be shifted inside the image
            assert np.any((left == 0) | (top == 0) | (right == 511) | (bottom == 511))
    assert total > 2000
    assert controls > 1000
    assert set(mapping.control_conditions) == {"scrambled"}


def test_labels_match_object_table(bundled: tuple[Path, Path]) -> None:
    with CellH5(bundled[0]) as ch5:
        key = ch5.positions[0]
        table = ch5.objects(key, "primary__primary")
        with h5py.File(bundled[0], "r") as f:
            region = f[ch5.image(key).parent.name + "/region"]
            for t in range(3):
                frame = region[0, t, 0]
                rows = table.time_idx == t
                assert set(np.unique(frame)) - {0} == set(table.label_id[rows].tolist())
                for i in np.flatnonzero(rows)[:10]:
                    ys, xs = np.nonzero(frame == table.label_id[i])
                    assert tuple(table.bbox[i]) == (xs.min(), xs.max(), ys.min(), ys.max())
                    assert table.center_x[i] == int(np.floor(xs.mean() + 0.5))
                    assert table.center_y[i] == int(np.floor(ys.mean() + 0.5))


def test_phenotypes_per_condition(bundled: tuple[Path, Path]) -> None:
    """Each perturbation enriches its phenotype; every population stays mixed."""
    names = [name for _, name, _ in CLASS_LABELS]
    mapping = read_mapping(bundled[1])
    counts: dict[str, np.ndarray] = {}
    with CellH5(bundled[0]) as ch5:
        for key in ch5.positions:
            condition = mapping.lookup(key).condition
            classes = ch5.objects(key, "primary__primary").class_idx
            counts[condition] = counts.get(condition, 0) + np.bincount(classes, minlength=4)
    share = {c: dict(zip(names, n / n.sum(), strict=True)) for c, n in counts.items()}
    assert share["scrambled"]["interphase"] > 0.85
    assert share["KIF11"]["mitotic"] > 0.35
    assert share["COPB1"]["apoptotic"] > 0.3
    assert share["INCENP"]["enlarged"] > 0.35
    assert share["PLK1"]["mitotic"] > 0.15 and share["PLK1"]["apoptotic"] > 0.15
    for condition, values in share.items():
        assert values["interphase"] > 0.3, condition  # mixed, like a real screen


def test_demo_paths_regenerates_into_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def fake_make_demo(out_dir: Path, seed: int = DEMO_SEED) -> tuple[Path, Path]:
        calls.append(Path(out_dir))
        return make_demo(out_dir, seed, **SMALL)

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(demo, "__file__", str(tmp_path / "pkg" / "demo.py"))
    monkeypatch.setattr(demo, "make_demo", fake_make_demo)
    ch5, mapping = demo_paths()
    assert ch5 == tmp_path / "cache" / "napari-cellae" / "demo" / CH5_NAME
    assert ch5.is_file() and mapping.is_file()
    assert demo_paths() == (ch5, mapping)  # second call finds the cached copy
    assert len(calls) == 1


def test_main_writes_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "make_demo", lambda out, seed: make_demo(out, seed, **SMALL))
    assert demo.main([str(tmp_path)]) == 0
    assert (tmp_path / CH5_NAME).is_file()
    assert demo.main([]) == 2
