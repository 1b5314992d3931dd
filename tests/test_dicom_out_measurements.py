"""The viewer's measurements as a TID 1500 SR (dciodvfy-clean, read back with pydicom), re-opened on
the image they belong to; our Parametric Map shown back over its image; the view burned into a
Secondary Capture (issue 12)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from app.viewer.dicom_objects import DicomObjectsPresenter
from app.viewer.measure import Measurement, evaluate
from app.viewer.state import DisplayState
from ml.dicom_out.capture import secondary_capture
from ml.dicom_out.measurements import PlanarMeasurement, measurement_sr, read_measurements
from ml.dicom_out.results import Algorithm, DicomOutError, parametric_map, read_source, write
from ml.explain.base import Heatmap
from ml.imaging.read import read_image
from tests.test_dicom_out import _content, dciodvfy_errors

SPACING = 0.168  # rsna_cxr_pa.dcm's PixelSpacing (mm)


def _planar() -> list[PlanarMeasurement]:
    return [PlanarMeasurement("distance", [(100.5, 200.5), (400.5, 600.5)], {"px": 500.0, "mm": 84.0}),
            PlanarMeasurement("angle", [(100.0, 100.0), (200.0, 200.0), (300.0, 100.0)], {"deg": 90.0}),
            PlanarMeasurement("rect", [(500.0, 300.0), (600.0, 400.0)],
                              {"area_mm2": 282.24, "mean": 87.5, "sd": 12.25, "area_px": 10000.0}),
            PlanarMeasurement("ellipse", [(50.0, 60.0), (150.0, 110.0)], {"area_px": 3927.0, "mean": 10.0, "sd": 2.0})]


@pytest.mark.parametrize("name", ["rsna_cxr_pa.dcm", "RG3_J2KR.dcm"])
def test_measurement_sr_passes_dciodvfy_and_reads_back(dicom_dir, tmp_path, name):
    source = read_source(dicom_dir / name)
    path = write(measurement_sr(source, _planar()), tmp_path, "m")
    assert dciodvfy_errors(path) == []
    sr = pydicom.dcmread(path)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.VerificationFlag == "UNVERIFIED" and "Not for diagnostic use" in sr.SeriesDescription
    assert sr.StudyInstanceUID == source.StudyInstanceUID and sr.SeriesInstanceUID != source.SeriesInstanceUID
    items = _content(sr)
    nums = [(i.ConceptNameCodeSequence[0].CodeMeaning, float(i.MeasuredValueSequence[0].NumericValue),
             i.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue) for i in items if i.ValueType == "NUM"]
    assert ("Length", 84.0, "mm") in nums and ("Angle", 90.0, "deg") in nums
    assert ("Area", 282.24, "mm2") in nums and ("Area", 3927.0, "{px2}") in nums
    scoords = [i for i in items if i.ValueType == "SCOORD"]
    assert sorted(s.GraphicType for s in scoords) == ["ELLIPSE", "POLYLINE", "POLYLINE", "POLYLINE"]
    data = [[float(v) for v in s.GraphicData] for s in scoords]
    assert [100.5, 200.5, 400.5, 600.5] in data  # the distance's ends in image pixel coordinates
    assert [500.0, 300.0, 600.0, 300.0, 600.0, 400.0, 500.0, 400.0, 500.0, 300.0] in data  # the closed rect
    refs = {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in items if i.ValueType == "IMAGE"}
    assert refs == {source.SOPInstanceUID}

    back = read_measurements(path)
    assert [m.kind for m in back] == ["distance", "angle", "rect", "ellipse"]
    assert back[0].points == [(100.5, 200.5), (400.5, 600.5)] and back[0].numbers == {"mm": 84.0}
    assert back[2].points == [(500.0, 300.0), (600.0, 400.0)] and back[2].numbers["mean"] == 87.5
    assert back[3].points == [(50.0, 60.0), (150.0, 110.0)] and back[3].numbers["area_px"] == 3927.0
    assert all(m.sop_instance_uid == source.SOPInstanceUID for m in back)


def test_no_measurements_is_one_error(dicom_dir):
    with pytest.raises(DicomOutError, match="no measurements"):
        measurement_sr(read_source(dicom_dir / "rsna_cxr_pa.dcm"), [])


class _View:
    def __init__(self) -> None:
        self.maps: list = []
        self.reloads = 0
        self.lines: list[str] = []

    def show_map(self, overlay):  # noqa: ANN001, ANN201
        self.maps.append(overlay)

    def reload_measurements(self):  # noqa: ANN201
        self.reloads += 1

    def status(self, text):  # noqa: ANN001, ANN201
        self.lines.append(text)


def _mm(m: Measurement, image) -> float:  # noqa: ANN001
    evaluate(m, image.shape, lambda *_: np.zeros((0, 0)), image.meta.pixel_spacing)
    return m.numbers["mm"]


def test_presenter_round_trip_puts_the_measurement_back_on_its_image(dicom_dir, tmp_path):
    image = read_image(dicom_dir / "rsna_cxr_pa.dcm")
    other = read_image(dicom_dir / "RG3_J2KR.dcm")
    state, view = DisplayState(), _View()
    presenter = DicomObjectsPresenter(state, view)
    state.set_image(image, "key-a")
    line = Measurement("distance", [(100.5, 200.5), (400.5, 600.5)])
    mm = _mm(line, image)
    assert mm == pytest.approx(500 * SPACING)
    state.measurements.switch("key-a")  # what the viewer's measurement layer does on a new image
    state.measurements.save([line])
    path = presenter.save_measurements(tmp_path / "line.dcm")
    assert dciodvfy_errors(path) == []

    # a new session: the other image is shown, then the SR arrives; nothing lands on the wrong image
    state2, view2 = DisplayState(), _View()
    fresh = DicomObjectsPresenter(state2, view2)
    state2.set_image(other, "key-b")
    assert fresh.open_paths([str(path)]) == 1
    assert state2.measurements.remembered("key-b") == [] and view2.reloads == 0
    state2.set_image(image, "key-a")  # its image: the measurement is there, once
    back = state2.measurements.remembered("key-a")
    assert len(back) == 1 and back[0].kind == "distance" and view2.reloads == 1
    assert _mm(back[0], image) == pytest.approx(mm, abs=0.01)
    state2.set_image(other, "key-b")
    state2.set_image(image, "key-a")
    assert len(state2.measurements.remembered("key-a")) == 1  # showing it again does not double it


def test_presenter_refuses_a_png_and_an_empty_image(dicom_dir, tmp_path, shared_data):
    from ml.errors import CxrError

    state = DisplayState()
    presenter = DicomObjectsPresenter(state, _View())
    state.set_image(read_image(dicom_dir / "rsna_cxr_pa.dcm"), "a")
    state.measurements.switch("a")
    assert not presenter.can_save_measurements()
    with pytest.raises(CxrError, match="no measurements"):
        presenter.save_measurements(tmp_path / "x.dcm")
    pngs = sorted(shared_data.rglob("*.png"))[:1]
    if pngs:
        state.set_image(read_image(pngs[0]), "p")
        state.measurements.switch("p")
        state.measurements.save([Measurement("distance", [(1, 1), (20, 20)])])
        with pytest.raises(CxrError, match="Only a DICOM image"):
            presenter.save_measurements(tmp_path / "x.dcm")
    assert not list(tmp_path.glob("*.dcm"))


def _heatmap(source) -> Heatmap:  # noqa: ANN001
    rows, cols = int(source.Rows), int(source.Columns)
    values = np.zeros((rows, cols), np.float32)
    values[rows // 4: rows // 2, cols // 4: cols // 2] = 1.0
    return Heatmap(values=values, method="gradcam", target_label="Pneumonia", raw_min=0.0, raw_max=1.0)


def test_parametric_map_shows_back_over_its_image_only(dicom_dir, tmp_path):
    source = read_source(dicom_dir / "rsna_cxr_pa.dcm")
    heatmap = _heatmap(source)
    pm = write(parametric_map(source, heatmap, Algorithm("tiny", "1")), tmp_path, "pm")
    state, view = DisplayState(), _View()
    presenter = DicomObjectsPresenter(state, view)
    state.set_image(read_image(dicom_dir / "RG3_J2KR.dcm"), "b")
    assert presenter.open_paths([str(pm)]) == 1 and view.maps == []  # not its image: nothing shown
    state.set_image(read_image(dicom_dir / "rsna_cxr_pa.dcm"), "a")
    overlay = view.maps[-1]
    assert overlay.method == "gradcam" and overlay.sop_instance_uid == source.SOPInstanceUID
    assert np.array_equal(overlay.values, heatmap.values)
    state.set_image(read_image(dicom_dir / "RG3_J2KR.dcm"), "b")
    assert view.maps[-1] is None


def test_viewer_draws_the_map_and_the_sr_measurement(qtbot, dicom_dir, tmp_path):
    from app.viewer import ImageViewer
    from app.viewer.dicom_menu import MAP_LAYER, DicomObjectsController

    class _Window:  # what the controller uses of a main window
        def __init__(self, viewer):  # noqa: ANN001
            self.viewer = viewer

    viewer = ImageViewer()
    qtbot.addWidget(viewer)
    viewer.resize(800, 800)
    viewer.show()
    controller = DicomObjectsController(_Window(viewer))
    source = read_source(dicom_dir / "rsna_cxr_pa.dcm")
    image = read_image(dicom_dir / "rsna_cxr_pa.dcm")
    viewer.set_image(image, "a")
    layer = viewer.measurement_layer()
    layer.begin("distance", (100.5, 200.5))
    layer.drag_to((400.5, 600.5))
    layer.finish()
    mm = viewer.measurements()[0].numbers["mm"]
    sr = controller.save_measurements(str(tmp_path / "m.dcm"))
    assert sr is not None and read_measurements(sr)[0].numbers["mm"] == pytest.approx(mm, abs=1e-6)
    pm = write(parametric_map(source, _heatmap(source), Algorithm("tiny", "1")), tmp_path, "pm")

    viewer.clear_measurements()
    viewer.forget_measurements()
    viewer.clear()
    controller.presenter.forget()
    controller.presenter.open_paths([str(sr), str(pm)])
    viewer.set_image(image, "a")
    shown = viewer.measurements()
    assert len(shown) == 1 and abs(shown[0].numbers["mm"] - mm) < 0.01
    item = viewer.overlay_layer(MAP_LAYER)
    assert item is not None and item.image.shape[:2] == image.shape
    rows, cols = image.shape
    assert item.image[rows * 3 // 8, cols * 3 // 8, 3] == 255 and item.image[10, 10, 3] == 0  # opaque only where hot
    assert viewer.legend() is not None
    burned = viewer.burned_in()
    capture = controller.save_capture(str(tmp_path / "sc.dcm"))
    assert capture is not None and dciodvfy_errors(capture) == []
    ds = pydicom.dcmread(capture)
    assert np.array_equal(ds.pixel_array, burned) and ds.StudyInstanceUID == source.StudyInstanceUID
    hot = burned[rows * 3 // 8, cols * 3 // 8].astype(int)
    assert hot[0] - hot[2] > 30 or abs(hot[0] - hot[1]) > 30  # the heatmap's colour is burned in, not grey
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    viewer.set_image(read_image(dicom_dir / "RG3_J2KR.dcm"), "b")
    assert viewer.overlay_layer(MAP_LAYER) is None and viewer.measurements() == []


def test_secondary_capture_of_a_cr_passes_dciodvfy(dicom_dir, tmp_path):
    source = read_source(dicom_dir / "RG3_J2KR.dcm")
    rgb = np.zeros((int(source.Rows), int(source.Columns), 3), np.uint8)
    rgb[5:25, 5:25] = (255, 0, 0)
    path = write(secondary_capture(source, rgb), tmp_path, "sc")
    assert dciodvfy_errors(path) == []
    ds = pydicom.dcmread(path)
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID and "Not for diagnostic use" in ds.SeriesDescription
    assert ds.BurnedInAnnotation == "YES" and np.array_equal(ds.pixel_array, rgb)
    with pytest.raises(DicomOutError):
        secondary_capture(source, rgb[..., 0])


def test_predict_dicom_capture_burns_the_heatmap_in(dicom_dir, tmp_path, capsys):
    import torch

    from ml.cli import main as cxr
    from ml.models import bundle
    from ml.models.manifest import ModelManifest
    from ml.models.registry import build_model

    torch.manual_seed(0)
    manifest = ModelManifest(name="tiny", architecture="cxr_resnet_small", labels=["NORMAL", "PNEUMONIA"],
                             input_size=64)
    model = bundle.save_model(tmp_path / "tiny.safetensors", build_model("cxr_resnet_small", 2, 1), manifest)
    src = dicom_dir / "rsna_cxr_pa.dcm"
    out = tmp_path / "dicom"
    assert cxr(["predict", str(src), "--model", str(model), "--dicom-out", str(out), "--dicom-capture"]) == 2
    assert "--dicom-capture needs" in capsys.readouterr().err and not out.exists()
    assert cxr(["predict", str(src), "--model", str(model), "--explain", "occlusion", "-o", str(tmp_path / "p.csv"),
                "--dicom-out", str(out), "--dicom-capture"]) == 0
    captures = sorted(out.glob("*.sc.dcm"))
    assert len(captures) == 1 and dciodvfy_errors(captures[0]) == []
    sc = pydicom.dcmread(captures[0])
    source = pydicom.dcmread(src)
    pm = pydicom.dcmread(next(out.glob("*.pm.dcm")))
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sc.StudyInstanceUID == source.StudyInstanceUID and sc.SeriesInstanceUID != source.SeriesInstanceUID
    from ml.imaging.display import render
    from ml.imaging.overlay import blend

    # the capture is the displayed image with the map blended in by the viewer's rule
    assert np.array_equal(sc.pixel_array, blend(render(read_image(src)), pm.pixel_array))
    rgb = sc.pixel_array.astype(int)
    hot = pm.pixel_array >= 0.5  # where the heatmap is strong the capture is coloured, elsewhere grey
    assert hot.any()
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    assert spread[hot].mean() > 20 and spread[pm.pixel_array < 0.05].mean() < 5


def test_a_multiframe_sr_keeps_the_frame_and_a_foreign_map_reads(dicom_dir, tmp_path):
    from ml.dicom_out.readback import read_object

    source = read_source(dicom_dir / "emri_small_RLE.dcm")  # enhanced MR, several frames
    path = write(measurement_sr(source, [PlanarMeasurement("distance", [(1.0, 1.0), (10.0, 10.0)], {"px": 12.7},
                                                           frame=3)]), tmp_path, "mf")
    assert dciodvfy_errors(path) == []
    ref = next(i for i in _content(pydicom.dcmread(path)) if i.ValueType == "IMAGE").ReferencedSOPSequence[0]
    assert int(ref.ReferencedFrameNumber) == 4  # 1-based in DICOM
    assert read_measurements(path)[0].frame == 3
    kind, overlay = read_object(dicom_dir / "parametric_map_float.dcm")  # another tool's Parametric Map
    pm = pydicom.dcmread(dicom_dir / "parametric_map_float.dcm", stop_before_pixels=True)
    referenced = pm.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]  # its derivation sequence is empty
    assert kind == "map" and overlay.values.shape == (pm.Rows, pm.Columns)
    assert overlay.sop_instance_uid == referenced.ReferencedSOPInstanceUID
    assert 0.0 <= overlay.values.min() and overlay.values.max() <= 1.0
    assert read_object(dicom_dir / "rsna_cxr_pa.dcm") is None  # an image is not a result object
