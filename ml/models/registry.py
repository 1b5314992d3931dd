"""Architectures by name.

Every architecture a CXR Studio model file may name is registered here with:

* a builder ``builder(num_classes, in_channels) -> nn.Module`` (random weights, never a download);
* ``target_layer``: the dotted module path Grad-CAM should hook (the last convolutional block);
* ``head``: the module trained in head-only fine-tuning, and ``head_linear``: the final
  ``nn.Linear`` replaced when the number of labels changes;
* ``first_conv``: the input convolution, adapted when the number of input channels changes.

Use :func:`build_model` to get a model, optionally initialised from pretrained weights (a state dict,
e.g. ImageNet weights from the catalogue); the first convolution is adapted between 1 and 3
channels and a head of the wrong size is left at its random initialisation.

In-place ReLU and explanations
------------------------------
torchvision's ``DenseNet.forward`` applies ``F.relu(features, inplace=True)`` to the output of
``features.norm5``: the in-place op would overwrite the activation a forward hook captured and
rebase its autograd history. Our DenseNet builders therefore return :class:`CamFriendlyDenseNet`,
whose final ReLU is an out-of-place module, ``final_relu`` (same weights, same outputs, one extra
1024 x 7 x 7 buffer). Its output - the post-ReLU maps the classifier actually pools - is DenseNet's
Grad-CAM layer, as in pytorch-grad-cam (``features.norm5``, before the ReLU, would mix in negative
evidence the classifier never sees; name it explicitly to get it). For any model that did *not*
come from this registry, the explainer must call :func:`prepare_for_explanation` first: it swaps a
torchvision ``DenseNet`` to that class (adding ``final_relu``) and sets ``inplace=False`` on every
activation module, so no tensor a hook captured is modified in place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from ml.errors import ModelFileError
from ml.models.heatmap_defaults import HEATMAP_DEFAULTS

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

#: TorchXRayVision's 18 outputs, in its order.
XRV_LABELS: list[str] = [
    "Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema",
    "Fibrosis", "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass",
    "Hernia", "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum",
]  # fmt: skip

Builder = Callable[[int, int], nn.Module]


@dataclass(frozen=True)
class ArchitectureSpec:
    name: str
    builder: Builder
    target_layer: str
    head: str
    head_linear: str
    first_conv: str
    default_input_size: int = 224
    default_channels: int = 3
    #: "imagenet" (mean/std), "xrv" ([-1024, 1024]) or "unit" (mean 0.5, std 0.5)
    default_normalisation: str = "imagenet"
    default_labels: list[str] = field(default_factory=list)
    description: str = ""
    #: the default heatmap (ml.explain.default_explanation): method and layer(s) chosen on the
    #: phantom benchmark (build_scripts/bench_heatmaps.py), with the figure it was chosen on;
    #: empty: Grad-CAM on ``target_layer``
    explain_method: str = ""
    explain_layer: str = ""
    #: occlusion's patch fill (ml.explain.occlusion.BASELINES) chosen on the same benchmark; empty:
    #: the explainer's own default (black)
    explain_fill: str = ""
    explain_evidence: str = ""


# --------------------------------------------------------------------------- DenseNet


class CamFriendlyDenseNet(torchvision.models.DenseNet):
    """torchvision DenseNet whose final ReLU is an out-of-place module, ``final_relu``.

    Same weights, same state dict keys and same outputs as torchvision's. ``final_relu``'s output is
    what the classifier sees (the post-ReLU feature maps): the Grad-CAM layer. The forward applies
    ReLU once more after it (a no-op on the values), so the gradient at that layer is the gradient
    with respect to the maps before the ReLU (zero where the ReLU is off): Grad-CAM's channel
    weights then count only the positions that reach the classifier, exactly what pytorch-grad-cam
    computes on torchvision's DenseNet (whose in-place ReLU gives it post-ReLU activations and
    pre-ReLU gradients).
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.final_relu = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        features = self.features(x)
        relu = getattr(self, "final_relu", None)
        out = F.relu(relu(features)) if relu is not None else F.relu(features, inplace=False)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        out = torch.flatten(out, 1)
        return self.classifier(out)


def _densenet121(num_classes: int, in_channels: int) -> nn.Module:
    model = CamFriendlyDenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes)
    return _set_in_channels(model, "features.conv0", in_channels)


# --------------------------------------------------------------------------- torchvision


def _tv(fn: Callable[..., nn.Module], first_conv: str) -> Builder:
    def build(num_classes: int, in_channels: int) -> nn.Module:
        model = fn(weights=None, num_classes=num_classes)
        return _set_in_channels(model, first_conv, in_channels)

    return build


# --------------------------------------------------------------------------- cxr_resnet_small


