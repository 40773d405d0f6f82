"""Crops of a whole file are cut only where they fit in memory (pipeline.crop_memory)."""

from __future__ import annotations

from pathlib import Path

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


def test_crops_that_would_not_fit_are_refused_before_any_is_cut(
    cellcognition_file: Path, monkeypatch
) -> None:
    # The widget cut every crop of the file: a time-lapse screen of millions of objects
    # filled the memory, and the system ended napari with the user's session.
    config = TrainConfig(crop_size=16)
    with CellH5(cellcognition_file) as ch5:
        n = sum(ch5.object_count(key, "primary__primary") for key in ch5.positions)
        itemsize = ch5.dtype(ch5.positions[0]).itemsize
        need = crop_memory.crop_bytes(n, itemsize, 1, config)
        assert need == n * 16 * 16 * itemsize
        resampled = TrainConfig(crop_size=16, input_size=40)
        assert (
            crop_memory.crop_bytes(n, itemsize, 2, resampled)
            == 2 * n * (16 * 16 + 40 * 40) * itemsize
        )

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
