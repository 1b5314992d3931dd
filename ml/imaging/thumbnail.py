"""Thumbnail pixels: the image as the viewer shows it (frame 0, default VOI), block-averaged.

:func:`thumbnail_pixels` is module-level and returns a small array, so it can run in the guarded
decode worker (:class:`ml.imaging.guarded.GuardedReader`): a decoder crash on a damaged file ends
that worker, and only a few kilobytes cross the process boundary.
"""

from __future__ import annotations

import os

import numpy as np


def downscale(pixels: np.ndarray, size: int) -> np.ndarray:
    """Block-average an 8-bit HxW or HxWx3 image so its longer side is about 2*size (or less)."""
    h, w = pixels.shape[:2]
    k = max(1, max(h, w) // (2 * size))
    if k == 1:
        return np.ascontiguousarray(pixels)
    hh, ww = (h // k) * k, (w // k) * k
    cropped = pixels[:hh, :ww].astype(np.float32)
    if cropped.ndim == 2:
        small = cropped.reshape(hh // k, k, ww // k, k).mean(axis=(1, 3))
    else:
        small = cropped.reshape(hh // k, k, ww // k, k, cropped.shape[2]).mean(axis=(1, 3))
    return np.ascontiguousarray(np.clip(small + 0.5, 0, 255).astype(np.uint8))


def thumbnail_pixels(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """Decode, render (the display pipeline) and shrink one image file to about ``2*size`` pixels."""
    from ml.imaging.display import render
    from ml.imaging.read import read_image

    return downscale(render(read_image(path), 0), size)
