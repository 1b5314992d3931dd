"""The heatmap layer over the viewer's image, and its controls.

:class:`HeatmapLayer` is one pyqtgraph ``ImageItem`` (row-major, in image pixel coordinates) added to
the viewer with ``add_overlay_layer``, so it follows the image through zoom, pan, rotation and flip.
The heatmap values (``ml.explain.Heatmap.values``: rows x cols of the *source* image, in [0, 1]) are
coloured with a colour map; values below the threshold are transparent; opacity is the item's.
:func:`colour_heatmap` does the colouring for the layer and for the report alike.

:class:`HeatmapControls` is the form: method (Grad-CAM, occlusion with window, stride and coarse-to-fine), target
label, colour map, opacity, threshold, show/hide, the colour scale (:func:`legend_image`: weak to
strongest evidence, the hidden part below the threshold greyed) and the Explain button.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QWidget,
)

from app.viewer.legend import Legend
from ml.explain import METHOD_LABELS
from ml.imaging.overlay import blend_rgba, heatmap_rgba

COLOUR_MAPS = ("inferno", "turbo", "viridis", "plasma", "magma")
# the finer methods of ml.explain (issue 14) follow; "default" is the architecture's benchmarked choice
METHODS = (
    ("gradcam", "Grad-CAM"), ("occlusion", "Occlusion"), ("default", "Default for this model (benchmarked)"),
    ("layercam", "LayerCAM"), ("hirescam", "HiResCAM"), ("gradcampp", "Grad-CAM++"),
    ("layerig", "Integrated gradients"),
)  # fmt: skip
TOP_LABEL = ""  # target choice meaning "the model's top label"
LAYER_METHODS = ("gradcam", "hirescam", "gradcampp", "layercam", "layerig", "default")  # take a layer


@lru_cache(maxsize=16)
def lookup_table(name: str) -> np.ndarray:
    """256 x 4 uint8 RGBA colours of a pyqtgraph colour map."""
    return np.ascontiguousarray(
        pg.colormap.get(name).getLookupTable(0.0, 1.0, 256, alpha=True), dtype=np.uint8
    )


def colour_heatmap(values: np.ndarray, colour_map: str = "inferno", threshold: float = 0.0) -> np.ndarray:
    """rows x cols x 4 uint8 RGBA of a pyqtgraph colour map, by the shared rule of
    ``ml.imaging.overlay`` (alpha = sqrt(value), transparent below ``threshold``)."""
    return heatmap_rgba(values, lookup_table(colour_map), threshold)


LEGEND_HIDDEN = (225, 225, 225)  # the part of the colour scale below the threshold (not drawn)


def legend_image(colour_map: str, threshold: float = 0.0, width: int = 256, height: int = 12) -> np.ndarray:
    """The colour scale as height x width x 3 uint8: weak evidence left, the strongest in the image
    right; values below ``threshold`` are not drawn over the image, so that part is grey."""
    values = np.linspace(0.0, 1.0, width)
    rgb = lookup_table(colour_map)[np.round(values * 255).astype(int), :3].copy()
    rgb[values < threshold] = LEGEND_HIDDEN
    return np.ascontiguousarray(np.repeat(rgb[None], height, axis=0))


blend = blend_rgba  # alpha-blend an RGBA overlay onto an 8-bit RGB image (ml.imaging.overlay)


@dataclass
class HeatmapStyle:
    colour_map: str = "inferno"
    opacity: float = 0.45
    threshold: float = 0.2
    visible: bool = True


class HeatmapLayer:
    """The heatmap overlay in the viewer (one ``ImageItem`` that follows the image's geometry)."""

    NAME = "Heatmap"

    def __init__(self, viewer: Any, style: HeatmapStyle | None = None) -> None:
        self.viewer = viewer
        self.style = style or HeatmapStyle()
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setObjectName("heatmapItem")
        self.item.setZValue(50)
        self.item.setVisible(False)
        self.heatmap: Any = None  # ml.explain.Heatmap currently shown
        self._added = False

    def _ensure_added(self) -> None:
        if not self._added:
            self.viewer.add_overlay_layer(self.item, self.NAME)
            self._added = True

    def set_heatmap(self, heatmap: Any) -> None:
        """Show ``heatmap`` (its values are on the source image's pixel grid)."""
        self.heatmap = heatmap
        self._ensure_added()
        self._redraw()

    def clear(self) -> None:
        self.heatmap = None
        self.item.clear()
        self.item.setVisible(False)
        self._update_legend()

    def _update_legend(self) -> None:
        """The colour scale in the viewer's legend overlay while a heatmap is shown."""
        set_legend = getattr(self.viewer, "set_legend", None)
        if set_legend is None:
            return
        if self.heatmap is None or not self.style.visible:
            set_legend(None)
            return
        ramp = legend_image(self.style.colour_map, self.style.threshold, width=256, height=1)[0]
        method = getattr(self.heatmap, "method", "") or ""
        title = METHOD_LABELS.get(method, method) or "Heatmap"
        set_legend(Legend(ramp, low="weak", high="strongest", title=title))

    def set_style(self, style: HeatmapStyle) -> None:
        recolour = (style.colour_map, style.threshold) != (self.style.colour_map, self.style.threshold)
        self.style = style
        if recolour:
            self._redraw()
        else:
            self.item.setOpacity(style.opacity)
            self.item.setVisible(style.visible and self.heatmap is not None)
            self._update_legend()

    def _redraw(self) -> None:
        if self.heatmap is None:
            self.item.setVisible(False)
            return
        rgba = colour_heatmap(self.heatmap.values, self.style.colour_map, self.style.threshold)
        self.item.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.item.setRect(0, 0, rgba.shape[1], rgba.shape[0])  # one heatmap value per image pixel
        self.item.setOpacity(self.style.opacity)
        self.item.setVisible(self.style.visible)
        self._update_legend()

    @property
    def shape(self) -> tuple[int, int] | None:
        """rows x cols of the heatmap shown (None when none is)."""
        return None if self.heatmap is None else tuple(self.heatmap.values.shape[:2])

    def is_shown(self) -> bool:
        return self.heatmap is not None and self.item.isVisible()


def _slider(value: int) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, 100)
    slider.setValue(value)
    slider.setSingleStep(5)
    return slider


