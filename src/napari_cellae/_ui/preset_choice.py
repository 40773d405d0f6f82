"""The form's Preset box: which named settings a run starts from, and what it keeps.

Choosing a preset fills every box with the preset's values; the settings without a box
(the features' readout, orientations, outline measurements, reviving and keeping filters
apart) are the preset's too, and stay so when a box is changed afterwards, as
``cellae train --preset classic --epochs 10`` keeps the rest of ``classic``. A loaded
model's settings show as the preset they match, or as the model's own. No Qt beyond the
magicgui combo box.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import ComboBox

from napari_cellae.core.config import DEFAULT_PRESET, PRESETS, TrainConfig

__all__ = [
    "FROM_MODEL",
    "matching_preset",
    "preset_box",
    "preset_only",
    "preset_tip",
    "show_choice",
    "show_values",
]

#: the Preset box's value for settings taken from a loaded model that match no preset
FROM_MODEL = "(loaded model)"

_BOX_TIP = (
    "Fills every box, the cell size, Hide and Brightness included. The settings without a box "
    "(features, orientations, outline measurements, reviving silent filters, keeping filters "
    "apart) are the preset's; boxes changed afterwards keep them, as cellae train --preset "
    "NAME with options does."
)


def preset_only(box_fields: tuple[str, ...]) -> tuple[str, ...]:
    """The fields some preset sets that have no box in the form (``box_fields``)."""
    named = {name for preset in PRESETS.values() for name in preset.settings}
    return tuple(sorted(named - set(box_fields)))


def preset_tip(name: str) -> str:
    """The Preset box's tooltip for the choice ``name`` (a preset or :data:`FROM_MODEL`)."""
    if name == FROM_MODEL:
        return (
            "The loaded model's settings, which match no preset: the settings without a "
            "box are the model's. Choose a preset to start from its settings instead."
        )
    return f"{PRESETS[name].description[0].upper()}{PRESETS[name].description[1:]}. {_BOX_TIP}"


def preset_box() -> ComboBox:
    """The Preset combo box: every preset by name, the default chosen."""
    box = ComboBox(label="Preset", choices=list(PRESETS), value=DEFAULT_PRESET)
    box.tooltip = preset_tip(DEFAULT_PRESET)
    return box


def show_choice(box: ComboBox, name: str | None) -> None:
    """Show preset ``name`` in the Preset box, or :data:`FROM_MODEL` for None (offered only
    then), without announcing a change: the form has set the boxes itself."""
    choices = [*PRESETS, FROM_MODEL] if name is None else list(PRESETS)
    with box.changed.blocked():
        if list(box.choices) != choices:
            box.choices = choices
        box.value = name or FROM_MODEL
    box.tooltip = preset_tip(box.value)


def matching_preset(config: TrainConfig, without_box: tuple[str, ...]) -> str | None:
    """The preset ``config`` was most likely made from, or None.

    A preset matches when it sets every field of ``without_box`` (the settings the form
    shows no box for) as ``config`` has them: the form can then show ``config`` as that
    preset plus the boxes' values. Of several, the one with most settings equal wins
    (``demo`` and ``recommended`` differ only in boxes), then the default preset.

    Parameters
    ----------
    config : TrainConfig
    without_box : tuple of str
        Field names.

    Returns
    -------
    str or None
    """

    found = []
    for name in PRESETS:
        preset = TrainConfig.from_preset(name)
        if all(getattr(preset, f) == getattr(config, f) for f in without_box):
            same = sum(getattr(preset, f) == getattr(config, f) for f in PRESETS[name].settings)
            found.append((-same, name != DEFAULT_PRESET, name))
    return min(found)[2] if found else None


def show_values(boxes: dict[str, Any], config: TrainConfig) -> dict[tuple[str, Any], float]:
    """Show ``config``'s value of each field in its box (``boxes``: field -> box), as
    nearly as the box holds it.

    ``cellae train`` takes a learning rate below the box's least, a momentum or corruption
    above its 0.999, and more decimals than a box shows: Load model raised on such a model
    (outside the box's range) or rounded them, so Train trained otherwise than the model.

    Returns
    -------
    dict
        ``(field, shown) -> value`` for every box that cannot hold ``config``'s value: the
        form trains with that value while the box still shows ``shown``.
    """
    exact = {}
    for name, box in boxes.items():
        value = getattr(config, name)
        if isinstance(value, float):
            box.value = min(max(value, box.min), box.max)
            if box.value != value:
                exact[(name, box.value)] = value
        else:
            box.value = value
    return exact
