"""Augmentation preview: one training image as the network would see it, augmented several times."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QGridLayout, QLabel, QVBoxLayout, QWidget

from app.workers import Job

N_SAMPLES = 8


def augmented_samples(
    config: Any, path: str, labels: list[str], task: str, n: int = N_SAMPLES
) -> list[np.ndarray]:
    """The derived input of ``path`` (first) and ``n`` augmentations of it, as HxW uint8 arrays."""
    from ml.lazy import ensure_torch

    torch = ensure_torch()  # a worker thread: the first torch import is serialised

    from ml.imaging.read import read_image
    from ml.inference.preprocess import derive
    from ml.training.build import make_manifest
    from ml.training.transforms import augment, build_train_transform

    manifest = make_manifest(config, labels, task, "preview")
    image = read_image(path)
    chw, _ = derive(image, 0, manifest)
    x = torch.from_numpy(chw)
    transform = build_train_transform(config.augment)
    out = [x]
    out += [augment(transform, x, config.seed, epoch, 0) for epoch in range(n)]
    return [np.ascontiguousarray((t[0].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)) for t in out]


def _pixmap(arr: np.ndarray, size: int) -> QPixmap:
    h, w = arr.shape
    img = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_Grayscale8).copy()
    return QPixmap.fromImage(img).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation)  # fmt: skip


class AugmentPreview(QDialog):
    """A non-modal grid: the network input without augmentation, then augmented versions."""

    def __init__(self, parent: QWidget | None = None, size: int = 150) -> None:
        super().__init__(parent)
        self.setWindowTitle("Augmentation preview")
        self.size_px = size
        self.info = QLabel("Preparing the preview…")
        self.info.setWordWrap(True)
        self.grid = QGridLayout()
        self.tiles: list[QLabel] = []
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.info)
        layout.addLayout(self.grid)
        layout.addWidget(buttons)
        self.job: Job | None = None

    def start(self, config: Any, path: str, labels: list[str], task: str) -> Job:
        job = Job(lambda _p, _c: augmented_samples(config, path, labels, task), "previewing augmentations")
        job.signals.finished.connect(self.show_samples)
        job.signals.error.connect(lambda msg: self.info.setText(msg))
        self.job = job.start()
        return job

    def show_samples(self, arrays: list[np.ndarray]) -> None:
        for tile in self.tiles:
            tile.deleteLater()
        self.tiles = []
        cols = 3
        for i, arr in enumerate(arrays):
            tile = QLabel()
            tile.setPixmap(_pixmap(arr, self.size_px))
            tile.setToolTip("without augmentation" if i == 0 else f"augmented sample {i}")
            tile.setStyleSheet("border: 2px solid #0072B2;" if i == 0 else "")
            self.grid.addWidget(tile, i // cols, i % cols)
            self.tiles.append(tile)
        self.info.setText(
            "Top left (framed): the network input without augmentation. The others: random augmentations "
            f"as training will apply them ({arrays[0].shape[1]}×{arrays[0].shape[0]} px)."
        )
