"""What the image view hands to pyqtgraph's ImageItem: data, levels and a lookup table.

Qt-free. The grey levels come from :mod:`ml.imaging.display` itself: the lookup table is
``display.render`` evaluated once for every possible stored value, so the view shows exactly
what ``cxr render`` writes, while a window/level drag only recomputes a table of at most 65,536
entries instead of the whole image.

Three modes:

``index``  integer pixels (the usual case). The ImageItem gets the stored values (uint8/uint16 as
           they are, other integer types offset into uint16 once per frame) with levels ``(0, n)``
           and an n-entry table; pyqtgraph then maps value v to table entry v exactly.
``float``  float pixel data or integer ranges wider than 16 bits: modality values as float32,
           levels ``(lo, hi)`` and a 4096-entry table sampled at the bin centres.
``rgb``    colour: the 8-bit RGB frame from ``display.render`` (inverted on request).

Downsampled copies (2x2 block means, powers of two) are cached per frame so that a zoomed-out view
re-renders only about as many pixels as the screen has.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ml.imaging import display
from ml.imaging.image import XRayImage

FLOAT_LUT_SIZE = 4096


class FramePipeline:
    """Display data for one frame of an image, with a cache of downsampled copies."""

    def __init__(self, image: XRayImage, frame: int = 0):
        self.image = image
        self.frame = frame
        self._invert_rgb = False
        stored = image.frames[frame]
        if image.is_color:
            self.mode = "rgb"
            self._base = display.render(image, frame)
            self.offset, self.n = 0, 256
            self.levels: tuple[float, float] | None = None
        elif stored.dtype.kind in "iu" and self._fits_index(stored):
            self.mode = "index"
            if stored.dtype == np.uint8:
                self._base, self.offset, self.n = stored, 0, 256
            elif stored.dtype == np.uint16:
                self._base, self.offset, self.n = stored, 0, max(int(stored.max()) + 1, 2)
            else:
                lo, hi = int(stored.min()), int(stored.max())
                self._base = (stored.astype(np.int64) - lo).astype(np.uint16)
                self.offset, self.n = lo, max(hi - lo + 1, 2)
            self.levels = (0.0, float(self.n))
        else:
            self.mode = "float"
            values = np.asarray(display.modality_values(image, frame), dtype=np.float32)
            finite = values[np.isfinite(values)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            if hi <= lo:
                hi = lo + 1.0
            self._base, self.offset, self.n = values, 0, FLOAT_LUT_SIZE
            self.levels = (lo, hi)
        self._pyramid: dict[int, np.ndarray] = {1: self._base}

    @staticmethod
    def _fits_index(stored: np.ndarray) -> bool:
        if stored.dtype in (np.uint8, np.uint16):
            return True
        if stored.size == 0:
            return False
        return int(stored.max()) - int(stored.min()) < 65536

    @property
    def shape(self) -> tuple[int, int]:
        return int(self._base.shape[0]), int(self._base.shape[1])

    # ----------------------------------------------------------------------------- lookup table
    def lut(self, voi: display.Voi | None, invert: bool) -> np.ndarray | None:
        """uint8 table for ImageItem.setLookupTable (None for colour images)."""
        if self.mode == "rgb":
            return None
        if self.mode == "index":
            values = np.arange(self.offset, self.offset + self.n, dtype=np.int64)
            values = values.astype(self.image.frames.dtype)  # same arithmetic as display.render
            probe = dataclasses.replace(self.image, frames=values.reshape(1, 1, -1))
            return np.ascontiguousarray(display.render(probe, 0, voi, invert)[0])
        lo, hi = self.levels  # type: ignore[misc]
        mids = lo + (np.arange(self.n, dtype=np.float64) + 0.5) * ((hi - lo) / self.n)
        unit = display.voi_to_unit(
            mids.astype(np.float32), voi if voi is not None else display.default_voi(self.image)
        )
        if invert:
            unit = np.float32(1.0) - unit
        return (unit * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)

    # ----------------------------------------------------------------------------- image data
    def set_rgb_inverted(self, inverted: bool) -> bool:
        """Colour images only: invert the RGB data. Returns True when the data changed."""
        if self.mode != "rgb" or inverted == self._invert_rgb:
            return False
        self._invert_rgb = inverted
        base = display.render(self.image, self.frame)
        self._base = 255 - base if inverted else base
        self._pyramid = {1: self._base}
        return True

    def data(self, factor: int = 1) -> np.ndarray:
        """The frame reduced by an integer ``factor`` (block means; 1 = full resolution), cached.

        A factor is built from its largest already-cached divisor, so powers of two cost a quarter
        of the previous level each and other factors are computed once per frame.
        """
        factor = max(int(factor), 1)
        if factor in self._pyramid:
            return self._pyramid[factor]
        source = max(d for d in self._pyramid if factor % d == 0)
        if source == 1 and factor % 2 == 0 and factor != 2:
            source = 2  # build even factors through the cheap halving chain
            self.data(2)
        out = _reduce(self._pyramid[source], factor // source)
        self._pyramid[factor] = out
        return out

    def rendered(self, x0: int, y0: int, x1: int, y1: int, lut: np.ndarray | None) -> np.ndarray:
        """8-bit display pixels of a full-resolution region (rows y0:y1, columns x0:x1)."""
        region = self._base[y0:y1, x0:x1]
        if self.mode == "rgb":
            return np.ascontiguousarray(region)
        assert lut is not None
        if self.mode == "index":
            return lut[region]
        lo, hi = self.levels  # type: ignore[misc]
        idx = np.nan_to_num((region - lo) * (self.n / (hi - lo)), nan=0.0)
        return lut[np.clip(idx, 0, self.n - 1).astype(np.intp)]

    def modality_region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Modality values (after the Modality LUT) of a region; grey mean of RGB for colour."""
        stored = self.image.frames[self.frame][y0:y1, x0:x1]
        if self.image.is_color:
            return stored.astype(np.float64).mean(axis=-1)
        probe = dataclasses.replace(self.image, frames=stored[None])
        return np.asarray(display.modality_values(probe, 0), dtype=np.float64)


def _reduce(a: np.ndarray, f: int) -> np.ndarray:
    """f x f block mean keeping the dtype (rounded for integers); a partial last block is dropped."""
    h, w = a.shape[0] // f, a.shape[1] // f
    if f == 1 or h == 0 or w == 0:
        return a
    q = a[: h * f, : w * f]
    integer = a.dtype.kind in "iu"
    acc = q[0::f, 0::f].astype(np.uint32 if integer else np.float32)
    for dy in range(f):
        for dx in range(f):
            if dy or dx:
                acc += q[dy::f, dx::f]
    if integer:
        acc += f * f // 2
        acc //= f * f
        return acc.astype(a.dtype)
    acc *= np.float32(1.0 / (f * f))
    return acc
