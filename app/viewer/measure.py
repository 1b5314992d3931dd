"""Measurement values (Qt-free): distance, angle and ROI statistics in image pixel coordinates.

Coordinates are image pixel coordinates (x = column, y = row) where pixel (i, j) covers
[i, i+1) x [j, j+1): the centre of the top-left pixel is (0.5, 0.5). Physical sizes use the
image's pixel spacing (column spacing along x, row spacing along y) and name its source.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ml.imaging.image import PixelSpacing

KINDS = ("distance", "angle", "rect", "ellipse")
Point = tuple[float, float]
# (y0, y1, x0, x1) -> modality values of that region (float64)
RegionReader = Callable[[int, int, int, int], np.ndarray]


@dataclass
class Measurement:
    """One measurement. ``value`` is the text shown next to it, e.g. "42.3 mm (PixelSpacing)"."""

    kind: str  # distance | angle | rect | ellipse
    points: list[Point]  # distance: 2 ends; angle: A, vertex, C; rect/ellipse: 2 opposite corners
    value: str = ""
    numbers: dict[str, float] = field(default_factory=dict)  # e.g. {"px": 500.0, "mm": 84.0}


def _fmt(value: float) -> str:
    """One decimal for ordinary values; three significant digits below 1 (float images)."""
    if not math.isfinite(value) or value == 0 or abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.3g}"


def distance(points: list[Point], spacing: PixelSpacing | None) -> tuple[str, dict[str, float]]:
    (x0, y0), (x1, y1) = points[:2]
    px = math.hypot(x1 - x0, y1 - y0)
    if spacing is None:
        return f"{px:.1f} px", {"px": px}
    mm = math.hypot((x1 - x0) * spacing.col_mm, (y1 - y0) * spacing.row_mm)
    return f"{mm:.1f} mm ({spacing.source})", {"px": px, "mm": mm}


def angle(points: list[Point], spacing: PixelSpacing | None) -> tuple[str, dict[str, float]]:
    """Angle at the middle point, in degrees, in physical space when the pixels are not square."""
    if len(points) < 3:
        return "", {}
    sx, sy = (spacing.col_mm, spacing.row_mm) if spacing is not None else (1.0, 1.0)
    (ax, ay), (bx, by), (cx, cy) = points[:3]
    u = ((ax - bx) * sx, (ay - by) * sy)
    v = ((cx - bx) * sx, (cy - by) * sy)
    nu, nv = math.hypot(*u), math.hypot(*v)
    if nu == 0 or nv == 0:
        return "0.0°", {"deg": 0.0}
    cos = max(-1.0, min(1.0, (u[0] * v[0] + u[1] * v[1]) / (nu * nv)))
    deg = math.degrees(math.acos(cos))
    return f"{deg:.1f}°", {"deg": deg}


def region_mask(
    kind: str, points: list[Point], shape: tuple[int, int]
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Pixels whose centres lie inside the rectangle/ellipse: ((y0, y1, x0, x1), boolean mask)."""
    (xa, ya), (xb, yb) = points[:2]
    left, right, top, bottom = min(xa, xb), max(xa, xb), min(ya, yb), max(ya, yb)
    rows, cols = shape
    x0 = max(int(math.ceil(left - 0.5)), 0)
    x1 = min(int(math.floor(right - 0.5)) + 1, cols)
    y0 = max(int(math.ceil(top - 0.5)), 0)
    y1 = min(int(math.floor(bottom - 0.5)) + 1, rows)
    if x1 <= x0 or y1 <= y0:
        return (0, 0, 0, 0), np.zeros((0, 0), bool)
    if kind == "rect":
        return (y0, y1, x0, x1), np.ones((y1 - y0, x1 - x0), bool)
    cx, cy = (left + right) / 2.0, (top + bottom) / 2.0
    a, b = max((right - left) / 2.0, 1e-9), max((bottom - top) / 2.0, 1e-9)
    xs = (np.arange(x0, x1) + 0.5 - cx) / a
    ys = (np.arange(y0, y1) + 0.5 - cy) / b
    return (y0, y1, x0, x1), (ys[:, None] ** 2 + xs[None, :] ** 2) <= 1.0


def roi_stats(
    kind: str,
    points: list[Point],
    shape: tuple[int, int],
    read: RegionReader,
    spacing: PixelSpacing | None,
    unit: str = "",
) -> tuple[str, dict[str, float]]:
    """Mean/SD of the modality values inside the ROI and its area (geometric, mm² or px²)."""
    (xa, ya), (xb, yb) = points[:2]
    w, h = abs(xb - xa), abs(yb - ya)
    area_px = w * h if kind == "rect" else math.pi * w * h / 4.0
    (y0, y1, x0, x1), mask = region_mask(kind, points, shape)
    values = read(y0, y1, x0, x1)[mask] if mask.any() else np.zeros(0)
    n = int(values.size)
    mean = float(values.mean()) if n else float("nan")
    sd = float(values.std()) if n else float("nan")
    numbers = {"mean": mean, "sd": sd, "n": float(n), "area_px": area_px}
    suffix = f" {unit}" if unit else ""
    if spacing is not None:
        area_mm = area_px * spacing.row_mm * spacing.col_mm
        numbers["area_mm2"] = area_mm
        area = f"{area_mm:.1f} mm² ({spacing.source})"
    else:
        area = f"{area_px:.0f} px²"
    text = (
        f"mean {_fmt(mean)}{suffix}  SD {_fmt(sd)}{suffix}\narea {area}" if n else f"no pixels\narea {area}"
    )
    return text, numbers


def evaluate(
    m: Measurement, shape: tuple[int, int], read: RegionReader, spacing: PixelSpacing | None, unit: str = ""
) -> Measurement:
    """Fill ``m.value`` and ``m.numbers`` from its points; returns ``m``."""
    if m.kind == "distance":
        m.value, m.numbers = distance(m.points, spacing)
    elif m.kind == "angle":
        m.value, m.numbers = angle(m.points, spacing)
    elif m.kind in ("rect", "ellipse"):
        m.value, m.numbers = roi_stats(m.kind, m.points, shape, read, spacing, unit)
    else:
        raise ValueError(f"unknown measurement kind {m.kind!r}")
    return m