class HeatmapControls(QWidget):
    """Method, target and display settings for the heatmap; ``explainRequested`` starts a run."""

    explainRequested = Signal()
    styleChanged = Signal(object)  # HeatmapStyle

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.method = QComboBox(objectName="heatmapMethod")
        for key, text in METHODS:
            self.method.addItem(text, key)
        self.window = QSpinBox(objectName="occlusionWindow", suffix=" px", minimum=1, maximum=512)
        self.stride = QSpinBox(objectName="occlusionStride", suffix=" px", minimum=1, maximum=512)
        self.window.setToolTip("Occlusion patch size on the model input (0 = the default for the model)")
        self.stride.setToolTip("Step between occlusion patches on the model input")
        self.window.setValue(32)
        self.stride.setValue(16)
        self.coarse_first = QCheckBox("coarse first", objectName="occlusionCoarseToFine")
        self.coarse_first.setToolTip("Coarse-to-fine: a coarse grid first (shown at once), then the fine grid "
                                     "only where the coarse map is in its top 25% (fewer forward passes; "
                                     "exact there, coarse elsewhere)")  # fmt: skip
        self.occlusion_row = QWidget()
        row = QHBoxLayout(self.occlusion_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("window"))
        row.addWidget(self.window)
        row.addWidget(QLabel("stride"))
        row.addWidget(self.stride)
        row.addWidget(self.coarse_first)
        self.layer = QLineEdit(objectName="heatmapLayer")
        self.layer.setPlaceholderText("the model's default")
        self.layer.setToolTip("Layer(s) the CAM methods explain: dotted module paths, comma-separated (e.g. "
                              "layer2,layer3 fuses two blocks); empty: the architecture's benchmarked default")  # fmt: skip
        self.target = QComboBox(objectName="heatmapTarget")
        self.target.addItem("Top label", TOP_LABEL)
        self.colour_map = QComboBox(objectName="heatmapColourMap")
        self.colour_map.addItems(list(COLOUR_MAPS))
        self.opacity = _slider(45)
        self.opacity.setObjectName("heatmapOpacity")
        self.threshold = _slider(20)
        self.threshold.setObjectName("heatmapThreshold")
        self.threshold.setToolTip("Hide heatmap values below this fraction of the maximum")
        self.opacity_label = QLabel()
        self.threshold_label = QLabel()
        self.show_box = QCheckBox("Show heatmap", objectName="heatmapVisible")
        self.show_box.setChecked(True)
        self.explain_button = QPushButton("Explain", objectName="explainButton")
        self.explain_button.setToolTip("Compute a heatmap of where the model looked on the current image")

        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Method", self.method)
        form.addRow("", self.occlusion_row)
        self.layer_label = QLabel("Layer")
        form.addRow(self.layer_label, self.layer)
        form.addRow("Target", self.target)
        form.addRow("Colours", self.colour_map)
        self.legend = QLabel(objectName="heatmapLegend")
        self.legend.setToolTip("Colour scale: weak evidence (left) to the strongest in this image (right); "
                               "the grey part is below the threshold and not drawn")  # fmt: skip
        scale = QHBoxLayout()
        scale.addWidget(QLabel("weak"))
        scale.addWidget(self.legend, 1)
        scale.addWidget(QLabel("strongest"))
        form.addRow("Scale", scale)
        form.addRow(self.opacity_label, self.opacity)
        form.addRow(self.threshold_label, self.threshold)
        buttons = QHBoxLayout()
        buttons.addWidget(self.show_box)
        buttons.addStretch(1)
        buttons.addWidget(self.explain_button)
        form.addRow(buttons)

        self.method.currentIndexChanged.connect(self._method_changed)
        self.explain_button.clicked.connect(self.explainRequested)
        for signal in (
            self.colour_map.currentIndexChanged,
            self.opacity.valueChanged,
            self.threshold.valueChanged,
            self.show_box.toggled,
        ):
            signal.connect(self._emit_style)
        self._method_changed()
        self._update_labels()

    # -- state -------------------------------------------------------------------------------------
    def set_labels(self, labels: list[str]) -> None:
        current = self.target_label()
        self.target.blockSignals(True)
        self.target.clear()
        self.target.addItem("Top label", TOP_LABEL)
        for label in labels:
            self.target.addItem(label, label)
        i = self.target.findData(current)
        self.target.setCurrentIndex(max(0, i))
        self.target.blockSignals(False)

    def set_defaults_for_input(self, input_size: int) -> None:
        """Occlusion defaults: 32 px window, 16 px stride at 224 px, scaled with the model input."""
        self.window.setMaximum(input_size)
        self.stride.setMaximum(input_size)
        self.window.setValue(max(1, round(32 * input_size / 224)))
        self.stride.setValue(max(1, round(16 * input_size / 224)))

    def set_flagged(self, methods: tuple[str, ...]) -> None:
        """Mark the methods that failed the randomisation check on this model (they explain the image,
        not the model) in the picker."""
        for i, (key, text) in enumerate(METHODS):
            self.method.setItemText(i, f"{text} — fails the sanity check" if key in methods else text)

    def method_key(self) -> str:
        return str(self.method.currentData())

    def target_label(self) -> str | None:
        """The chosen label, or None for the model's top label."""
        value = self.target.currentData()
        return value or None

    def options(self) -> dict[str, Any]:
        if self.method_key() == "occlusion":
            mode = "coarse-to-fine" if self.coarse_first.isChecked() else "full"
            return {"window": self.window.value(), "stride": min(self.stride.value(), self.window.value()),
                    "mode": mode}  # fmt: skip
        layer = self.layer.text().strip()
        return {"layer": layer} if layer and self.method_key() in LAYER_METHODS else {}

    def style(self) -> HeatmapStyle:
        return HeatmapStyle(
            colour_map=self.colour_map.currentText(),
            opacity=self.opacity.value() / 100.0,
            threshold=self.threshold.value() / 100.0,
            visible=self.show_box.isChecked(),
        )

    def _method_changed(self, *_args: Any) -> None:
        self.occlusion_row.setVisible(self.method_key() == "occlusion")
        self.layer.setVisible(self.method_key() in LAYER_METHODS)
        self.layer_label.setVisible(self.method_key() in LAYER_METHODS)

    def _update_labels(self) -> None:
        self.opacity_label.setText(f"Opacity {self.opacity.value()}%")
        self.threshold_label.setText(f"Hide below {self.threshold.value()}%")
        rgb = legend_image(self.colour_map.currentText(), self.threshold.value() / 100.0, 160, 12)
        image = QImage(rgb.data, rgb.shape[1], rgb.shape[0], 3 * rgb.shape[1], QImage.Format.Format_RGB888)
        self.legend.setPixmap(QPixmap.fromImage(image.copy()))

    def _emit_style(self, *_args: Any) -> None:
        self._update_labels()
        self.styleChanged.emit(self.style())


__all__ = [
    "COLOUR_MAPS",
    "HeatmapControls",
    "HeatmapLayer",
    "HeatmapStyle",
    "blend",
    "colour_heatmap",
    "legend_image",
    "lookup_table",
]
