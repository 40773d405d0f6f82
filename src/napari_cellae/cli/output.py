"""What ``cellae`` prints: progress bars, summaries, notes, warnings and one-line errors."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellae.io.definition import shown_name

if TYPE_CHECKING:
    from napari_cellae.core.trainer import EpochReport
    from napari_cellae.io.cellh5 import CellH5
    from napari_cellae.pipeline.results import RunResult

__all__ = [
    "PROG",
    "CountBar",
    "EpochBar",
    "describe_cellh5",
    "fail",
    "fmt",
    "loss_summary",
    "note",
    "training_summary",
]

PROG = "cellae"


def fail(message: str) -> int:
    """Print ``cellae: error: MESSAGE`` on stderr; return the exit status 1."""
    print(f"{PROG}: error: {shown_name(message)}", file=sys.stderr)
    return 1


def note(message: str, kind: str = "note") -> None:
    """Print ``cellae: KIND: MESSAGE`` on stderr (stdout keeps the results)."""
    print(f"{PROG}: {kind}: {shown_name(message)}", file=sys.stderr)


def fmt(value: float | None) -> str:
    """A loss for people: 4 significant digits, "n/a" when missing or not finite."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.4g}"


def loss_summary(reports: list[EpochReport]) -> str:
    """Epochs trained and the final training / held-out losses."""
    if not reports:
        return "no epochs trained"
    last = reports[-1]
    return (
        f"{last.epoch} epoch(s); final loss {fmt(last.train_loss)} (training), "
        f"{fmt(last.held_out_loss)} (held out)"
    )


def training_summary(result: RunResult, which: str | None = None) -> str:
    """``Trained on N [which ]cells, M held out (...)``: the cells the network learnt from
    and the cells kept aside to measure the held-out loss, counted apart. ``which`` is
    "control" (and the control conditions are named) when the model trained on them."""
    crops = result.crops
    if which is None:
        which = "control" if result.trained.config.train_on == "controls" else ""
    which = f"{which} " if which else ""
    size = crops.crops.shape[-1]
    boxes = f"{crops.box} px" + (f" resampled to {size} px" if size != crops.box else "")
    plates = len({key.plate for key in crops.positions})
    where = "the file" if plates <= 1 else f"{plates} plates"
    # which conditions the control token took (a gene NEGR1 starts with 'neg' too)
    named = result.mapping.control_conditions if which and result.mapping is not None else []
    controls = f"; controls: {', '.join(map(repr, named[:5]))}" + " ..." * (len(named) > 5)
    cells = f"{result.n_cells or len(crops)} cells in {where}"
    return (
        f"Trained on {result.n_trained} {which}cells, {result.n_held_out} more held out "
        f"({cells}, object {shown_name(crops.object_name)}, "
        f"channel(s) {', '.join(map(shown_name, crops.channel_names))}, {boxes} crops"
        f"{controls if named else ''}): {loss_summary(result.reports)}"
    )


class _Bar:
    """A tqdm bar that can vanish on error, so the error line stands alone."""

    def __init__(self, quiet: bool, **kwargs: Any) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(disable=quiet, leave=True, **kwargs)

    def close(self, clear: bool = False) -> None:
        if clear:
            self.bar.leave = False
        self.bar.close()

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self.close(clear=kind is not None)


class EpochBar(_Bar):
    """Progress over epochs showing the losses; call it with every :class:`EpochReport`."""

    def __init__(self, total: int, quiet: bool) -> None:
        super().__init__(quiet, total=total, unit="epoch", desc="training")

    def __call__(self, report: EpochReport) -> None:
        self.bar.set_postfix(
            loss=fmt(report.train_loss),
            held_out=fmt(report.held_out_loss),
            cells_s=f"{report.samples_per_second:.0f}",
            refresh=False,
        )
        self.bar.update(1)


class CountBar(_Bar):
    """Progress for a ``(done, total)`` callback."""

    def __init__(self, desc: str, quiet: bool) -> None:
        super().__init__(quiet, total=0, unit="cell", desc=desc)

    def __call__(self, done: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)


