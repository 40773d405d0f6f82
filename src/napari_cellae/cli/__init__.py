"""The ``cellae`` command: the whole job without a display."""

from napari_cellae.cli.app import main

__all__ = ["main"]
