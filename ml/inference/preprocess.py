"""THE input derivation: file pixels -> network input, identical in training and inference.

The derivation a model was trained with is stored in its manifest (``manifest.input_derivation``,
``input_size``, ``channels``, ``normalisation``); :func:`prepare` applies it::

    stored pixels -> modality LUT -> the file's default VOI (or the automatic window)
    -> MONOCHROME1 inverted -> [0, 1] -> grey/colour to the model's channels
    -> resize to input_size ("squash", "letterbox" or "center_crop") -> normalisation

TorchXRayVision models (``pixels == "xrv"``, :meth:`InputDerivation.xrv`) get exactly xrv's input
instead: stored values / (2**BitsStored - 1) (PNG/JPEG / 255), no VOI, MONOCHROME1 inverted, mapped
to [-1024, 1024], ``XRayCenterCrop`` and ``XRayResizer`` (skimage's resize, reproduced in torch).

Each call also returns an :class:`InputGeometry`, which records exactly which source pixels ended up
where in the network input, so that a map computed on the input grid (a Grad-CAM or occlusion
heatmap) can be put back on the source image's own pixel grid with :meth:`InputGeometry.to_source_grid`.

Coordinates are continuous pixel coordinates: pixel ``i`` covers ``[i, i + 1)`` and its centre is
``i + 0.5``. Resizing is centre-aligned (``align_corners=False``), so the forward resize and the
mapping back are exact inverses of each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ml.errors import ImagingError
from ml.imaging.display import auto_window, default_voi, modality_values, to_unit, voi_to_unit
from ml.imaging.image import Window, XRayImage
from ml.models.manifest import InputDerivation, normalise_tensor

#: ITU-R BT.601 luma weights (what PIL's "L" conversion uses) for colour -> grey.
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class InputGeometry:
    """Where the source image went in the network input.

    The source region ``[crop_top, crop_top + crop_rows) x [crop_left, crop_left + crop_cols)`` was
    resized to ``content_rows x content_cols`` and placed at ``(pad_top, pad_left)`` in an
    ``input_rows x input_cols`` input (the rest is padding). "squash" uses the whole image and the
    whole input; "letterbox" keeps the aspect ratio and pads; "center_crop" crops a central square.
    """

    source_rows: int
    source_cols: int
    input_rows: int
    input_cols: int
    crop_top: int
    crop_left: int
    crop_rows: int
    crop_cols: int
    pad_top: int
    pad_left: int
    content_rows: int
    content_cols: int
    mode: str = "squash"

    @property
    def scale_y(self) -> float:
        """Input pixels per source pixel, vertically."""
        return self.content_rows / self.crop_rows

    @property
    def scale_x(self) -> float:
        return self.content_cols / self.crop_cols

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) padding in input pixels."""
        bottom = self.input_rows - self.pad_top - self.content_rows
        right = self.input_cols - self.pad_left - self.content_cols
        return self.pad_top, bottom, self.pad_left, right

    def source_to_input(self, row: float, col: float) -> tuple[float, float]:
        """Continuous source coordinates -> continuous input coordinates."""
        return (
            self.pad_top + (row - self.crop_top) * self.scale_y,
            self.pad_left + (col - self.crop_left) * self.scale_x,
        )

    def input_to_source(self, y: float, x: float) -> tuple[float, float]:
        """Continuous input coordinates -> continuous source coordinates."""
        return (
            self.crop_top + (y - self.pad_top) / self.scale_y,
            self.crop_left + (x - self.pad_left) / self.scale_x,
        )

    def to_source_grid(self, heatmap: np.ndarray | torch.Tensor, fill: float = 0.0) -> np.ndarray:
        """Map a 2-D map on the input grid back onto the source pixel grid (float32 rows x cols).

        A map of another resolution that covers the whole input (e.g. a 7 x 7 Grad-CAM map) is first
        upsampled bilinearly to the input grid. The padding is then removed and the content resized
        back to the source region it came from; source pixels the model never saw (outside a centre
        crop) get ``fill``.
        """
        t = torch.as_tensor(np.asarray(heatmap) if not isinstance(heatmap, torch.Tensor) else heatmap)
        t = t.detach().to("cpu", torch.float32)
        if t.ndim != 2:
            t = t.squeeze()
        if t.ndim != 2:
            raise ValueError(f"expected a 2-D map, got shape {tuple(heatmap.shape)}")
        t = t[None, None]
        if tuple(t.shape[-2:]) != (self.input_rows, self.input_cols):
            t = F.interpolate(
                t, size=(self.input_rows, self.input_cols), mode="bilinear", align_corners=False
            )
        content = t[
            ...,
            self.pad_top : self.pad_top + self.content_rows,
            self.pad_left : self.pad_left + self.content_cols,
        ]
        region = _resize(content, self.crop_rows, self.crop_cols, "bilinear")[0, 0]
        if (self.crop_rows, self.crop_cols) == (self.source_rows, self.source_cols):
            return np.ascontiguousarray(region.numpy(), dtype=np.float32)
        out = np.full((self.source_rows, self.source_cols), fill, dtype=np.float32)
        out[
            self.crop_top : self.crop_top + self.crop_rows, self.crop_left : self.crop_left + self.crop_cols
        ] = region.numpy()
        return out


