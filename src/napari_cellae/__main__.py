"""``python -m napari_cellae``: the ``cellae`` command."""

import sys

from napari_cellae.cli import console

if __name__ == "__main__":
    sys.exit(console())
