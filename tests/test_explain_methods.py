"""Finer heatmap methods (HiResCAM, Grad-CAM++, LayerCAM, multi-layer Grad-CAM), the faithfulness
(deletion) score, the randomisation sanity check, gating and contours, on the project's phantoms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ml.errors import CxrError
from ml.explain import METHODS, Explainer, Heatmap, default_explanation, hook_count, make_explainer
from ml.explain.contours import polygon_area, top_regions
from ml.explain.faithfulness import deletion_score
from ml.explain.gating import NO_EVIDENCE, UNCALIBRATED, gate
from ml.explain.sanity import SPEARMAN_BOUND, randomisation_check, spearman
from ml.inference.predictor import Prediction
from ml.inference.preprocess import prepare
from ml.models.manifest import InputDerivation, ModelManifest
from ml.models.registry import build_model, get_spec
from ml.training.loop import recalibrate_batchnorm
from tests.helpers.phantoms import SIZES, make_phantom, phantom_set

CAM_CASES = [
    ("hirescam", None),
    ("gradcampp", None),
    ("layercam", "layer2,layer3"),
    ("gradcam", "layer2,layer3"),
    ("layerig", "layer1"),
]


def manifest(**kw) -> ModelManifest:
    base = dict(
        name="t", architecture="cxr_resnet_small", labels=["normal", "lesion"], input_size=64, channels=1
    )
    base.update(kw)
    return ModelManifest(**base).validate()


@pytest.fixture(scope="module")
def trained(single_torch_thread) -> tuple[nn.Module, ModelManifest]:
    """The compact CNN trained on 128 lesion/normal phantoms at 96 px, as in test_explain.py (at 64 px
    its maps miss the lesion: 4-7 of 12 hits)."""
    torch.manual_seed(0)
    m = manifest(input_size=96)
    ph = phantom_set(64, True, seed=1) + phantom_set(64, False, seed=2)
    x = torch.from_numpy(np.stack([prepare(p.image, 0, m)[0] for p in ph]))
    y = torch.tensor([int(p.has_lesion) for p in ph])
    model = build_model("cxr_resnet_small", 2, 1)
    opt = torch.optim.AdamW(model.parameters(), 3e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(10):
        for idx in torch.randperm(len(y), generator=gen).split(16):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    recalibrate_batchnorm(model, [(x,)], torch.device("cpu"))
    return model.eval(), m


@pytest.fixture(scope="module")
def held_out() -> list:
    return phantom_set(12, True, seed=21)


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("method,layer", CAM_CASES)
def test_finer_methods_give_maps_on_the_source_grid(
    single_torch_thread, method: str, layer: str | None
) -> None:
    m = manifest(input_derivation=InputDerivation(resize="letterbox"))
    torch.manual_seed(0)
    model = build_model("cxr_resnet_small", 2, 1).eval()
    with make_explainer(method, model, m, layer=layer) as explainer:
        for rows, cols in SIZES:
            h = explainer.explain(make_phantom(rows, cols, seed=rows).image, target="lesion")
            assert h.shape == (rows, cols) and h.method == method and h.values.dtype == np.float32
            assert 0.0 <= h.values.min() and h.values.max() <= 1.0
    assert hook_count(model) == 0


@pytest.mark.parametrize("method,layer", [*CAM_CASES, ("gradcam", "layer3")])
def test_finer_methods_point_at_the_lesion(trained, held_out, method: str, layer: str | None) -> None:
    """The maximum of each map lies in the lesion box (grown by 4 source pixels) in >= 9 of 12
    held-out phantoms of three non-square sizes."""
    model, m = trained
    with make_explainer(method, model, m, layer=layer) as explainer:
        hits = sum(
            ph.contains(*explainer.explain(ph.image, target="lesion").argmax(), margin=4) for ph in held_out
        )
    assert hits >= 9, (method, layer, hits)


def test_gradcam_to_layer_input_is_the_previous_blocks_output(trained) -> None:
    """Captum's attribute_to_layer_input on layer3 gives the same map as Grad-CAM on layer2."""
    model, m = trained
    image = make_phantom(200, 256, seed=5).image
    with (
        make_explainer("gradcam", model, m, layer="layer3", attribute_to_layer_input=True) as a,
        make_explainer("gradcam", model, m, layer="layer2") as b,
    ):
        assert np.allclose(a.explain(image, target=1).values, b.explain(image, target=1).values, atol=1e-4)