@dataclass(frozen=True)
class InputSpec:
    """The parts of a manifest that define the network input."""

    size: int
    channels: int
    normalisation: Any  # dict(mean, std) or "xrv"
    derivation: InputDerivation

    @classmethod
    def of(cls, manifest: Any) -> InputSpec:
        derivation = getattr(manifest, "input_derivation", None) or InputDerivation()
        if isinstance(derivation, dict):
            derivation = InputDerivation.from_dict(derivation)
        return cls(int(manifest.input_size), int(manifest.channels), manifest.normalisation, derivation)


# --------------------------------------------------------------------------- derivation


def _check_frame(image: XRayImage, frame: int) -> None:
    if not 0 <= frame < image.n_frames:
        raise ImagingError(f"Frame {frame + 1} does not exist: the image has {image.n_frames} frame(s).")


def xrv_unit_image(image: XRayImage, frame: int = 0, voi_lut: bool = False) -> np.ndarray:
    """TorchXRayVision's grey levels in [0, 1] (HxW float32): ``(v + 1024) / 2048`` of xrv's values.

    ``xrv.utils.load_image``: PNG/JPEG divided by 255 (the first channel of a colour image);
    ``read_xray_dcm``: the stored values divided by ``2**BitsStored - 1``, no modality LUT, no VOI
    unless ``voi_lut`` (then pydicom's default VOI, rescaled to the stored range), MONOCHROME1 inverted
    (``max - v``). Values outside the range (xrv raises) are clipped.
    """
    _check_frame(image, frame)
    values = image.frames[frame]
    if image.is_color:
        values = values[..., 0]
    bits = int(image.meta.bits_stored or 8)
    if voi_lut and image.meta.kind == "dicom":
        out = voi_to_unit(modality_values(image, frame), default_voi(image, frame))
    else:
        out = values.astype(np.float32) / np.float32(2**bits - 1)
    if image.meta.photometric == "MONOCHROME1":
        out = np.float32(1.0) - out
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def unit_image(image: XRayImage, frame: int = 0, derivation: InputDerivation | None = None) -> np.ndarray:
    """The frame in [0, 1] as the derivation says: HxW float32 for grey, HxWx3 for colour (no resize)."""
    _check_frame(image, frame)
    d = derivation or InputDerivation()
    if d.pixels == "xrv":
        return xrv_unit_image(image, frame, voi_lut=d.voi == "default")
    if image.is_color:
        return to_unit(image, frame)
    values = modality_values(image, frame) if d.modality_lut else image.frames[frame]
    if d.voi == "default":
        voi = default_voi(image, frame) if d.modality_lut else auto_window(values)
    elif d.voi == "auto":
        voi = auto_window(values)
    else:  # "none": min-max
        lo, hi = float(np.min(values)), float(np.max(values))
        voi = Window((lo + hi) / 2.0, max(hi - lo, 1e-6), "LINEAR_EXACT", "min-max")
    out = voi_to_unit(values, voi)
    if d.invert_monochrome1 and image.meta.inverted:
        out = np.float32(1.0) - out
    return np.asarray(out, dtype=np.float32)


