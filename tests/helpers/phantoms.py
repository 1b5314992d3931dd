"""Synthetic chest phantoms with a lesion at a known place, for model and explanation tests.

A phantom is a 12-bit MONOCHROME2 radiograph (high values = white): a soft-tissue body, two dark
lung fields (ellipses), bright curved ribs over them, a bright mediastinum/spine, noise and a random
overall exposure, and optionally a bright round lesion (a soft-edged disk) at a random place fully
inside one lung. The lesion's bounding box is returned in source pixels, so tests can check that an
explanation points at it::

    from tests.helpers.phantoms import make_phantom, write_phantom_folder

    ph = make_phantom(160, 200, lesion=True, seed=3)
    ph.image            # XRayImage (1 frame, uint16, MONOCHROME2)
    ph.lesion_box       # (row0, col0, row1, col1), end-exclusive, or None

    write_phantom_folder(tmp_path, n_per_class=20)  # tmp_path/lesion/*.dcm, tmp_path/normal/*.dcm

Everything is deterministic for a given seed and cheap (a few ms per image at these sizes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.imaging.image import ImageMeta, XRayImage

BITS = 12
TOP = (1 << BITS) - 1
#: Default non-square sizes (rows, cols) used by the tests.
SIZES: tuple[tuple[int, int], ...] = ((160, 200), (240, 180), (200, 256))


@dataclass
class Phantom:
    image: XRayImage
    lesion_box: tuple[int, int, int, int] | None  # (row0, col0, row1, col1), end-exclusive
    lesion_center: tuple[float, float] | None  # (row, col)
    lesion_radius: float = 0.0

    @property
    def has_lesion(self) -> bool:
        return self.lesion_box is not None

    def contains(self, row: float, col: float, margin: float = 0.0) -> bool:
        """Is (row, col) inside the lesion box grown by ``margin`` pixels?"""
        if self.lesion_box is None:
            return False
        r0, c0, r1, c1 = self.lesion_box
        return r0 - margin <= row < r1 + margin and c0 - margin <= col < c1 + margin


def _lungs(rows: int, cols: int) -> list[tuple[float, float, float, float]]:
    """(centre row, centre col, semi-axis rows, semi-axis cols) of the two lung fields."""
    return [
        (0.50 * rows, 0.29 * cols, 0.33 * rows, 0.16 * cols),
        (0.50 * rows, 0.71 * cols, 0.33 * rows, 0.16 * cols),
    ]


def phantom_pixels(
    rows: int,
    cols: int,
    lesion: bool,
    rng: np.random.Generator,
    lesion_radius: float | None = None,
) -> tuple[np.ndarray, tuple[float, float] | None, float]:
    """The uint16 pixel array, the lesion centre (or None) and its radius."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    img = np.full((rows, cols), 300.0, np.float32)  # air around the body
    # body: a wide ellipse of soft tissue
    body = ((yy - 0.52 * rows) / (0.56 * rows)) ** 2 + ((xx - 0.5 * cols) / (0.48 * cols)) ** 2 < 1
    img[body] = 2300.0
    lung_mask = np.zeros((rows, cols), bool)
    for cy, cx, ay, ax in _lungs(rows, cols):
        inside = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2
        lung_mask |= inside < 1
        img -= 1300.0 * np.clip(1.2 - inside, 0.0, 0.2) / 0.2 * (inside < 1.2)
    # mediastinum and spine: a bright vertical band
    img += 500.0 * np.exp(-(((xx - 0.5 * cols) / (0.06 * cols)) ** 2))
    # ribs: curved bright bands, random phase and curvature
    spacing = rows * rng.uniform(0.085, 0.105)
    phase = rng.uniform(0.0, spacing)
    curve = rng.uniform(0.08, 0.14) * rows
    thick = 0.018 * rows
    for side in (-1.0, 1.0):
        cx = 0.5 * cols + side * 0.21 * cols
        u = (xx - cx) / (0.25 * cols)
        y_of = yy - curve * u**2 + side * 0.03 * rows * u  # arcs over each lung
        d = np.mod(y_of - phase, spacing)
        band = np.exp(-(((d - spacing / 2) / thick) ** 2))
        img += 380.0 * band * (np.abs(u) < 1.0) * body
    centre = None
    radius = float(lesion_radius if lesion_radius is not None else 0.07 * min(rows, cols))
    if lesion:
        cy, cx, ay, ax = _lungs(rows, cols)[int(rng.integers(0, 2))]
        for _ in range(1000):  # a centre whose whole disk lies inside the lung ellipse
            r = cy + rng.uniform(-ay, ay)
            c = cx + rng.uniform(-ax, ax)
            if ((r - cy) / max(ay - radius, 1)) ** 2 + ((c - cx) / max(ax - radius, 1)) ** 2 < 0.85:
                break
        centre = (float(r), float(c))
        dist = np.sqrt((yy - r) ** 2 + (xx - c) ** 2)
        img += 1100.0 * np.clip((radius - dist) / 1.5 + 0.5, 0.0, 1.0)
    img *= rng.uniform(0.85, 1.15)  # exposure
    img += rng.normal(0.0, 60.0, size=img.shape).astype(np.float32)
    return np.clip(img, 0, TOP).astype(np.uint16), centre, radius