def test_unknown_layers_methods_and_fusions_are_one_readable_error() -> None:
    model, m = build_model("cxr_resnet_small", 2, 1), manifest()
    with pytest.raises(CxrError, match="no layer 'layer9'"):
        with make_explainer("layercam", model, m, layer="layer2,layer9"):
            pass
    with pytest.raises(CxrError, match="Unknown explanation method"):
        make_explainer("guided", model, m)
    with pytest.raises(CxrError, match="no layer to choose"):
        make_explainer("occlusion", model, m, layer="layer3")
    with pytest.raises(CxrError, match="one layer"):
        make_explainer("layerig", model, m, layer="layer2,layer3")
    with pytest.raises(CxrError, match="fuse"):
        make_explainer("gradcam", model, m, layer="layer2,layer3", fuse="max")


def test_benchmarked_architectures_name_an_evidence_based_default_that_exists() -> None:
    """ResNet-18, DenseNet-121 and EfficientNet-B0 name their default method and layer(s) with the
    benchmark figure; the layers exist in the built model; "default" builds that explainer."""
    for arch in ("resnet18", "densenet121", "efficientnet_b0"):
        spec = get_spec(arch)
        method, layer = default_explanation(arch)
        assert method in METHODS and spec.explain_evidence, arch
        net = spec.builder(2, 1)
        for name in (layer or spec.target_layer).split(","):
            net.get_submodule(name)  # raises when the registry names a layer that is not there
        m = manifest(architecture=arch)
        with make_explainer("default", net, m) as explainer:
            assert explainer.method == method
            assert getattr(explainer, "layer_path", layer) == layer or layer is None


def test_occlusion_and_deletion_take_the_architecture_s_benchmarked_fill() -> None:
    """The patch fill is chosen per architecture like a CAM layer (a black square on the mediastinum
    misleads the standard networks, a grey one in the lung misleads the compact CNN): "occlusion"
    and "default" use the registry's fill, an explicit one wins, an architecture without one gets
    black; the deletion score fills the removed pixels the same way."""
    from ml.explain.faithfulness import _fill
    from ml.explain.occlusion import BASELINES
    from ml.models.registry import architectures

    named = {a: get_spec(a).explain_fill for a in architectures() if get_spec(a).explain_fill}
    assert {"resnet18", "densenet121", "efficientnet_b0"} <= set(named), named
    for arch, fill in named.items():
        assert fill in BASELINES, arch
        m = manifest(architecture=arch, input_size=32)
        net = build_model(arch, 2, 1).eval()
        with make_explainer("occlusion", net, m) as occ:
            assert occ.baseline == fill, arch
        with make_explainer("occlusion", net, m, baseline="black") as occ:
            assert occ.baseline == "black"
    plain = next(a for a in ("mobilenet_v3_large", "resnet50", "resnet34") if a in architectures())
    assert not get_spec(plain).explain_fill
    with make_explainer("occlusion", build_model(plain, 2, 1), manifest(architecture=plain)) as occ:
        assert occ.baseline == "black"
    m = manifest()  # cxr_resnet_small
    x = torch.linspace(-1, 1, 64 * 64).view(1, 1, 64, 64)
    black = _fill(x, m, None, (0, 0, 64, 64))
    assert torch.allclose(black, torch.full_like(black, -1.0))  # unit normalisation: black is -1
    mean = _fill(x, manifest(architecture="resnet18"), "mean", (0, 0, 64, 64))
    assert abs(float(mean.mean())) < 1e-6


# --------------------------------------------------------------------------- faithfulness


