"""The bundled demo screen opens as napari sample data through the plugin's reader."""

from __future__ import annotations

import numpy as np

from napari_cellae._reader import METADATA_KEY, LazyPositionStack
from napari_cellae.demo.screen import demo_paths


def test_demo_sample_opens_image_and_points(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-cellae", "demo_screen")
    images = [layer for layer in layers if layer._type_string == "image"]
    points = [layer for layer in layers if layer._type_string == "points"]
    assert images and points
    assert isinstance(images[0].data, LazyPositionStack)
    ch5, mapping = demo_paths()
    meta = images[0].metadata[METADATA_KEY]
    assert meta["path"] == str(ch5)
    assert meta["mapping"] == str(mapping)
    assert points[0].data.shape[1] == images[0].data.ndim
    assert len(points[0].data) > 0
    # every centre lies inside the image plane
    assert np.all(points[0].data[:, -2:] >= 0)
    assert np.all(points[0].data[:, -2:] < np.array(images[0].data.shape[-2:]))