def _box(centre: tuple[float, float], radius: float, rows: int, cols: int) -> tuple[int, int, int, int]:
    r, c = centre
    return (
        max(0, int(np.floor(r - radius))),
        max(0, int(np.floor(c - radius))),
        min(rows, int(np.ceil(r + radius)) + 1),
        min(cols, int(np.ceil(c + radius)) + 1),
    )


def image_from_pixels(frames: np.ndarray, path: str = "", photometric: str = "MONOCHROME2") -> XRayImage:
    """An XRayImage from uint16 grey frames (n, rows, cols) or uint8 RGB frames (n, rows, cols, 3)."""
    frames = np.asarray(frames)
    colour = frames.ndim == 4
    meta = ImageMeta(
        path=path, kind="dicom", modality="DX", view_position="PA",
        photometric="RGB" if colour else photometric, samples_per_pixel=3 if colour else 1,
        bits_allocated=8 if colour else 16, bits_stored=8 if colour else BITS,
        rows=int(frames.shape[1]), columns=int(frames.shape[2]), n_frames=int(frames.shape[0]),
    )  # fmt: skip
    return XRayImage(meta=meta, frames=frames)


def make_phantom(
    rows: int = 160,
    cols: int = 200,
    lesion: bool = True,
    seed: int | np.random.Generator = 0,
    lesion_radius: float | None = None,
    path: str = "",
) -> Phantom:
    """One single-frame phantom; the lesion (if any) lies fully inside a lung."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    pixels, centre, radius = phantom_pixels(rows, cols, lesion, rng, lesion_radius)
    box = _box(centre, radius, rows, cols) if centre is not None else None
    return Phantom(image_from_pixels(pixels[None], path), box, centre, radius if centre else 0.0)


def as_rgb(phantom: Phantom) -> Phantom:
    """The same phantom as an 8-bit RGB image (as a PNG/JPEG screenshot would be)."""
    from ml.imaging.display import render

    grey = render(phantom.image, 0)
    rgb = np.repeat(grey[..., None], 3, axis=-1)[None]
    return Phantom(
        image_from_pixels(rgb, phantom.image.meta.path),
        phantom.lesion_box,
        phantom.lesion_center,
        phantom.lesion_radius,
    )


def multiframe(phantoms: list[Phantom]) -> XRayImage:
    """Several same-size grey phantoms as the frames of one multi-frame image."""
    return image_from_pixels(np.stack([p.image.frames[0] for p in phantoms]))


def phantom_set(
    n: int, lesion: bool, seed: int = 0, sizes: tuple[tuple[int, int], ...] = SIZES
) -> list[Phantom]:
    """``n`` phantoms cycling through ``sizes``, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [make_phantom(*sizes[i % len(sizes)], lesion=lesion, seed=rng) for i in range(n)]


def write_phantom_folder(
    folder: str | os.PathLike[str],
    n_per_class: int = 10,
    fmt: str = "dcm",
    seed: int = 0,
    sizes: tuple[tuple[int, int], ...] = SIZES,
) -> dict[Path, tuple[int, int, int, int] | None]:
    """Write ``folder/lesion/*`` and ``folder/normal/*`` (folder-per-class) as DICOM or PNG.

    ``fmt``: "dcm" (12-bit MONOCHROME2, with a window in the header) or "png" (8-bit, rendered with
    the automatic window). Returns {path: lesion box or None}.
    """
    folder = Path(folder)
    out: dict[Path, tuple[int, int, int, int] | None] = {}
    for cls, lesion, offset in (("lesion", True, 0), ("normal", False, 1)):
        for i, ph in enumerate(phantom_set(n_per_class, lesion, seed * 2 + offset, sizes)):
            path = folder / cls / f"{cls}_{i:03d}.{fmt}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if fmt == "png":
                from PIL import Image

                from ml.imaging.display import render

                Image.fromarray(render(ph.image, 0)).save(path)
            elif fmt == "dcm":
                from tests.helpers.dicom_factory import write_dicom

                rows, cols = ph.image.shape
                write_dicom(
                    path, patient_name=f"Phantom^{cls}{i}", patient_id=f"PH{offset}{i:04d}", modality="DX",
                    rows=rows, columns=cols, bits_stored=BITS, pixels=ph.image.frames[0], window=(1800.0, 2600.0),
                    instance_number=i + 1,
                )  # fmt: skip
            else:
                raise ValueError(f"unknown format {fmt!r}")
            out[path] = ph.lesion_box
    return out


__all__ = [
    "SIZES",
    "Phantom",
    "as_rgb",
    "image_from_pixels",
    "make_phantom",
    "multiframe",
    "phantom_set",
    "write_phantom_folder",
]