def test_deleting_the_top_region_lowers_the_score_more_than_a_random_region(trained, held_out) -> None:
    model, m = trained
    drops, random_drops = [], []
    with make_explainer("layercam", model, m, layer="layer2,layer3") as cam:
        for ph in held_out:
            h = cam.explain(ph.image, target="lesion")
            s = deletion_score(model, m, ph.image, h, fraction=0.1, n_random=4)
            assert 0 <= s.deleted <= 1 and 0 <= s.probability <= 1
            drops.append(s.drop)
            random_drops.append(s.random_drop)
    wins = sum(d > r for d, r in zip(drops, random_drops, strict=True))
    assert wins >= 10, (drops, random_drops)
    assert np.mean(drops) > np.mean(random_drops) + 0.2, (np.mean(drops), np.mean(random_drops))
    assert "Removing the top 10% of this map drops the probability of lesion by" in s.text()


def test_deletion_score_refuses_a_heatmap_of_another_image(trained) -> None:
    model, m = trained
    h = Heatmap(np.zeros((10, 10), np.float32), "gradcam", "lesion", 0.0, 0.0)
    with pytest.raises(CxrError, match="does not belong"):
        deletion_score(model, m, make_phantom(160, 200).image, h)


# --------------------------------------------------------------------------- sanity check


class ImageIntensity(Explainer):
    """A 'method' that ignores the model: the input image itself (an edge detector in disguise)."""

    method = "image"

    def _attribute(self, x, target, emit, progress, cancel) -> np.ndarray:
        return x[0].mean(0).cpu().numpy() + 10.0


def test_randomisation_check_passes_cams_and_flags_a_method_that_ignores_the_model(trained, held_out) -> None:
    model, m = trained
    images = [ph.image for ph in held_out[:4]]
    for method, layer in (("gradcam", "layer3"), ("layercam", "layer2,layer3"), ("layerig", "stem")):
        result = randomisation_check(method, model, m, images, target="lesion", layer=layer)
        assert result.passed and result.spearman < SPEARMAN_BOUND, result
    flagged = randomisation_check(ImageIntensity, model, m, images, target="lesion")
    assert not flagged.passed and flagged.spearman > 0.9 and "FAILS" in flagged.text()


def test_spearman_handles_ties_and_constants() -> None:
    a = np.array([0.0, 0.0, 1.0, 2.0])
    assert spearman(a, a * 3 + 1) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, np.zeros(4)) == 0.0


# --------------------------------------------------------------------------- gating


def _prediction(
    task: str, probs: list[float], positives: list[str], top: str, uncal: list[bool]
) -> Prediction:
    return Prediction(
        path="x", frame=0, labels=["a", "b", "c"], probabilities=probs, positives=positives, top_label=top,
        model_name="m", device="cpu", task=task, uncalibrated=uncal,
    )  # fmt: skip


def test_heatmaps_below_the_operating_point_are_hidden_unless_asked_for() -> None:
    p = _prediction("multilabel", [0.9, 0.2, 0.5], ["a"], "a", [False, False, True])
    assert gate(p, "a").shown and gate(p, "a").note == ""
    below = gate(p, "b")
    assert not below.shown and not below.above and below.note == NO_EVIDENCE
    anyway = gate(p, "b", show_anyway=True)
    assert anyway.shown and not anyway.above and "on request" in anyway.note
    assert gate(p, "c").note == UNCALIBRATED and not gate(p, "c").shown
    mc = _prediction("multiclass", [0.2, 0.7, 0.1], ["b"], "b", [])
    assert gate(mc, "b").shown and not gate(mc, "a").shown


# --------------------------------------------------------------------------- contours


