"""Contours of a heatmap's top region(s), on the source grid, with their area in mm².

Cleared CXR products outline findings instead of (or as well as) washing them in colour.
:func:`top_regions` thresholds the normalised map at ``level`` (default 0.5: half of the maximum),
splits what is above into 8-connected regions, keeps the strongest ``max_regions`` of at least
``min_fraction`` of the image, and gives each an outline polygon along the pixel edges (so the
polygon's area is the region's pixel count), in source (row, col) coordinates, plus its area in
pixels and in mm² when the pixel spacing is known. Large maps are traced on a grid of at most
``max_side`` pixels (heatmaps are smooth: they come from 7 x 7 to 48 x 48 maps), then scaled back;
areas are counted on the full grid. numpy only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ml.explain.base import Heatmap


@dataclass(frozen=True)
class Region:
    polygon: np.ndarray  # (N, 2) float: (row, col) vertices on the source grid, closed (last != first)
    area_px: int
    area_mm2: float | None
    peak: float  # the map's maximum inside the region, in [0, 1]
    peak_at: tuple[int, int]  # (row, col) of that maximum

    def text(self) -> str:
        return f"{self.area_mm2:.0f} mm²" if self.area_mm2 is not None else f"{self.area_px} px"


def label_regions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected component labels (0 = background, 1..n) of a boolean mask."""
    labels = np.zeros(mask.shape, np.int32)
    rows, cols = mask.shape
    n = 0
    for r0, c0 in zip(*np.nonzero(mask), strict=True):
        if labels[r0, c0]:
            continue
        n += 1
        labels[r0, c0] = n
        todo = deque([(int(r0), int(c0))])
        while todo:
            r, c = todo.popleft()
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < rows and 0 <= cc < cols and mask[rr, cc] and not labels[rr, cc]:
                        labels[rr, cc] = n
                        todo.append((rr, cc))
    return labels, n


def outline(mask: np.ndarray) -> np.ndarray:
    """The longest closed boundary of a region along pixel edges: (N, 2) (row, col) corner points."""
    edges: dict[tuple[int, int], list[tuple[int, int]]] = {}
    padded = np.pad(mask, 1)
    inside = padded[1:-1, 1:-1]
    # directed edges, clockwise around each pixel (row down, col right); an edge is kept when the
    # neighbour across it is outside the region
    for (dr, dc), (a, b) in (
        ((-1, 0), ((0, 0), (0, 1))),  # top edge: left -> right
        ((0, 1), ((0, 1), (1, 1))),  # right edge: top -> bottom
        ((1, 0), ((1, 1), (1, 0))),  # bottom edge: right -> left
        ((0, -1), ((1, 0), (0, 0))),  # left edge: bottom -> top
    ):
        neighbour = padded[1 + dr : padded.shape[0] - 1 + dr, 1 + dc : padded.shape[1] - 1 + dc]
        for r, c in zip(*np.nonzero(inside & ~neighbour), strict=True):
            start, end = (int(r) + a[0], int(c) + a[1]), (int(r) + b[0], int(c) + b[1])
            edges.setdefault(start, []).append(end)
    loops: list[list[tuple[int, int]]] = []
    while edges:
        start = next(iter(edges))
        loop = [start]
        point = start
        while True:
            nxt = edges[point].pop()
            if not edges[point]:
                del edges[point]
            if nxt == start:
                break
            loop.append(nxt)
            point = nxt
            if point not in edges:
                break
        loops.append(loop)
    best = max(loops, key=len) if loops else []
    return np.asarray(best, np.float64).reshape(-1, 2)


def polygon_area(polygon: np.ndarray) -> float:
    """Shoelace area of a closed polygon (vertices (row, col))."""
    if len(polygon) < 3:
        return 0.0
    y, x = polygon[:, 0], polygon[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def top_regions(
    heatmap: Heatmap | np.ndarray,
    level: float = 0.5,
    pixel_spacing: tuple[float, float] | None = None,
    max_regions: int = 3,
    min_fraction: float = 0.001,
    max_side: int = 256,
) -> list[Region]:
    """Outlines of the map's regions at or above ``level`` (strongest first).

    ``pixel_spacing``: (row mm, col mm) of the source image, or None (areas in pixels only).
    """
    values = np.asarray(heatmap.values if isinstance(heatmap, Heatmap) else heatmap, np.float32)
    rows, cols = values.shape
    step = max(1, int(np.ceil(max(rows, cols) / max_side)))
    small = values[step // 2 :: step, step // 2 :: step]
    labels, n = label_regions(small >= level)
    if n == 0:
        return []
    # each full-grid pixel takes the label of its nearest small-grid pixel
    ri = np.minimum(np.arange(rows) // step, small.shape[0] - 1)
    ci = np.minimum(np.arange(cols) // step, small.shape[1] - 1)
    full = labels[np.ix_(ri, ci)] * (values >= level)
    counts = np.bincount(full.ravel(), minlength=n + 1)
    out = []
    for k in range(1, n + 1):
        if counts[k] < max(1, min_fraction * rows * cols):
            continue
        inside = full == k
        peak_flat = int(np.argmax(np.where(inside, values, -1.0)))
        pr, pc = divmod(peak_flat, cols)
        poly = outline(labels == k) * step
        poly[:, 0] = np.clip(poly[:, 0], 0, rows)
        poly[:, 1] = np.clip(poly[:, 1], 0, cols)
        area_mm2 = None
        if pixel_spacing is not None:
            area_mm2 = float(counts[k]) * float(pixel_spacing[0]) * float(pixel_spacing[1])
        out.append(Region(poly, int(counts[k]), area_mm2, float(values[pr, pc]), (pr, pc)))
    out.sort(key=lambda r: (-r.peak, -r.area_px))
    return out[: max(0, int(max_regions))]


def spacing_of(image: object) -> tuple[float, float] | None:
    """(row mm, col mm) from an XRayImage's metadata, or None when unknown."""
    sp = getattr(getattr(image, "meta", None), "pixel_spacing", None)
    if sp is None:
        return None
    return float(sp.row_mm), float(sp.col_mm)


__all__ = ["Region", "label_regions", "outline", "polygon_area", "spacing_of", "top_regions"]
