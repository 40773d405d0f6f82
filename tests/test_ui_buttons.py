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
