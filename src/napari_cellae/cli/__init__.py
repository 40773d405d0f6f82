"""The ``cellae`` command: the whole job without a display.

``parser`` builds the command line from the training configuration, ``commands`` runs the
subcommands, ``output`` prints progress and summaries.
"""

from napari_cellae.cli.commands import main

__all__ = ["main"]
