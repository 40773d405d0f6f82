"""Whether float32, in which the network and the scaling compute, resolves a crop's contrast.

Pixels of 8 and 16 bit (and float16 or float32) are exact in float32. Wider ones (32- and
64-bit integers, float64) are not: a 32-bit image at 3,000,000,000 plus a signal of 250
counts, or a float64 image at 1e6 plus a signal of 0.25, becomes a handful of float32 steps
(or a single one), and every cell looks alike without a word. Such crops are refused here.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_resolution"]

# Largest float32 step allowed, as a share of a crop channel's own range (min to max): 20
# levels across it, as many as a dim cell has in an 8-bit image. At 1 % a nearly flat crop
# (2 counts of noise on a uint32 background of 300,000, where float32 steps by 1/32) would
# refuse the whole file.
_MAX_STEP_SHARE = 0.05


def check_resolution(crops: np.ndarray, where: str) -> None:
    """Refuse crops whose contrast float32 cannot resolve; ``where`` names the image.

    Parameters
    ----------
    crops : ndarray (N, C, S, S)
        Crops in their stored dtype; float pixels already checked to be finite.
    where : str
        The file and position, for the message.

    Raises
    ------
    ValueError
        If in some crop and channel of a dtype wider than float32 holds (32- or 64-bit
        integers, float64) the float32 step at the crop's level exceeds 5 % of the range of
        its pixels: the cell's contrast would be lost in float32.
    """
    dtype = crops.dtype
    if not crops.size or dtype.kind not in "iuf" or dtype.itemsize < 4:
        return
    if dtype == np.float32:
        return
    flat = crops.reshape(crops.shape[0], -1, crops.shape[-2] * crops.shape[-1])
    low = flat.min(axis=-1).astype(np.float64)
    high = flat.max(axis=-1).astype(np.float64)
    level = np.maximum(np.abs(low), np.abs(high))
    step = np.spacing(level.astype(np.float32)).astype(np.float64)
    lost = (high > low) & (step > _MAX_STEP_SHARE * (high - low))
    if not lost.any():
        return
    n, first = int(lost.any(axis=1).sum()), tuple(np.argwhere(lost)[0])
    lo, hi, st = low[first], high[first], step[first]
    shown = (f"{int(v)}" if dtype.kind in "iu" else f"{v:.15g}" for v in (lo, hi))
    raise ValueError(
        f"the image {where} has {dtype} pixels whose differences float32 cannot resolve in"
        f" {n} of {crops.shape[0]} object crop(s): e.g. one spans {next(shown)} to"
        f" {next(shown)}, where float32 (in which the network computes) steps by {st:g}, so the"
        " cells would lose their contrast; subtract the offset or rescale the image (e.g. to"
        " 16 bit or to 0..1) before extracting crops"
    )
