"""The ``/definition`` tables of a CellH5 file (channels, regions, class labels), checked.

``/definition/image/channel`` names the raw channels, ``/definition/image/region`` says
which label image (row of ``image/region``) and raw channel belong to an object, and
``feature/<obj>/object_classification/class_labels`` names the classes of a classifier; see
``docs/formats.md``. A table that is not a 1-D table with the columns read here, or an index
that is not a whole number, raises :class:`CellH5Error` naming the file and the table, not a
numpy error: a wrong region or channel index would crop the wrong pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_cellae.io.hdf5 import CellH5Error

__all__ = [
    "ChannelInfo",
    "ClassLabel",
    "channel_names",
    "class_rows",
    "decode",
    "region_channels_recorded",
    "region_rows",
    "shown_name",
]


@dataclass(frozen=True)
class ChannelInfo:
    """A raw image channel."""

    index: int
    name: str
    color: str


@dataclass(frozen=True)
class ClassLabel:
    """One class of an object classifier stored in the file."""

    label: int
    name: str
    color: str


def decode(value: bytes | str) -> str:
    """A stored name as text (bytes as UTF-8, undecodable bytes replaced)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def shown_name(name: str) -> str:
    """A name from a file as messages show it: the characters that are no text escaped
    (``\\x1b``, ``\\n``, ``\\u202e``).

    A terminal runs an escape sequence in ``cellae info`` or an error (colouring or clearing
    it), and a line break printed a line of its own, so every message the command line
    prints, which is one line, is shown so too. Names are kept as they are everywhere
    else: groups and channels are found, models matched and output files written under
    their true names (a no-break space or a tab in a channel name is no text either).

    Parameters
    ----------
    name : str

    Returns
    -------
    str
    """
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def _checked(rows: np.ndarray, fields: tuple[str, ...], source: Path, table: str) -> np.ndarray:
    """``rows`` if it is a 1-D table holding ``fields``."""
    names = rows.dtype.names or ()
    if rows.ndim != 1 or not set(fields) <= set(names):
        columns = f"columns {', '.join(names)}" if names else "no named columns"
        needed = f" with the columns {', '.join(fields)}" if fields else ""
        raise CellH5Error(
            f"{source}: /definition/{table} is not a 1-D table{needed} (it has shape"
            f" {rows.shape} and {columns}); export the file again"
        )
    return rows


def _indices(rows: np.ndarray, column: str, source: Path, table: str) -> list[int]:
    """Column ``column`` as ints; NaN, fractions and text are refused, not cast."""
    values = rows[column]
    if values.dtype.kind == "f" and np.all(np.isfinite(values) & (values == np.rint(values))):
        values = values.astype(np.int64)
    if values.dtype.kind not in "iub":
        raise CellH5Error(
            f"{source}: /definition/{table} column {column} holds {values.tolist()[:8]}, not"
            " whole numbers; export the file again"
        )
    return [int(v) for v in values]


def channel_names(
    rows: np.ndarray | None,
    n_channels: int,
    source: Path,
    regions: list[tuple[str, int]] = (),
) -> list[tuple[str, str]]:
    """Name and colour (``#RRGGBB``) of each of ``n_channels`` raw channels.

    Parameters
    ----------
    rows : ndarray or None
        ``/definition/image/channel``; None where the file has none.
    n_channels : int
        Channels of the raw images.
    source : Path
        The file (named in messages).
    regions : list of (str, int)
        :func:`region_rows`: where the table has more rows than the images have channels,
        they say which row names which channel (:func:`_rows_of_channels`).

    Returns
    -------
    list of (str, str)
        ``channel <i>`` and white where the table has no name or colour for a channel;
        channels of one name get their index added (``DAPI (channel 1)``).

    Raises
    ------
    CellH5Error
        If the table is not a 1-D table.
    """
    out = [(f"channel {i}", "#FFFFFF") for i in range(n_channels)]
    if rows is None:
        return out
    rows = _checked(rows, (), source, "image/channel")
    fields = rows.dtype.names or ()
    if "channel_name" not in fields:
        return out
    for i, r in enumerate(_rows_of_channels(rows, n_channels, regions)):
        row = rows[r]
        name = decode(row["channel_name"]) or out[i][0]
        color = _html_color(decode(row["color"])) if "color" in fields else None
        out[i] = (name, color or out[i][1])
    return _told_apart(out)


