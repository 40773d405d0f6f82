"""napari sample data: the bundled synthetic demo screen, read like a user's file."""

from __future__ import annotations

from napari_cellae._reader import LayerData, read_cellh5


def demo_screen() -> list[LayerData]:
    """Open the bundled demo screen (synthetic nuclei, four conditions).

    The layers come from the same reader as a user's CellH5 file; their metadata also
    names the demo's position-mapping file so that the Deep Learning widget presets it.

    Returns
    -------
    list of (data, kwargs, layer_type)
        Image layers per channel and the nucleus centres as a points layer.
    """
    from napari_cellae.demo.screen import demo_paths

    ch5_path, mapping_path = demo_paths()
    return read_cellh5(str(ch5_path), mapping=mapping_path)
