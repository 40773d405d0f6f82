"""The engine: crops, the autoencoder, training and features (numpy and torch, never Qt or napari)."""
