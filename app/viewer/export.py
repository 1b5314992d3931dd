"""Export of the current view as PNG (a mixin of ImageViewer); written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
