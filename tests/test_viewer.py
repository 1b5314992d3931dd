"""The image view on real DICOM files: pixels, window/level, zoom, measurements, export.

Mouse input is simulated with real Qt mouse events sent to the view's viewport.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.viewer import ImageViewer
from app.viewer.measure import region_mask
from ml.imaging import display
from ml.imaging.image import ImageMeta, Window, XRayImage
from ml.imaging.read import read_image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DICOM = DATA / "dicom"
Btn = QtCore.Qt.MouseButton


def _dicom(name: str) -> XRayImage:
    path = DICOM / name
    if not path.is_file():
        pytest.fail(f"shared test data missing: {path} (expected ../shared/data next to the repository)")
    return read_image(path)


@pytest.fixture(scope="module")
def rsna() -> XRayImage:
    return _dicom("rsna_cxr_pa.dcm")


@pytest.fixture
def viewer(qtbot) -> ImageViewer:
    v = ImageViewer()
    qtbot.addWidget(v)
    v.resize(1200, 1100)  # room for a 1024x1024 image at 1:1
    v.show()
    qtbot.waitExposed(v)
    return v


# ----------------------------------------------------------------------------- helpers
def to_array(img: QtGui.QImage) -> np.ndarray:
    img = img.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return a[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def image_to_viewport(v: ImageViewer, x: float, y: float) -> QtCore.QPointF:
    canvas = v.findChild(QtWidgets.QGraphicsView)
    return canvas.viewportTransform().map(v.image_group().mapToScene(QtCore.QPointF(x, y)))


def viewport(v: ImageViewer) -> QtWidgets.QWidget:
    return v.findChild(QtWidgets.QGraphicsView).viewport()


def _send_mouse(widget, kind, pos: QtCore.QPointF, button, buttons) -> None:
    gpos = QtCore.QPointF(widget.mapToGlobal(pos.toPoint()))
    ev = QtGui.QMouseEvent(kind, pos, gpos, button, buttons, QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(widget, ev)


def drag(qtbot, v: ImageViewer, start: QtCore.QPointF, end: QtCore.QPointF, button=Btn.LeftButton, steps=6):
    vp = viewport(v)
    E = QtCore.QEvent.Type
    _send_mouse(vp, E.MouseButtonPress, start, button, button)
    for i in range(1, steps + 1):
        qtbot.wait(15)  # pyqtgraph drops mouse moves closer than 10 ms
        p = start + (end - start) * (i / steps)
        _send_mouse(vp, E.MouseMove, p, Btn.NoButton, button)
    qtbot.wait(15)
    _send_mouse(vp, E.MouseButtonRelease, end, button, Btn.NoButton)
    qtbot.wait(5)


def click(qtbot, v: ImageViewer, pos: QtCore.QPointF):
    vp = viewport(v)
    E = QtCore.QEvent.Type
    _send_mouse(vp, E.MouseButtonPress, pos, Btn.LeftButton, Btn.LeftButton)
    _send_mouse(vp, E.MouseButtonRelease, pos, Btn.LeftButton, Btn.NoButton)
    qtbot.wait(5)


def displayed_region(v: ImageViewer, image: XRayImage) -> tuple[np.ndarray, np.ndarray]:
    """(what the view shows, what display.render gives) over the visible part of the image at 1:1."""
    shot = to_array(v.grab_view(with_overlays=False))
    ref = display.render(image, v.frame(), v.voi(), image.meta.inverted != v.is_inverted())
    o = image_to_viewport(v, 0, 0)
    ox, oy = round(o.x()), round(o.y())
    rows, cols = image.shape
    x0, y0 = max(0, -ox), max(0, -oy)
    w, h = min(cols - x0, shot.shape[1] - (ox + x0)), min(rows - y0, shot.shape[0] - (oy + y0))
    got = shot[oy + y0 : oy + y0 + h, ox + x0 : ox + x0 + w]
    exp = ref[y0 : y0 + h, x0 : x0 + w]
    return (got[..., 0] if exp.ndim == 2 else got), exp


def synthetic(rows=400, cols=600, dot=(150, 100)) -> XRayImage:
    """A dark image with one bright 5x5 dot centred on pixel (x, y) = dot; the left half is brighter."""
    frame = np.full((rows, cols), 200, np.uint16)
    frame[:, : cols // 2] = 400
    x, y = dot
    frame[y - 2 : y + 3, x - 2 : x + 3] = 4000
    meta = ImageMeta(rows=rows, columns=cols, bits_stored=12, bits_allocated=16, modality="DX")
    return XRayImage(meta=meta, frames=frame[None], windows=[Window(2000, 4000)])


# ----------------------------------------------------------------------------- display
def test_display_at_1to1_equals_cxr_render(viewer, rsna):
    viewer.set_image(rsna)
    viewer.zoom_1to1()
    assert viewer.zoom_factor() == pytest.approx(1.0, abs=1e-9)
    got, exp = displayed_region(viewer, rsna)
    assert got.shape == exp.shape == (1024, 1024)  # the whole image is visible
    assert np.abs(got.astype(int) - exp.astype(int)).mean() <= 1.0
    assert np.array_equal(got, exp)  # the lookup-table path is exact


@pytest.mark.parametrize(
    "name",
    [
        "RG3_J2KR.dcm",  # 10 bits stored, MONOCHROME1, window in the file
        "vlut_04.dcm",  # VOI LUT Sequence
        "mlut_18.dcm",  # Modality LUT Sequence
        "JLSL_16_15_1_1F.dcm",  # signed 15-bit
        "parametric_map_float.dcm",  # float pixel data (4096-entry table: within 1 grey level)
    ],
)
def test_display_pipeline_variants_equal_cxr_render(viewer, name):
    image = _dicom(name)
    viewer.set_image(image)
    viewer.zoom_1to1()
    got, exp = displayed_region(viewer, image)
    assert got.size > 0 and got.shape == exp.shape
    diff = np.abs(got.astype(int) - exp.astype(int))
    assert diff.mean() <= 1.0 and diff.max() <= 1


def test_monochrome1_is_shown_inverted(viewer, rsna):
    viewer.set_image(rsna)
    viewer.zoom_1to1()
    plain, _ = displayed_region(viewer, rsna)
    mono1 = _dicom("rsna_cxr_pa_monochrome1.dcm")
    viewer.set_image(mono1)
    viewer.zoom_1to1()
    inverted, exp = displayed_region(viewer, mono1)
    assert np.abs(inverted.astype(int) - (255 - plain.astype(int))).mean() <= 1.0
    assert np.array_equal(inverted, exp)
    viewer.toggle_invert()  # the user can flip it back
    back, _ = displayed_region(viewer, mono1)
    assert np.abs(back.astype(int) - plain.astype(int)).mean() <= 1.0


def test_zoomed_out_view_is_a_faithful_downsample(viewer):
    image = _dicom("RG3_J2KR.dcm")  # 1760x1760, 10 bit, MONOCHROME1, window in the file
    viewer.resize(600, 500)
    QtWidgets.QApplication.processEvents()
    viewer.set_image(image)
    assert viewer.zoom_factor() < 0.5  # fit: a downsampled copy is displayed
    shot = to_array(viewer.grab_view(with_overlays=False))[..., 0].astype(float)
    ref = display.render(image).astype(float)
    rows, cols = image.shape
    ys, xs = np.mgrid[100:400:7, 100:500:7]
    err = []
    for y, x in zip(ys.ravel(), xs.ravel(), strict=True):
        p = viewer.image_group().mapFromScene(
            viewer.findChild(QtWidgets.QGraphicsView).mapToScene(QtCore.QPoint(int(x), int(y)))
        )
        if 4 <= p.x() < cols - 4 and 4 <= p.y() < rows - 4:
            r, c = int(p.y()), int(p.x())
            err.append(abs(shot[y, x] - ref[r - 2 : r + 3, c - 2 : c + 3].mean()))
    assert len(err) > 500
    assert np.mean(err) < 6.0


# ----------------------------------------------------------------------------- window/level, zoom
def test_left_drag_changes_window_in_the_right_direction(qtbot, viewer, rsna):
    viewer.set_image(rsna)
    start = viewer.window()
    changes = []
    viewer.windowChanged.connect(lambda c, w: changes.append((c, w)))
    centre = QtCore.QPointF(viewport(viewer).rect().center())
    drag(qtbot, viewer, centre, centre + QtCore.QPointF(100, 0))  # right: wider window
    after_x = viewer.window()
    assert after_x.width > start.width + 50 * 255 / 512  # 8-bit image: about half a level per pixel
    assert after_x.center == pytest.approx(start.center, abs=1.0)
    drag(qtbot, viewer, centre, centre + QtCore.QPointF(0, 80))  # down: higher centre
    after_y = viewer.window()
    assert after_y.center > after_x.center + 30 * 255 / 512
    assert after_y.width == pytest.approx(after_x.width, abs=1.0)
    assert changes and changes[-1] == pytest.approx((after_y.center, after_y.width))
    assert f"C {after_y.center:.0f}" in " ".join(viewer.corner_text()["bl"])


def test_window_sensitivity_follows_bit_depth(viewer, rsna):
    viewer.set_image(rsna)
    k8 = viewer._handler.wl_sensitivity()
    viewer.set_image(_dicom("RG3_J2KR.dcm"))  # 10 bits stored
    k10 = viewer._handler.wl_sensitivity()
    assert k10 == pytest.approx(4 * k8, rel=0.01)


def test_wheel_zooms_about_the_cursor(qtbot, viewer, rsna):
    viewer.set_image(rsna)
    before = viewer.zoom_factor()
    vp = viewport(viewer)
    pos = QtCore.QPointF(300, 400)
    anchor = viewer.image_group().mapFromScene(
        viewer.findChild(QtWidgets.QGraphicsView).mapToScene(pos.toPoint())
    )

    def wheel(delta):
        ev = QtGui.QWheelEvent(
            pos,
            QtCore.QPointF(vp.mapToGlobal(pos.toPoint())),
            QtCore.QPoint(0, 0),
            QtCore.QPoint(0, delta),
            Btn.NoButton,
            QtCore.Qt.KeyboardModifier.NoModifier,
            QtCore.Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QtWidgets.QApplication.sendEvent(vp, ev)

    wheel(120)
    assert viewer.zoom_factor() == pytest.approx(before * 1.2, rel=0.01)
    moved = image_to_viewport(viewer, anchor.x(), anchor.y())
    assert abs(moved.x() - pos.x()) < 2 and abs(moved.y() - pos.y()) < 2  # the point under the cursor stays
    wheel(-240)
    assert viewer.zoom_factor() == pytest.approx(before / 1.2, rel=0.01)
    viewer.zoom_1to1()
    assert viewer.zoom_factor() == pytest.approx(1.0)
    viewer.zoom_fit()
    assert viewer.zoom_factor() == pytest.approx(before, rel=0.01)


def test_presets_auto_window_and_reset(viewer):
    image = _dicom("RG3_J2KR.dcm")
    viewer.set_image(image)
    assert (viewer.window().center, viewer.window().width) == (550, 1024)  # the file's window
    assert viewer.apply_preset("Lung") and viewer.window().explanation == "Lung"
    lung = viewer.window()
    assert viewer.apply_preset("Bone") and viewer.window() != lung
    assert not viewer.apply_preset(5)  # the file has one preset only
    viewer.auto_window()
    assert viewer.window().explanation == "automatic"
    viewer.rotate90()
    viewer.toggle_invert()
    viewer.reset_view()
    assert (viewer.window().center, viewer.window().width) == (550, 1024)
    assert viewer.orientation().isIdentity() and not viewer.is_inverted()


# ----------------------------------------------------------------------------- measurements
def test_distance_in_mm_with_the_calibration_source(qtbot, viewer, rsna):
    viewer.set_image(rsna, key="rsna")
    viewer.zoom_1to1()
    viewer.set_tool("distance")
    drag(qtbot, viewer, image_to_viewport(viewer, 200, 500), image_to_viewport(viewer, 700, 500))
    (m,) = viewer.measurements()
    assert m.kind == "distance"
    assert m.numbers["px"] == pytest.approx(500, abs=1.0)
    assert m.numbers["mm"] == pytest.approx(84.0, abs=0.5)  # 0.168 mm pixels
    assert m.value.endswith("mm (PixelSpacing)")


def test_distance_in_pixels_when_uncalibrated(qtbot, viewer):
    image = _dicom("RG3_J2KR.dcm")
    assert image.meta.pixel_spacing is None
    viewer.resize(700, 600)
    QtWidgets.QApplication.processEvents()
    viewer.set_image(image)
    viewer.set_tool("distance")
    drag(qtbot, viewer, image_to_viewport(viewer, 400, 800), image_to_viewport(viewer, 1300, 800))
    (m,) = viewer.measurements()
    assert m.value.endswith(" px") and "mm" not in m.value
    assert m.numbers["px"] == pytest.approx(900, abs=4)  # about 3 image px per screen px at fit
    assert "Pixel spacing: uncalibrated" in viewer.corner_text()["br"]


def test_angle_from_three_clicks(qtbot, viewer, rsna):
    viewer.set_image(rsna)
    viewer.zoom_1to1()
    viewer.set_tool("angle")
    for x, y in ((700, 300), (300, 300), (300, 700)):
        click(qtbot, viewer, image_to_viewport(viewer, x, y))
    (m,) = viewer.measurements()
    assert m.kind == "angle" and m.numbers["deg"] == pytest.approx(90.0, abs=0.5)
    assert m.value == "90.0°"


@pytest.mark.parametrize("kind", ["rect", "ellipse"])
def test_roi_mean_and_sd_match_numpy(qtbot, viewer, rsna, kind):
    viewer.set_image(rsna)
    viewer.zoom_1to1()
    viewer.set_tool(kind)
    drag(qtbot, viewer, image_to_viewport(viewer, 300, 400), image_to_viewport(viewer, 500, 550))
    (m,) = viewer.measurements()
    frame = rsna.frames[0].astype(np.float64)
    if kind == "rect":
        values = frame[400:550, 300:500]
        area = 200 * 150
    else:
        ys, xs = np.mgrid[0:1024, 0:1024] + 0.5
        inside = ((xs - 400) / 100) ** 2 + ((ys - 475) / 75) ** 2 <= 1
        values = frame[inside]
        area = np.pi * 100 * 75
    assert m.numbers["mean"] == pytest.approx(values.mean(), abs=1e-6)
    assert m.numbers["sd"] == pytest.approx(values.std(), abs=1e-6)
    assert m.numbers["area_mm2"] == pytest.approx(area * 0.168**2, rel=1e-6)
    assert "mm²" in m.value and f"{values.mean():.1f}" in m.value


def test_region_mask_counts_pixel_centres():
    (y0, y1, x0, x1), mask = region_mask("rect", [(10.2, 5.0), (12.4, 7.4)], (100, 100))
    assert (y0, y1, x0, x1) == (5, 7, 10, 12) and mask.all()  # centres 10.5, 11.5 / 5.5, 6.5


@pytest.mark.parametrize("op", ["rotate_cw", "rotate_ccw", "flip_h", "flip_v", "all"])
def test_measurements_stay_on_the_anatomy(qtbot, viewer, op):
    image = synthetic(dot=(150, 100))
    viewer.set_image(image)
    viewer.set_tool("distance")
    drag(qtbot, viewer, image_to_viewport(viewer, 150.5, 100.5), image_to_viewport(viewer, 450.5, 300.5))
    (m,) = viewer.measurements()
    value = m.value
    steps = {
        "rotate_cw": [viewer.rotate90],
        "rotate_ccw": [lambda: viewer.rotate90(False)],
        "flip_h": [viewer.flip_horizontal],
        "flip_v": [viewer.flip_vertical],
        "all": [
            viewer.rotate90,
            viewer.flip_horizontal,
            viewer.rotate90,
            viewer.flip_vertical,
            viewer.rotate90,
        ],
    }[op]
    for step in steps:
        step()
    QtWidgets.QApplication.processEvents()
    shot = to_array(viewer.grab_view(with_overlays=False))[..., 0]
    ys, xs = np.nonzero(shot > 200)  # the bright dot where the screen shows it now
    dot = QtCore.QPointF(xs.mean() + 0.5, ys.mean() + 0.5)
    roi = viewer.measurement_layer()._items[0].roi
    canvas = viewer.findChild(QtWidgets.QGraphicsView)
    end = canvas.viewportTransform().map(roi.mapToScene(roi.handles[0]["item"].pos()))
    assert abs(end.x() - dot.x()) < 2 and abs(end.y() - dot.y()) < 2
    assert viewer.measurements()[0].value == value


def test_measurements_are_kept_per_image_and_deletable(qtbot, viewer, rsna):
    viewer.set_image(rsna, key="a")
    viewer.set_tool("distance")
    drag(qtbot, viewer, image_to_viewport(viewer, 200, 200), image_to_viewport(viewer, 600, 200))
    drag(qtbot, viewer, image_to_viewport(viewer, 200, 600), image_to_viewport(viewer, 200, 900))
    values = [m.value for m in viewer.measurements()]
    assert len(values) == 2
    viewer.set_image(_dicom("RG3_J2KR.dcm"), key="b")
    assert viewer.measurements() == []
    viewer.set_image(rsna, key="a")
    assert [m.value for m in viewer.measurements()] == values
    viewer.measurement_layer()._select(viewer.measurement_layer()._items[0])
    viewer.delete_selected_measurement()
    assert [m.value for m in viewer.measurements()] == values[1:]
    viewer.set_image(rsna, key="b")
    viewer.set_image(rsna, key="a")
    assert [m.value for m in viewer.measurements()] == values[1:]
    viewer.clear_measurements()
    assert viewer.measurements() == []


def test_delete_key_removes_the_selected_measurement(qtbot, viewer, rsna):
    viewer.set_image(rsna)
    viewer.set_tool("distance")
    drag(qtbot, viewer, image_to_viewport(viewer, 200, 200), image_to_viewport(viewer, 600, 200))
    assert len(viewer.measurements()) == 1
    viewer.activateWindow()
    canvas = viewer.findChild(QtWidgets.QGraphicsView)
    canvas.setFocus()
    qtbot.waitUntil(canvas.hasFocus)
    qtbot.keyClick(canvas, QtCore.Qt.Key.Key_Delete)
    assert viewer.measurements() == []
    qtbot.keyClick(canvas, QtCore.Qt.Key.Key_I)  # invert
    assert viewer.is_inverted()


# ----------------------------------------------------------------------------- corner text, frames, tools
def test_corner_text(viewer):
    viewer.set_image(_dicom("RG3_J2KI.dcm"))
    text = viewer.corner_text()
    flat = "\n".join(line for lines in text.values() for line in lines)
    assert "Not for diagnostic use" in text["br"]
    assert any(line.startswith("LOSSY") for line in text["br"])
    assert "C 550  W 1024" in flat and "Zoom " in flat
    viewer.set_image(_dicom("rsna_cxr_pa.dcm"))
    text = viewer.corner_text()
    assert any("0.168 mm (PixelSpacing)" in line for line in text["br"])
    meta = viewer.image().meta
    assert any(meta.patient_id in line for line in text["tl"])
    assert any(meta.modality in line for line in text["tr"])


def test_frames_and_cine(qtbot, viewer):
    image = _dicom("emri_small_RLE.dcm")
    viewer.set_image(image)
    assert viewer.n_frames() == 10 and viewer.frame() == 0
    viewer.step_frame(1)
    assert viewer.frame() == 1 and "Frame 2/10" in viewer.corner_text()["bl"]
    viewer.zoom_1to1()
    got, exp = displayed_region(viewer, image)
    assert np.array_equal(got, exp)  # frame 2 shown, not frame 1
    viewer.set_cine(True, fps=50)
    qtbot.waitUntil(lambda: viewer.frame() not in (1, 2), timeout=2000)
    viewer.set_cine(False)
    assert not viewer.is_playing()


def test_colour_image_is_shown_as_rgb(viewer):
    image = _dicom("SC_rgb.dcm")
    viewer.set_image(image)
    viewer.zoom_1to1()
    got, exp = displayed_region(viewer, image)
    assert got.shape == exp.shape and np.array_equal(got, exp)


def test_cursor_info_and_magnifier(qtbot, viewer, rsna):
    viewer.set_image(rsna)
    infos: list[str] = []
    viewer.cursorInfo.connect(infos.append)
    viewer.set_magnifier(True)
    pos = image_to_viewport(viewer, 300.5, 200.5)
    _send_mouse(viewport(viewer), QtCore.QEvent.Type.MouseMove, pos, Btn.NoButton, Btn.NoButton)
    qtbot.wait(20)
    assert infos and infos[-1] == f"300, 200: {rsna.frames[0][200, 300]}"
    loupe = viewer.findChild(type(viewer._magnifier))
    assert loupe.isVisible() and loupe.geometry().contains(pos.toPoint())
    viewer.set_magnifier(False)
    assert not loupe.isVisible()


def test_every_action_has_a_text_and_a_unique_shortcut(viewer):
    actions = viewer.actions()
    assert len(actions) > 30
    keys = [k.toString() for a in actions for k in a.shortcuts()]
    assert all(a.text() and a.shortcuts() for a in actions)
    assert len(keys) == len(set(keys))
    names = {a.data() for a in actions if a.data()}
    assert names == {"wl", "pan", "zoom", "distance", "angle", "rect", "ellipse"}


def test_overlay_layer_follows_the_image(viewer, rsna):
    import pyqtgraph as pg

    viewer.set_image(rsna)
    heat = pg.ImageItem(np.zeros((8, 8), np.uint8))
    heat.setRect(QtCore.QRectF(0, 0, 1024, 1024))
    viewer.add_overlay_layer(heat, "heatmap")
    viewer.rotate90()
    corner = heat.mapToItem(viewer.image_group(), QtCore.QPointF(8, 8))
    assert (corner.x(), corner.y()) == pytest.approx((1024, 1024))
    assert viewer.overlay_layer("heatmap") is heat


# ----------------------------------------------------------------------------- export
def test_export_with_and_without_overlays(qtbot, viewer, rsna, tmp_path):
    viewer.set_image(rsna)
    viewer.set_tool("distance")
    drag(qtbot, viewer, image_to_viewport(viewer, 200, 500), image_to_viewport(viewer, 700, 500))
    with_path, without_path = tmp_path / "with.png", tmp_path / "without.png"
    viewer.export_png(with_path, with_overlays=True)
    viewer.export_png(without_path, with_overlays=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["with.png", "without.png"]  # no temp files left
    a = to_array(QtGui.QImage(str(with_path)))
    b = to_array(QtGui.QImage(str(without_path)))
    assert a.shape == b.shape
    h, w = a.shape[:2]
    corner = (slice(h - 60, h), slice(w - 300, w))  # "Not for diagnostic use" lives here
    assert np.abs(a[corner].astype(int) - b[corner].astype(int)).sum() > 1000
    assert (a[..., 0].astype(int) - a[..., 2].astype(int)).max() > 100  # orange/yellow overlay text
    assert np.array_equal(b[..., 0], b[..., 2])  # grey image only
    viewer.zoom_1to1()
    viewer.export_png(without_path, with_overlays=False)  # overwrite in place
    got, exp = displayed_region(viewer, rsna)
    assert np.array_equal(got, exp)


def test_magnifier_shows_the_pixels_under_the_cursor(qtbot, viewer):
    image = synthetic()  # left half brighter than the right half
    reference = display.render(image)
    viewer.set_image(image)
    viewer.set_magnifier(True)
    loupe = viewer.findChild(type(viewer._magnifier))
    for x in (100.5, 450.5):
        pos = image_to_viewport(viewer, x, 300.5)
        _send_mouse(viewport(viewer), QtCore.QEvent.Type.MouseMove, pos, Btn.NoButton, Btn.NoButton)
        qtbot.wait(20)
        shot = to_array(loupe.grab().toImage())
        r = loupe.width() // 2
        assert abs(int(shot[r + 3, r + 9, 0]) - int(reference[300, int(x)])) <= 1  # beside the crosshair


def test_export_to_a_missing_folder_is_a_readable_error(viewer, rsna, tmp_path):
    from ml.errors import ImagingError

    viewer.set_image(rsna)
    with pytest.raises(ImagingError, match="Could not write the PNG file"):
        viewer.export_png(tmp_path / "no" / "such" / "folder" / "view.png")
