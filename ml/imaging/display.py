"""The grayscale display pipeline, in the standard's order (PS3.3 C.11, PS3.4 N.2).

stored values -> Modality LUT (rescale or Modality LUT Sequence) -> VOI (window with its
VOI LUT Function, or a VOI LUT Sequence) -> MONOCHROME1 / Presentation LUT Shape inversion.

The result of :func:`render` is exactly what the viewer shows at 1:1 without overlays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.imaging.image import VoiLut, Window, XRayImage

Voi = Window | VoiLut


def modality_values(image: XRayImage, frame: int = 0) -> np.ndarray:
    """Frame values after the Modality LUT, in modality units (HU for CT, raw for most CR/DX).

    Returns the stored array itself (no copy) when the modality LUT is the identity.
    """
    arr = image.frames[frame]
    if image.is_color:
        return arr
    ds = image.dataset
    if ds is not None and image.modality_lut is not None:
        from pydicom.pixels import apply_modality_lut  # imported with the first DICOM file read

        return apply_modality_lut(arr, ds)
    slope, intercept = image.rescale(frame)
    if slope != 1.0 or intercept != 0.0:
        return arr.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    return arr


def value_range(image: XRayImage) -> tuple[float, float]:
    """The range of possible modality values (used to scale mouse window/level drags)."""
    m = image.meta
    if image.modality_lut is not None:
        desc = image.modality_lut.LUTDescriptor
        return 0.0, float(2 ** int(desc[2]) - 1)
    if m.float_pixels:
        f = image.frames
        return float(np.nanmin(f)), float(np.nanmax(f))
    bits = m.bits_stored or 8
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if m.pixel_representation else (0, 2**bits - 1)
    ends = sorted((lo * image.rescale_slope + image.rescale_intercept, hi * image.rescale_slope + image.rescale_intercept))
    return float(ends[0]), float(ends[1])


def auto_window(values: np.ndarray, max_samples: int = 1_000_000) -> Window:
    """A robust window from percentiles of the body, ignoring the border and collimation.

    Pixels equal to the image's minimum or maximum (black/white borders, burnt-in padding) are
    dropped before taking the 1st and 99th percentiles of what remains.
    """
    flat = np.asarray(values).ravel()
    if flat.size > max_samples:
        flat = flat[:: flat.size // max_samples + 1]
    flat = flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat
    if flat.size == 0:
        return Window(0.5, 1.0, "LINEAR", "automatic")
    lo, hi = flat.min(), flat.max()
    body = flat[(flat > lo) & (flat < hi)]
    if body.size < 0.05 * flat.size:  # nearly binary image: use the whole range
        body = flat
    p_lo, p_hi = np.percentile(body, [1.0, 99.0])
    if p_hi <= p_lo:
        p_lo, p_hi = float(lo), float(hi)
    integer = flat.dtype.kind in "iu" or np.all(np.mod(flat[:1000], 1) == 0)
    width = float(p_hi - p_lo)
    if integer:
        width = max(width + 1.0, 1.0)
        return Window(float(p_lo) + width / 2.0, width, "LINEAR", "automatic")
    width = width if width > 0 else 1.0
    return Window(float(p_lo + p_hi) / 2.0, width, "LINEAR_EXACT", "automatic")


def default_voi(image: XRayImage, frame: int = 0) -> Voi:
    """The file's first window (the frame's own in an enhanced image), else its first VOI LUT, else
    the automatic window."""
    windows = image.windows_for(frame)
    if windows:
        return windows[0]
    if image.voi_luts:
        return image.voi_luts[0]
    return auto_window(modality_values(image, frame))


def presets(image: XRayImage, frame: int = 0) -> list[Voi]:
    """Every VOI the file carries (for ``frame`` in an enhanced image), windows first (as listed in
    the file), then LUTs."""
    return [*image.windows_for(frame), *image.voi_luts]


@dataclass(frozen=True)
class ChestPreset:
    name: str
    key: str
    # Window as fractions of the body's robust range, in display polarity (0 = black, 1 = white)
    center_fraction: float
    width_fraction: float
    ct_window: tuple[float, float]  # (center, width) in HU, used when the modality is CT


CHEST_PRESETS = (
    ChestPreset("Lung", "L", 0.35, 0.75, (-600.0, 1500.0)),
    ChestPreset("Mediastinum", "M", 0.70, 0.55, (40.0, 400.0)),
    ChestPreset("Bone", "B", 0.80, 0.45, (500.0, 2000.0)),
)


def chest_preset_window(image: XRayImage, preset: ChestPreset, frame: int = 0) -> Window:
    """A chest preset for this image: HU windows for CT, otherwise relative to the image's range.

    Radiograph pixel values have no absolute unit, so lung/mediastinum/bone presets are placed
    within the body's robust range, respecting MONOCHROME1 polarity (where air is bright).
    """
    if image.meta.modality == "CT" and (image.rescale_slope != 1.0 or image.rescale_intercept != 0.0):
        return Window(*preset.ct_window, "LINEAR", preset.name)
    auto = auto_window(modality_values(image, frame))
    lo, span = auto.low, auto.width
    fraction = preset.center_fraction
    if image.meta.inverted:  # MONOCHROME1: high stored values display dark
        fraction = 1.0 - fraction
    return Window(lo + fraction * span, max(span * preset.width_fraction, 1.0), "LINEAR", preset.name)


def manual_window(image: XRayImage, center: float, width: float, frame: int = 0) -> Window:
    """A window the user typed: LINEAR for integer pixel values, LINEAR_EXACT for float ones.

    DICOM's LINEAR function (C.11.2.1.2) treats a width <= 1 as a threshold, which turns float data
    (e.g. values in [0, 1]) into a binary image; the viewer keeps LINEAR_EXACT there, and so does this.
    """
    values = modality_values(image, frame if 0 <= frame < image.n_frames else 0)  # render reports a bad frame
    integer = values.dtype.kind in "iu" or bool(np.all(np.mod(values.ravel()[:1000], 1) == 0))
    return Window(float(center), float(width), "LINEAR" if integer else "LINEAR_EXACT", "manual")


def window_to_unit(values: np.ndarray, window: Window) -> np.ndarray:
    """Apply a VOI window, returning float32 in [0, 1] (PS3.3 C.11.2.1.2 and C.11.2.1.3)."""
    x = np.asarray(values, dtype=np.float32)
    c, w = np.float32(window.center), np.float32(window.width)
    function = window.function.upper()
    if function == "SIGMOID":
        out = 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    elif function == "LINEAR_EXACT":
        out = (x - (c - w / 2.0)) / w
    else:  # LINEAR
        w = max(w, np.float32(1.0))
        out = (x - (c - np.float32(0.5))) / (w - np.float32(1.0)) + np.float32(0.5) if w > 1 else (x > c - 0.5)
    return np.clip(out, 0.0, 1.0, dtype=np.float32) if isinstance(out, np.ndarray) and out.dtype != bool else np.asarray(out, np.float32)


def voi_lut_to_unit(values: np.ndarray, lut: VoiLut) -> np.ndarray:
    """Apply a VOI LUT Sequence item, returning float32 in [0, 1]."""
    idx = np.clip(np.asarray(values).astype(np.int64) - lut.first_mapped, 0, lut.data.size - 1)
    out = lut.data[idx].astype(np.float32)
    top = float(2**lut.bits - 1)
    if lut.data.max() > top:  # descriptor bits understated (seen in the wild)
        top = float(2 ** int(np.ceil(np.log2(lut.data.max() + 1))) - 1)
    return out / np.float32(top)


def voi_to_unit(values: np.ndarray, voi: Voi) -> np.ndarray:
    if isinstance(voi, VoiLut):
        return voi_lut_to_unit(values, voi)
    return window_to_unit(values, voi)


def to_unit(image: XRayImage, frame: int = 0, voi: Voi | None = None, invert: bool | None = None) -> np.ndarray:
    """Grayscale frame through the whole pipeline as float32 in [0, 1] (1 = white on screen).

    Colour frames are returned as RGB float32 in [0, 1]. This is also the model input derivation.
    """
    if image.is_color:
        arr = image.frames[frame].astype(np.float32)
        top = 255.0 if image.frames.dtype == np.uint8 else float(max(arr.max(), 1))
        return arr / np.float32(top)
    values = modality_values(image, frame)
    voi = voi if voi is not None else default_voi(image, frame)
    out = voi_to_unit(values, voi)
    if image.meta.inverted if invert is None else invert:
        out = np.float32(1.0) - out
    return out


def render(image: XRayImage, frame: int = 0, voi: Voi | None = None, invert: bool | None = None) -> np.ndarray:
    """8-bit display image (grayscale HxW or RGB HxWx3), exactly what the viewer shows at 1:1."""
    if not 0 <= frame < image.n_frames:
        from ml.errors import ImagingError

        raise ImagingError(f"Frame {frame + 1} does not exist: the image has {image.n_frames} frame(s).")
    if image.is_color and image.frames.dtype == np.uint8:
        return np.ascontiguousarray(image.frames[frame])
    unit = to_unit(image, frame, voi, invert)
    return (unit * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


def __getattr__(name: str) -> Any:  # pydicom's apply_voi, re-exported without importing pydicom first
    if name == "apply_voi":
        from pydicom.pixels import apply_voi

        return apply_voi
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHEST_PRESETS",
    "ChestPreset",
    "Voi",
    "auto_window",
    "chest_preset_window",
    "default_voi",
    "modality_values",
    "presets",
    "render",
    "to_unit",
    "value_range",
    "voi_to_unit",
    "window_to_unit",
]
