"""The benchmark screen: reproducible, readable, 12-bit, all 15 phenotypes, nuisances apart."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.stats import spearmanr

from napari_cellae.demo import benchmark
from napari_cellae.demo.benchmark import (
    BENCHMARK_LAYOUT,
    CH5_NAME,
    MAPPING_NAME,
    make_benchmark_screen,
    plan_screen,
)
from napari_cellae.demo.phenotypes import CLASS_LABELS, PHENOTYPES
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.mapping import read_mapping
from napari_cellae.io.mapping_fit import check_fit

OBJECT = "primary__primary"


@pytest.fixture(scope="module")
def screen(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small screen (about 800 cells, 2 s) shared by the read-only tests."""
    return make_benchmark_screen(tmp_path_factory.mktemp("bench"), seed=0, n_cells=800)


def test_same_seed_same_bytes_other_seed_other_pixels(tmp_path: Path) -> None:
    first = make_benchmark_screen(tmp_path / "a", seed=3, n_cells=120)
    second = make_benchmark_screen(tmp_path / "b", seed=3, n_cells=120)
    other = make_benchmark_screen(tmp_path / "c", seed=4, n_cells=120)
    assert [p.name for p in first] == [CH5_NAME, MAPPING_NAME]
    assert first[0].read_bytes() == second[0].read_bytes()
    assert first[1].read_bytes() == second[1].read_bytes()
    with CellH5(first[0]) as a, CellH5(other[0]) as c:
        key = a.positions[0]
        assert not np.array_equal(a.image(key)[()], c.image(key)[()])


def test_files_open_and_hold_all_phenotypes(screen: tuple[Path, Path]) -> None:
    ch5_path, mapping_path = screen
    mapping = read_mapping(mapping_path)
    counts = np.zeros(len(PHENOTYPES), int)
    controls = 0
    with CellH5(ch5_path) as ch5:
        assert len(ch5.positions) == len(BENCHMARK_LAYOUT) == 32
        check_fit(mapping, ch5.positions, ch5_path)
        assert ch5.default_object == OBJECT
        labels = ch5.class_labels(OBJECT)
        assert [(c.label, c.name, c.color) for c in labels] == CLASS_LABELS
        assert [c.name for c in labels] == list(PHENOTYPES)
        for key in ch5.positions:
            assert ch5.dtype(key) == np.uint16
            pixels = ch5.image(key)[()]
            assert pixels.max() <= 4095 and pixels.max() > 1000  # 12-bit, not 8-bit
            table = ch5.objects(key, OBJECT)
            counts += np.bincount(table.class_idx, minlength=len(PHENOTYPES))
            controls += mapping.lookup(key).is_control
    assert np.all(counts > 0), dict(zip(PHENOTYPES, counts, strict=True))
    assert set(mapping.control_conditions) == {"scrambled"}
    assert controls == 8


def test_label_images_match_object_table(screen: tuple[Path, Path]) -> None:
    with CellH5(screen[0]) as ch5:
        for key in ch5.positions[:3]:
            table = ch5.objects(key, OBJECT)
            with h5py.File(screen[0], "r") as f:
                frame = f[ch5.image(key).parent.name + "/region"][0, 0, 0]
            assert set(np.unique(frame)) - {0} == set(table.label_id.tolist())
            for i in range(len(table)):
                ys, xs = np.nonzero(frame == table.label_id[i])
                assert tuple(table.bbox[i]) == (xs.min(), xs.max(), ys.min(), ys.max())


def test_controls_are_mostly_interphase_and_hits_enriched(screen: tuple[Path, Path]) -> None:
    mapping = read_mapping(screen[1])
    with CellH5(screen[0]) as ch5:
        control = hit = np.zeros(len(PHENOTYPES))
        for key in ch5.positions:
            classes = np.bincount(ch5.objects(key, OBJECT).class_idx, minlength=len(PHENOTYPES))
            if mapping.lookup(key).is_control:
                control = control + classes
            else:
                hit = hit + classes
    assert control[0] / control.sum() > 0.75
    assert 0.0 < control[1:].sum() / control.sum() < 0.25  # natural share of other stages
    assert hit[0] / hit.sum() < 0.65


def test_density_is_independent_of_phenotype(screen: tuple[Path, Path]) -> None:
    """Crowding and well brightness vary between wells, unrelated to the condition."""
    deviant = np.array([1.0 - spec.condition.fractions[0] for spec in BENCHMARK_LAYOUT])
    densities, gains, shares = [], [], []
    for seed in range(20):
        plans, _ = plan_screen(seed, 5000)
        densities += [p.density for p in plans]
        gains += [p.gain for p in plans]
        shares += list(deviant)
    assert np.ptp(densities) > 1.0 and max(gains) / min(gains) > 2.5  # they do vary
    for nuisance in (densities, gains):
        rho, p_value = spearmanr(nuisance, shares)
        assert abs(rho) < 0.15 and p_value > 0.001, (rho, p_value)
    # ... and in a rendered screen: cells per well vs the share of non-interphase cells
    with CellH5(screen[0]) as ch5:
        tables = [ch5.objects(key, OBJECT) for key in ch5.positions]
    n_cells = [len(t) for t in tables]
    non_interphase = [np.mean(t.class_idx != 0) for t in tables]
    rho, p_value = spearmanr(n_cells, non_interphase)
    assert p_value > 0.01, (rho, p_value)


