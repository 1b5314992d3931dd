"""Explanations: Grad-CAM and occlusion heatmaps on the source grid, hooks, cancel, and the geometry
proof on synthetic phantoms (a small model trained here must point at the lesion)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from captum.attr import Occlusion
from torch import nn

from ml.errors import CancelledError, CxrError
from ml.explain import GradCam, Heatmap, OcclusionExplainer, hook_count, make_explainer
from ml.inference.preprocess import prepare
from ml.models.manifest import InputDerivation, ModelManifest
from ml.models.registry import build_model
from ml.progress import CancelToken
from ml.training.loop import recalibrate_batchnorm
from tests.helpers.phantoms import SIZES, make_phantom, phantom_set


def manifest(**kw) -> ModelManifest:
    base = dict(
        name="test", architecture="cxr_resnet_small", labels=["normal", "lesion"], input_size=64, channels=1
    )
    base.update(kw)
    return ModelManifest(**base).validate()


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("cxr_resnet_small", 2, 1).eval()


# --------------------------------------------------------------------------- shapes, hooks


@pytest.mark.parametrize("resize", ["squash", "letterbox"])
@pytest.mark.parametrize("method", ["gradcam", "occlusion"])
def test_heatmaps_are_on_the_source_grid(method: str, resize: str) -> None:
    m = manifest(input_derivation=InputDerivation(resize=resize))
    model = small_model()
    with make_explainer(method, model, m) as explainer:
        for rows, cols in SIZES:
            h = explainer.explain(make_phantom(rows, cols, seed=rows).image, target="lesion")
            assert isinstance(h, Heatmap) and h.shape == (rows, cols) and h.values.dtype == np.float32
            assert h.method == method and h.target_label == "lesion" and h.complete
            assert 0.0 <= h.values.min() and h.values.max() <= 1.0
    assert hook_count(model) == 0


def test_densenet_with_inplace_relus_gives_a_gradcam_map() -> None:
    # a plain torchvision DenseNet (F.relu(inplace=True) after norm5, nn.ReLU(inplace=True) inside)
    torch.manual_seed(0)
    net = torchvision.models.DenseNet(
        growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, num_classes=3
    )
    with torch.no_grad():  # random weights may score every class negative everywhere (no evidence):
        net.classifier.weight[0] = net.classifier.weight[0].abs()  # class "a" gets some
    net.eval()
    m = manifest(architecture="densenet121", labels=["a", "b", "c"], channels=3, input_size=64)
    image = make_phantom(200, 256, seed=1).image
    with GradCam(net, m) as cam:
        maps = [cam.explain(image, target=label) for label in m.labels]
        copy = cam.model
        assert hook_count(copy) == 0  # Captum removes its hooks after each call
    assert all(h.shape == (200, 256) for h in maps)
    # random weights: some class has positive evidence somewhere, and its map is not flat
    h = max(maps, key=lambda h: h.raw_max)
    assert h.raw_max > 0 and h.values.std() > 0.01
    # the caller's model is untouched: same class, its in-place ReLUs still in place
    assert type(net) is torchvision.models.DenseNet
    assert all(r.inplace for r in net.modules() if isinstance(r, nn.ReLU))
    assert hook_count(net) == 0 and all(p.requires_grad for p in net.parameters())
    # a second explainer on the same model gives the same map (the first left nothing behind)
    with GradCam(net, m) as cam:
        assert np.allclose(cam.explain(image, target=h.target_label).values, h.values, atol=1e-5)


def test_hooks_are_removed_on_exit_even_after_a_cancel() -> None:
    model = small_model()
    token = CancelToken()
    with OcclusionExplainer(model, manifest()) as occ:
        copy = occ.model
        # a stray hook left behind (e.g. by an interrupted attribution) is removed on exit too
        copy.get_submodule("layer3").register_forward_hook(lambda *a: None)
        token.cancel()
        with pytest.raises(CancelledError):
            occ.explain(make_phantom(seed=0).image, cancel=token)
    assert occ.model is None and hook_count(copy) == 0 and hook_count(model) == 0
    with pytest.raises(RuntimeError, match="with"):
        occ.explain(make_phantom(seed=0).image)


def test_unknown_target_label_is_a_readable_error() -> None:
    with GradCam(small_model(), manifest()) as cam, pytest.raises(CxrError, match="no label 'Nodule'"):
        cam.explain(make_phantom(seed=0).image, target="Nodule")


# --------------------------------------------------------------------------- occlusion


@pytest.mark.parametrize("size,window,stride", [(64, 16, 8), (50, 12, 8)])
def test_chunked_occlusion_equals_one_captum_run(size: int, window: int, stride: int) -> None:
    model, m = small_model(seed=3), manifest(input_size=size)
    image = make_phantom(160, 200, seed=3).image
    with OcclusionExplainer(
        model, m, window=window, stride=stride, perturbations_per_eval=5, baseline=0.0
    ) as occ:
        x, _ = occ.input_tensor(image)
        ours = occ._attribute(x, 1, None, None, None)

    def log_prob(batch: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(model(batch), dim=1)

    ref = Occlusion(log_prob).attribute(
        x, sliding_window_shapes=(1, window, window), strides=(1, stride, stride), target=1
    )
    assert np.allclose(ours, ref[0, 0].detach().numpy(), atol=1e-5)


def test_blurred_baseline_occlusion_equals_one_captum_run_with_that_baseline() -> None:
    from torchvision.transforms.functional import gaussian_blur

    model, m = small_model(seed=5), manifest(input_size=50)
    image = make_phantom(160, 200, seed=5).image
    with OcclusionExplainer(model, m, window=12, stride=8, perturbations_per_eval=5, baseline="blur") as occ:
        x, _ = occ.input_tensor(image)
        ours = occ._attribute(x, 1, None, None, None)
    blurred = gaussian_blur(x, [37, 37], [6.0, 6.0])  # sigma = window / 2, kernel 2 * ceil(3 sigma) + 1
    assert not torch.allclose(blurred, x)  # the fill is a real blur of this image, not a copy

    def log_prob(batch: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(model(batch).double(), dim=1)

    ref = Occlusion(log_prob).attribute(
        x, baselines=blurred, sliding_window_shapes=(1, 12, 12), strides=(1, 8, 8), target=1
    )
    assert np.allclose(ours, ref[0, 0].detach().numpy(), atol=1e-5)


def test_log_probabilities_of_a_confident_model_are_not_rounded_to_zero() -> None:
    from ml.explain.occlusion import log_probs

    logits = torch.tensor([[40.0, 0.0, 10.0], [1.0, 2.0, 3.0]])
    ours = log_probs(logits)
    assert torch.allclose(ours, torch.log_softmax(logits.double(), dim=1), rtol=1e-9, atol=1e-15)
    # float32 says the leading class's log-probability is exactly 0; it is -(e^-30 + e^-40)
    assert torch.log_softmax(logits, dim=1)[0, 0] == 0.0
    exact = -np.log1p(np.exp(-30) + np.exp(-40))
    assert ours[0, 0] < 0 and abs(float(ours[0, 0]) - exact) <= 1e-12 * abs(exact)


def test_occlusion_of_a_confident_model_is_not_a_flat_map() -> None:
    """A model that leads by ~40 logits: every occluded copy changes its float32 log-probability by
    exactly 0 (a flat, useless map), while the float64 score still ranks the windows."""
    base = small_model(seed=6)
    confident = nn.Sequential(base, nn.Linear(2, 2)).eval()
    with torch.no_grad():
        confident[1].weight.copy_(torch.tensor([[-1000.0, 1000.0], [1000.0, -1000.0]]))
        confident[1].bias.copy_(torch.tensor([0.0, 0.0]))
    m = manifest(input_size=48)
    image = make_phantom(96, 96, seed=6).image
    with OcclusionExplainer(confident, m, window=12, stride=6) as occ:
        x, _ = occ.input_tensor(image)
        with torch.no_grad():
            logits = confident(x)[0]
        target = int(logits.argmax())
        assert abs(float(logits[0] - logits[1])) > 20  # the target leads far enough to round to 0
        ours = occ._attribute(x, target, None, None, None)
        fill = occ._baseline_values(x)
    # what float32 log_softmax would have said for the same windows
    occluded = x.clone()
    occluded[:, :, :12, :12] = fill[:, :, :12, :12]
    with torch.no_grad():
        f32 = torch.log_softmax(confident(torch.cat([x, occluded])), dim=1)[:, target]
    assert float(f32[0] - f32[1]) == 0.0
    assert np.abs(ours).max() > 0 and np.unique(np.round(ours, 30)).size > 10


def test_occlusion_reports_progress_partial_maps_and_cancels() -> None:
    image = make_phantom(240, 180, seed=4).image
    partials: list[Heatmap] = []
    progress: list[tuple[int, int]] = []
    with OcclusionExplainer(small_model(), manifest(), perturbations_per_eval=8) as occ:
        full = occ.explain(
            image, on_partial=partials.append, progress=lambda d, t, _: progress.append((d, t))
        )
        token = CancelToken()

        def cancel_after_two(h: Heatmap) -> None:
            if h.fraction_done > 0.15:
                token.cancel()

        with pytest.raises(CancelledError):
            occ.explain(image, on_partial=cancel_after_two, cancel=token)
    assert full.complete and full.shape == (240, 180)
    assert len(partials) >= 3 and all(not p.complete and p.shape == (240, 180) for p in partials)
    fractions = [p.fraction_done for p in partials]
    assert fractions == sorted(fractions) and 0 < fractions[0] < fractions[-1] < 1
    # the first partial map only covers the top strip; the last covers nearly everything
    assert not partials[0].values[-40:].any()
    assert progress[-1][0] == progress[-1][1] == 12 * 12  # 9 px window, 5 px stride at 64 px


# --------------------------------------------------------------------------- the geometry proof


INPUT = 96


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, ModelManifest]:
    """The registry's compact CNN trained on lesion / normal phantoms (non-square, three sizes), seeded.

    Over training seeds 0-5, Grad-CAM's maximum hits the lesion in 32-36 of the 36 held-out phantoms
    and occlusion's in 35-36, so the 80% bar below (29 of 36) holds with a margin."""
    torch.manual_seed(0)
    m = manifest(input_size=INPUT)
    train = phantom_set(64, True, seed=1) + phantom_set(64, False, seed=2)
    x = torch.from_numpy(np.stack([prepare(p.image, 0, m)[0] for p in train]))  # the shared derivation
    y = torch.tensor([int(p.has_lesion) for p in train])
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
    # recompute the BatchNorm statistics with the final weights, as the trainer does
    recalibrate_batchnorm(model, [(x,)], torch.device("cpu"))
    return model.eval(), m


