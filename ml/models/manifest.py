"""The JSON manifest stored inside every CXR Studio model file.

A model is one ``.safetensors`` file; its metadata key :data:`MANIFEST_KEY` holds
``ModelManifest.to_json()``. The manifest says everything inference needs to reproduce the
training-time input exactly: architecture, labels, task, input size, channels, normalisation and how
the network input is derived from the DICOM/PNG pixels.

Normalisation (applied to the derived image scaled to [0, 1], see :func:`normalise_tensor`):

* ``{"mean": [...], "std": [...]}``: ``(x - mean) / std`` per channel;
* ``"xrv"``: TorchXRayVision's scaling ``(2 x - 1) * 1024``, i.e. [0, 1] -> [-1024, 1024].

Thresholds are per label (probability above threshold = positive). ``calibration == "xrv_op_norm"``
marks TorchXRayVision operating points: a probability ``p`` may be shown calibrated so that the
threshold maps to 0.5 (:func:`xrv_op_norm`). ``hidden_labels`` are outputs the network has but was
never trained on (TorchXRayVision's dataset-specific weights): inference hides them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, get_args

from ml import DISCLAIMER, __version__
from ml.errors import ModelFileError

if TYPE_CHECKING:
    from torch import Tensor

MANIFEST_KEY = "cxr_studio_manifest"
FORMAT_VERSION = 1

Task = Literal["multiclass", "multilabel"]
ResizeMode = Literal["squash", "letterbox", "center_crop"]
VoiMode = Literal["default", "auto", "none"]
PixelSource = Literal["display", "xrv"]
Interpolation = Literal["bilinear", "area", "nearest", "xrv"]
Equalize = Literal["none", "histogram"]
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)
VOI_MODES: tuple[str, ...] = get_args(VoiMode)
PIXEL_SOURCES: tuple[str, ...] = get_args(PixelSource)
INTERPOLATIONS: tuple[str, ...] = get_args(Interpolation)
EQUALIZE_MODES: tuple[str, ...] = get_args(Equalize)
Normalisation = dict[str, list[float]] | str

IMAGENET_NORMALISATION: dict[str, list[float]] = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
UNIT_NORMALISATION: dict[str, list[float]] = {"mean": [0.5], "std": [0.5]}


@dataclass
class InputDerivation:
    """How the network input is derived from a file's stored pixels (same in training and inference).

    ``pixels`` says how the grey levels are made:

    * ``"display"`` (CXR Studio's own models): modality LUT -> VOI (``voi``) -> MONOCHROME1 inverted
      -> [0, 1], i.e. what the viewer shows;
    * ``"xrv"`` (TorchXRayVision's ``load_image`` / ``read_xray_dcm``): the stored values divided by
      ``2**BitsStored - 1`` (PNG/JPEG: by 255, 16-bit PNG by 65535; colour: the first channel), no
      modality LUT, no VOI unless ``voi == "default"`` (xrv's ``voi_lut=True``), MONOCHROME1 inverted.
      With ``resize="center_crop"`` and ``interpolation="xrv"`` this is exactly xrv's
      ``XRayCenterCrop`` + ``XRayResizer``.
    """

    #: how the grey levels are made: "display" or "xrv" (see the class docstring)
    pixels: PixelSource = "display"
    modality_lut: bool = True
    #: "default": the file's own default VOI (first window / VOI LUT), else the automatic window;
    #: "auto": always the automatic window (percentiles of the pixel values); "none": min-max.
    voi: VoiMode = "default"
    invert_monochrome1: bool = True
    #: the displayed image is scaled to [0, 1] before resizing and normalisation
    scale: Literal["unit"] = "unit"
    #: "squash": resize to input_size x input_size ignoring aspect; "letterbox": keep aspect, pad
    #: with zeros; "center_crop": crop the central square (offset ``n // 2 - side // 2``, as
    #: TorchXRayVision's XRayCenterCrop), then resize
    resize: ResizeMode = "squash"
    #: "bilinear" (antialiased), "area", "nearest", or "xrv": skimage.transform.resize as xrv's
    #: XRayResizer calls it (Gaussian anti-aliasing, sigma = (factor - 1) / 2, zero padding in xrv's
    #: [-1024, 1024] range, then linear interpolation)
    interpolation: Interpolation = "bilinear"
    #: after resizing: "histogram" maps each channel of the resized content through its own
    #: cumulative histogram (skimage.exposure.equalize_hist, 256 bins), so exposure and contrast
    #: differences between sites and devices do not reach the network; "none" leaves the grey levels
    equalize: Equalize = "none"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputDerivation:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def xrv(cls) -> InputDerivation:
        """Exactly TorchXRayVision's input: ``load_image``/``read_xray_dcm``, centre crop, resizer."""
        return cls(pixels="xrv", modality_lut=False, voi="none", resize="center_crop", interpolation="xrv")


@dataclass
class Provenance:
    training_data: str = ""
    split: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    date: str = ""
    app_version: str = __version__
    source_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        known = {f.name for f in fields(cls)}
        extra = dict(data.get("extra") or {})
        extra.update({k: v for k, v in data.items() if k not in known})
        kwargs = {k: v for k, v in data.items() if k in known and k != "extra"}
        return cls(**kwargs, extra=extra)


@dataclass
class ModelManifest:
    name: str
    architecture: str
    labels: list[str]
    task: Task = "multiclass"
    input_size: int = 224
    channels: int = 1
    normalisation: Normalisation = field(default_factory=lambda: dict(UNIT_NORMALISATION))
    input_derivation: InputDerivation = field(default_factory=InputDerivation)
    thresholds: dict[str, float] | None = None
    calibration: str | None = None
    hidden_labels: list[str] = field(default_factory=list)
    provenance: Provenance = field(default_factory=Provenance)
    #: temperature scaling of the logits (logits / T), fitted on validation data; None: not scaled
    temperature: float | None = None
    #: out-of-scope guard statistics (ml.inference.scope.fit_feature_statistics + threshold); None: none
    scope: dict[str, Any] | None = None
    version: str = "1.0"
    description: str = ""
    disclaimer: str = DISCLAIMER
    format_version: int = FORMAT_VERSION

    # ------------------------------------------------------------------ checks

    def validate(self) -> ModelManifest:
        """Raise ModelFileError when the manifest is inconsistent; return self."""

        def bad(why: str) -> ModelFileError:
            return ModelFileError(f"The model manifest of '{self.name or '?'}' is invalid: {why}.")

        if not isinstance(self.name, str) or not self.name.strip():
            raise bad("it has no name")
        if (
            not isinstance(self.labels, list)
            or not self.labels
            or not all(isinstance(x, str) for x in self.labels)
        ):
            raise bad("it has no label list")
        if len(set(self.labels)) != len(self.labels):
            raise bad("label names repeat")
        if not all(x.strip() for x in self.labels):
            raise bad("a label name is empty")
        if self.task not in ("multiclass", "multilabel"):
            raise bad(f"task must be 'multiclass' or 'multilabel', not '{self.task}'")
        if self.task == "multiclass" and len(self.labels) < 2:
            raise bad("a multi-class model needs at least two labels")
        if self.channels not in (1, 3):
            raise bad(f"channels must be 1 or 3, not {self.channels}")
        if not isinstance(self.input_size, int) or not 8 <= self.input_size <= 4096:
            raise bad(f"input size {self.input_size} is out of range")
        norm = self.normalisation
        if isinstance(norm, str):
            if norm != "xrv":
                raise bad(f"unknown normalisation '{norm}'")
        elif not (
            isinstance(norm, dict)
            and _numbers(norm.get("mean"))
            and _numbers(norm.get("std"))
            and len(norm["mean"]) in (1, self.channels)
            and len(norm["std"]) == len(norm["mean"])
            and all(s > 0 for s in norm["std"])
        ):
            raise bad("normalisation needs 'mean' and positive 'std' lists, one value or one per channel")
        d = self.input_derivation
        if d.resize not in RESIZE_MODES:
            raise bad(f"unknown resize mode '{d.resize}'")
        if d.pixels not in PIXEL_SOURCES:
            raise bad(f"unknown pixel source '{d.pixels}'")
        if d.interpolation not in INTERPOLATIONS:
            raise bad(f"unknown interpolation '{d.interpolation}'")
        if d.equalize not in EQUALIZE_MODES:
            raise bad(f"unknown equalisation '{d.equalize}'")
        for label, value in (self.thresholds or {}).items():
            if label not in self.labels:
                raise bad(f"threshold for unknown label '{label}'")
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
                raise bad(f"threshold for '{label}' must be between 0 and 1")
        t = self.temperature
        if t is not None and not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
            raise bad("the temperature must be a positive number")
        unknown = [x for x in self.hidden_labels if x not in self.labels]
        if unknown:
            raise bad(f"hidden label '{unknown[0]}' is not a label")
        if not self.visible_labels:
            raise bad("every label is hidden, so it has no usable label")
        return self

    @property
    def visible_labels(self) -> list[str]:
        return [x for x in self.labels if x not in self.hidden_labels]

    def threshold(self, label: str) -> float:
        """Decision threshold for ``label`` (0.5 when the manifest names none)."""
        return float((self.thresholds or {}).get(label, 0.5))

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelManifest:
        from ml.models.manifest_schema import check_manifest_json

        if not isinstance(data, dict):
            raise ModelFileError("The model manifest is damaged (not a JSON object).")
        version = data.get("format_version", FORMAT_VERSION)
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
            raise ModelFileError(
                f"This model file uses manifest format {version}, made by a newer CXR Studio; "
                "update the application to open it."
            )
        problem = check_manifest_json(data)
        if problem:
            raise ModelFileError(f"The model manifest is damaged: {problem}.")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known and v is not None}
        for required in ("name", "architecture", "labels"):
            if required not in kwargs:
                raise ModelFileError(f"The model manifest is damaged: '{required}' is missing.")
        try:
            derivation = dict(data.get("input_derivation") or {})
            if "pixels" not in derivation and _converted_from_xrv(data):
                # written before manifests said how pixels are made: xrv weights get xrv's input
                derivation = asdict(InputDerivation.xrv())
            kwargs["input_derivation"] = InputDerivation.from_dict(derivation)
            kwargs["provenance"] = Provenance.from_dict(dict(data.get("provenance") or {}))
            manifest = cls(**kwargs)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ModelFileError(f"The model manifest is damaged: {exc}.") from None
        return manifest.validate()

    @classmethod
    def from_json(cls, text: str) -> ModelManifest:
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:  # JSONDecodeError, or a number with too many digits
            raise ModelFileError(f"The model manifest is damaged (invalid JSON: {exc}).") from None
        except RecursionError:
            raise ModelFileError("The model manifest is damaged (nested too deeply).") from None
        return cls.from_dict(data)


# ---------------------------------------------------------------------- shared helpers


def _numbers(values: Any) -> bool:
    """A non-empty list of finite numbers (not bools, not strings)."""
    return (
        isinstance(values, list)
        and bool(values)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    )


def _converted_from_xrv(data: dict[str, Any]) -> bool:
    """A manifest written by an older CXR Studio for converted TorchXRayVision weights."""
    provenance = data.get("provenance") or {}
    extra = provenance.get("extra") or {}
    origin = " ".join(
        str(x) for x in (extra.get("origin"), extra.get("source"), provenance.get("source_url"))
    )
    return (
        data.get("normalisation") == "xrv"
        and str(data.get("architecture", "")).startswith("xrv_")
        and not provenance.get("split")  # not fine-tuned here (those keep what they were trained with)
        and ("torchxrayvision" in origin.lower() or data.get("calibration") == "xrv_op_norm")
    )


def default_normalisation(kind: str, channels: int) -> Normalisation:
    """Registry defaults ("imagenet", "xrv", "unit") as manifest normalisation values."""
    if kind == "xrv":
        return "xrv"
    if kind == "imagenet":
        if channels == 3:
            return {k: list(v) for k, v in IMAGENET_NORMALISATION.items()}
        return {
            "mean": [sum(IMAGENET_NORMALISATION["mean"]) / 3],
            "std": [sum(IMAGENET_NORMALISATION["std"]) / 3],
        }
    return {k: list(v) for k, v in UNIT_NORMALISATION.items()}


def normalise_tensor(x: Tensor, normalisation: Normalisation) -> Tensor:
    """Normalise ``x`` (``[..., C, H, W]`` in [0, 1]) as the manifest says. Not in place."""
    if normalisation == "xrv":
        return (x * 2.0 - 1.0) * 1024.0
    import torch

    assert isinstance(normalisation, dict)
    mean = torch.as_tensor(normalisation["mean"], dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.as_tensor(normalisation["std"], dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x - mean) / std


def xrv_op_norm(probs: Tensor, thresholds: Tensor) -> Tensor:
    """TorchXRayVision calibration: map each label's operating point to 0.5 (NaN threshold -> 0.5)."""
    import torch

    t = thresholds.to(probs).expand_as(probs)
    low = probs / (t * 2)
    high = 1.0 - (1.0 - probs) / ((1.0 - t) * 2)
    out = torch.where(probs < t, low, high)
    return torch.where(torch.isnan(t), torch.full_like(probs, 0.5), out)