def test_contours_outline_each_top_region_with_its_area() -> None:
    yy, xx = np.mgrid[0:120, 0:160]
    values = np.exp(-((yy - 30) ** 2 + (xx - 40) ** 2) / 50.0) + 0.7 * np.exp(
        -((yy - 90) ** 2 + (xx - 120) ** 2) / 80.0
    )
    values = (values / values.max()).astype(np.float32)
    regions = top_regions(values, level=0.5, pixel_spacing=(0.2, 0.25))
    assert len(regions) == 2
    first, second = regions
    assert first.peak_at == (30, 40) and first.peak > second.peak
    for r in regions:
        assert polygon_area(r.polygon) == pytest.approx(r.area_px)  # outline along the pixel edges
        assert r.area_mm2 == pytest.approx(r.area_px * 0.05)
    # the first blob's area at half maximum: pi * 50 * ln 2 px
    assert first.area_px == pytest.approx(np.pi * 50 * np.log(2), rel=0.15)
    assert top_regions(np.zeros((8, 8), np.float32)) == []
    assert top_regions(values)[0].area_mm2 is None and "px" in top_regions(values)[0].text()


def test_contour_of_a_trained_models_map_surrounds_the_lesion(trained) -> None:
    model, m = trained
    ph = make_phantom(400, 480, seed=33)  # large: traced on a coarser grid, areas on the full one
    with make_explainer("layercam", model, m, layer="layer2,layer3") as cam:
        h = cam.explain(ph.image, target="lesion")
    region = top_regions(h, level=0.5, pixel_spacing=(0.5, 0.5))[0]
    r, c = ph.lesion_center
    rows, cols = region.polygon[:, 0], region.polygon[:, 1]
    assert rows.min() <= r <= rows.max() and cols.min() <= c <= cols.max()
    assert polygon_area(region.polygon) == pytest.approx(region.area_px, rel=0.1)
    assert region.area_mm2 == pytest.approx(region.area_px * 0.25)


# --------------------------------------------------------------------------- command line


def test_cxr_predict_takes_a_method_a_layer_and_prints_the_faithfulness(
    trained, tmp_path, monkeypatch, capsys
) -> None:
    from ml.cli import main as cxr
    from ml.models import bundle
    from tests.helpers.phantoms import write_phantom_folder

    monkeypatch.setenv("CXR_STUDIO_HOME", str(tmp_path / "home"))
    model, m = trained
    path = bundle.save_model(tmp_path / "phantom.safetensors", model, m)
    write_phantom_folder(tmp_path / "images", n_per_class=1, fmt="png")
    heat = tmp_path / "heat"
    code = cxr(["predict", str(tmp_path / "images"), "--model", str(path), "--explain", "layercam",
                "--explain-layer", "layer2,layer3", "--explain-faithfulness", "--explain-dir", str(heat)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("Removing the top 10% of this map drops the probability of") == 2, out
    assert len(list(heat.glob("*.layercam.npy"))) == 2
    assert "\tLayerCAM at layer2,layer3\t" in out  # the method and layer the score belongs to
    # the faithfulness line without writing heatmaps: --explain alone (or nothing: Grad-CAM)
    assert cxr(["predict", str(tmp_path / "images"), "--model", str(path), "--explain-faithfulness"]) == 0
    out = capsys.readouterr().out
    assert out.count("\tGrad-CAM at ") == 2 and out.count("Removing the top 10% of this map") == 2, out
    assert cxr(["predict", str(tmp_path / "images"), "--model", str(path), "--explain", "gradcam",
                "--explain-layer", "layer7", "--explain-dir", str(heat)]) == 2  # fmt: skip
    assert "no layer 'layer7'" in capsys.readouterr().err
    # occlusion's window, stride and fill from the command line; a stride above the window is refused
    occ = ["predict", str(tmp_path / "images"), "--model", str(path), "--explain", "occlusion",
           "--occlusion-fill", "mean", "--explain-dir", str(heat)]  # fmt: skip
    assert cxr([*occ, "--occlusion-window", "12", "--occlusion-stride", "6"]) == 0
    assert len(list(heat.glob("*.occlusion.npy"))) == 2
    capsys.readouterr()
    assert cxr([*occ, "--occlusion-window", "6", "--occlusion-stride", "12"]) == 2
    assert "stride no larger than the window" in capsys.readouterr().err
