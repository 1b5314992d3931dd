"""Architecture registry: every architecture builds and runs, channels adapt, heads swap, CAM layers work."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from ml.errors import ModelFileError
from ml.models import registry

pytestmark = pytest.mark.usefixtures("single_torch_thread")


EXPECTED = {
    "densenet121", "resnet18", "resnet50", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
    "efficientnet_b3", "efficientnet_b4", "mobilenet_v3_large", "xrv_densenet121", "xrv_resnet50",
    "cxr_resnet_small",
}  # fmt: skip


def test_registry_has_every_architecture_of_the_issue():
    assert EXPECTED <= set(registry.architectures())


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_every_architecture_builds_and_classifies_a_small_image(arch):
    torch.manual_seed(0)
    spec = registry.get_spec(arch)
    model = registry.build_model(arch, num_classes=3).eval()
    captured = []
    handle = registry.target_layer(model, arch).register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        out = model(torch.rand(1, spec.default_channels, 64, 64))
    handle.remove()
    assert out.shape == (1, 3) and torch.isfinite(out).all()
    # the Grad-CAM layer produces a spatial map, the head ends in a Linear with one output per label
    assert captured and captured[0].ndim == 4
    head = model.get_submodule(spec.head_linear)
    assert isinstance(head, nn.Linear) and head.out_features == 3
    assert model.get_submodule(spec.first_conv).in_channels == spec.default_channels
    assert registry.head_parameters(model, arch)


def test_xrv_architectures_match_torchxrayvision_layout():
    dn = registry.build_model("xrv_densenet121", 18)
    assert dn.features.conv0.in_channels == 1 and dn.classifier.out_features == 18
    rn = registry.build_model("xrv_resnet50", 18)
    assert rn.conv1.in_channels == 1 and rn.fc.out_features == 18
    assert registry.get_spec("xrv_resnet50").default_input_size == 512
    assert registry.XRV_LABELS[0] == "Atelectasis" and registry.XRV_LABELS[-1] == "Enlarged Cardiomediastinum"
    assert len(registry.XRV_LABELS) == 18


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_b0"])
def test_grey_model_from_colour_weights_gives_the_same_answer_as_a_grey_image_in_rgb(arch):
    torch.manual_seed(1)
    rgb = registry.build_model(arch, 4, in_channels=3).eval()
    grey = registry.build_model(arch, 4, in_channels=1, pretrained=rgb.state_dict()).eval()
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        expected = rgb(image.repeat(1, 3, 1, 1))
        got = grey(image)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_colour_model_from_grey_weights_gives_the_same_answer():
    torch.manual_seed(2)
    grey = registry.build_model("resnet18", 2, in_channels=1).eval()
    rgb = registry.build_model("resnet18", 2, in_channels=3, pretrained=grey.state_dict()).eval()
    image = torch.rand(1, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(rgb(image.repeat(1, 3, 1, 1)), grey(image), rtol=1e-4, atol=1e-4)


def test_pretrained_with_another_head_keeps_the_body_and_reinitialises_the_head():
    torch.manual_seed(3)
    imagenet_like = registry.build_model("resnet18", 1000, in_channels=3)
    model = registry.build_model("resnet18", 2, in_channels=3, pretrained=imagenet_like.state_dict())
    torch.testing.assert_close(model.layer4[1].conv2.weight, imagenet_like.layer4[1].conv2.weight)
    assert model.fc.out_features == 2
    registry.replace_head(model, "resnet18", 5)
    assert model.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 5)


def test_pretrained_weights_of_another_architecture_are_refused():
    other = registry.build_model("cxr_resnet_small", 2).state_dict()
    with pytest.raises(ModelFileError, match="do not fit"):
        registry.build_model("resnet18", 2, pretrained=other)


def test_old_torchvision_densenet_key_names_are_renamed():
    torch.manual_seed(4)
    model = registry.build_model("densenet121", 3).eval()
    old = {}
    for key, value in model.state_dict().items():
        for part in ("norm1", "norm2", "conv1", "conv2", "relu1", "relu2"):
            key = key.replace(f".{part}.", f".{part[:-1]}.{part[-1]}.") if "denselayer" in key else key
        old[key] = value
    assert any(".norm.1." in k for k in old)
    fresh = registry.build_model("densenet121", 3, pretrained=old).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x))


def test_unknown_architecture_and_bad_channels_are_clear_errors():
    with pytest.raises(ModelFileError, match="Unknown architecture 'vgg11'"):
        registry.build_model("vgg11", 2)
    with pytest.raises(ModelFileError, match="channels"):
        registry.build_model("resnet18", 2, in_channels=2)


def _norm5_output_after_forward(model: nn.Module) -> torch.Tensor:
    captured = []
    handle = model.features.norm5.register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        model(torch.rand(1, model.features.conv0.in_channels, 64, 64))
    handle.remove()
    return captured[0]


def test_densenet_cam_layer_output_is_not_overwritten_by_an_inplace_relu():
    torch.manual_seed(5)
    ours = registry.build_model("xrv_densenet121", 18).eval()
    # the activation captured at the Grad-CAM layer keeps its negative values (no in-place ReLU after it)
    assert (_norm5_output_after_forward(ours) < 0).any()
    plain = torchvision.models.densenet121(weights=None).eval()
    assert not (_norm5_output_after_forward(plain) < 0).any()  # torchvision's in-place ReLU clobbers it
    registry.prepare_for_explanation(plain)
    assert (_norm5_output_after_forward(plain) < 0).any()
    assert not any(getattr(m, "inplace", False) for m in plain.modules())


def test_captum_gradcam_runs_on_the_registered_densenet_layer():
    from captum.attr import LayerGradCam

    torch.manual_seed(6)
    model = registry.build_model("densenet121", 2, in_channels=1).eval()
    cam = LayerGradCam(model, registry.target_layer(model, "densenet121"))
    attribution = cam.attribute(torch.rand(1, 1, 64, 64, requires_grad=True), target=1)
    assert attribution.shape == (1, 1, 2, 2) and torch.isfinite(attribution).all()


def _spots(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.rand(n, 1, 64, 64) * 0.3
    labels = torch.arange(n) % 2
    for i in range(1, n, 2):
        r, c = torch.randint(8, 48, (2,)).tolist()
        images[i, 0, r : r + 8, c : c + 8] = 1.0
    return (images - 0.5) / 0.5, labels


def test_small_cnn_accepts_any_size_and_learns_a_bright_spot_in_seconds():
    torch.manual_seed(7)
    model = registry.build_model("cxr_resnet_small", 2)
    assert sum(p.numel() for p in model.parameters()) < 500_000
    with torch.no_grad():
        assert model.eval()(torch.rand(2, 1, 70, 93)).shape == (2, 2)
    images, labels = _spots(32)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(30):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimiser.step()
    # BatchNorm statistics with the final weights, as the trainer does after each epoch
    from ml.training.loop import recalibrate_batchnorm

    assert recalibrate_batchnorm(model, [(images,)], torch.device("cpu")) == 1
    held_out, truth = _spots(32)
    with torch.no_grad():
        accuracy = (model.eval()(held_out).argmax(1) == truth).float().mean().item()
    assert accuracy >= 0.9
