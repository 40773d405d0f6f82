"""The widget's chunked encoding (pipeline.encode_chunks): progress, features, one verdict."""

from __future__ import annotations

import warnings

import numpy as np

from napari_cellae.pipeline import jobs
from napari_cellae.pipeline.encode_chunks import encode_chunks
from test_jobs import _config, _drive, _request


def test_encoding_no_cells_gives_no_rows_of_the_features_width(cellcognition_file):
    from napari_cellae.core.features import cell_feature_names

    _, result = _drive(jobs.train_job(_request(cellcognition_file, None, _config(epochs=1))))
    width = result.features.shape[1]
    assert width == len(cell_feature_names(result.trained))
    *_, (done, features) = encode_chunks(result.trained, result.crops.subset([]))
    assert done == 0 and features.shape == (0, width)  # was the bottleneck's width


def test_the_chunks_pixels_are_judged_once_as_a_whole(cellcognition_file):
    # Each chunk was encoded by a call judging its own pixels: a file whose saturated
    # pixels lay in one chunk was warned about in the widget by where the chunks fell.
    from napari_cellae.core.normalisation import Normalisation
    from napari_cellae.core.scale_check import ScaleCheck

    _, result = _drive(jobs.train_job(_request(cellcognition_file, None, _config(epochs=1))))
    trained, crops = result.trained, result.crops
    crops.crops = np.zeros_like(crops.crops)
    crops.crops[:, :, 0, 0] = 20  # the brightest: 20 % of the scale below
    crops.crops[0] = 100  # every pixel of the first cell at the top
    trained.normalisation = Normalisation([0.0], [100.0])
    whole = ScaleCheck(trained.normalisation)
    whole.add(crops.crops)
    assert whole.saturated.sum() / whole.pixels < 0.05 < 1 / 4  # in the whole; in a chunk
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        *steps, (done, features) = encode_chunks(trained, crops, chunk=4)
    assert [n for n, _ in steps] == [*range(4, len(crops), 4), len(crops)]
    assert done == len(crops) and len(features) == len(crops)
    np.testing.assert_allclose(
        features, list(encode_chunks(trained, crops, chunk=len(crops)))[-1][1], atol=1e-5
    )
    crops.crops[: len(crops) // 10 + 1] = 100  # over a tenth of the cells: warned, once
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(encode_chunks(trained, crops, chunk=4))
    assert [str(w.message)[:40] for w in caught] == ["more than 5% of the pixels of channel(s)"]
