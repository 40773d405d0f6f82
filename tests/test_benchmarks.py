"""The benchmark scripts still run (tiny sizes): they call internals that may move.

The feature-quality measures (``benchmarks/quality_metrics.py``) are checked on small
synthetic data whose answers are known.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import quality_metrics as qm  # noqa: E402


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_crops_runs_and_checks_equality() -> None:
    out = run(
        "bench_crops.py",
        "--objects",
        "400",
        "--positions",
        "2",
        "--frames",
        "2",
        "--camera-objects",
        "48",
    )
    assert "identical crops from both methods: yes" in out
    assert "contiguous, uncompressed" in out and "gzip, 1 chunk/frame" in out
    assert "CellCognition's own chunks" in out and "(identical crops)" in out


def test_bench_quality_runs() -> None:
    out = run("bench_quality.py", "--quick", "--quiet")
    for row in ("learned", "random weights", "raw-pixel PCA", "region properties"):
        assert f"\n{row}" in out, row
    assert "LR F1" in out and "hit AUROC" in out and "train " in out
    assert "masks from label images" in out and "out of focus" in out


def test_bench_quality_without_label_images() -> None:
    out = run("bench_quality.py", "--quick", "--quiet", "--screen", "hard", "--without-labels")
    assert "the network's crops from a copy without label images" in out
    assert "masks from Otsu" in out and "\nlearned" in out


def blobs(rng: np.random.Generator, n: int, centre: float, dims: int = 4) -> np.ndarray:
    return rng.normal(centre, 1.0, size=(n, dims))


def test_classifiers_on_separable_and_random_data() -> None:
    rng = np.random.default_rng(0)
    x = np.r_[blobs(rng, 60, 0.0), blobs(rng, 60, 12.0), blobs(rng, 60, -12.0)]
    y = np.repeat([0, 1, 2], 60)
    assert qm.logistic_f1(x, y) == 1.0
    assert qm.knn_accuracy(x, y) == 1.0
    noise = rng.normal(size=x.shape)
    assert qm.logistic_f1(noise, y) < 0.55  # chance is 1/3
    assert qm.knn_accuracy(noise, y) < 0.55
    # a class of one cell cannot be split: it is left out instead of failing
    y_odd = y.copy()
    y_odd[0] = 3
    assert qm.logistic_f1(x, y_odd) > 0.95


def test_novelty_ranks_phenotypes_and_skips_the_own_control_well() -> None:
    rng = np.random.default_rng(1)
    n = 40
    control_x = blobs(rng, 4 * n, 0.0)
    novel = blobs(rng, n, 6.0)  # clearly unlike the controls
    ordinary = blobs(rng, n, 0.0)  # a "phenotype" that looks like control interphase
    x = np.r_[control_x, novel, ordinary]
    labels = np.r_[np.zeros(4 * n, int), np.ones(n, int), np.full(n, 2)]
    well = np.r_[np.repeat(["c1", "c2", "c3", "c4"], n), ["p1"] * n, ["p2"] * n]
    control = np.r_[np.ones(4 * n, bool), np.zeros(2 * n, bool)]
    scores = _novelty(x, well, control)
    auroc = qm.novelty_auroc(scores, labels, control)
    assert auroc[1] == 1.0
    assert 0.3 < auroc[2] < 0.7

    # a control well of identical cells: scored against itself it would look perfectly normal
    x_dup = x.copy()
    x_dup[:n] = x_dup[0]
    scores_dup = _novelty(x_dup, well, control)
    assert scores_dup[:n].min() > 0.1


def _novelty(x: np.ndarray, well: np.ndarray, control: np.ndarray) -> np.ndarray:
    """The product's score, as bench_quality.py takes it: 5 neighbours, wells by name."""
    from napari_cellae.core.novelty import novelty_scores

    return novelty_scores(x, control, np.unique(well, return_inverse=True)[1], k=5).scores


