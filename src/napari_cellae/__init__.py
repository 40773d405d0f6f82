"""napari-cellae: single-cell features learned from pixels by denoising autoencoders."""

__version__ = "0.1.0"
