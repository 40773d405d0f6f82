from pathlib import Path

from napari_cellae.io.cellh5 import PositionKey
from napari_cellae.pipeline import streaming
from napari_cellae.pipeline.encode_tasks import EncodedPosition, PositionTask


def test_a_task_names_its_position_and_file_for_messages():
    key = PositionKey("plate1", "C03", "01")
    task = PositionTask(0, Path("/data/screen.ch5"), key, "Nuclei", (0,), 40, 12)
    assert task.where == f"position {key.label} of {Path('/data/screen.ch5')}"
    assert task.thumbnails  # the Explorer gallery's thumbnails unless told otherwise


def test_streaming_hands_out_the_same_classes():
    # Dask workers and the cells file import them from streaming, as before the move
    assert streaming.PositionTask is PositionTask
    assert streaming.EncodedPosition is EncodedPosition