def _box_advice(ch5: CellH5, object_name: str, extent: np.ndarray | None) -> str | None:
    """Which crop box holds the cells, said as ``cellae train`` will choose it; for
    objects of unknown size, only whether the images are smaller than the default box."""
    from napari_cellae.core.presets import DEFAULT_PRESET, PRESETS
    from napari_cellae.pipeline.cell_size import box_advice, small_images_advice

    network = PRESETS[DEFAULT_PRESET].settings["crop_size"]
    if extent is None:
        return small_images_advice(ch5, network)
    return box_advice(ch5, object_name, extent, network)


def describe_cellh5(ch5: CellH5) -> str:
    """A human-readable summary of a CellH5 file (what ``cellae info`` prints).

    Parameters
    ----------
    ch5 : CellH5

    Returns
    -------
    str
        Plates, positions, channels with type and shape, frames, objects with counts and
        sizes (from the bounding boxes of up to 24 positions).
    """
    from napari_cellae.io.cellh5 import CellH5Error
    from napari_cellae.io.centres import position_labels
    from napari_cellae.pipeline.cell_size import measured_extents

    lines = [f"File: {ch5.path}"]
    plates = list(dict.fromkeys(p.shown_plate for p in ch5.positions))
    lines.append(f"Plates: {len(plates)} ({', '.join(plates)})")
    # plate1/A01_1 where the file holds several plates: a bare A01_1 named two positions,
    # and the object counts of two plates' A01_1 could not be told apart.
    label_of = dict(zip(ch5.positions, position_labels(ch5.positions, shown=True), strict=True))
    labels = list(label_of.values())
    lines.append(f"Positions: {len(labels)} ({', '.join(labels)})")

    shapes = {p: ch5.image_shape(p) for p in ch5.positions}
    dtypes = {p: np.dtype(ch5.dtype(p)) for p in ch5.positions}
    first = ch5.positions[0]
    same = len(set(shapes.values())) == 1 and len(set(dtypes.values())) == 1
    lines.append("Channels:")
    for ch in ch5.channels:
        c, t, z, y, x = shapes[first]
        where = "all positions" if same else f"position {label_of[first]}"
        lines.append(
            f"  {ch.index}: {shown_name(ch.name)}  {dtypes[first]}  "
            f"(c, t, z, y, x) = ({c}, {t}, {z}, {y}, {x})  [{where}]"
        )
    if not same:
        for p in ch5.positions[1:]:
            lines.append(f"  position {label_of[p]}: {dtypes[p]} {shapes[p]}")
    frames = sorted({s[1] for s in shapes.values()})
    lines.append(f"Frames: {', '.join(map(str, frames))}")

    names = ch5.object_names
    lines.append(f"Objects: {len(names)}" + (f" (default {ch5.default_object})" if names else ""))
    if not names:  # say why, as train and encode would: e.g. a table without time_idx
        try:
            _ = ch5.default_object  # raises, saying what object/ holds
        except CellH5Error as err:
            lines.append(f"  {err}")
    for name in names:
        channel = ch5.object_channel(name)
        counts = [(label_of[p], ch5.object_count(p, name)) for p in ch5.positions]
        classes = ch5.class_labels(name)
        extra = f", classes: {', '.join(shown_name(c.name) for c in classes)}" if classes else ""
        lines.append(
            f"  {shown_name(name)}: {sum(n for _, n in counts)} objects, channel {channel} "
            f"({shown_name(ch5.channels[channel].name)}){extra}"
        )
        lines.append("    " + "  ".join(f"{label}: {n}" for label, n in counts))
        extent = measured_extents(ch5, name) if any(n for _, n in counts) else None
        if extent is not None:  # what a user needs to choose the cell size
            lines.append(
                f"    size (bounding boxes): median {np.median(extent):.0f} px, 95 % at most "
                f"{np.percentile(extent, 95):.0f} px; {_box_advice(ch5, name, extent)}"
            )
        elif any(n for _, n in counts) and (small := _box_advice(ch5, name, None)):
            lines.append(f"    crop box: {small}")  # sizes unknown, but the images are small
    return "\n".join(lines)
