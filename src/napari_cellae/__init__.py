"""napari-cellae: learn single-cell features from pixels with denoising convolutional autoencoders."""

__version__ = "0.1.0"
