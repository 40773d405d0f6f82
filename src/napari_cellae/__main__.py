"""``python -m napari_cellae``: the ``cellae`` command."""

import sys

from napari_cellae.cli import main

if __name__ == "__main__":
    sys.exit(main())