def test_hit_wells() -> None:
    rng = np.random.default_rng(2)
    n = 50
    wells = ["c1", "c2", "c3", "h1", "h2", "w1"]
    x = np.r_[
        blobs(rng, 3 * n, 0.0),
        np.r_[blobs(rng, n // 2, 5.0), blobs(rng, n // 2, 0.0)],  # strong hit
        np.r_[blobs(rng, n // 5, 5.0), blobs(rng, n - n // 5, 0.0)],  # weaker hit
        blobs(rng, n, 0.0),  # a "perturbation" that does nothing
    ]
    well = np.repeat(wells, n)
    control = np.r_[np.ones(3 * n, bool), np.zeros(3 * n, bool)]
    result = qm.hit_wells(_novelty(x, well, control), well, control)
    assert list(result.wells) == sorted(wells)
    fraction = dict(zip(result.wells, result.fraction, strict=True))
    assert fraction["h1"] > fraction["h2"] > max(fraction["c1"], fraction["c2"], fraction["c3"])
    assert result.hits_not_above_controls <= 1  # only the inert well may rank among controls
    assert 0.6 < result.auroc <= 1.0
    with pytest.raises(ValueError, match="both control and perturbation"):
        qm.hit_wells(np.zeros(6), np.arange(6), np.ones(6, bool))


def test_bench_training_runs() -> None:
    out = run("bench_training.py", "--batches", "1", "--repeats", "1", "--memory-crops", "3000")
    assert "ratio ours / plain" in out and "shared" in out


def test_bench_training_crops_runs_and_checks_equality(tmp_path) -> None:
    out = run(
        "bench_training_crops.py",
        *("--cells", "300", "--samples", "100", "--repeats", "1", "--cache", str(tmp_path)),
    )
    assert "100 drawn for training" in out and "same training crops: True" in out


def test_bench_cells_runs_and_checks_equality(tmp_path) -> None:
    out = run("bench_cells.py", "--cells", "300", "--cache", str(tmp_path))
    assert "same features: True, same novel cells: True, same gallery crops: True" in out


def test_independent_screen_is_reproducible_and_labelled(tmp_path: Path) -> None:
    import independent_screen as ind
    from napari_cellae.io.cellh5 import CellH5

    ch5_path, mapping = ind.make_screen(tmp_path / "a", seed=3, cells_per_well=12)
    again, _ = ind.make_screen(tmp_path / "b", seed=3, cells_per_well=12)
    with CellH5(ch5_path) as ch5, CellH5(again) as twin:
        assert [c.name for c in ch5.class_labels("primary__primary")] == list(ind.PHENOTYPES)
        assert len(ch5.positions) == 24
        for pos in ch5.positions:
            table = ch5.objects(pos, "primary__primary")
            dataset, row = ch5.labels(pos, "primary__primary")
            regions = dataset[row, 0, 0]
            image = ch5.image(pos)[0, 0, 0]
            np.testing.assert_array_equal(image, twin.image(pos)[0, 0, 0])
            assert image.dtype == np.uint16 and image.max() <= 4095
            # every object's centre lies in the mask that carries its label (or next to a
            # lobe of it): the label images are the drawn outlines
            for label, x, y, (left, right, top, bottom) in zip(
                table.label_id, table.center_x, table.center_y, table.bbox, strict=True
            ):
                assert left <= x <= right and top <= y <= bottom
                assert (regions[top : bottom + 1, left : right + 1] == label).sum() >= 20
    assert mapping.read_text().count("\tneg\n") == 8


def test_bench_quality_runs_on_the_independent_screen(tmp_path: Path) -> None:
    import independent_screen as ind

    ch5_path, mapping = ind.make_screen(tmp_path, seed=0, cells_per_well=12)
    out = run(
        "bench_quality.py",
        *("--screen", str(ch5_path), "--mapping", str(mapping), "--preset", "recommended"),
        *("--epochs", "1", "--crop-size", "40", "--f1-seeds", "1", "--quiet"),
    )
    assert "\nlearned" in out and "binuclear" in out and "masks from label images" in out


def test_bench_hits_runs_and_checks_the_tables() -> None:
    out = run("bench_hits.py", "--cells", "2000", "--features", "8")
    assert out.count("same hit table: yes") == 2 and "less memory at its peak" in out


def test_bench_browse_runs_and_reads_less() -> None:
    out = run("bench_browse.py", "--small")
    assert out.count("planes read/step") == 3 and out.count("before/after") == 3
    cellcognition = out.split("napari-cellae")[0]
    planes = next(line for line in cellcognition.splitlines() if "planes read/step" in line)
    assert float(planes.split()[-1].rstrip("x")) >= 3  # 3 channels share each chunk


def test_bench_positions_runs_and_checks_the_output() -> None:
    out = run(
        "bench_positions.py", "--cells", "120", "--small", "6", "--large", "1", "--repeats", "1"
    )
    assert out.count("same cells and order True") == 2


def test_bench_checks_runs_with_and_without_the_checks() -> None:
    out = run("bench_checks.py", "--wells", "4", "--sites", "2", "--repeats", "1")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [row[0] for row in rows] == ["open", "object", "load_model"]
    assert all(float(row[-1]) > 0 for row in rows)
