"""The analysis panel's DICOM results presenter (app.analysis.dicom_export), without a display:
refused with a clear message for a non-DICOM image and for a result of another image; the SR
references the source instance; the Parametric Map only when a heatmap of this image is shown."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom

from app.analysis.dicom_export import NOT_DICOM, DicomExport, build, snapshot
from app.analysis.display import ReportInputs
from ml.errors import CxrError
from ml.explain.base import Heatmap
from ml.inference.predictor import Prediction
from ml.progress import CancelToken


class SyncRunner:
    def start(self, fn, description, *, finished=None, error=None, progress=None, cancelled=None, done=None,
              partial=None):  # noqa: ANN001, ANN202
        try:
            result = fn(lambda *a: None, CancelToken())
        except CxrError as exc:
            error(str(exc))
        else:
            finished(result)
        done()
        return SimpleNamespace(cancel=lambda: None)


class FakePresenter:
    """What DicomExport reads of app.analysis.presenter.AnalysisPresenter."""

    def __init__(self, shown: Path, result_of: Path, heatmap=None) -> None:  # noqa: ANN001
        self.shown = shown
        self.prediction = Prediction(path=str(result_of), frame=0, labels=["Normal", "Pneumonia"],
                                     probabilities=[0.3, 0.7], positives=["Pneumonia"], top_label="Pneumonia",
                                     model_name="tiny", device="cpu", task="multilabel", thresholds=[0.5, 0.5])
        self.heatmap = heatmap
        self.images = SimpleNamespace(current=lambda: (SimpleNamespace(meta=SimpleNamespace(path=shown)), 0))
        self.state = SimpleNamespace(models=[])

    def report_inputs(self) -> ReportInputs:  # the real guard's rule (app.analysis.display.report_inputs)
        if str(self.shown) != self.prediction.path:
            raise CxrError("The results shown are for another image; run the model on this image first.")
        return ReportInputs(self.prediction, self.heatmap, "1", "cpu", "", "")


def _heatmap(source: Path) -> Heatmap:
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    values = np.random.default_rng(0).random((int(ds.Rows), int(ds.Columns)), dtype=np.float32)
    return Heatmap(values=values, method="gradcam", target_label="Pneumonia", raw_min=0.0, raw_max=1.0)


def test_non_dicom_source_is_refused_with_a_message(shared_data, tmp_path):
    jpeg = shared_data / "cxr" / "padchest" / "16747_3_1.jpg"
    messages: list[str] = []
    export = DicomExport(FakePresenter(jpeg, jpeg), SyncRunner(), messages.append)
    assert NOT_DICOM in export.unavailable()
    assert export.save(tmp_path) is False
    assert messages == [f"{NOT_DICOM}."] and list(tmp_path.iterdir()) == []


def test_a_result_of_another_image_is_refused(dicom_dir, tmp_path):
    shown, other = dicom_dir / "rsna_cxr_pa.dcm", dicom_dir / "RG3_J2KR.dcm"
    messages: list[str] = []
    export = DicomExport(FakePresenter(shown, other), SyncRunner(), messages.append)
    assert export.save(tmp_path) is False
    assert "for another image" in messages[-1] and list(tmp_path.iterdir()) == []


def test_sr_references_the_source_and_pm_only_with_a_heatmap(dicom_dir, tmp_path):
    src = dicom_dir / "rsna_cxr_pa.dcm"
    source_uid = pydicom.dcmread(src, stop_before_pixels=True).SOPInstanceUID
    without = build(snapshot(FakePresenter(src, src)))
    assert [stem.rsplit(".", 1)[-1] for _ds, stem in without] == ["sr"]
    sr = without[0][0]
    assert sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0] \
        .ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source_uid
    with_map = build(snapshot(FakePresenter(src, src, _heatmap(src))))
    assert [stem.rsplit(".", 1)[-1] for _ds, stem in with_map] == ["sr", "pm"]
    pm = with_map[1][0]
    assert pm.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == source_uid
    assert pm.StudyInstanceUID == sr.StudyInstanceUID == pydicom.dcmread(src, stop_before_pixels=True).StudyInstanceUID
    messages: list[str] = []
    export = DicomExport(FakePresenter(src, src, _heatmap(src)), SyncRunner(), messages.append)
    assert export.save(tmp_path) is True
    assert sorted(p.name.rsplit(".", 2)[-2] for p in tmp_path.iterdir()) == ["pm", "sr"]
    assert "Saved 2 DICOM result object(s) (SR + Parametric Map)" in messages[-1]
