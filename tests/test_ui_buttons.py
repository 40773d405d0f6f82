"""The action buttons follow the widget's state."""

from __future__ import annotations

from napari_cellae._ui.buttons import ActionButtons


def test_enabled_buttons_follow_the_state(qtbot):
    buttons = ActionButtons()
    qtbot.addWidget(buttons.run_row.native)
    qtbot.addWidget(buttons.file_row.native)
    assert buttons.train.enabled and buttons.load_model.enabled and not buttons.stop.enabled
    assert not buttons.save_features.enabled and not buttons.save_model.enabled
    assert not buttons.save_anndata.enabled
    assert all(
        b.tooltip
        for b in (buttons.train, buttons.stop, buttons.save_features, buttons.save_anndata)
    )
    buttons.show_state(running=True, has_features=True, has_model=True)
    assert buttons.stop.enabled and not buttons.train.enabled
    assert not buttons.save_features.enabled and not buttons.load_model.enabled
    assert not buttons.save_anndata.enabled
    buttons.show_state(running=False, has_features=True, has_model=True)
    assert buttons.save_anndata.enabled and buttons.save_features.enabled
    buttons.show_state(running=False, has_features=False, has_model=True)
    assert buttons.save_model.enabled and not buttons.save_features.enabled
    assert not buttons.save_anndata.enabled
    assert buttons.train.enabled and not buttons.stop.enabled


def test_disabled_buttons_say_why(qtbot):
    buttons = ActionButtons()
    qtbot.addWidget(buttons.run_row.native)
    qtbot.addWidget(buttons.file_row.native)
    # before any run: nothing to save, nothing to stop
    assert "after Train or Load model" in buttons.save_features.tooltip
    assert "after Train or Load model" in buttons.save_anndata.tooltip
    assert "after Train or Load model" in buttons.save_model.tooltip
    assert "while a run goes on" in buttons.stop.tooltip
    assert "Available" not in buttons.train.tooltip  # enabled: its own help only
    buttons.show_state(running=True, has_features=True, has_model=True)
    for button in (buttons.train, buttons.load_model, buttons.save_features):
        assert "once the run is over" in button.tooltip, button.text
    assert "Available" not in buttons.stop.tooltip
    buttons.show_state(running=False, has_features=True, has_model=True)
    assert "Available" not in buttons.save_features.tooltip
    assert buttons.save_features.tooltip.startswith("Write the features")


def test_keyboard_focus_moves_from_train_to_stop(qtbot):
    """Train pressed with the keyboard: the focus goes to Stop (it went past it, to the
    tabs below, as Train was disabled before Stop was enabled), so Space again stops."""
    from qtpy.QtWidgets import QApplication, QVBoxLayout, QWidget

    window = QWidget()
    qtbot.addWidget(window)
    buttons = ActionButtons()
    layout = QVBoxLayout(window)
    layout.addWidget(buttons.run_row.native)
    layout.addWidget(buttons.file_row.native)
    window.show()
    QApplication.setActiveWindow(window)
    qtbot.waitExposed(window)
    buttons.train.native.setFocus()
    qtbot.waitUntil(buttons.train.native.hasFocus)
    buttons.show_state(running=True, has_features=False, has_model=False)
    assert buttons.stop.native.hasFocus()
