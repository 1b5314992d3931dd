"""Heatmap overlays as plain arrays: one colouring and blending rule for the viewer, the reports
and `cxr predict --explain-dir`.

Opacity grows with the heatmap value (square root), so weak evidence barely tints the anatomy,
the strongest evidence is the most opaque, and values below the threshold are not drawn at all.
"""

from __future__ import annotations

import numpy as np


def matplotlib_lut(name: str = "inferno") -> np.ndarray:
    """256 x 3 uint8 RGB colours of a matplotlib colour map."""
    from matplotlib import colormaps

    return np.ascontiguousarray(colormaps[name](np.linspace(0.0, 1.0, 256), bytes=True)[:, :3])


def heatmap_rgba(values: np.ndarray, lut: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """rows x cols x 4 uint8 RGBA: ``values`` in [0, 1] coloured with ``lut`` (256 x 3 or 4 uint8),
    alpha = sqrt(value), transparent below ``threshold``."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32)), 0.0, 1.0)
    index = np.rint(v * 255.0).astype(np.uint8)
    rgba = np.empty((*v.shape, 4), np.uint8)
    rgba[..., :3] = np.asarray(lut, np.uint8)[index, :3]
    rgba[..., 3] = np.where(v >= threshold, np.rint(np.sqrt(v) * 255.0), 0).astype(np.uint8)
    return rgba


def blend_rgba(rgb: np.ndarray, rgba: np.ndarray, opacity: float) -> np.ndarray:
    """Alpha-blend an RGBA overlay (same rows x cols) onto an 8-bit grey or RGB image."""
    base = rgb if rgb.ndim == 3 else np.repeat(rgb[..., None], 3, axis=2)
    if base.shape[:2] != rgba.shape[:2]:
        raise ValueError(f"heatmap {rgba.shape[:2]} does not match the image {base.shape[:2]}")
    alpha = (rgba[..., 3:4].astype(np.float32) / 255.0) * float(opacity)
    out = base.astype(np.float32) * (1.0 - alpha) + rgba[..., :3].astype(np.float32) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def blend(display: np.ndarray, values: np.ndarray, opacity: float = 0.5, threshold: float = 0.2,
          cmap: str = "inferno") -> np.ndarray:
    """The displayed image (grey HxW or RGB HxWx3, uint8) with the heatmap laid over it."""
    return blend_rgba(display, heatmap_rgba(values, matplotlib_lut(cmap), threshold), opacity)
