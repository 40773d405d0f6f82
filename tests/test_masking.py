"""Tests for napari_cellae.core.masking and masked crop collection."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import centre_window, image_window, synthetic_position
from napari_cellae.core.crops import collect_crops
from napari_cellae.core.masking import mask_crops
from napari_cellae.io.cellh5 import CellH5
from napari_cellae.io.cellh5_writer import ObjectData, PositionData, write_cellh5
from napari_cellae.pipeline import steps


def _two_cells() -> tuple[np.ndarray, np.ndarray]:
    """One 8x8 crop: own cell (label 1) left, neighbour (label 2) right, background 10."""
    crops = np.full((1, 2, 8, 8), 10, np.uint16)
    labels = np.zeros((1, 8, 8), np.uint16)
    labels[0, 2:6, 0:3] = 1
    labels[0, 2:6, 5:8] = 2
    crops[0, :, 2:6, 0:3] = 100
    crops[0, :, 2:6, 5:8] = 200
    crops[0, 1] += 1  # a second channel with its own values
    return crops, labels


def test_neighbours_become_background_and_the_cell_stays() -> None:
    crops, labels = _two_cells()
    original = crops.copy()
    found = mask_crops(crops, labels, np.array([1]), "neighbours")
    assert found.tolist() == [True]
    neighbour = labels[0] == 2
    assert np.all(crops[0, 0][neighbour] == 10) and np.all(crops[0, 1][neighbour] == 11)
    np.testing.assert_array_equal(crops[0][:, ~neighbour], original[0][:, ~neighbour])


def test_cell_mode_keeps_only_the_cell_and_its_rim() -> None:
    crops = np.full((1, 1, 12, 12), 50, np.float32)
    labels = np.zeros((1, 12, 12), np.int32)
    labels[0, 5:7, 5:7] = 3
    crops[0, 0, 5:7, 5:7] = 300.0
    crops[0, 0, 0, 0] = 7.0  # far from the cell: hidden
    crops[0, 0, 4, 4] = 9.0  # on the 2-pixel rim: kept
    mask_crops(crops, labels, np.array([3]), "cell")
    assert crops[0, 0, 0, 0] == 50.0  # painted with the background median
    assert crops[0, 0, 4, 4] == 9.0
    assert np.all(crops[0, 0, 5:7, 5:7] == 300.0)


def test_a_crop_without_its_own_label_is_left_alone() -> None:
    crops, labels = _two_cells()
    original = crops.copy()
    found = mask_crops(crops, labels, np.array([9]), "neighbours")
    assert found.tolist() == [False]
    np.testing.assert_array_equal(crops, original)
    with pytest.raises(ValueError, match="unknown mask 'blur'"):
        mask_crops(crops, labels, np.array([1]), "blur")
    with pytest.raises(ValueError, match="do not match"):
        mask_crops(crops, labels[:, :4], np.array([1]), "cell")


def test_collect_masks_neighbours_with_the_files_label_images(cellcognition_file: Path) -> None:
    with CellH5(cellcognition_file) as ch5:
        plain = collect_crops(ch5, "primary__primary", 24)
        masked = collect_crops(ch5, "primary__primary", 24, mask="neighbours")
        key = plain.positions[0]
        region, row = ch5.labels(key, "primary__primary")
        region = region[...]
    assert masked.mask == "neighbours" and masked.unlabelled_positions == []
    changed = 0
    for i in np.flatnonzero(plain.position_index == 0):
        y, x, t = int(plain.origin_y[i]), int(plain.origin_x[i]), plain.time_idx[i]
        # The centred window; outside the image both hold their own background level.
        window, inside = image_window(region[row, t, 0], y, x, 24)
        others = (window != 0) & (window != plain.label_id[i])
        keep = ~others & inside
        np.testing.assert_array_equal(masked.crops[i, 0][keep], plain.crops[i, 0][keep])
        changed += int(np.any(masked.crops[i, 0][others] != plain.crops[i, 0][others]))
    assert changed > 0  # some crops did show a neighbour


def test_files_without_label_images_are_masked_by_threshold_with_a_warning(
    tmp_path: Path,
) -> None:
    # Two touching blobs per frame and one far away: without label images, each crop is
    # segmented around its own centre, so the neighbour is painted over as with labels.
    centres = np.array([[30, 30], [30, 38], [12, 70]] * 2)
    labelled = synthetic_position("A01", "1", n_frames=2, n_per_frame=3, centers_yx=centres)
    bare = synthetic_position("A01", "1", n_frames=2, n_per_frame=3, centers_yx=centres)
    bare.labels = None
    kwargs = {"channel_names": ["H2B"], "object_channels": {"primary__primary": 0}}
    with_labels = write_cellh5(tmp_path / "labels.ch5", [labelled], **kwargs)
    without = write_cellh5(tmp_path / "no_labels.ch5", [bare], **kwargs)
    with CellH5(without) as ch5:
        plain = collect_crops(ch5, "primary__primary", 24)
        with (
            pytest.warns(UserWarning, match="no label images.*A01_1.*thresholding"),
            pytest.warns(UserWarning, match="small for the 24 px crop box"),  # tiny cells
        ):
            masked = steps.collect(ch5, "primary__primary", 24, [0], mask="neighbours")
    with CellH5(with_labels) as ch5:
        reference = collect_crops(ch5, "primary__primary", 24, mask="neighbours")
    assert [p.label for p in masked.unlabelled_positions] == ["A01_1"]
    assert reference.unlabelled_positions == []
    # The touching pair lost its neighbour, much as with the file's labels ...
    pair = [0, 1, 3, 4]
    changed = np.abs(masked.crops[pair].astype(int) - plain.crops[pair].astype(int))
    assert (changed.reshape(4, -1).max(1) > 50).all()
    right = masked.crops[0, 0, :, 17:].astype(int)  # past the midline to the neighbour
    assert right.max() < plain.crops[0, 0, :, 17:].max() / 3
    # ... and the lone cell is left as it was, its centre untouched.
    np.testing.assert_array_equal(masked.crops[[2, 5]], plain.crops[[2, 5]])
    np.testing.assert_array_equal(masked.crops[:, :, 12, 12], plain.crops[:, :, 12, 12])


def test_unusable_label_images_are_named_with_the_way_out(tmp_path: Path) -> None:
    import h5py

    position = synthetic_position("A01", "1")
    path = write_cellh5(
        tmp_path / "float_labels.ch5",
        [position],
        channel_names=["H2B"],
        object_channels={"primary__primary": 0},
    )
    with h5py.File(path, "r+") as f:
        group = f["sample/0/plate/plate1/experiment/A01/position/1/image"]
        labels = group["region"][...]
        del group["region"]
        group["region"] = labels.astype(np.float32)
    with CellH5(path) as ch5:
        with pytest.raises(ValueError, match=r"float_labels\.ch5.*integers.*--mask none"):
            collect_crops(ch5, "primary__primary", 16, mask="cell")
        assert collect_crops(ch5, "primary__primary", 16).mask == "none"


def test_segmented_masking_is_the_same_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import napari_cellae.core.masking as masking_module

    bare = synthetic_position("A01", "1", n_frames=2, n_per_frame=5)
    bare.labels = None
    kwargs = {"channel_names": ["H2B"], "object_channels": {"primary__primary": 0}}
    path = write_cellh5(tmp_path / "no_labels.ch5", [bare], **kwargs)
    with CellH5(path) as ch5:
        whole = collect_crops(ch5, "primary__primary", 24, mask="cell")
        monkeypatch.setattr(masking_module, "_SEGMENT_CHUNK", 3)
        chunked = collect_crops(ch5, "primary__primary", 24, mask="cell")
        plain = collect_crops(ch5, "primary__primary", 24)
    np.testing.assert_array_equal(chunked.crops, whole.crops)
    np.testing.assert_array_equal(chunked.morphology, whole.morphology)
    assert not np.array_equal(whole.crops, plain.crops)
    assert (whole.morphology[:, 0] > 0).all() and np.isnan(plain.morphology).all()


def test_label_zero_is_background_not_the_cell() -> None:
    crops, labels = _two_cells()
    original = crops.copy()
    for mode in ("neighbours", "cell"):
        found = mask_crops(crops, labels, np.array([0]), mode)
        assert found.tolist() == [False]
        np.testing.assert_array_equal(crops, original)  # not both cells painted out


@pytest.mark.parametrize("flavour", ["cellcognition", "cellprofiler"])
def test_objects_whose_label_is_not_in_the_label_image_are_named(
    tmp_path: Path, flavour: str
) -> None:
    name = "primary__primary" if flavour == "cellcognition" else "Nuclei"
    positions = [
        synthetic_position(well, "1", n_frames=2, n_per_frame=4, object_name=name, seed=seed)
        for seed, well in enumerate(("A01", "A02"))
    ]
    # The label images were painted with the right ids; the object table of A02 now says
    # 999 (no such label) for one object per frame and 0 (the background) for another.
    positions[1].objects[name].label_id[[1, 6]] = 999
    positions[1].objects[name].label_id[2] = 0
    path = write_cellh5(
        tmp_path / f"{flavour}.ch5",
        positions,
        ["H2B"],
        {name: 0},
        flavour=flavour,
        split_files=True,
    )
    with CellH5(path) as ch5:
        second = ch5.positions[1].label
        plain = collect_crops(ch5, name, 24)
        with pytest.warns(UserWarning) as record:
            masked = steps.collect(ch5, name, 24, [0], mask="cell")
    assert [(key.label, n) for key, n in masked.unmatched_positions] == [("A02_1", 3)]
    # (these small cells also get the advice to crop them in a smaller box)
    messages = [str(w.message) for w in record if "small for the" not in str(w.message)]
    assert len(messages) == 1
    message = messages[0]
    assert message.startswith(f"{path}: 3 '{name}' object(s) in 1 position(s) ")
    assert second == "A02_1"
    assert f"label image (image/region) around their centre: {second} (3);" in message
    assert "left unmasked" in message and "--mask none" in message
    unmatched = np.zeros(len(plain), bool)
    unmatched[[8 + 1, 8 + 2, 8 + 6]] = True
    # Left as they were, the cell itself included (label 0 would have painted it out) ...
    np.testing.assert_array_equal(masked.crops[unmatched], plain.crops[unmatched])
    # ... and every other crop masked with its own label.
    for i in np.flatnonzero(~unmatched):
        assert not np.array_equal(masked.crops[i], plain.crops[i]), i


def test_matching_labels_mask_without_a_warning(cellcognition_file: Path) -> None:
    with CellH5(cellcognition_file) as ch5, warnings.catch_warnings():
        warnings.simplefilter("error")
        masked = collect_crops(ch5, "primary__primary", 24, mask="cell")
    assert len(masked) == 30


def test_objects_sharing_a_label_are_named_once_for_all_positions(tmp_path: Path) -> None:
    positions = [
        synthetic_position(well, "1", n_frames=2, n_per_frame=4, seed=seed)
        for seed, well in enumerate(("A01", "A02", "A03"))
    ]
    for position, pairs in zip(positions[1:], ([(0, 1)], [(0, 1), (4, 5)]), strict=True):
        for a, b in pairs:  # object b of the same frame takes object a's label
            position.objects["primary__primary"].label_id[b] = position.objects[
                "primary__primary"
            ].label_id[a]
    path = write_cellh5(tmp_path / "f.ch5", positions, ["H2B"], {"primary__primary": 0})
    with CellH5(path) as ch5:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # without masking, labels do not matter
            plain = collect_crops(ch5, "primary__primary", 24)
        with pytest.warns(UserWarning) as record:
            masked = steps.collect(ch5, "primary__primary", 24, [0], mask="cell")
    assert plain.shared_label_positions == []
    assert [(k.label, n) for k, n in masked.shared_label_positions] == [("A02_1", 2), ("A03_1", 4)]
    texts = [str(w.message) for w in record if "share their label id" in str(w.message)]
    assert texts == [
        f"{path}: 6 'primary__primary' object(s) in 2 position(s) share their label id "
        "(obj_label_id) with another object of the same frame: A02_1 (2), A03_1 (4); masking "
        "other cells out by label (--mask, Hide in the form) takes such objects for one cell. "
        "Check the file's segmentation, or use --mask none"
    ]


def _reference_crop(
    image: np.ndarray,
    labels: np.ndarray,
    cell: tuple[int, int, int, int],
    size: int,
    channels: list[int],
    mode: str,
) -> np.ndarray:
    """One crop as the module and ``collect_crops`` describe it, cell by cell: the window
    shifted inside the image; other objects (``"neighbours"``), or all but the cell grown by
    2 px (``"cell"``), painted with the lower median of the visible unlabelled pixels (of
    all the window's unlabelled pixels without any; the darkest pixel without those);
    nothing painted where the label is 0 or not in the window; then centred
    (``centre_window``). ``cell``: frame, centre row and column, label id."""
    t, cy, cx, label_id = (int(v) for v in cell)
    height, width = image.shape[-2:]
    y0 = min(max(cy - size // 2, 0), height - size)
    x0 = min(max(cx - size // 2, 0), width - size)
    window = np.s_[y0 : y0 + size, x0 : x0 + size]
    crop = np.stack([image[c, t, 0][window] for c in channels])
    lab = labels[t, 0][window]
    own = lab == label_id
    if mode != "none" and label_id != 0 and own.any():
        if mode == "neighbours":
            hide = (lab != 0) & ~own
        else:
            grown = np.pad(own, 2)
            for _ in range(2):  # 8-connected steps, not past the window
                grown = np.max([np.roll(grown, (dy, dx), (0, 1)) for dy in (-1, 0, 1)
                                for dx in (-1, 0, 1)], axis=0)  # fmt: skip
            hide = ~grown[2:-2, 2:-2]
        visible = (lab == 0) & ~hide
        if not visible.any():  # inside a cluster: the box's other background pixels
            visible = lab == 0
        for plane in crop:
            if visible.any():  # the lower median: a pixel value
                plane[hide] = np.quantile(plane[visible], 0.5, method="lower")
            else:
                plane[hide] = plane.min()
    return np.stack([centre_window(p, cy, cx, height, width) for p in crop])


def _random_labelled_file(rng: np.random.Generator, path: Path, dtype: str) -> tuple:
    """A file of random pixels and rectangular labels that touch and overlap, objects in
    random order (frames not sorted, one label id 0, one absent, two objects sharing one),
    one at an image corner; pixels and labels stored in small chunks, the last ones
    partial, of one or several channels."""
    n_c, n_t = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    height, width = int(rng.integers(6, 30)), int(rng.integers(6, 30))
    per_frame = int(rng.integers(1, 7))
    n = per_frame * n_t
    t = np.repeat(np.arange(n_t), per_frame).astype(np.int32)
    cy = rng.integers(0, height, n).astype(np.int32)
    cx = rng.integers(0, width, n).astype(np.int32)
    cy[0], cx[0] = rng.choice([0, height - 1]), rng.choice([0, width - 1])
    if dtype == "float32":
        image = rng.normal(100, 30, (n_c, n_t, 1, height, width)).astype(dtype)
    else:
        image = rng.integers(0, np.iinfo(dtype).max, (n_c, n_t, 1, height, width), dtype=dtype)
    label_id = np.tile(np.arange(1, per_frame + 1), n_t).astype(np.int32)
    labels = np.zeros((1, n_t, 1, height, width), np.uint16)
    for i in range(n):
        r = int(rng.integers(1, 6))
        box = np.s_[max(cy[i] - r, 0) : cy[i] + r + 1, max(cx[i] - r, 0) : cx[i] + r + 1]
        labels[0, t[i], 0][box] = label_id[i]
    if n > 3:
        label_id[1], label_id[2], label_id[3] = 0, 99, label_id[-1]
    order = rng.permutation(n)
    t, cy, cx, label_id = t[order], cy[order], cx[order], label_id[order]
    table = ObjectData(
        time_idx=t, label_id=label_id, center_x=cx, center_y=cy,
        bbox=np.stack([cx, cx, cy, cy], 1),
    )  # fmt: skip
    position = PositionData("p", "A01", "1", image, {"nuc": table}, labels)
    flavour = "cellcognition" if rng.integers(2) else "cellprofiler"
    write_cellh5(path, [position], [f"c{i}" for i in range(n_c)], {"nuc": 0}, flavour=flavour)
    tile = (int(rng.integers(2, 12)), int(rng.integers(2, 12)))
    with h5py.File(path, "r+") as f:
        names: list[str] = []
        f.visit(lambda name: names.append(name) if name.endswith(("/channel", "/region")) else 0)
        for name in [m for m in names if isinstance(f[m], h5py.Dataset) and "image/" in m]:
            data = f[name][()]
            del f[name]
            per_chunk = int(rng.integers(1, n_c + 1)) if name.endswith("channel") else 1
            chunks = (per_chunk, 1, 1, min(tile[0], height), min(tile[1], width))
            f.create_dataset(name, data=data, chunks=chunks, compression="gzip", shuffle=True)
    return image, labels[0], table


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_collect_masks_and_centres_as_the_per_object_reference(tmp_path: Path, dtype: str) -> None:
    """Extraction, masking by label image and centring, vectorised and read chunk by chunk,
    against the per-object reference on random files: border and corner cells, odd and
    even boxes, time-lapse, several channels in any order, neighbours' labels touching the
    cell, label ids 0, absent or shared."""
    for seed in range(14):
        rng = np.random.default_rng(seed)
        path = tmp_path / f"{seed}.ch5"
        image, labels, table = _random_labelled_file(rng, path, dtype)
        size = int(rng.integers(1, min(image.shape[-2:]) + 1))
        channels = [int(c) for c in rng.permutation(len(image))[: rng.integers(1, 4)]]
        for mode in ("none", "neighbours", "cell"):
            with CellH5(path) as ch5, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unmatched and shared labels: warned
                crops = collect_crops(ch5, "nuc", size, channels=channels, mask=mode)
            for i in range(len(crops)):
                cell = (table.time_idx[i], table.center_y[i], table.center_x[i], table.label_id[i])
                expected = _reference_crop(image, labels, cell, size, channels, mode)
                np.testing.assert_array_equal(
                    crops.crops[i], expected, err_msg=f"seed {seed}, {mode}, cell {i}"
                )


def test_the_split_from_a_neighbour_counts_every_neighbour_that_can_claim_a_pixel(
    tmp_path: Path,
) -> None:
    # Without label images a cell keeps the pixels nearer its centre than any other's. A
    # neighbour 21 px away (crop 20 px) claims pixels of the window's corners, but only
    # objects within 20 px were looked at: two touching cells on a diagonal band, and the
    # first's mask took 119 px instead of 113.
    from napari_cellae.core import masking

    yy, xx = np.mgrid[:60, :60]
    image = np.full((60, 60), 10.0)
    image[np.abs(yy - xx) <= 3] = 200
    image[(yy + xx > 80) | (yy + xx < 30)] = 10
    centres = np.array([20, 35], np.int32)
    cells = ObjectData(
        time_idx=np.zeros(2, np.int32),
        label_id=np.array([1, 2], np.int32),
        center_x=centres,
        center_y=centres,
        bbox=np.stack([centres] * 4, 1),
    )
    position = PositionData(
        "p", "A01", "1", image.astype(np.uint16)[None, None, None], {"nuc": cells}, None
    )
    path = write_cellh5(tmp_path / "band.ch5", [position], ["dna"], {"nuc": 0})
    with CellH5(path) as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no label images: segmented from the crops
        cut = collect_crops(f, "nuc", 20, mask="cell")
        every = masking.neighbour_centres
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(
                masking, "neighbour_centres", lambda t, y, x, reach: every(t, y, x, np.inf)
            )
            unbounded = collect_crops(f, "nuc", 20, mask="cell")
    assert cut.morphology[0, 0] == unbounded.morphology[0, 0] < 119
    np.testing.assert_array_equal(cut.crops, unbounded.crops)


def test_without_label_images_cells_are_segmented_in_their_own_channel(tmp_path: Path) -> None:
    # Nuclei segmented in the DNA channel, cropped as --channels GFP DNA: the threshold
    # segmentation took the first crop channel (a wide GFP halo), so the masks were the
    # halo's, not the nucleus's.
    yy, xx = np.mgrid[:60, :60]
    distance = np.hypot(yy - 30, xx - 30)
    dna = np.where(distance <= 5, 200, 10)
    gfp = np.where(distance <= 12, 150, 10)
    image = np.stack([gfp, dna]).astype(np.uint16)[:, None, None]  # (c, t, z, y, x)
    nucleus = ObjectData(
        time_idx=np.zeros(1, np.int32),
        label_id=np.ones(1, np.int32),
        center_x=np.array([30], np.int32),
        center_y=np.array([30], np.int32),
        bbox=np.array([[25, 35, 25, 35]], np.int32),
    )
    position = PositionData("p", "A01", "1", image, {"nuc": nucleus}, None)
    path = write_cellh5(tmp_path / "two.ch5", [position], ["gfp", "dna"], {"nuc": 1})
    with CellH5(path) as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no label images: segmented from the crops
        own = collect_crops(f, "nuc", 40, mask="cell")  # the object's channel, dna
        both = collect_crops(f, "nuc", 40, mask="cell", channels=[0, 1])
    assert own.channels == [1] and own.morphology[0, 0] < 100  # about 81 px
    assert both.morphology[0, 0] == own.morphology[0, 0]
    # and the GFP channel is masked by the nucleus: its halo beyond the rim is hidden
    assert both.crops[0, 0, 20, 2] == both.crops[0, 0, 0, 0]


def _without_label_ids(path: Path, order: np.ndarray) -> None:
    """Rewrite the objects of ``path`` with their rows in ``order`` (their feature tables
    alike) and without the obj_label_id column."""
    with h5py.File(path, "r+") as f:
        position = f["sample/0/plate/plate1/experiment/A01/position/1"]
        name = "object/primary__primary"
        frames = position[name][()]["time_idx"][order]
        del position[name]
        position[name] = np.rec.fromarrays([frames], names="time_idx")
        for name in ("center", "bounding_box", "orientation"):
            table = position[f"feature/primary__primary/{name}"]
            table[...] = table[()][order]


@pytest.mark.parametrize("mode", ["neighbours", "cell"])
def test_objects_without_label_ids_are_masked_by_the_label_at_their_centre(
    tmp_path: Path, mode: str
) -> None:
    # A table without obj_label_id numbered its objects 1..n in row order, over all frames,
    # and masked by those numbers: objects listed in another order, or of a later frame,
    # kept a neighbour's pixels (or were painted out) where a number was another's label.
    centres = [(12, 12), (12, 28), (26, 14), (40, 60), (30, 30), (14, 20), (28, 24), (48, 40)]
    position = synthetic_position(
        "A01", "1", n_frames=2, n_per_frame=4, classes=False, centers_yx=np.array(centres)
    )
    paths = []
    for name, order in (("ids", None), ("rows", np.arange(8)), ("reversed", np.arange(8)[::-1])):
        paths.append(
            write_cellh5(tmp_path / f"{name}.ch5", [position], ["rfp"], {"primary__primary": 0})
        )
        if order is not None:  # the same cells without label ids, in row order or reversed
            _without_label_ids(paths[-1], order)
    cut = []
    for path in paths:
        with CellH5(path) as f:
            crops = collect_crops(f, "primary__primary", 20, mask=mode)
        at = np.lexsort((crops.center_x, crops.center_y, crops.time_idx))  # the same cells
        assert crops.unmatched_positions == []
        cut.append((crops.crops[at], crops.morphology[at]))
    for crops, morphology in cut[1:]:
        np.testing.assert_array_equal(crops, cut[0][0])
        np.testing.assert_array_equal(morphology, cut[0][1])


def test_the_painted_level_follows_the_image_s_gain_and_offset() -> None:
    # The level was the mean of the two middle background pixels rounded to even: 100.5 gave
    # 100, twice the image (201) 201, and an offset of one count 102, so an image's gain or
    # its 8-bit copy in 12 bits moved a quarter of a 12-bit screen's cells' features.
    labels = np.zeros((1, 6, 6), np.int32)
    labels[0, 2:4, 2:4], labels[0, 0, 4:] = 1, 2  # the cell, and a neighbour
    crops = np.full((1, 1, 6, 6), 500, np.uint16)
    background = np.flatnonzero(labels[0] == 0)  # 30 pixels: 15 of 100, 15 of 101
    crops[0, 0].flat[background] = np.where(np.arange(30) < 15, 100, 101)
    painted = []
    for gain, offset in [(1, 0), (2, 0), (1, 1), (16, 0)]:
        scaled = crops * gain + offset
        mask_crops(scaled, labels, np.array([1]), "neighbours")
        painted.append((int(scaled[0, 0, 0, 5]) - offset) / gain)
    assert painted == [100, 100, 100, 100]


def test_a_cell_whose_rim_lies_on_neighbours_takes_the_box_s_background_level() -> None:
    # With no background pixel on its rim (inside a cluster), the cell's box was painted with
    # its darkest pixel: a noise extreme below every other cell's level, which moved whenever
    # a neighbour beyond the rim came or went (1.7 % of such a cell's features). The box's
    # background pixels beyond the rim say the level as well as the rim's would.
    rng = np.random.default_rng(0)
    labels = np.zeros((1, 16, 16), np.int32)
    labels[0, 4:12, 4:12] = 2  # the neighbours around the cell, covering its whole rim
    labels[0, 6:10, 6:10] = 1
    crops = rng.normal(100, 5, (1, 1, 16, 16)).round().astype(np.float32)
    crops[0, 0][labels[0] > 0] = 400.0
    crops[0, 0, 0, 0] = 60.0  # one dark pixel far off: it must not set the level
    level = np.quantile(crops[0, 0][labels[0] == 0], 0.5, method="lower")
    painted = crops.copy()
    mask_crops(painted, labels, np.array([1]), "cell")
    hidden = np.ones((16, 16), bool)
    hidden[4:12, 4:12] = False  # the cell and its 2-pixel rim (all neighbour) stay
    assert np.all(painted[0, 0][hidden] == level)
    np.testing.assert_array_equal(painted[0, 0][~hidden], crops[0, 0][~hidden])
    # Another neighbour beyond the rim changes the level by a pixel's worth at most.
    moved = crops.copy()
    more = labels.copy()
    more[0, 12:16, 0:4] = 3
    moved[0, 0][more[0] == 3] = 400.0
    mask_crops(moved, more, np.array([1]), "cell")
    assert abs(float(moved[0, 0, 0, 0]) - level) <= 2