def test_trained_phantom_model_is_accurate(trained) -> None:
    model, m = trained
    held_out = phantom_set(12, True, seed=11) + phantom_set(12, False, seed=12)
    x = torch.from_numpy(np.stack([prepare(p.image, 0, m)[0] for p in held_out]))
    with torch.no_grad():
        correct = (model(x).argmax(1) == torch.tensor([int(p.has_lesion) for p in held_out])).float().mean()
    assert correct >= 0.9


def test_gradcam_and_occlusion_point_at_the_lesion(trained) -> None:
    """On held-out lesion phantoms of three non-square sizes, the maximum of each heatmap lies in
    the lesion's box (grown by 4 source pixels) in at least 80% of the images. Grad-CAM is cheap
    and scores 32-36 of 36 over training seeds: it is judged on 36 phantoms, where one unlucky
    phantom moves the rate by 3%, not 8%. Occlusion (slow: a forward pass per window position)
    scores 12 of 12 on every seed and is judged on the first 12."""
    model, m = trained
    held_out = phantom_set(36, True, seed=11)
    assert {p.image.shape for p in held_out} == set(SIZES)
    hits = {"gradcam": 0, "occlusion": 0}
    with (
        GradCam(model, m, layer="layer3") as cam,
        OcclusionExplainer(model, m, window=16, stride=4, perturbations_per_eval=32) as occ,
    ):
        for i, ph in enumerate(held_out):
            for name, explainer in (("gradcam", cam), ("occlusion", occ)):
                if name == "occlusion" and i >= 12:
                    continue
                h = explainer.explain(ph.image, target="lesion")
                assert h.shape == ph.image.shape
                hits[name] += ph.contains(*h.argmax(), margin=4)
    assert hits["gradcam"] >= 0.8 * len(held_out), hits
    assert hits["occlusion"] >= 0.8 * 12, hits


