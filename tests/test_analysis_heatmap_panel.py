"""Issue 14 in the real panel (offscreen): gating, outlines in the viewer, faithfulness and the sanity
check through the panel's one background thread, and the report's heatmap lines.

The tiny random-weight model and the real RSNA radiograph of test_analysis_panel (its fixtures).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.analysis.evidence import NO_MAP
from ml.explain.gating import NO_EVIDENCE
from tests.test_analysis_panel import WAIT_MS, _no_shipped_default_model, ready, rsna, run_image  # noqa: F401

KERMANY = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr" / "kermany-val"
OTHER = next(iter(sorted((KERMANY / "NORMAL").glob("*.jpeg"))), KERMANY / "NORMAL" / "missing.jpeg")


def test_the_panel_gates_outlines_and_measures_the_heatmap(ready, qtbot) -> None:  # noqa: F811
    if not OTHER.is_file():
        pytest.fail(f"shared test data missing at {KERMANY}")
    window, panel = ready
    box = panel.ui.evidence
    assert not box.faith_button.isEnabled()  # no map yet
    run_image(qtbot, panel)  # classify, then Grad-CAM of the top label: at the operating point
    top = panel.prediction.top_label
    assert panel.layer.is_shown() and box.gate.isHidden() and box.show_anyway.isHidden()
    assert box.method.text().startswith("Grad-CAM at ") and box.method.text().endswith(f" for {top}")

    # outlines, in the viewer's overlay, with areas in mm² (the RSNA file has a pixel spacing)
    box.contours.setChecked(True)
    assert window.viewer.overlay_layer("Contours") is panel.contours.item
    assert panel.contours.is_shown() and panel.contours.regions
    assert "mm²" in box.contour_text.text() and not box.contour_text.isHidden()
    assert all(label.toPlainText().endswith("mm²") for label in panel.contours.labels)

    # faithfulness, on request, in the background
    assert box.faith_button.isEnabled()
    box.faith_button.click()
    qtbot.waitUntil(lambda: bool(box.faithfulness.text()) and not panel.busy, timeout=WAIT_MS)
    assert box.faithfulness.text().startswith("Removing the top 10% of this map ") and f"P({top})" in (
        box.faithfulness.text()
    )
    report = panel.report_data()
    assert any(line.startswith("Faithfulness: Removing the top 10%") for line in report.evidence)
    assert any(line.startswith("Heatmap method: Grad-CAM at ") for line in report.evidence)
    assert report.outlines and report.heatmap_text.startswith("Grad-CAM for")

    # the sanity check: its verdict is shown in words (a random model's map may pass or fail)
    box.sanity_button.click()
    qtbot.waitUntil(lambda: bool(box.sanity.text()) and not panel.busy, timeout=WAIT_MS)
    assert "the randomisation check: rank correlation" in box.sanity.text()
    flagged = "FAILS" in box.sanity.text()
    gradcam = panel.controls.method.itemText(panel.controls.method.findData("gradcam"))
    assert gradcam == ("Grad-CAM — fails the sanity check" if flagged else "Grad-CAM")

    # the other label is below the operating point: computed, not drawn, until "Show anyway"
    other = next(x for x in panel.prediction.labels if x != top)
    panel.controls.target.setCurrentIndex(panel.controls.target.findData(other))
    panel.explain()
    qtbot.waitUntil(lambda: panel.heatmap is not None and panel.heatmap.target_label == other and not panel.busy,
                    timeout=WAIT_MS)  # fmt: skip
    assert not panel.layer.is_shown() and not panel.contours.is_shown()
    assert box.gate.text() == NO_EVIDENCE and not box.show_anyway.isHidden()
    assert box.faithfulness.text() == ""  # the score was the other map's
    assert not box.faith_button.isEnabled()
    box.show_anyway.setChecked(True)
    assert panel.layer.is_shown() and panel.contours.is_shown() and box.faith_button.isEnabled()
    # another layer, chosen in the form (fusing two blocks)
    c = panel.controls
    c.method.setCurrentIndex(c.method.findData("layercam"))
    c.layer.setText("layer2,layer3")
    c.target.setCurrentIndex(c.target.findData(top))
    assert c.options() == {"layer": "layer2,layer3"} and not c.layer.isHidden()
    panel.explain()
    qtbot.waitUntil(lambda: panel.heatmap is not None and panel.heatmap.method == "layercam" and not panel.busy,
                    timeout=WAIT_MS)  # fmt: skip
    assert box.method.text() == f"LayerCAM at layer2,layer3 for {top}" and panel.layer.is_shown()
    c.method.setCurrentIndex(c.method.findData("occlusion"))
    assert c.layer.isHidden() and "layer" not in c.options()
    # another image: nothing of this one's map is left, and nothing to measure
    window.open_paths([str(OTHER)])
    qtbot.waitUntil(lambda: str(window.viewer.image().meta.path) == str(OTHER), timeout=WAIT_MS)
    assert not panel.layer.is_shown() and not panel.contours.is_shown() and box.method.isHidden()
    assert not box.faith_button.isEnabled()
    panel.presenter.evidence.measure_faithfulness()
    assert panel.last_error == NO_MAP
