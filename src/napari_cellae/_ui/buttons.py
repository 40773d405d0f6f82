"""The dock widget's action buttons: run (Train, Stop) and files (save, load)."""

from __future__ import annotations

from magicgui.widgets import Container, PushButton

__all__ = ["ActionButtons"]


def _button(text: str, tip: str, enabled: bool = True) -> PushButton:
    button = PushButton(text=text, enabled=enabled)
    button.tooltip = tip
    return button


class ActionButtons:
    """Two rows of buttons; which are enabled follows the widget's state.

    Attributes
    ----------
    train, stop, save_features, save_anndata, save_model, load_model : PushButton
    run_row, file_row : Container
        The rows to place in a layout (``.native``); ``file_row`` holds two rows, the
        cells' outputs above the model's.
    """

    def __init__(self) -> None:
        self.train = _button(
            "Train", "Cut out every cell, train the network, then compute features."
        )
        self.stop = _button(
            "Stop", "Stop after the current batch; the model learnt so far is kept.", False
        )
        self.save_features = _button(
            "Save features…",
            "Write the features of all cells as a CellCognition Explorer .hdf file.",
            False,
        )
        self.save_anndata = _button(
            "Save AnnData…",
            "Write features, novelty, phenotype groups and 2-D maps of all cells as an "
            ".h5ad file for scanpy (and `cellae hits`).",
            False,
        )
        self.save_model = _button(
            "Save model…", "Save the trained network to reuse it on other plates.", False
        )
        self.load_model = _button(
            "Load model…", "Load a saved network and compute features of the cells in this file."
        )
        self.run_row = Container(widgets=[self.train, self.stop], layout="horizontal")
        cells_row = Container(widgets=[self.save_features, self.save_anndata], layout="horizontal")
        model_row = Container(widgets=[self.save_model, self.load_model], layout="horizontal")
        self.file_row = Container(widgets=[cells_row, model_row])
        for row in (self.run_row, self.file_row, cells_row, model_row):
            row.margins = (0, 0, 0, 0)

    def show_state(self, running: bool, has_features: bool, has_model: bool) -> None:
        """Enable what can be done now: nothing but Stop while a job runs."""
        self.train.enabled = not running
        self.load_model.enabled = not running
        self.stop.enabled = running
        self.save_features.enabled = has_features and not running
        self.save_anndata.enabled = has_features and not running
        self.save_model.enabled = has_model and not running
