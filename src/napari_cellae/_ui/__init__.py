"""Qt and napari pieces of the Deep Learning Module dock widget."""
