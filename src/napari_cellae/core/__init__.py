"""The engine: crops, autoencoder, training, features (numpy and torch; never Qt or napari)."""
