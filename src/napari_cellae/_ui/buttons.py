"""The dock widget's action buttons: run (Train, Stop) and files (save, load)."""

from __future__ import annotations

from magicgui.widgets import Container, PushButton

__all__ = ["ActionButtons"]


#: appended to a disabled button's tooltip: why it cannot be pressed now
_WHILE_RUNNING = "Available once the run is over."
_NOTHING_RUNS = "Available while a run goes on."
_NO_FEATURES = "Available after Train or Load model (no features yet)."
_NO_MODEL = "Available after Train or Load model (no trained model yet)."


def _button(text: str, tip: str) -> PushButton:
    button = PushButton(text=text)
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
            "Stop", "Stop after the current batch; the model learnt so far is kept."
        )
        self.save_features = _button(
            "Save features…",
            "Write the features of all cells as a CellCognition Explorer .hdf file.",
        )
        self.save_anndata = _button(
            "Save AnnData…",
            "Write features, novelty, phenotype groups and 2-D maps of all cells as an "
            ".h5ad file for scanpy (and `cellae hits`).",
        )
        self.save_model = _button(
            "Save model…", "Save the trained network to reuse it on other plates."
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
        self._tips = {button: button.tooltip for button in self._all()}
        self.show_state(running=False, has_features=False, has_model=False)

    def show_state(self, running: bool, has_features: bool, has_model: bool) -> None:
        """Enable what can be done now: nothing but Stop while a job runs. A disabled
        button's tooltip says why, and when it can be pressed."""
        outputs = _WHILE_RUNNING if running else None
        why = {  # None: enabled
            # Stop first: Train, disabled with the focus (pressed with the keyboard), hands
            # it to the next enabled control, which is then Stop
            self.stop: None if running else _NOTHING_RUNS,
            self.train: outputs,
            self.load_model: outputs,
            self.save_features: outputs or (None if has_features else _NO_FEATURES),
            self.save_anndata: outputs or (None if has_features else _NO_FEATURES),
            self.save_model: outputs or (None if has_model else _NO_MODEL),
        }
        for button, reason in why.items():
            button.enabled = reason is None
            button.tooltip = self._tips[button] + (f" {reason}" if reason else "")

    def _all(self) -> tuple[PushButton, ...]:
        return (
            self.train,
            self.stop,
            self.save_features,
            self.save_anndata,
            self.save_model,
            self.load_model,
        )