def _to_channels(unit: np.ndarray, channels: int) -> np.ndarray:
    """HxW or HxWx3 in [0, 1] -> CxHxW with the model's number of channels."""
    if unit.ndim == 3:
        if channels == 1:
            grey = unit[..., 0] * LUMA[0] + unit[..., 1] * LUMA[1] + unit[..., 2] * LUMA[2]
            return grey[None].astype(np.float32)
        return np.ascontiguousarray(unit.transpose(2, 0, 1), dtype=np.float32)
    return np.repeat(unit[None], channels, axis=0).astype(np.float32, copy=False)


def _gaussian_1d(t: torch.Tensor, sigma: float, dim: int, fill: float) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter1d (truncate 4, mode "constant" with ``fill``) along ``dim``."""
    radius = int(4.0 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(t.dtype)
    n, c = t.shape[:2]
    if dim == -2:
        padded = F.pad(t, (0, 0, radius, radius), value=fill)
        weight = kernel.view(1, 1, -1, 1)
    else:
        padded = F.pad(t, (radius, radius, 0, 0), value=fill)
        weight = kernel.view(1, 1, 1, -1)
    out = F.conv2d(padded.reshape(n * c, 1, *padded.shape[-2:]), weight)
    return out.reshape(n, c, *out.shape[-2:])


def _xrv_resize(t: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """skimage.transform.resize(mode="constant", preserve_range=True), as xrv's XRayResizer calls it.

    Works on [0, 1] values whose xrv value is ``(2 x - 1) * 1024``: skimage's zero padding in xrv's
    range is 0.5 here. Anti-aliasing (when any side shrinks): a Gaussian with sigma = (factor - 1) / 2
    per axis; then linear interpolation on centre-aligned coordinates.
    """
    in_rows, in_cols = t.shape[-2:]
    if (rows, cols) == (in_rows, in_cols):
        return t
    t = t.to(torch.float64)
    if rows < in_rows or cols < in_cols:
        for dim, factor in ((-2, in_rows / rows), (-1, in_cols / cols)):
            sigma = max(0.0, (factor - 1.0) / 2.0)
            if sigma > 0:
                t = _gaussian_1d(t, sigma, dim, 0.5)
    out = F.interpolate(t, size=(rows, cols), mode="bilinear", align_corners=False)
    return out.to(torch.float32)


def _resize(t: torch.Tensor, rows: int, cols: int, mode: str) -> torch.Tensor:
    if tuple(t.shape[-2:]) == (rows, cols):
        return t
    if mode == "xrv":
        return _xrv_resize(t, rows, cols)
    if mode == "nearest":
        return F.interpolate(t, size=(rows, cols), mode="nearest-exact")
    if mode == "area":
        return F.interpolate(t, size=(rows, cols), mode="area")
    return F.interpolate(t, size=(rows, cols), mode="bilinear", align_corners=False, antialias=True)


def equalize_histogram(t: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """skimage.exposure.equalize_hist per channel of an NxCxHxW tensor in [0, 1].

    Each channel's values go through its own cumulative histogram (``bins`` bins between the
    channel's minimum and maximum, evaluated by linear interpolation between the bin centres), so
    the output's grey levels are spread evenly over [0, 1] whatever the exposure. A constant
    channel is returned unchanged.
    """
    out = torch.empty_like(t)
    flat = t.reshape(-1, *t.shape[-2:])
    res = out.reshape(-1, *t.shape[-2:])
    for i, ch in enumerate(flat):
        lo, hi = float(ch.min()), float(ch.max())
        if not hi > lo:
            res[i] = ch
            continue
        c = ch.to(torch.float64)
        hist = torch.histc(c, bins=bins, min=lo, max=hi)
        cdf = torch.cumsum(hist, 0) / hist.sum()
        width = (hi - lo) / bins
        centres = lo + width * (torch.arange(bins, dtype=torch.float64) + 0.5)
        # np.interp(x, centres, cdf): clamp outside, linear between neighbouring centres
        pos = ((c - centres[0]) / width).clamp(0.0, bins - 1.0)
        k = pos.floor().long().clamp(max=bins - 2)
        frac = pos - k
        res[i] = (cdf[k] * (1.0 - frac) + cdf[k + 1] * frac).to(t.dtype)
    return out


def geometry_for(rows: int, cols: int, size: int, mode: str = "squash") -> InputGeometry:
    """The geometry of resizing a ``rows x cols`` image into a ``size x size`` input."""
    if rows < 1 or cols < 1:
        raise ImagingError("The image is empty (no rows or columns).")
    crop_top = crop_left = pad_top = pad_left = 0
    crop_rows, crop_cols = rows, cols
    content_rows = content_cols = size
    if mode == "letterbox":
        s = min(size / rows, size / cols)
        content_rows = min(size, max(1, round(rows * s)))
        content_cols = min(size, max(1, round(cols * s)))
        pad_top, pad_left = (size - content_rows) // 2, (size - content_cols) // 2
    elif mode == "center_crop":
        side = min(rows, cols)
        # TorchXRayVision's XRayCenterCrop offset (differs from (n - side) // 2 when n is even and
        # side odd)
        crop_top, crop_left = rows // 2 - side // 2, cols // 2 - side // 2
        crop_rows = crop_cols = side
    elif mode != "squash":
        raise ImagingError(f"Unknown resize mode '{mode}'.")
    return InputGeometry(
        rows, cols, size, size, crop_top, crop_left, crop_rows, crop_cols,
        pad_top, pad_left, content_rows, content_cols, mode,
    )  # fmt: skip


def derive(image: XRayImage, frame: int, manifest: Any) -> tuple[np.ndarray, InputGeometry]:
    """The model input before normalisation: CxHxW float32 in [0, 1] (padding is 0), and geometry.

    Training applies its augmentations to this, then :func:`normalise`.
    """
    spec = InputSpec.of(manifest)
    unit = unit_image(image, frame, spec.derivation)
    chw = _to_channels(unit, spec.channels)
    rows, cols = chw.shape[-2:]
    g = geometry_for(rows, cols, spec.size, spec.derivation.resize)
    t = torch.from_numpy(chw)[
        None, :, g.crop_top : g.crop_top + g.crop_rows, g.crop_left : g.crop_left + g.crop_cols
    ]
    content = _resize(t, g.content_rows, g.content_cols, spec.derivation.interpolation)
    if spec.derivation.equalize == "histogram":
        content = equalize_histogram(content.clamp(0.0, 1.0))
    if (g.content_rows, g.content_cols) != (g.input_rows, g.input_cols):
        top, bottom, left, right = g.padding
        content = F.pad(content, (left, right, top, bottom), value=0.0)
    out = content[0].clamp_(0.0, 1.0).numpy()
    return np.ascontiguousarray(out, dtype=np.float32), g


def normalise(chw: np.ndarray | torch.Tensor, manifest: Any) -> np.ndarray:
    """Apply the manifest's normalisation to a [0, 1] CxHxW (or NxCxHxW) array."""
    t = torch.as_tensor(chw, dtype=torch.float32)
    return normalise_tensor(t, InputSpec.of(manifest).normalisation).numpy().astype(np.float32, copy=False)


def prepare(image: XRayImage, frame: int, manifest: Any) -> tuple[np.ndarray, InputGeometry]:
    """The network input for one frame (CxHxW float32, normalised) and its geometry."""
    unit, geometry = derive(image, frame, manifest)
    return normalise(unit, manifest), geometry


__all__ = [
    "InputGeometry",
    "InputSpec",
    "derive",
    "equalize_histogram",
    "geometry_for",
    "normalise",
    "prepare",
    "unit_image",
    "xrv_unit_image",
]