def _told_apart(channels: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Channels that share a name get their index added (``DAPI (channel 1)``): runs and
    models know channels by name, so the last of them was taken for every one."""
    names = [name for name, _ in channels]
    return [
        (f"{name} (channel {i})" if names.count(name) > 1 else name, color)
        for i, (name, color) in enumerate(channels)
    ]


def _rows_of_channels(
    rows: np.ndarray, n_channels: int, regions: list[tuple[str, int]]
) -> list[int]:
    """The row of ``/definition/image/channel`` that names each raw channel.

    Row *i* names channel *i*, except where CellCognition stored one channel for several of
    its channel kinds: it writes a row per kind (``primary``, ``secondary``, ``tertiary``,
    with the camera channel as description) but each camera channel once, so with primary
    and secondary both ``rfp`` and tertiary ``gfp``, channel 1 is the tertiary row, not the
    secondary one. The region table (``region___<kind>__<region>``, ``channel_idx``) says
    which kind each channel holds; the first row of that kind names it.
    """
    order = list(range(min(len(rows), n_channels)))
    if len(rows) <= n_channels:
        return order
    kinds = [decode(name) for name in rows["channel_name"]]
    named: dict[int, int] = {}
    for name, channel in regions:
        kind = name.removeprefix("region___").split("__")[0]
        if name.startswith("region___") and kind in kinds:
            named.setdefault(channel, kinds.index(kind))
    return [named.get(c, c) for c in order]


def _html_color(text: str) -> str | None:
    """A stored channel colour as ``#RRGGBB``, or None.

    CellCognition stores ``#RRGGBB``. CellProfiler's ExportToCellH5 stores ``0xRRGGBB``
    in the 7-byte column, which cuts off its last digit (``0xFF000`` for red, ``0xFFFFF``
    for grey); its colours (white, red, green, blue) repeat that digit, so it is restored.
    """
    text = text.strip()
    if text.startswith("#"):
        return text
    digits = text[2:] if text[:2].lower() == "0x" else ""
    if len(digits) == 5:
        digits += digits[-1]
    if len(digits) != 6 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        return None
    return "#" + digits.upper()


def region_rows(rows: np.ndarray | None, source: Path) -> list[tuple[str, int]]:
    """Region name and raw channel index of each row of ``/definition/image/region``.

    Raises
    ------
    CellH5Error
        If the table is not a 1-D table with ``region_name`` and ``channel_idx``, or a
        channel index is not a whole number.
    """
    if rows is None:
        return []
    table = "image/region"
    rows = _checked(rows, ("region_name", "channel_idx"), source, table)
    channels = _indices(rows, "channel_idx", source, table)
    return [(decode(row["region_name"]), c) for row, c in zip(rows, channels, strict=True)]


def region_channels_recorded(
    regions: list[tuple[str, int]], channel_rows: np.ndarray | None
) -> bool:
    """Whether ``channel_idx`` of ``/definition/image/region`` names the raw channel that
    each object was segmented in.

    CellCognition writes that channel. CellProfiler's ExportToCellH5 writes each row's own
    index instead (the objects' order in the module, which is also their label image's
    row): with objects exported as Cells, Nuclei and images as DNA, Actin, Nuclei would be
    cropped from Actin. Its files are told by their region names (bare object names, no
    ``region___`` prefix), ``channel_idx`` equal to the row, and channel colours written
    ``0xRRGGBB`` (CellCognition writes ``#RRGGBB``).

    Parameters
    ----------
    regions : list of (str, int)
        :func:`region_rows` of the file.
    channel_rows : ndarray or None
        ``/definition/image/channel``.
    """
    if not regions or channel_rows is None:
        return True
    if any(name.startswith("region___") or c != i for i, (name, c) in enumerate(regions)):
        return True
    fields = channel_rows.dtype.names or ()
    if "color" not in fields or channel_rows.ndim != 1:
        return True
    colors = [decode(c).strip().lower() for c in channel_rows["color"]]
    return not (colors and all(c.startswith("0x") for c in colors))


def class_rows(rows: np.ndarray | None, source: Path, table: str) -> list[tuple[int, str, str]]:
    """Label, name and colour of each class in a ``class_labels`` table.

    Raises
    ------
    CellH5Error
        If the table is not a 1-D table with ``label``, ``name`` and ``color``, or a label
        is not a whole number.
    """
    if rows is None:
        return []
    rows = _checked(rows, ("label", "name", "color"), source, table)
    labels = _indices(rows, "label", source, table)
    return [
        (label, decode(row["name"]), decode(row["color"]))
        for row, label in zip(rows, labels, strict=True)
    ]
