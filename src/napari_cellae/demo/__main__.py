"""``python -m napari_cellae.demo OUT_DIR [SEED]`` writes the bundled demo screen."""

from napari_cellae.demo.screen import main

if __name__ == "__main__":
    raise SystemExit(main())
