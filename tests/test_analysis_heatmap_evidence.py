"""Issue 14 in the analysis panel's presenter: gating, contours, faithfulness and the sanity check.

The fakes of test_analysis_presenter (a view, a runner whose jobs end when the test says, images);
no display. The gating tests need no torch either (test_presenters_import_and_run_with_qt_and_torch_blocked
runs one of them with torch and Qt blocked).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from app.analysis.evidence import NOT_CLASSIFIED, faithfulness_sentence
from app.analysis.evidence_jobs import Explained, regions_of
from app.analysis.jobs import LoadedModel, ModelInfo
from ml.explain.gating import NO_EVIDENCE, SHOWN_ANYWAY
from tests.test_analysis_presenter import FakeImage, Heatmap, Prediction, Rig, rig

LABELS = ["NORMAL", "PNEUMONIA"]


def manifest(thresholds: dict[str, float] | None) -> Any:
    return SimpleNamespace(name="pneu", version="1.0", labels=LABELS, hidden_labels=[], input_size=64,
                           thresholds=thresholds)  # fmt: skip


def ready(thresholds: dict[str, float] | None = None, image: str = "/data/a.dcm") -> Rig:
    """A two-class model (operating point ``thresholds``) loaded; the image shown; no auto Grad-CAM."""
    m = manifest(thresholds)
    r = rig(ModelInfo("pneu", Path("/models/pneu.safetensors"), m), image=image)
    r.runner.last("loading").finish(LoadedModel(Path("/models/pneu.safetensors"), m, None, "CPU"))
    r.presenter.set_auto_explain(False)
    return r


def prediction(p_pneumonia: float, path: str = "/data/a.dcm") -> Prediction:
    top = "PNEUMONIA" if p_pneumonia >= 0.5 else "NORMAL"
    return Prediction(path, model_name="pneu", top_label=top, positives=[top], labels=LABELS,
                      probabilities=[1 - p_pneumonia, p_pneumonia])  # fmt: skip


def classify(r: Rig, p_pneumonia: float) -> Prediction:
    r.presenter.run_image()
    pred = prediction(p_pneumonia, r.images.image.path)
    r.runner.last("classifying").finish([pred])
    return pred


def explain(r: Rig, target: str = "PNEUMONIA", **extra: Any) -> Heatmap:
    heatmap = Heatmap("gradcam", target)
    r.presenter.explain("gradcam")
    r.runner.last("computing").finish(Explained(heatmap, **extra))
    return heatmap


# ---------------------------------------------------------------------------- gating


def test_a_heatmap_below_the_operating_point_is_hidden_until_shown_anyway() -> None:
    r = ready({"PNEUMONIA": 0.6})
    classify(r, 0.45)  # below the model's operating point (0.6 on P(PNEUMONIA))
    heatmap = explain(r)
    assert r.state.heatmap is heatmap and r.view.heatmap is None  # computed, not drawn
    shown = r.view.evidence
    assert shown.gated and shown.gate_note == NO_EVIDENCE and "no evidence above threshold" in shown.gate_note.lower()
    assert "No evidence above threshold" in r.view.status and "Show anyway" in r.view.status
    assert not r.view.enabled.evidence  # nothing drawn: nothing to measure
    inputs = r.presenter.report_inputs()
    assert inputs.heatmap is None and "Gating: No evidence above threshold: heatmap hidden." in inputs.evidence
    r.presenter.evidence.set_show_anyway(True)
    assert r.view.heatmap is heatmap and r.view.evidence.gate_note == SHOWN_ANYWAY and r.view.evidence.gated
    assert r.view.enabled.evidence
    assert r.presenter.report_inputs().heatmap is heatmap
    r.presenter.evidence.set_show_anyway(False)
    assert r.view.heatmap is None


def test_the_operating_point_decides_not_the_most_probable_class() -> None:
    r = ready({"PNEUMONIA": 0.4})
    classify(r, 0.45)  # NORMAL is the most probable class, but P(PNEUMONIA) is above the operating point
    heatmap = explain(r, "PNEUMONIA")
    assert r.view.heatmap is heatmap and r.view.evidence.gate_note == "" and not r.view.evidence.gated
    assert r.view.evidence.method == "Grad-CAM for PNEUMONIA"
    assert "Gating: the finding is at or above the model's operating point: heatmap shown." in (
        r.presenter.report_inputs().evidence
    )
    normal = explain(r, "NORMAL")  # the model calls it positive: a NORMAL map is gated
    assert r.state.heatmap is normal and r.view.heatmap is None and r.view.evidence.gated


def test_without_a_recorded_operating_point_the_top_class_is_shown() -> None:
    r = ready(None)
    classify(r, 0.7)
    heatmap = explain(r, "PNEUMONIA")
    assert r.view.heatmap is heatmap
    assert "Gating: PNEUMONIA is the most probable class (the model records no operating point): heatmap shown." in (
        r.presenter.report_inputs().evidence
    )
    explain(r, "NORMAL")
    assert r.view.heatmap is None and r.view.evidence.gate_note == NO_EVIDENCE


def test_explain_before_classifying_classifies_with_the_map_and_gates_it() -> None:
    r = ready({"PNEUMONIA": 0.6})
    r.presenter.explain("gradcam")
    job = r.runner.last("computing")
    assert "classify" not in job.description  # one run: the job classifies the image first
    partial = Heatmap("occlusion", "PNEUMONIA", complete=False)
    job.callbacks["partial"](partial)
    assert r.view.heatmap is partial and r.view.evidence.gate_note == NOT_CLASSIFIED
    heatmap = Heatmap("gradcam", "PNEUMONIA")
    job.finish(Explained(heatmap, prediction=prediction(0.3)))
    assert r.view.prediction.probabilities == [0.7, 0.3]  # the table shows the prediction made with it
    assert r.view.heatmap is None and r.view.evidence.gate_note == NO_EVIDENCE
    r.presenter.explain("gradcam")
    assert r.state.results  # classified now: the next map is not classified again


def test_a_gated_map_of_another_image_is_not_shown_or_reported() -> None:
    r = ready({"PNEUMONIA": 0.6})
    r.images.open_paths = ["/data/a.dcm", "/data/b.dcm"]
    classify(r, 0.9)
    heatmap = explain(r)
    assert r.view.heatmap is heatmap
    r.images.image = FakeImage("/data/b.dcm")
    r.presenter.image_changed()
    assert r.view.heatmap is None and r.view.evidence.method == ""


# ---------------------------------------------------------------------------- faithfulness


def score(p0: float = 0.91, deleted: float = 0.57, random: float | None = 0.88) -> Any:
    from ml.explain.faithfulness import DeletionScore

    return DeletionScore("PNEUMONIA", 0.1, p0, deleted, random)


def test_the_faithfulness_sentence() -> None:
    assert faithfulness_sentence(score()) == (
        "Removing the top 10% of this map lowers P(PNEUMONIA) by 34 points (91% → 57%); "
        "a random 10% of the same shape by 3 points."
    )
    assert faithfulness_sentence(score(0.5, 0.6, 0.4)) == (
        "Removing the top 10% of this map raises P(PNEUMONIA) by 10 points (50% → 60%); "
        "a random 10% of the same shape lowers it by 10 points."
    )
    assert faithfulness_sentence(score(0.5, 0.49, None)).endswith("by 1 point (50% → 49%).")
    assert faithfulness_sentence(score(0.99, 0.6, 0.993)).endswith(
        "lowers P(PNEUMONIA) by 39 points (99% → 60%); a random 10% of the same shape changes it by less than 1 point."
    )
    assert "changes P(PNEUMONIA) by less than 1 point (100% → 100%)" in faithfulness_sentence(score(0.999, 0.998, 0.5))


def test_faithfulness_attaches_to_its_own_map_and_image_only() -> None:
    r = ready({"PNEUMONIA": 0.5})
    r.images.open_paths = ["/data/a.dcm", "/data/b.dcm"]
    classify(r, 0.9)
    heatmap = explain(r)
    assert r.view.enabled.evidence
    r.presenter.evidence.measure_faithfulness()
    job = r.runner.last("measuring how faithful")
    assert r.view.busy == (True, True) and not r.view.enabled.evidence  # one progress bar, cancellable
    r.images.image = FakeImage("/data/b.dcm")  # the user moves on while it runs
    r.presenter.image_changed()
    job.finish(score())
    assert r.view.evidence.faithfulness == ""  # b.dcm has no map, and never a's score
    r.images.image = FakeImage("/data/a.dcm")
    r.presenter.image_changed()
    assert r.view.evidence.faithfulness.startswith("Removing the top 10% of this map lowers P(PNEUMONIA) by 34")
    assert any(line.startswith("Faithfulness: Removing the top 10%") for line in r.presenter.report_inputs().evidence)
    newer = explain(r)  # a new map of the same image: the old score is not its score
    assert r.state.heatmap is newer and r.view.evidence.faithfulness == ""
    assert not any(line.startswith("Faithfulness") for line in r.presenter.report_inputs().evidence)
    assert heatmap is not newer


def test_a_score_that_arrives_after_a_new_map_is_dropped() -> None:
    r = ready(None)
    classify(r, 0.9)
    explain(r)
    r.presenter.evidence.measure_faithfulness()
    job = r.runner.last("measuring")
    r.state.heatmap = Heatmap("gradcam", "PNEUMONIA")  # replaced meanwhile (as a model switch + run would)
    job.finish(score())
    assert r.view.evidence.faithfulness == "" and "measure it again" in r.view.status


def test_faithfulness_needs_a_map_of_the_image_shown() -> None:
    r = ready(None)
    r.presenter.evidence.measure_faithfulness()
    assert r.view.errors[-1] == "Compute a heatmap of this image first."
    assert not r.runner.started("measuring")


# ---------------------------------------------------------------------------- contours


def spaced_image(spacing: tuple[float, float] | None) -> Any:
    sp = None if spacing is None else SimpleNamespace(row_mm=spacing[0], col_mm=spacing[1])
    return SimpleNamespace(meta=SimpleNamespace(pixel_spacing=sp))


def test_contour_area_in_mm2_is_the_pixel_count_times_the_spacing() -> None:
    values = np.zeros((100, 120), np.float32)
    values[20:30, 40:60] = 1.0  # 200 pixels
    values[70:74, 10:15] = 0.8  # 20 pixels
    regions, spacing = regions_of(values, spaced_image((0.2, 0.3)))
    assert spacing == (0.2, 0.3) and [x.area_px for x in regions] == [200, 20]
    r = ready(None)
    classify(r, 0.9)
    explain(r, regions=regions, spacing=spacing)
    assert r.view.evidence.regions == ()  # an option, off by default
    r.presenter.evidence.set_contours(True)
    shown = r.view.evidence
    assert [x.area_px for x in shown.regions] == [200, 20]
    assert shown.regions[0].area_mm2 == pytest.approx(200 * 0.2 * 0.3)
    assert shown.contour_text == "Outlined at half of the map's maximum. Top region: 12 mm²; 2nd: 1 mm²."
    rows, cols = shown.regions[0].polygon[:, 0], shown.regions[0].polygon[:, 1]
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (20, 30, 40, 60)  # along the pixel edges
    assert r.presenter.report_inputs().regions == shown.regions
    no_spacing, _ = regions_of(values, spaced_image(None))
    explain(r, regions=no_spacing, spacing=None)
    assert r.view.evidence.contour_text.endswith(
        "Top region: 200 px²; 2nd: 20 px² (no pixel spacing: areas in image pixels)."
    )


def test_contours_of_a_gated_map_are_not_drawn() -> None:
    r = ready({"PNEUMONIA": 0.6})
    classify(r, 0.2)
    values = np.zeros((50, 50), np.float32)
    values[10:20, 10:20] = 1.0
    regions, _ = regions_of(values, spaced_image((1.0, 1.0)))
    r.presenter.evidence.set_contours(True)
    explain(r, regions=regions)
    assert r.view.evidence.regions == () and r.view.evidence.contour_text == ""
    r.presenter.evidence.set_show_anyway(True)
    assert len(r.view.evidence.regions) == 1


# ---------------------------------------------------------------------------- sanity


def sanity_result(spearman: float, method: str = "gradcam", layer: str = "layer3") -> Any:
    from ml.explain.sanity import SanityResult

    return SanityResult(method, layer, spearman, spearman, 0.5, 1)


def test_a_method_that_fails_the_randomisation_check_is_flagged() -> None:
    r = ready(None)
    classify(r, 0.9)
    explain(r, layer="layer3")
    assert r.view.evidence.method == "Grad-CAM at layer3 for PNEUMONIA" and r.view.evidence.sanity == ""
    r.presenter.evidence.check_sanity()
    job = r.runner.last("checking Grad-CAM against a randomised model")
    assert job.callbacks  # a run with progress and cancel like any other
    job.finish(sanity_result(0.83))
    shown = r.view.evidence
    assert shown.sanity_failed and shown.sanity.startswith("⚠ Grad-CAM FAILS the randomisation check")
    assert "rank correlation 0.83" in shown.sanity and "bound 0.50" in shown.sanity
    assert any(line.startswith("Sanity: ⚠ Grad-CAM FAILS") for line in r.presenter.report_inputs().evidence)
    assert shown.flagged == ("gradcam",)  # marked in the method picker
    explain(r, layer="layer3")  # the verdict holds for every map of this method, layer and model
    assert r.view.evidence.sanity_failed
    explain(r, layer="layer2")  # another layer: not checked
    assert r.view.evidence.sanity == "" and not r.view.evidence.sanity_failed
    r.presenter.evidence.check_sanity()
    r.runner.last("checking").finish(sanity_result(0.12, layer="layer2"))
    assert not r.view.evidence.sanity_failed and r.view.evidence.sanity.startswith("Grad-CAM passes")