def _norm(channels: int) -> nn.Module:
    # BatchNorm: with GroupNorm this network did not learn the small-lesion phantoms at all (loss
    # stayed at chance). BatchNorm's running statistics lag behind in short CPU runs, so the trainer
    # recomputes them after each epoch (ml.training.loop.recalibrate_batchnorm).
    return nn.BatchNorm2d(channels)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = _norm(cout)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CxrResNetSmall(nn.Module):
    """A compact residual CNN (about 0.1 M parameters, BatchNorm) that trains on a CPU in seconds.

    Input: any size (adaptive pooling); 64-128 px is enough for the synthetic phantoms.
    Output stride 8: a 64 px input gives an 8 x 8 Grad-CAM map at ``layer3``.
    """

    def __init__(
        self, num_classes: int = 2, in_channels: int = 1, widths: tuple[int, ...] = (16, 32, 64)
    ):
        super().__init__()
        if len(widths) not in (3, 4):
            raise ValueError("CxrResNetSmall takes three or four stage widths.")
        w1, w2, w3 = widths[:3]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, w1, 3, 2, 1, bias=False), _norm(w1), nn.ReLU())
        self.layer1 = _BasicBlock(w1, w1, 1)
        self.layer2 = _BasicBlock(w1, w2, 2)
        self.layer3 = _BasicBlock(w2, w3, 2)
        #: a fourth stage (output stride 16) for cxr_resnet_small4; Identity in the 3-stage net, so
        #: the shipped model's weights load unchanged
        self.layer4: nn.Module = _BasicBlock(w3, widths[3], 2) if len(widths) == 4 else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(widths[-1], num_classes)
        # PyTorch's default initialisation: with kaiming_normal(fan_out) instead, Grad-CAM on
        # phantoms found the lesion in as few as 5 of 12 images depending on the seed (10-12 now).

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


# --------------------------------------------------------------------------- table


def _spec(
    name: str, builder: Builder, target: str, head: str, head_linear: str, first: str, **kw
) -> ArchitectureSpec:
    return ArchitectureSpec(name, builder, target, head, head_linear, first, **kw)


_ARCHS: dict[str, ArchitectureSpec] = {}


def register(spec: ArchitectureSpec) -> None:
    _ARCHS[spec.name] = spec



tvm = torchvision.models
for _s in [
    _spec("densenet121", _densenet121, "final_relu", "classifier", "classifier", "features.conv0",
          description="torchvision DenseNet-121", **HEATMAP_DEFAULTS["densenet121"]),
    _spec("resnet18", _tv(tvm.resnet18, "conv1"), "layer4", "fc", "fc", "conv1",
          description="torchvision ResNet-18", **HEATMAP_DEFAULTS["resnet18"]),
    _spec("resnet50", _tv(tvm.resnet50, "conv1"), "layer4", "fc", "fc", "conv1",
          description="torchvision ResNet-50"),
    *[
        _spec(f"efficientnet_b{i}", _tv(getattr(tvm, f"efficientnet_b{i}"), "features.0.0"), "features",
              "classifier", "classifier.1", "features.0.0", default_input_size=size,
              description=f"torchvision EfficientNet-B{i}", **(HEATMAP_DEFAULTS["efficientnet_b0"] if i == 0 else {}))
        for i, size in enumerate((224, 240, 288, 300, 380))
    ],
    _spec("mobilenet_v3_large", _tv(tvm.mobilenet_v3_large, "features.0.0"), "features", "classifier",
          "classifier.3", "features.0.0", description="torchvision MobileNetV3-Large"),
    _spec("xrv_densenet121", _densenet121, "final_relu", "classifier", "classifier", "features.conv0",
          default_channels=1, default_normalisation="xrv", default_labels=list(XRV_LABELS),
          description="TorchXRayVision DenseNet-121 (torchvision layout, 1 channel, 224 px, 18 outputs)"),
    _spec("xrv_resnet50", _tv(tvm.resnet50, "conv1"), "layer4", "fc", "fc", "conv1",
          default_input_size=512, default_channels=1, default_normalisation="xrv",
          default_labels=list(XRV_LABELS),
          description="TorchXRayVision ResNet-50 res512-all (torchvision layout, 1 channel, 512 px, 18 outputs)"),
    _spec("cxr_resnet_small", lambda n, c: CxrResNetSmall(n, c), "layer3", "fc", "fc", "stem.0",
          default_input_size=128, default_channels=1, default_normalisation="unit",
          description="Compact residual CNN for training from scratch on a CPU", **HEATMAP_DEFAULTS["cxr_resnet_small"]),
    # Grad-CAM's layer: layer3 (stride 8), not the last block: on the phantoms 0.93 vs 0.28 (heatmap_defaults.py)
    _spec("cxr_resnet_small4", lambda n, c: CxrResNetSmall(n, c, widths=(16, 32, 64, 128)), "layer3", "fc", "fc",
          "stem.0", default_input_size=128, default_channels=1, default_normalisation="unit",
          description="Compact residual CNN with a fourth stage (0.3 M parameters, output stride 16)",
          **HEATMAP_DEFAULTS["cxr_resnet_small4"]),
]:  # fmt: skip
    register(_s)


def architectures() -> list[str]:
    """Names of every registered architecture."""
    return sorted(_ARCHS)


