"""Heatmap overlays as plain RGB arrays (for `cxr predict --explain-dir` and reports)."""

from __future__ import annotations

import numpy as np


def colour_map(values: np.ndarray, name: str = "inferno") -> np.ndarray:
    """float [0, 1] HxW -> uint8 RGB HxWx3 with a matplotlib colour map."""
    from matplotlib import colormaps

    rgba = colormaps[name](np.clip(values, 0.0, 1.0), bytes=True)
    return np.ascontiguousarray(rgba[..., :3])


def blend(
    display: np.ndarray,
    values: np.ndarray,
    opacity: float = 0.5,
    threshold: float = 0.2,
    cmap: str = "inferno",
) -> np.ndarray:
    """The displayed image (grey HxW or RGB HxWx3, uint8) with the heatmap laid over it.

    Opacity grows with the heatmap value, so weak evidence leaves the anatomy untouched and
    values below ``threshold`` are not drawn at all.
    """
    base = display if display.ndim == 3 else np.repeat(display[..., None], 3, axis=2)
    if base.shape[:2] != values.shape:
        raise ValueError(f"heatmap {values.shape} does not match the image {base.shape[:2]}")
    colours = colour_map(values, cmap).astype(np.float32)
    alpha = np.where(values >= threshold, opacity * np.clip(values, 0.0, 1.0) ** 0.5, 0.0)[..., None]
    out = base.astype(np.float32) * (1.0 - alpha) + colours * alpha
    return (out + 0.5).clip(0, 255).astype(np.uint8)
