"""AI results as DICOM (highdicom): a TID 1500 SR and a Parametric Map per analysed image, checked
with David Clunie's dciodvfy, read back, and sent to a real Orthanc by `cxr predict --dicom-out --send`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from ml.cli import main as cxr
from ml.dicom_out.results import Algorithm, measurement_report, parametric_map, read_source, write
from ml.explain.base import Heatmap
from ml.inference.predictor import Prediction
from ml.models import bundle
from ml.models.manifest import ModelManifest
from ml.models.registry import build_model
from ml.pacs import Query, find, parse_url, retrieve
from tests.helpers.orthanc import orthanc  # noqa: F401 - the fixture

SOURCES = ("rsna_cxr_pa.dcm", "RG3_J2KR.dcm")  # a chest secondary capture (JPEG) and a CR (J2K)


def dciodvfy_errors(path: Path) -> list[str]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.fail("dciodvfy is not installed (apt-get install dicom3tools)")
    done = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]


def _prediction(path: Path) -> Prediction:
    return Prediction(path=str(path), frame=0, labels=["Effusion", "Pneumonia", "Nodule"],
                      probabilities=[0.12, 0.81, 0.40], positives=["Pneumonia"], top_label="Pneumonia",
                      model_name="tiny", device="cpu", task="multilabel", thresholds=[0.3, 0.5, None])


def _content(sr: pydicom.Dataset) -> list[pydicom.Dataset]:
    items, stack = [], list(sr.ContentSequence)
    while stack:
        item = stack.pop()
        items.append(item)
        stack.extend(item.get("ContentSequence", []))
    return items


@pytest.mark.parametrize("name", SOURCES)
def test_sr_and_parametric_map_pass_dciodvfy_and_read_back(dicom_dir, tmp_path, name):
    src_path = dicom_dir / name
    source = read_source(src_path)
    algorithm = Algorithm("tiny-cxr", "1.2", "ab" * 32)
    prediction = _prediction(src_path)
    sr_path = write(measurement_report(source, prediction, algorithm), tmp_path, "sr")
    rng = np.random.default_rng(0)
    values = rng.random((int(source.Rows), int(source.Columns)), dtype=np.float32)
    heatmap = Heatmap(values=values, method="gradcam", target_label="Pneumonia", raw_min=0.0, raw_max=2.0)
    pm_path = write(parametric_map(source, heatmap, algorithm), tmp_path, "pm")
    assert dciodvfy_errors(sr_path) == []
    assert dciodvfy_errors(pm_path) == []

    sr = pydicom.dcmread(sr_path)
    assert sr.StudyInstanceUID == source.StudyInstanceUID and sr.SeriesInstanceUID != source.SeriesInstanceUID
    assert sr.VerificationFlag == "UNVERIFIED"
    assert "Not for diagnostic use" in sr.SeriesDescription
    items = _content(sr)
    numbers = {i.ConceptNameCodeSequence[0].CodeMeaning: float(i.MeasuredValueSequence[0].NumericValue)
               for i in items if i.ValueType == "NUM"}
    assert numbers == pytest.approx({"Probability of Effusion": 0.12, "Probability of Pneumonia": 0.81,
                                     "Probability of Nodule": 0.40, "Operating point of Effusion": 0.3,
                                     "Operating point of Pneumonia": 0.5})
    findings = [i.ConceptCodeSequence[0].CodeMeaning for i in items
                if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeMeaning == "Finding"]
    assert findings == ["Pneumonia"]
    texts = " ".join(str(i.TextValue) for i in items if i.ValueType == "TEXT")
    assert "Not for diagnostic use" in texts
    refs = [r.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for r in items if r.ValueType == "IMAGE"]
    assert refs == [source.SOPInstanceUID]
    algo = {i.ConceptNameCodeSequence[0].CodeMeaning: str(i.get("TextValue", "")) for i in items}
    assert algo["Algorithm Name"] == "tiny-cxr" and algo["Algorithm Version"] == "1.2"
    assert "ab" * 32 in algo["Algorithm Parameters"]

    pm = pydicom.dcmread(pm_path)
    assert (pm.Rows, pm.Columns) == (source.Rows, source.Columns)
    assert pm.StudyInstanceUID == source.StudyInstanceUID
    assert pm.FloatPixelData and np.array_equal(pm.pixel_array, values)
    derivation = pm.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert derivation.ReferencedSOPInstanceUID == source.SOPInstanceUID
    mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert mapping.LUTLabel == "gradcam" and "gradcam" in mapping.LUTExplanation
    assert "Not for diagnostic use" in pm.SeriesDescription


def test_heatmap_off_grid_is_one_error(dicom_dir):
    from ml.dicom_out.results import DicomOutError

    source = read_source(dicom_dir / "rsna_cxr_pa.dcm")
    heatmap = Heatmap(values=np.zeros((10, 10), np.float32), method="gradcam", target_label="x",
                      raw_min=0.0, raw_max=1.0)
    with pytest.raises(DicomOutError, match="not on the source image's grid"):
        parametric_map(source, heatmap, Algorithm("m", "1"))


def test_predict_dicom_out_and_send_read_back_from_orthanc(orthanc, dicom_dir, tmp_path):  # noqa: F811
    torch.manual_seed(0)
    manifest = ModelManifest(name="tiny-pneumonia", architecture="cxr_resnet_small",
                             labels=["NORMAL", "PNEUMONIA"], input_size=64)
    model = bundle.save_model(tmp_path / "tiny.safetensors", build_model("cxr_resnet_small", 2, 1), manifest)
    src = dicom_dir / "RG3_J2KR.dcm"
    out = tmp_path / "results"
    code = cxr(["predict", str(src), "--model", str(model), "--explain", "gradcam", "-o",
                str(tmp_path / "p.csv"), "--dicom-out", str(out), "--send", orthanc.dicom_url])
    assert code == 0
    written = sorted(out.glob("*.dcm"))
    assert len(written) == 2 and all(dciodvfy_errors(p) == [] for p in written)
    source = pydicom.dcmread(src, stop_before_pixels=True)
    node = parse_url(orthanc.dicom_url)
    series = find(node, Query(level="SERIES", study_uid=str(source.StudyInstanceUID)))
    assert sorted(m.modalities for m in series) == ["CR", "OT", "SR"]  # PM modality is OT (CR source)
    folder = retrieve(node, str(source.StudyInstanceUID), tmp_path / "back")
    back = {str(ds.Modality): ds for ds in (pydicom.dcmread(p) for p in folder.glob("*.dcm"))}
    sr, pm = back["SR"], back["OT"]
    probs = {i.ConceptNameCodeSequence[0].CodeMeaning: float(i.MeasuredValueSequence[0].NumericValue)
             for i in _content(sr) if i.ValueType == "NUM"}
    import csv

    row = next(csv.DictReader(open(tmp_path / "p.csv")))
    assert probs["Probability of PNEUMONIA"] == pytest.approx(float(row["PNEUMONIA"]), abs=1e-4)
    refs = [i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in _content(sr) if i.ValueType == "IMAGE"]
    assert refs == [source.SOPInstanceUID]
    assert (pm.Rows, pm.Columns) == (source.Rows, source.Columns)
    assert 0.0 <= float(pm.pixel_array.min()) and float(pm.pixel_array.max()) <= 1.0
