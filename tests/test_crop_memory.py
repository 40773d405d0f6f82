"""Crops of a whole file are cut only where they fit in memory (pipeline.crop_memory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_cellae.core.config import TrainConfig
from napari_cellae.core.cores import available_memory
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.pipeline import crop_memory, steps


def test_available_memory_reads_the_machine_and_the_container(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  32000000 kB\nMemAvailable:  2000000 kB\n")
    nowhere = tmp_path / "no-cgroup"
    assert available_memory(meminfo, nowhere) == 2_000_000 * 1024
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text("1073741824\n")
    (cgroup / "memory.current").write_text("73741824\n")
    assert available_memory(meminfo, cgroup) == 1_000_000_000  # the container's cap
    (cgroup / "memory.max").write_text("max\n")
    assert available_memory(meminfo, cgroup) == 2_000_000 * 1024
    assert available_memory(tmp_path / "missing", nowhere) is None


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_available_memory_is_known_without_proc(tmp_path: Path, monkeypatch, platform) -> None:
    # Windows and macOS have no /proc/meminfo: the memory was unknown there, so the widget
    # cut every crop of a screen however large (the check below never ran).
    psutil = pytest.importorskip("psutil")
    monkeypatch.setattr("sys.platform", platform)
    free = available_memory(tmp_path / "missing", tmp_path / "no-cgroup")
    assert free is not None
    assert 0 < free <= psutil.virtual_memory().total


def test_crops_that_would_not_fit_are_refused_before_any_is_cut(
    cellcognition_file: Path, monkeypatch
) -> None:
    # The widget cut every crop of the file: a time-lapse screen of millions of objects
    # filled the memory, and the system ended napari with the user's session.
    config = TrainConfig(crop_size=16)
    with CellH5(cellcognition_file) as ch5:
        n = sum(ch5.object_count(key, "primary__primary") for key in ch5.positions)
        dtype = ch5.dtype(ch5.positions[0])
        itemsize = np.dtype(dtype).itemsize
        need = crop_memory.crop_bytes(n, dtype, 1, config)
        assert need == n * 16 * 16 * itemsize

        def cut(*args, **kwargs):
            raise AssertionError("crops were cut")

        monkeypatch.setattr(crop_memory, "available_memory", lambda: need)
        monkeypatch.setattr(steps, "collect", cut)
        with pytest.raises(ValueError, match=r"would take .* GiB of memory") as refused:
            steps.crops_for(ch5, "primary__primary", [0], config)
        assert str(cellcognition_file) in str(refused.value)
        assert f"{n:,} 'primary__primary' objects" in str(refused.value)
        assert "cellae encode" in str(refused.value)

    monkeypatch.undo()
    monkeypatch.setattr(crop_memory, "available_memory", lambda: 10 * need)
    with CellH5(cellcognition_file) as ch5:
        assert len(steps.crops_for(ch5, "primary__primary", [0], config)) == n
    monkeypatch.setattr(crop_memory, "available_memory", lambda: None)  # not Linux: no check
    with CellH5(cellcognition_file) as ch5:
        assert len(steps.crops_for(ch5, "primary__primary", [0], config)) == n


def test_resampled_crops_count_their_float_working_copies(
    cellcognition_file: Path, monkeypatch
) -> None:
    # 'cellae train --input-size 1024' on the demo passed the check (2.7 GB estimated: the
    # resampled crops at 1 byte a pixel) and then asked for 10.7 GB (their float32 copy)
    from napari_cellae.demo.screen import demo_paths

    config = TrainConfig(crop_size=40, input_size=1024)
    with CellH5(demo_paths()[0]) as ch5:
        n = sum(ch5.object_count(key, "primary__primary") for key in ch5.positions)
        assert n == 2556
        need = crop_memory.crop_bytes(n, "uint8", 1, config)
        assert need > n * 1024**2 * 20  # the float32 output and two float64 copies
        monkeypatch.setattr(crop_memory, "available_memory", lambda: 20 << 30)
        with pytest.raises(ValueError, match=r"40 px resampled to 1024 px, .*GiB of memory"):
            crop_memory.check_crop_memory(ch5, "primary__primary", 1, config)
    with pytest.raises(ValueError, match=r"choose a smaller network input than 1024 px"):
        crop_memory.check_crop_memory(CellH5(demo_paths()[0]), "primary__primary", 1, config)
    # Float pixels are resampled without the integer rounding's float64 copies; 32-bit
    # integers in float64 throughout; a million cells only chunk by chunk.
    small = TrainConfig(crop_size=16, input_size=40)
    stored = 16 * 16 + 40 * 40
    assert crop_memory.crop_bytes(10, "float32", 1, small) == 10 * (stored * 4 + 1600 * 4)
    assert crop_memory.crop_bytes(10, "uint32", 1, small) == 10 * (stored * 4 + 1600 * 24)
    assert crop_memory.crop_bytes(10**6, "uint8", 1, small) == (
        10**6 * stored + crop_memory.RESAMPLE_CHUNK * 1600 * 20
    )


def test_the_estimate_covers_what_resampling_allocates(cellcognition_file: Path) -> None:
    import tracemalloc

    from napari_cellae.core.resample import resample_crops, to_network_size

    config = TrainConfig(crop_size=16, input_size=128)
    with CellH5(cellcognition_file) as ch5:
        crops = steps.collect(ch5, "primary__primary", 16, [0])
        dtype = ch5.dtype(ch5.positions[0])
    n = len(crops)
    resample_crops(crops.crops[:1], 128)  # torch imported first: its import not counted
    tracemalloc.start()
    to_network_size(crops, 128)
    peak = tracemalloc.get_traced_memory()[1]  # numpy's copies (torch's are not traced)
    tracemalloc.stop()
    resampling = crop_memory.crop_bytes(n, dtype, 1, config) - n * 16 * 16
    assert peak <= resampling