# --------------------------------------------------------------------------- agreement with pytorch-grad-cam


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel())[0, 1])


@pytest.mark.parametrize("arch", ["densenet121", "resnet50"])
def test_gradcam_agrees_with_pytorch_grad_cam(arch: str, shared_data) -> None:
    """Same weights, same input: our Grad-CAM (DenseNet: the post-ReLU maps the classifier pools)
    matches pytorch-grad-cam's on the source grid of a real radiograph, for every label."""
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from ml.imaging.read import read_image
    from ml.models.manifest import default_normalisation

    torch.set_num_threads(1)
    image = read_image(shared_data / "dicom" / "rsna_cxr_pa.dcm")
    m = manifest(
        architecture=arch, labels=["a", "b", "c"], channels=3, input_size=224,
        normalisation=default_normalisation("imagenet", 3),
    )  # fmt: skip
    x, geometry = prepare(image, 0, m)
    x = torch.from_numpy(x)[None]
    torch.manual_seed(0)
    # torchvision's own module, in-place ReLUs and all, as a pytorch-grad-cam user runs it
    net = getattr(torchvision.models, arch)(weights=None, num_classes=3)
    with torch.no_grad():  # BatchNorm statistics from this input (random ones saturate the network)
        for mod in net.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.reset_running_stats()
                mod.momentum = None
        net.train()(torch.cat([x, x.flip(-1)]))
    net.eval()
    layer = net.features[-1] if arch == "densenet121" else net.layer4[-1]  # pytorch-grad-cam's README
    pre_relu = []
    with GradCam(net, m) as ours, pgc.GradCAM(model=net, target_layers=[layer]) as theirs:
        for target in range(3):
            reference = geometry.to_source_grid(
                theirs(input_tensor=x.clone(), targets=[ClassifierOutputTarget(target)])[0]
            )
            assert reference.max() > 0  # a map with evidence, not an empty one
            r = _pearson(ours.explain(image, target=target).values, reference)
            assert r >= 0.99, (arch, target, r)
            if arch == "densenet121":  # the explicit pre-ReLU option is a different map
                with GradCam(net, m, layer="features.norm5") as before_relu:
                    pre_relu.append(_pearson(before_relu.explain(image, target=target).values, reference))
    assert arch != "densenet121" or min(pre_relu) < 0.95, pre_relu
