"""The plates a run's inputs stand for (napari_cellae.pipeline.plates)."""

from __future__ import annotations

from pathlib import Path

from napari_cellae.pipeline.plates import plate_files


def test_one_file_by_several_names_is_one_plate(cellcognition_file: Path, tmp_path: Path) -> None:
    # Spelt with '..' or through a linked folder, the same file was encoded twice: every
    # cell came out twice, as two plates.
    folder = cellcognition_file.parent
    (tmp_path / "sub").mkdir()
    (tmp_path / "linked").symlink_to(folder)
    names = [
        cellcognition_file,
        tmp_path / "sub" / ".." / folder.relative_to(tmp_path) / cellcognition_file.name,
        tmp_path / "linked" / cellcognition_file.name,
        tmp_path / "linked",
    ]
    assert plate_files(names) == [cellcognition_file.absolute()]
