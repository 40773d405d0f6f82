"""How well cells are told apart in files without label images, against true masks.

`cellae` segments each crop itself where a CellH5 file stores no label images
(:mod:`napari_cellae.core.segmentation`). This script measures that segmentation against
masks known to be right, beside the Otsu-per-crop masks the region-property baseline uses:
per cell, the overlap (IoU) of its mask with its true mask, for touching and isolated cells.

Truth comes from label images: a CellH5 file's own ``image/region`` (first frame of every
position; e.g. a benchmark screen, `cellae make-screen`), or pairs of TIFF files, an image
and its label image (e.g. real nuclei: ``pip download stardist --no-deps`` holds
``stardist/data/images/img2d.tif`` and ``mask2d.tif``, 2018 Data Science Bowl nuclei with
hand-drawn masks). Cells cut by the image border are left out (their true mask is cut too).

Run: ``python benchmarks/bench_segmentation.py [--cellh5 FILE ...] [--tiff IMAGE MASK ...]
[--crop-size 40]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from scipy import ndimage
from skimage.measure import regionprops

from baseline_features import _otsu_mask
from napari_cellae.core.segmentation import neighbour_centres, threshold_labels

_PLANE = np.zeros((3, 3, 3), bool)
_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def cellh5_pairs(path: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image, labels) of the first frame of every position that stores label images."""
    with h5py.File(path, "r") as f:
        found: list[str] = []
        f.visititems(
            lambda name, _: (
                found.append(name)
                if name.endswith("image/channel") and "/position/" in name
                else None
            )
        )
        for name in found:
            group = f[name.rsplit("/", 1)[0]]
            if "region" in group:
                yield group["channel"][0, 0, 0], group["region"][0, 0, 0]


def tiff_pair(image: Path, mask: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    import tifffile

    yield tifffile.imread(image), tifffile.imread(mask)


def _crops(image: np.ndarray, labels: np.ndarray, size: int) -> dict:
    """Crops around every cell not cut by the border, with what segmentation needs."""
    height, width = labels.shape
    props = [
        p
        for p in regionprops(labels)
        if p.bbox[0] > 0 and p.bbox[1] > 0 and p.bbox[2] < height and p.bbox[3] < width
    ]
    centre_y = np.array([p.centroid[0] for p in props])
    centre_x = np.array([p.centroid[1] for p in props])
    half = size // 2
    # padded with a background level, as cellae fills a window reaching outside the image
    image = np.pad(image.astype(np.float32), half, constant_values=np.percentile(image, 30))
    labels = np.pad(labels, half)
    top, left = np.round(centre_y).astype(int), np.round(centre_x).astype(int)
    windows = np.stack([image[y : y + size, x : x + size] for y, x in zip(top, left, strict=True)])
    truth = np.stack([labels[y : y + size, x : x + size] for y, x in zip(top, left, strict=True)])
    everyone = regionprops(labels[half:-half, half:-half])
    all_y = np.array([p.centroid[0] for p in everyone])
    all_x = np.array([p.centroid[1] for p in everyone])
    own = np.array([p.label for p in props])
    # other objects' centres (cut ones too) in crop coordinates
    others = neighbour_centres(np.zeros(len(all_y)), all_y, all_x, size)
    index = {p.label: i for i, p in enumerate(everyone)}
    others = others[[index[label] for label in own]]
    others -= np.stack([top - half, left - half], axis=-1)[:, None, :].astype(np.float32)
    return {
        "pixels": windows,
        "own": truth == own[:, None, None],
        "labels": truth,
        "cy": centre_y - top + half,
        "cx": centre_x - left + half,
        "others": others,
    }


def _iou(predicted: np.ndarray, own: np.ndarray) -> np.ndarray:
    union = (predicted | own).sum(axis=(1, 2))
    return (predicted & own).sum(axis=(1, 2)) / np.maximum(union, 1)


def measure(pairs: Iterator[tuple[np.ndarray, np.ndarray]], size: int) -> dict[str, np.ndarray]:
    """Per-cell IoU of both segmentations and whether the cell touches another."""
    threshold, otsu, touching = [], [], []
    for image, labels in pairs:
        c = _crops(image, labels, size)
        if not len(c["pixels"]):
            continue
        ours = threshold_labels(c["pixels"], c["cy"], c["cx"], c["others"]) == 1
        theirs = np.stack(
            [
                _otsu_mask(p, round(y), round(x))
                for p, y, x in zip(c["pixels"], c["cy"], c["cx"], strict=True)
            ]
        )
        near = ndimage.binary_dilation(c["own"], _PLANE, iterations=2)
        threshold.append(_iou(ours, c["own"]))
        otsu.append(_iou(theirs, c["own"]))
        touching.append((near & (c["labels"] > 0) & ~c["own"]).any(axis=(1, 2)))
    return {
        "threshold": np.concatenate(threshold),
        "otsu": np.concatenate(otsu),
        "touching": np.concatenate(touching),
    }


def _summary(iou: np.ndarray) -> str:
    if not len(iou):
        return f"{'-':>6} {'-':>6}"
    return f"{np.median(iou):6.3f} {np.mean(iou < 0.8):6.1%}"


def report(name: str, result: dict[str, np.ndarray]) -> None:
    touching = result["touching"]
    print(f"\n{name}: {len(touching)} cells, {touching.sum()} touching another")
    print(f"{'':34} {'all cells':>13}   {'touching':>13}   {'isolated':>13}")
    print(f"{'masks':34} {'median  <0.8':>13}   {'median  <0.8':>13}   {'median  <0.8':>13}")
    for key, label in (("threshold", "cellae (threshold + split)"), ("otsu", "Otsu per crop")):
        iou = result[key]
        print(
            f"{label:34} {_summary(iou)}   {_summary(iou[touching])}   {_summary(iou[~touching])}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cellh5", type=Path, nargs="*", default=[], help="files with labels")
    parser.add_argument(
        "--tiff", type=Path, nargs=2, action="append", default=[], metavar=("IMAGE", "MASK")
    )
    parser.add_argument("--crop-size", type=int, default=40)
    args = parser.parse_args(argv)
    if not args.cellh5 and not args.tiff:
        parser.error("give --cellh5 FILE or --tiff IMAGE MASK")
    for path in args.cellh5:
        report(str(path), measure(cellh5_pairs(path), args.crop_size))
    for image, mask in args.tiff:
        report(f"{image} ({mask.name})", measure(tiff_pair(image, mask), args.crop_size))


if __name__ == "__main__":
    main()
