"""The out-of-scope guard (ml.inference.scope) on the real files of ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ml.imaging.read import read_image
from ml.inference.predictor import Predictor
from ml.inference.scope import (
    BANNER,
    FALLBACK_NOTE,
    distances,
    features_of,
    fit_feature_statistics,
    header_reasons,
    set_threshold,
)
from ml.models import bundle
from ml.models.manifest import ModelManifest
from ml.models.registry import build_model

CHEST_DICOM = {"rsna_cxr_pa.dcm", "rsna_cxr_pa_monochrome1.dcm"}
UNREADABLE = {"liver_deflate.dcm", "emri_small_jpeg_2k_lossless_too_short.dcm"}  # errors, never classified


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[torch.nn.Module, ModelManifest]:
    torch.manual_seed(0)
    manifest = ModelManifest(name="tiny", architecture="cxr_resnet_small", labels=["NORMAL", "PNEUMONIA"],
                             input_size=64)  # fmt: skip
    return build_model("cxr_resnet_small", 2, 1), manifest


def test_every_non_chest_dicom_is_out_of_scope_by_its_header(dicom_dir: Path) -> None:
    for path in sorted(dicom_dir.glob("*.dcm")):
        if path.name in UNREADABLE:
            continue
        reasons, _notes = header_reasons(read_image(path))
        if path.name in CHEST_DICOM:
            assert reasons == [], path.name
        else:
            assert reasons, f"{path.name} was not flagged"
    mr, _ = header_reasons(read_image(dicom_dir / "emri_small_RLE.dcm"))
    assert "modality MR, not a radiograph (CR/DX/DR expected)" in mr and "10 frames (a radiograph has one)" in mr
    cr, _ = header_reasons(read_image(dicom_dir / "RG3_J2KR.dcm"))
    assert cr == ["body part EXTREMITY (CHEST expected)"]


def test_a_view_other_than_the_trained_one_is_a_note(dicom_dir: Path) -> None:
    reasons, notes = header_reasons(read_image(dicom_dir / "rsna_cxr_pa.dcm"), expected_views=("AP",))
    assert reasons == [] and notes == ["PA view; the model was trained on AP"]


def test_without_statistics_the_image_check_flags_photos_and_strips(tiny, shared_data: Path, tmp_path: Path) -> None:  # noqa: ANN001
    net, manifest = tiny
    pred = Predictor(net, manifest, device="cpu")
    rng = np.random.default_rng(0)
    photo = tmp_path / "boat.png"
    sky = np.zeros((300, 400, 3), np.uint8)
    sky[..., 2] = 200
    sky[150:, :, 0] = rng.integers(0, 255, (150, 400))
    Image.fromarray(sky).save(photo)
    strip = tmp_path / "strip.png"
    Image.fromarray(rng.integers(0, 255, (80, 400), dtype=np.uint8)).save(strip)
    chest = sorted((shared_data / "cxr" / "kermany-val" / "NORMAL").iterdir())[:3]
    results = pred.predict([(read_image(p), 0) for p in [photo, strip, *chest]])
    assert not results[0].in_scope and "colour image" in results[0].scope_note
    assert not results[1].in_scope and "pixels" in results[1].scope_note and "aspect ratio" in results[1].scope_note
    for r in results[2:]:
        assert r.in_scope and r.scope_note == FALLBACK_NOTE  # says it used the fallback


def test_mahalanobis_statistics_threshold_and_manifest_round_trip(tiny, shared_data: Path, dicom_dir: Path,
                                                                    tmp_path: Path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(1)
    base = rng.normal(size=(400, 24)) @ rng.normal(size=(24, 24))
    stats = set_threshold(fit_feature_statistics(base[:200], k=8), base[200:300], 99.0)
    held = distances(base[300:], stats)
    assert (held > stats["threshold"]).mean() < 0.06  # about 1% of in-distribution above the 99th percentile
    assert (distances(base[300:] + 10.0, stats) > stats["threshold"]).all()  # shifted features: all flagged

    net, manifest = tiny
    files = sorted((shared_data / "datasets" / "kermany-train" / "NORMAL").iterdir())[:40]
    pred = Predictor(net, manifest, device="cpu", batch_size=16)
    feats = features_of(pred, [(read_image(p), 0) for p in files])
    assert feats.shape[0] == 40 and feats.shape[1] > 8
    manifest.scope = set_threshold(fit_feature_statistics(feats[:30], k=6), feats[30:], 99.0)
    path = bundle.save_model(tmp_path / "m.safetensors", net, manifest)
    net2, manifest2 = bundle.load_model(path)
    assert manifest2.scope["threshold"] == pytest.approx(manifest.scope["threshold"])
    guarded = Predictor(net2, manifest2, device="cpu")
    assert guarded.scope.uses_features
    mr = guarded.predict_one(read_image(dicom_dir / "MR-SIEMENS-DICOM-WithOverlays.dcm"))
    assert not mr.in_scope and "modality MR" in mr.scope_note
    chest = guarded.predict_one(read_image(files[0]))  # a fitted image: in scope, no fallback note
    assert chest.in_scope and FALLBACK_NOTE not in chest.scope_note


def test_the_report_of_an_out_of_scope_image_says_so_and_hides_results(tiny, dicom_dir: Path) -> None:  # noqa: ANN001
    pytest.importorskip("PySide6")
    from app.analysis.heatmap import HeatmapStyle
    from app.analysis.report import build_report

    net, manifest = tiny
    image = read_image(dicom_dir / "MR-SIEMENS-DICOM-WithOverlays.dcm")
    p = Predictor(net, manifest, device="cpu").predict_one(image)
    hidden = build_report(p, image, 0, None, HeatmapStyle(), None, None, "1.0")
    assert hidden.scope.startswith(BANNER) and hidden.results_hidden and hidden.rows == []
    shown = build_report(p, image, 0, None, HeatmapStyle(), None, None, "1.0", show_out_of_scope=True)
    assert "research use" in shown.scope and len(shown.rows) == 2 and not shown.results_hidden
