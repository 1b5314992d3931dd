"""The heatmap form's coarse-to-fine switch (issue 13) reaches the occlusion explainer of the
panel's heatmap job, and the job's first partial map is the coarse one."""

from __future__ import annotations

from pathlib import Path

import torch

import ml.explain
from app.analysis import evidence_jobs
from app.analysis.heatmap import HeatmapControls
from app.analysis.jobs import LoadedModel
from ml.inference.predictor import Predictor
from ml.models.manifest import ModelManifest
from ml.models.registry import build_model
from tests.helpers.phantoms import make_phantom


def test_the_coarse_first_box_runs_coarse_to_fine_occlusion_in_the_heatmap_job(qtbot, monkeypatch) -> None:
    controls = HeatmapControls()
    qtbot.addWidget(controls)
    controls.method.setCurrentIndex(controls.method.findData("occlusion"))
    controls.set_defaults_for_input(64)
    assert controls.options()["mode"] == "full" and not controls.coarse_first.isHidden()
    controls.coarse_first.setChecked(True)
    options = controls.options()
    assert options == {"window": 9, "stride": 5, "mode": "coarse-to-fine"}

    made = []
    real = ml.explain.make_explainer

    def spy(*args, **kw):
        made.append(real(*args, **kw))
        return made[-1]

    monkeypatch.setattr(ml.explain, "make_explainer", spy)
    torch.manual_seed(0)
    m = ModelManifest(name="t", architecture="cxr_resnet_small", labels=["normal", "lesion"], input_size=64,
                      channels=1).validate()  # fmt: skip
    loaded = LoadedModel(Path("t.safetensors"), m, Predictor(build_model("cxr_resnet_small", 2, 1).eval(), m,
                                                             "cpu"), "CPU")  # fmt: skip
    partials = []

    class Reporter:
        def __call__(self, *_a) -> None: ...

        def partial(self, value) -> None:
            partials.append(value)

    image = make_phantom(96, 80, seed=2).image
    result = evidence_jobs.explain(loaded, image, 0, "occlusion", "lesion", options)(Reporter(), None)
    occ = made[0]
    assert occ.mode == "coarse-to-fine" and occ.window == 9 and occ.stride == 5
    full_passes = 12 * 12  # positions(64, 9, 5) squared
    assert 0 < occ.passes < full_passes and occ.refined is not None
    assert result.heatmap.complete and result.heatmap.shape == (96, 80)
    first = partials[0]
    assert not first.complete and abs(first.fraction_done - 36 / occ.passes) < 1e-6  # the 6 x 6 coarse grid (18/10 px)
