"""The ``cellae`` command: the whole job without a display.

``parser`` builds the command line from the training configuration, ``commands`` runs the
subcommands, ``output`` prints progress and summaries, ``console`` is the installed program.
"""

from napari_cellae.cli.commands import main
from napari_cellae.cli.console import console

__all__ = ["console", "main"]
