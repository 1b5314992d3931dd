"""Issue 10 item 8, the viewer-side smalls: the error dialog's bullets, measurement labels inside
the view, the heatmap legend, the tool bar."""

from __future__ import annotations

import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.dialogs import format_problems, show_message

LONG = "1.2.840.113619.2.55.3.604688119.969.1268071029.320.1.2.840.113619.2.55.3.6046881.dcm"


def laid_out_lines(label: QtWidgets.QLabel) -> list[str]:
    """The lines a word-wrapping label shows at its width (Qt's own text layout)."""
    out = []
    for paragraph in label.text().split("\n"):
        layout = QtGui.QTextLayout(paragraph, label.font())
        option = QtGui.QTextOption()
        option.setWrapMode(QtGui.QTextOption.WrapMode.WordWrap)
        layout.setTextOption(option)
        layout.beginLayout()
        while True:
            line = layout.createLine()
            if not line.isValid():
                break
            line.setLineWidth(label.width())
            out.append(paragraph[line.textStart() : line.textStart() + line.textLength()])
        layout.endLayout()
    return out


def test_a_bullet_is_never_alone_on_its_line(qtbot):
    details = format_problems([(LONG, f"{LONG} is damaged and cannot be read as DICOM."), ("b", "b.png is empty.")])
    box = show_message(None, "CXR Studio", "2 files could not be opened", details)
    qtbot.addWidget(box)
    qtbot.waitExposed(box)
    label = next(w for w in box.findChildren(QtWidgets.QLabel) if "damaged" in w.text())
    lines = laid_out_lines(label)
    assert len(lines) >= 2
    assert all(line.strip() not in ("•", "") for line in lines), lines
    box.close()


@pytest.fixture
def viewer(qtbot):
    from app.viewer import ImageViewer

    v = ImageViewer()
    qtbot.addWidget(v)
    v.resize(600, 500)
    v.show()
    qtbot.waitExposed(v)
    return v


def _label_rects(v) -> list[tuple[QtCore.QRectF, QtCore.QRectF]]:
    """(label rect, view rect) in viewport pixels for each measurement label."""
    canvas = v.findChild(QtWidgets.QGraphicsView)
    view = QtCore.QRectF(canvas.viewport().rect())
    layer = v.measurement_layer()
    out = []
    for g in layer.graphics_items():
        if isinstance(g, QtWidgets.QGraphicsItem) and g.__class__.__name__ == "TextItem":
            out.append((canvas.viewportTransform().mapRect(g.sceneBoundingRect()), view))
    return out


@pytest.mark.parametrize("corner", [(598, 398), (2, 2), (598, 2)])
def test_measurement_labels_stay_inside_the_view(qtbot, viewer, corner):
    from tests.test_viewer import synthetic

    viewer.set_image(synthetic(rows=400, cols=600))
    qtbot.wait(20)
    layer = viewer.measurement_layer()
    layer.begin("distance", (300, 200))
    layer.drag_to(corner)
    layer.finish()
    layer.begin("rect", (500, 300))
    layer.drag_to((599, 399))
    layer.finish()
    qtbot.wait(20)
    rects = _label_rects(viewer)
    assert len(rects) == 2
    for label, view in rects:
        assert view.contains(label), (label, view)
    viewer.zoom_by(1.6)  # zoomed in: labels whose point is still shown follow the view's edges
    qtbot.wait(20)
    canvas = viewer.findChild(QtWidgets.QGraphicsView)
    for (label, view), m in zip(_label_rects(viewer), layer.measurements(), strict=True):
        x, y = m.points[-1] if m.kind == "distance" else (max(p[0] for p in m.points), max(p[1] for p in m.points))
        anchor = canvas.viewportTransform().map(viewer.image_group().mapToScene(QtCore.QPointF(x, y)))
        if view.contains(anchor):
            assert view.contains(label), (label, view)


def test_heatmap_legend_is_drawn_and_follows_the_heatmap_layer(qtbot, viewer):
    import numpy as np

    from app.analysis.heatmap import HeatmapLayer, lookup_table
    from app.viewer.legend import Legend
    from tests.test_viewer import synthetic

    viewer.set_image(synthetic(rows=400, cols=600))
    ramp = np.zeros((256, 3), np.uint8)
    ramp[:, 1] = np.arange(256)  # black to green
    viewer.set_legend(Legend(ramp, low="weak", high="strong", title="Grad-CAM"))
    qtbot.wait(20)
    legend = viewer.findChild(QtWidgets.QWidget, "viewerLegend")
    assert legend.isVisible()
    shot = viewer.grab_view(with_overlays=True)
    g = legend.geometry()
    greens = [shot.pixelColor(x, y).green() for x in range(g.left(), g.right()) for y in range(g.top(), g.bottom())
              if shot.pixelColor(x, y).red() < 30 and shot.pixelColor(x, y).blue() < 30]
    assert max(greens) > 230 and min(greens) < 40  # the whole ramp is on screen
    viewer.set_legend(None)
    assert not legend.isVisible()

    class FakeHeatmap:
        values = np.linspace(0, 1, 400 * 600, dtype=np.float32).reshape(400, 600)

    layer = HeatmapLayer(viewer)
    layer.set_heatmap(FakeHeatmap())
    shown = viewer.legend()
    assert shown is not None and np.array_equal(shown.ramp[-1], lookup_table("inferno")[255, :3])
    layer.clear()
    assert viewer.legend() is None
