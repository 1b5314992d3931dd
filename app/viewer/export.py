"""Export of the current view as PNG (a mixin of ImageViewer); written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtGui, QtWidgets

from app.viewer.measurements import MeasurementLayer
from ml.errors import ImagingError
from ml.fileio import follow_umask
from ml.imaging.image import XRayImage


class ExportMixin:
    _image: XRayImage | None
    _canvas: pg.GraphicsView
    _magnifier: QtWidgets.QWidget
    _corner: QtWidgets.QWidget
    _legend: QtWidgets.QWidget
    _layer: MeasurementLayer
    _overlays: dict[str, pg.GraphicsObject]

    def grab_view(self, with_overlays: bool = True) -> QtGui.QImage:
        """The current view as an image; without overlays: the displayed image only."""
        hidden: list = [self._magnifier]
        if not with_overlays:
            hidden += [self._corner, self._legend, *self._layer.graphics_items(), *self._overlays.values()]
        visible = [h.isVisible() for h in hidden]
        for h in hidden:
            h.setVisible(False)
        try:
            return self._canvas.viewport().grab().toImage()
        finally:
            for h, was in zip(hidden, visible, strict=True):
                h.setVisible(was)

    def burned_in(self) -> np.ndarray:
        """The current frame at full resolution as displayed (window, inversion), with the visible
        image-sized overlay layers (heatmaps) blended in: rows x cols x 3 uint8."""
        from ml.imaging.overlay import blend_rgba

        pipe = getattr(self, "_pipeline", None)
        if self._image is None or pipe is None:
            raise ImagingError("There is no image to capture.")
        rows, cols = self._image.shape
        base = np.asarray(pipe.rendered(0, 0, cols, rows, getattr(self, "_lut", None)))
        base = np.ascontiguousarray(base[..., :3] if base.ndim == 3 else np.repeat(base[..., None], 3, axis=2),
                                    dtype=np.uint8)
        for item in self._overlays.values():
            picture = getattr(item, "image", None)
            if isinstance(item, pg.ImageItem) and item.isVisible() and picture is not None \
                    and picture.shape[:2] == (rows, cols) and picture.ndim == 3 and picture.shape[2] == 4:
                base = blend_rgba(base, np.asarray(picture, np.uint8), item.opacity())
        return base

    def export_png(self, path: str | os.PathLike[str], with_overlays: bool = True) -> None:
        """Write the current view to ``path`` as PNG, atomically (temporary file, then rename)."""
        if self._image is None:
            raise ImagingError("There is no image to export.")
        image = self.grab_view(with_overlays)
        target = Path(path)
        tmp = ""
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            if not image.save(tmp, "PNG"):
                raise ImagingError(f"Could not write the PNG file {target}.")
            follow_umask(tmp)
            os.replace(tmp, target)
        except OSError as err:
            raise ImagingError(f"Could not write the PNG file {target}: {err.strerror or err}.") from err
        finally:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
