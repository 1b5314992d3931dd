"""The image view: pyqtgraph wrapped once (image, window/level, zoom, overlays, measurements)."""

from app.viewer.measure import Measurement
from app.viewer.view import ImageViewer

__all__ = ["ImageViewer", "Measurement"]
