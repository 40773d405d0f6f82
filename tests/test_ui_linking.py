"""Selection linking joins points layers on their features' position and object columns."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from napari_cellae._reader import METADATA_KEY
from napari_cellae._ui.linking import SelectionLink, match_rows
from napari_cellae.io.cellh5 import PositionKey

A, B, C = (PositionKey("plate", well, "01") for well in ("A01", "B01", "C01"))


def _table(position_index, object_index) -> pd.DataFrame:
    return pd.DataFrame({"position_index": position_index, "object_index": object_index})


def test_match_rows_compares_positions_by_key():
    # source positions [A, B]; destination lists them the other way round, plus C
    src = _table([0, 0, 1, 1, 1], [0, 1, 0, 1, 2])
    dst = _table([2, 1, 0, 0, 1], [0, 1, 0, 2, 0])  # C/0, A/1, B/0, B/2, A/0
    rows = match_rows([A, B], src, [B, A, C], dst)
    np.testing.assert_array_equal(rows, [4, 1, 2, -1, 3])


def test_match_rows_with_missing_positions_and_empty_tables():
    src = _table([0, 1], [3, 3])
    np.testing.assert_array_equal(match_rows([A, C], src, [A], _table([0], [3])), [0, -1])
    np.testing.assert_array_equal(match_rows([A], src[:0], [A], _table([0], [3])), [])
    np.testing.assert_array_equal(match_rows([A, C], src, [A], _table([], [])), [-1, -1])


def _points(viewer, name, data, positions, features, kind, obj="nuclei"):
    meta = {"kind": kind, "path": "/screen.ch5", "object": obj, "positions": positions}
    return viewer.add_points(
        np.asarray(data, float), name=name, features=features, metadata={METADATA_KEY: meta}
    )


@pytest.fixture
def linked(make_napari_viewer):
    viewer = make_napari_viewer()
    # two centres layers (two groups of positions), (t, y, x) coordinates
    left = _points(
        viewer, "A centres", [[0, 5, 5], [0, 9, 9], [1, 3, 3]], [A], _table([0, 0, 0], [0, 1, 2]),
        "centres",
    )  # fmt: skip
    right = _points(viewer, "B centres", [[0, 7, 2]], [B], _table([0], [0]), "centres")
    other = _points(viewer, "cells", [[0, 1, 1]], [A], _table([0], [0]), "centres", "cells")
    # the embedding lists B before A, and its rows in another order
    embedding = _points(
        viewer, "embedding", np.arange(8).reshape(4, 2), [B, A], _table([1, 0, 1, 1], [2, 0, 0, 1]),
        "embedding",
    )  # fmt: skip
    focused, picked = [], []
    link = SelectionLink(viewer, on_focus=focused.append, on_pick=picked.append)
    link.connect(embedding)
    return SimpleNamespace(
        viewer=viewer, link=link, left=left, right=right, other=other, embedding=embedding,
        focused=focused, picked=picked,
    )  # fmt: skip


def test_links_only_centres_of_the_same_file_and_object(linked):
    assert linked.link.centres == [linked.left, linked.right]
    assert linked.link.locate(0) == (linked.left, 2) and linked.link.locate(1) == (linked.right, 0)
    assert linked.link.locate(2) == (linked.left, 0) and linked.link.locate(3) == (linked.left, 1)
    assert linked.link.locate(9) is None


def test_embedding_selection_selects_centres(linked):
    linked.embedding.selected_data = {2}
    assert linked.focused == [2]  # one cell: the widget brings it into view
    linked.embedding.selected_data = {0, 1, 3}
    assert set(linked.left.selected_data) == {2, 1} and set(linked.right.selected_data) == {0}
    assert linked.focused == [2] and not linked.picked
    assert len(linked.other.selected_data) == 0


def test_centre_selection_selects_the_embedding(linked):
    linked.left.selected_data = {1}
    assert set(linked.embedding.selected_data) == {3} and linked.picked == [3]
    assert not linked.focused  # no echo back into the embedding's own callback
    linked.left.selected_data = {0, 2}
    assert set(linked.embedding.selected_data) == {2, 0} and linked.picked == [3]


def test_focus_moves_sliders_and_camera(linked):
    layer, point = linked.link.focus(0)  # A/2 at t=1, (3, 3)
    assert layer is linked.left and set(linked.left.selected_data) == {2}
    np.testing.assert_array_equal(point, [1, 3, 3])
    assert linked.viewer.dims.point[0] == pytest.approx(1)
    camera = linked.viewer.scene.camera if hasattr(linked.viewer, "scene") else linked.viewer.camera
    np.testing.assert_allclose(camera.center[-2:], [3, 3])
    assert linked.link.focus(7) is None


def test_disconnect_stops_following(linked):
    linked.link.disconnect()
    linked.embedding.selected_data = {2}
    linked.left.selected_data = {1}
    assert not linked.focused and not linked.picked and linked.link.locate(0) is None


def test_centres_opened_again_are_linked(linked):
    # The user removed a file's centres and opened the file again: a click in the new
    # centres found no cell, and cells picked in the embedding were not selected there.
    viewer = linked.viewer
    viewer.layers.remove(linked.left)
    again = _points(
        viewer, "A centres", [[0, 5, 5], [0, 9, 9], [1, 3, 3]], [A], _table([0, 0, 0], [0, 1, 2]),
        "centres",
    )  # fmt: skip
    _points(viewer, "cells", [[0, 1, 1]], [A], _table([0], [0]), "centres", "cells")  # not linked
    assert linked.link.centres == [linked.right, again]
    again.selected_data = {1}
    assert set(linked.embedding.selected_data) == {3} and linked.picked == [3]
    linked.embedding.selected_data = {0, 1}
    assert set(again.selected_data) == {2} and set(linked.right.selected_data) == {0}
    linked.link.disconnect()  # a closed widget links nothing
    _points(viewer, "A centres [2]", [[0, 5, 5]], [A], _table([0], [0]), "centres")
    assert linked.link.centres == []


def test_focus_moves_all_sliders_in_one_step(make_napari_viewer):
    # (position, t, y, x) centres: one re-slice, not one per slider (each reads planes)
    viewer = make_napari_viewer()
    centres = _points(
        viewer, "centres", [[0, 0, 5, 5], [1, 2, 3, 3]], [A, B], _table([0, 1], [0, 0]), "centres"
    )
    embedding = _points(viewer, "embedding", [[0, 0], [1, 1]], [A, B], _table([0, 1], [0, 0]),
                        "embedding")  # fmt: skip
    link = SelectionLink(viewer, on_focus=lambda cell: None, on_pick=lambda cell: None)
    link.connect(embedding)
    steps = []
    viewer.dims.events.point.connect(lambda event: steps.append(tuple(viewer.dims.point)))
    layer, point = link.focus(1)
    assert layer is centres
    np.testing.assert_array_equal(point, [1, 2, 3, 3])
    assert len(steps) == 1
    assert viewer.dims.point[:2] == pytest.approx((1, 2))


def test_z_stack_centres_link_each_cell_on_plane_0_and_select_it_on_every_plane(
    make_napari_viewer,
):
    # The reader puts a z-stack's 2-D centres on every plane (plane 0's copies first): a
    # cell found from the embedding went to the last plane, not plane 0 where its crop
    # comes from, and a selection in the embedding was drawn on the last plane only (the
    # viewer opens on the middle one).
    viewer = make_napari_viewer()
    planes, cells = 3, 4
    yx = np.array([[2, 3], [5, 7], [11, 13], [17, 19]])
    data = [[0, z, *yx[c]] for z in range(planes) for c in range(cells)]  # (t, z, y, x)
    objects = np.tile(np.arange(cells), planes)
    centres = _points(viewer, "centres", data, [A], _table(np.zeros(12, int), objects), "centres")
    # the embedding holds the cells in another order
    order = [2, 0, 3, 1]
    embedding = _points(
        viewer, "embedding", np.zeros((cells, 2)), [A], _table(np.zeros(cells, int), order),
        "embedding",
    )  # fmt: skip
    link = SelectionLink(viewer, on_focus=lambda cell: None, on_pick=lambda cell: None)
    link.connect(embedding)
    for row, cell in enumerate(order):
        layer, point = link.focus(row)
        assert layer is centres
        np.testing.assert_array_equal(point, [0, 0, *yx[cell]])
        assert set(centres.selected_data) == {cell}
        assert viewer.dims.point[1] == pytest.approx(0)
    embedding.selected_data = {0, 3}  # cells 2 and 1: their copies on every plane
    assert set(centres.selected_data) == {c + cells * z for c in (2, 1) for z in range(planes)}
    centres.selected_data = {cells + 3}  # cell 3 on plane 1
    assert set(embedding.selected_data) == {2}


def test_centres_the_user_deleted_some_of_stay_linked_to_their_cells(linked):
    # Deleting a centre (Delete on the centres layer, where the link selects cells) moved
    # the rows after it up: a click on A/1 then picked A/0, and A/2 selected its neighbour.
    linked.left.selected_data = {0}
    linked.left.remove_selected()  # A/0 gone; A/1, A/2 are rows 0, 1
    linked.left.selected_data = {0}
    assert set(linked.embedding.selected_data) == {3} and linked.picked[-1] == 3
    linked.embedding.selected_data = {0, 1}  # A/2, B/0
    assert set(linked.left.selected_data) == {1} and set(linked.right.selected_data) == {0}
    assert linked.link.locate(2) is None  # A/0: no centre any more
    assert linked.link.locate(3) == (linked.left, 0)
