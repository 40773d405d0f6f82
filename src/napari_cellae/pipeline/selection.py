"""Which objects and image channels of a CellH5 file a run uses.

Channels are given by name (as in the file) or number; a model, and the later plates of a
training run, match theirs by name only, since plates may store channels in another order.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

from napari_cellae.io.cellh5 import CellH5, CellH5Error, ChannelInfo
from napari_cellae.io.definition import shown_name

__all__ = [
    "channels_named",
    "check_every_position",
    "plate_channels",
    "resolve_channels",
    "resolve_object",
    "shared_channels",
]


def resolve_object(cellh5: CellH5, name: str | None) -> str:
    """The object type to crop around: ``name`` if the file has it, else the default.

    Raises
    ------
    CellH5Error
        If ``name`` is not an object of the file (lists the available ones).
    """
    if name is None:
        return cellh5.default_object
    cellh5.check_object(name)
    return name


def resolve_channels(
    cellh5: CellH5, object_name: str, channels: Sequence[str | int] | None
) -> list[int]:
    """Raw channel indices from names or indices; default: the object's own channel.

    Parameters
    ----------
    cellh5 : CellH5
    object_name : str
    channels : sequence of str or int, or None
        Channel names (as in the file) or indices (``"0"`` works too).

    Returns
    -------
    list of int

    Raises
    ------
    CellH5Error
        If a channel is not in the file (lists the available ones).

    Warns
    -----
    UserWarning
        If a channel named by a number is another channel's number: the name is taken.
    """
    if not channels:
        return check_every_position(cellh5, [cellh5.object_channel(object_name)])
    by_name = {c.name: c.index for c in cellh5.channels}
    out: list[int] = []
    given: dict[int, str] = {}  # how each channel was spelt, for the message on a repeat
    for spec in channels:
        text = str(spec)
        number = int(text) if text.lstrip("-").isdigit() else -1
        if text in by_name and by_name[text] != number and 0 <= number < len(cellh5.channels):
            # Channels named '1', '2': '1' took channel 0 unsaid, where cellae info lists '1: 2'
            name = cellh5.channels[number].name
            message = f"channel '{text}' is taken as the one named so (number {by_name[text]})"
            warnings.warn(f"{cellh5.path}: {message}; number {text} is '{name}'", stacklevel=2)
        if text in by_name:
            index = by_name[text]
        elif 0 <= number < len(cellh5.channels):
            index = int(text)
        else:
            known = ", ".join(f"{c.index}={c.name}" for c in cellh5.channels)
            raise CellH5Error(f"{cellh5.path}: has no channel '{text}' (channels: {known})")
        if index in out:
            raise ValueError(f"{cellh5.path}: {_twice(cellh5, given[index], text, index)}")
        given[index] = text
        out.append(index)
    return check_every_position(cellh5, out)


def shared_channels(cellh5: CellH5) -> list[ChannelInfo]:
    """The channels every position of ``cellh5`` has: the first position's
    (:attr:`CellH5.channels`), as many as the position with the fewest holds."""
    fewest = min(cellh5.image_shape(key)[0] for key in cellh5.positions)
    return cellh5.channels[:fewest]


def check_every_position(cellh5: CellH5, channels: list[int]) -> list[int]:
    """``channels`` (raw indices of the first position's channels), checked against every
    position: one with fewer channels failed in the middle of a run, naming no channel.

    Raises
    ------
    CellH5Error
        Naming the position and the channel it lacks, and the channels all positions have.
    """
    for key in cellh5.positions:
        held = cellh5.image_shape(key)[0]
        if lacking := [c for c in channels if c >= held]:
            name = cellh5.channels[lacking[0]].name
            shared = ", ".join(f"{c.index}={c.name}" for c in shared_channels(cellh5))
            raise CellH5Error(
                f"{cellh5.path}: position {key.label} has no channel '{name}' (number "
                f"{lacking[0]}): its images hold {held} channel(s) where position "
                f"{cellh5.positions[0].label}'s hold {len(cellh5.channels)}; choose a channel "
                f"every position has (channels: {shared})"
            )
    return channels


def _twice(cellh5: CellH5, first: str, second: str, index: int) -> str:
    """A channel given twice, in both spellings: '--channel 0 --channel H2B' said only
    "channel 'H2B' is given twice", not that channel 0 is H2B."""
    name = cellh5.channels[index].name
    if first == second:
        return f"channel '{name}' is given twice (as '{first}' both times); give it once"
    spelt = [
        f"'{text}'" + (f" (channel {index} is '{name}')" if text != name else "")
        for text in (first, second)
    ]
    return f"channel '{name}' is given twice: as {spelt[0]} and as {spelt[1]}; give it once"


def channels_named(cellh5: CellH5, names: Sequence[str], whose: str) -> list[int]:
    """Raw channel indices of ``cellh5`` for channel names, by name only.

    Parameters
    ----------
    cellh5 : CellH5
    names : sequence of str
        Channel names, as a model or the first plate of a run stores them.
    whose : str
        Says where the names come from, in the message (e.g. "model m.pt was trained on").

    Returns
    -------
    list of int

    Raises
    ------
    ValueError
        If the file lacks one of the names (a channel named '2' is not taken to be number 2).
    """
    by_name = {c.name: c.index for c in cellh5.channels}
    missing = [shown_name(name) for name in names if name not in by_name]
    if missing:
        known = ", ".join(map(shown_name, by_name))
        raise ValueError(
            f"{cellh5.path}: {whose} channel(s) {', '.join(missing)}, which this file does "
            f"not have (channels: {known})"
        )
    return check_every_position(cellh5, [by_name[name] for name in names])


def plate_channels(
    cellh5: CellH5,
    object_name: str | None,
    channels: Sequence[str | int] | None,
    names: list[str] | None,
    first_plate: os.PathLike | str,
) -> tuple[str, list[str], list[int]]:
    """One plate's object and channels in a run over several plates.

    The first plate (``names`` None) resolves the object and the channels as given; every
    later plate must hold that object and channels of those names, in any order (a channel
    named '2' is no number 2 in another plate).

    Returns
    -------
    (str, list of str, list of int)
        The object, the channels' names, and their raw indices in this plate.

    Raises
    ------
    CellH5Error or ValueError
        Naming the plate and what it lacks.
    """
    object_name = resolve_object(cellh5, object_name)
    if names is None:
        name_of = {c.index: c.name for c in cellh5.channels}
        names = [name_of[i] for i in resolve_channels(cellh5, object_name, channels)]
    return object_name, names, channels_named(cellh5, names, f"{first_plate} gave the training")
