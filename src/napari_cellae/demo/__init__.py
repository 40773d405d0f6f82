"""Synthetic screens with known phenotypes: the bundled demo and the benchmark screen.

* :mod:`~napari_cellae.demo.screen`: the bundled demo (4 classes, uint8, 8 wells x 3 frames);
  its nuclei come from :mod:`~napari_cellae.demo.nuclei`;
* :mod:`~napari_cellae.demo.benchmark`: a harder 12-bit screen of 32 wells with 15
  MitoCheck-like phenotypes (:mod:`~napari_cellae.demo.phenotypes`) for measuring features;
* :mod:`~napari_cellae.demo.pixels` and :mod:`~napari_cellae.demo.layout`: reproducible pixel
  primitives, plate layouts, mapping and CellH5 writing shared by both.

No Qt, napari or torch here.
"""