def get_spec(name: str) -> ArchitectureSpec:
    try:
        return _ARCHS[name]
    except KeyError:
        raise ModelFileError(
            f"Unknown architecture '{name}'. Known architectures: {', '.join(architectures())}."
        ) from None


# --------------------------------------------------------------------------- building


def get_submodule(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def _set_submodule(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, child, new)


def _set_in_channels(model: nn.Module, conv_path: str, in_channels: int) -> nn.Module:
    conv = model.get_submodule(conv_path)
    assert isinstance(conv, nn.Conv2d)
    if conv.in_channels == in_channels:
        return model
    new = nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
    )  # fmt: skip
    _set_submodule(model, conv_path, new)
    return model


def adapt_conv_weight(weight: Tensor, in_channels: int) -> Tensor:
    """Adapt a first-conv weight ``[out, c, k, k]`` to ``in_channels``.

    3 -> 1 sums over the colour channels (a grey image replicated to RGB gives the same response);
    1 -> 3 repeats and divides by 3 (same reasoning in reverse); other cases repeat cyclically.
    """
    c = weight.shape[1]
    if c == in_channels:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    if c == 1:
        return weight.repeat(1, in_channels, 1, 1) / in_channels
    idx = torch.arange(in_channels) % c
    return weight[:, idx] * (c / in_channels)


_LEGACY_DENSENET = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def remap_legacy_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename old torchvision DenseNet keys (``norm.1`` -> ``norm1``); other keys pass through."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        m = _LEGACY_DENSENET.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def load_pretrained(model: nn.Module, arch: str, state: Mapping[str, Tensor]) -> list[str]:
    """Load a pretrained state dict into ``model`` (built from ``arch``) as a starting point.

    The first convolution is adapted to the model's input channels; tensors whose shapes do not fit
    (typically the head when the number of labels differs) keep their random initialisation.
    Returns the names of the tensors that were not loaded. Raises ModelFileError when nothing but
    the head would load (the weights belong to another architecture).
    """
    spec = get_spec(arch)
    state = remap_legacy_keys(state)
    own = model.state_dict()
    conv_key = spec.first_conv + ".weight"
    if conv_key in state and conv_key in own:
        state = dict(state)
        state[conv_key] = adapt_conv_weight(state[conv_key], own[conv_key].shape[1])
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(k for k in own if k not in usable)
    body = [k for k in own if not k.startswith(spec.head + ".")]
    if body and not any(k in usable for k in body):
        raise ModelFileError(f"The pretrained weights do not fit architecture '{arch}'.")
    model.load_state_dict(usable, strict=False)
    return skipped


def build_model(
    arch: str,
    num_classes: int,
    in_channels: int | None = None,
    pretrained: Mapping[str, Tensor] | None = None,
) -> nn.Module:
    """Build architecture ``arch`` with ``num_classes`` outputs and ``in_channels`` inputs.

    ``pretrained``: an optional state dict (e.g. ImageNet weights) used as the starting point via
    :func:`load_pretrained`. Nothing is ever downloaded here.
    """
    spec = get_spec(arch)
    channels = spec.default_channels if in_channels is None else in_channels
    if channels not in (1, 3):
        raise ModelFileError(f"Models take 1 (grey) or 3 (colour) input channels, not {channels}.")
    if num_classes < 1:
        raise ModelFileError("A model needs at least one label.")
    model = spec.builder(num_classes, channels)
    if pretrained is not None:
        load_pretrained(model, arch, pretrained)
    return model


def replace_head(model: nn.Module, arch: str, num_classes: int) -> nn.Module:
    """Replace the final Linear layer with a fresh one with ``num_classes`` outputs (in place)."""
    spec = get_spec(arch)
    old = model.get_submodule(spec.head_linear)
    assert isinstance(old, nn.Linear)
    _set_submodule(model, spec.head_linear, nn.Linear(old.in_features, num_classes, old.bias is not None))
    return model


def head_parameters(model: nn.Module, arch: str) -> list[nn.Parameter]:
    """Parameters trained in head-only fine-tuning."""
    return list(model.get_submodule(get_spec(arch).head).parameters())


def target_layer(model: nn.Module, arch: str) -> nn.Module:
    """The module Grad-CAM should hook for this architecture."""
    return model.get_submodule(get_spec(arch).target_layer)


def prepare_for_explanation(model: nn.Module) -> nn.Module:
    """Make ``model`` safe for hook-based explanations (idempotent, weights unchanged).

    Swaps a plain torchvision DenseNet to :class:`CamFriendlyDenseNet` and turns every in-place
    activation off, so no tensor captured by a forward hook is modified in place afterwards.
    """
    if type(model) is torchvision.models.DenseNet:
        model.__class__ = CamFriendlyDenseNet
    if isinstance(model, CamFriendlyDenseNet) and not hasattr(model, "final_relu"):
        model.final_relu = nn.ReLU(inplace=False)
    for m in model.modules():
        if hasattr(m, "inplace") and isinstance(m.inplace, bool):
            m.inplace = False
    return model
