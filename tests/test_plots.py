"""PNG plots (napari_cellae.export.plots): one palette, atomic writes, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellae.export import plots
from napari_cellae.export.palette import condition_colours


def test_plot_embedding_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    path = plots.plot_embedding(
        tmp_path / "e.png", rng.normal(size=(20, 2)), ["a"] * 10 + ["b"] * 10
    )
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["e.png"]


def test_conditions_get_the_napari_palette_colours(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    drawn = {}
    scatter = Axes.scatter

    def spy(self, x, y, **kwargs):
        drawn[kwargs["label"]] = kwargs["color"]
        return scatter(self, x, y, **kwargs)

    monkeypatch.setattr(Axes, "scatter", spy)
    groups = ["neg"] * 3 + ["PLK1"] * 2 + ["KIF11"]
    plots.plot_embedding(tmp_path / "e.png", np.zeros((6, 2)), groups)
    colours = condition_colours(groups)
    assert drawn == {
        "neg (3)": colours["neg"],
        "PLK1 (2)": colours["PLK1"],
        "KIF11 (1)": colours["KIF11"],
    }


def test_plot_errors_name_the_file_and_leave_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"e\.png.*shape \(3, 3\)"):
        plots.plot_embedding(tmp_path / "e.png", np.zeros((3, 3)), ["a"] * 3)
    source = tmp_path / "screen.ch5"
    source.write_bytes(b"data")
    with pytest.raises(ValueError, match="refusing to write the plot"):
        plots.plot_embedding(source, np.zeros((2, 2)), ["a", "b"], inputs=[source])
    assert source.read_bytes() == b"data"
    with pytest.raises(ValueError, match="does not exist"):
        plots.plot_embedding(tmp_path / "no" / "e.png", np.zeros((2, 2)), ["a", "b"])
    stale = tmp_path / ".e.png.999999999.cellae-tmp"
    stale.write_bytes(b"half")
    plots.plot_embedding(tmp_path / "e.png", np.zeros((2, 2)), ["a", "b"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.png", "screen.ch5"]


def test_a_long_title_stays_inside_the_picture(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    saved = {}
    monkeypatch.setattr(plots, "save_png", lambda fig, path: saved.setdefault("fig", fig))
    title = "napari-cellae: 12556 nuclei of 3 plates and 8 wells, 226 learned + 5 outline features"
    plots.plot_embedding(tmp_path / "e.png", np.zeros((4, 2)), ["a"] * 4, title=title)
    fig: Figure = saved["fig"]
    shown = fig.axes[0].title
    assert shown.get_text().replace("\n", " ") == title
    renderer = fig.canvas.get_renderer()
    box, page = shown.get_window_extent(renderer), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1