def test_main_writes_files(tmp_path: Path) -> None:
    assert benchmark.main([str(tmp_path), "--seed", "2", "--cells", "60"]) == 0
    assert (tmp_path / CH5_NAME).is_file() and (tmp_path / MAPPING_NAME).is_file()
    with pytest.raises(ValueError, match="n_cells"):
        make_benchmark_screen(tmp_path / "x", n_cells=0)


def test_zoom_draws_the_same_cells_larger(tmp_path: Path) -> None:
    standard = make_benchmark_screen(tmp_path / "1x", seed=5, n_cells=160)
    larger = make_benchmark_screen(tmp_path / "2x", seed=5, n_cells=160, zoom=2.0)
    with CellH5(standard[0]) as one, CellH5(larger[0]) as two:
        key = one.positions[0]
        assert two.image(key).shape[-1] == 2 * one.image(key).shape[-1]
        small, big = one.objects(key, OBJECT), two.objects(key, OBJECT)
        # The same cells and phenotypes, each twice as wide (give or take a pixel of the
        # segmentation threshold); a few cells cut by the border may be segmented in one only.
        common, i, j = np.intersect1d(small.label_id, big.label_id, return_indices=True)
        assert len(common) >= 0.9 * len(small)
        np.testing.assert_array_equal(small.class_idx[i], big.class_idx[j])
        width = (small.bbox[i, 1] - small.bbox[i, 0] + 1).astype(float)
        ratio = np.median((big.bbox[j, 1] - big.bbox[j, 0] + 1) / width)
        assert 1.8 < ratio < 2.2, ratio
        np.testing.assert_allclose(big.center_x[j] / 2, small.center_x[i], atol=2)
    with pytest.raises(ValueError, match="zoom"):
        make_benchmark_screen(tmp_path / "x", n_cells=100, zoom=10)


def test_light_dims_the_same_cells_into_noisier_images(tmp_path: Path) -> None:
    standard = make_benchmark_screen(tmp_path / "1x", seed=5, n_cells=160)
    dim = make_benchmark_screen(tmp_path / "dim", seed=5, n_cells=160, light=0.15)
    with CellH5(standard[0]) as one, CellH5(dim[0]) as two:
        key = one.positions[0]
        bright, faint = one.image(key)[0, 0, 0].astype(float), two.image(key)[0, 0, 0].astype(float)
        labels = one.labels(key, OBJECT)[0][0, 0, 0] > 0
        # the segmentation's threshold follows the light: about the same cells are found
        assert abs(two.object_count(key, OBJECT) - one.object_count(key, OBJECT)) <= 3
        np.testing.assert_array_equal(one.objects(key, OBJECT).class_idx[:5],
                                      two.objects(key, OBJECT).class_idx[:5])  # fmt: skip
        # same background, 0.15 of the cells' light above it, the same camera noise (pixel
        # to pixel, robust): the cells' signal over the noise falls about as the light
        background = np.median(bright[~labels])
        assert abs(np.median(faint[~labels]) - background) < 5
        signal = [np.median(image[labels]) - background for image in (bright, faint)]
        assert 0.12 < signal[1] / signal[0] < 0.18, signal
        pairs = ~labels[:, 1:] & ~labels[:, :-1]
        noise = [np.median(np.abs(np.diff(image, axis=1)[pairs])) for image in (bright, faint)]
        assert 0.8 < noise[1] / noise[0] < 1.25, noise
    with pytest.raises(ValueError, match="light"):
        make_benchmark_screen(tmp_path / "x", n_cells=100, light=0)


def _objects_and_labels(path: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per position: its label image, the object table's label ids and true classes."""
    with CellH5(path) as ch5:
        return [
            (
                ch5.labels(key, OBJECT)[0][0, 0, 0],
                ch5.objects(key, OBJECT).label_id,
                ch5.objects(key, OBJECT).class_idx,
            )
            for key in ch5.positions
        ]


def test_segmentation_cuts_objects_as_an_analysis_might(tmp_path: Path) -> None:
    from skimage.measure import label as connected

    drawn, pieces, joined = (
        _objects_and_labels(make_benchmark_screen(tmp_path / s, 5, 300, segmentation=s)[0])
        for s in ("drawn", "pieces", "joined")
    )
    assert sum(len(p[1]) for p in pieces) > sum(len(d[1]) for d in drawn)  # lobes, bodies
    assert sum(len(j[1]) for j in joined) < sum(len(p[1]) for p in pieces)  # touching cells
    for (cells, cell_ids, cell_classes), (lab, ids, classes), (merged, _, _) in zip(
        drawn, pieces, joined, strict=True
    ):
        # objects only where cells are (pieces too small to be segmented dropped); pieces
        # are connected and carry the phenotype of the cell they were drawn as
        assert not np.any((lab > 0) & (cells == 0)) and not np.any((merged > 0) & (cells == 0))
        class_of = dict(zip(cell_ids.tolist(), cell_classes.tolist(), strict=True))
        for label_id, class_idx in zip(ids.tolist(), classes.tolist(), strict=True):
            piece = lab == label_id
            assert connected(piece, connectivity=2).max() == 1
            assert class_of[int(np.bincount(cells[piece]).argmax())] == class_idx
        # joined: no two objects touch (every connected patch of foreground is one object)
        patches = connected(merged > 0, connectivity=2)
        assert patches.max() == len(np.unique(merged)) - 1
    with pytest.raises(ValueError, match="segmentation"):
        make_benchmark_screen(tmp_path / "x", n_cells=100, segmentation="watershed")
