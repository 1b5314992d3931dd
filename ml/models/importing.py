"""Import foreign weight files into the CXR Studio format, without ever running pickled code.

* ``.pth``/``.pt`` files are read with ``torch.load(..., weights_only=True, map_location="cpu")``
  only. torch's restricted unpickler builds tensors and plain containers and refuses every other
  global, so a file whose unpickling would call a function (``os.system``, ``builtins.open``,...) is
  refused with :class:`~ml.errors.UnsafeModelFileError` before anything in it runs.
* Checkpoints that pickle a whole ``nn.Module`` (``torch.save(model)``; TorchXRayVision's DenseNet
  release files are saved this way) name module classes such as
  ``torchxrayvision.models.DenseNet``. Those names - and only names under the module namespaces in
  :data:`MODULE_NAMESPACES` - are mapped to an inert stand-in class that just stores the pickled
  attribute dictionary. The real class is never imported and no method of it runs; the tensors are
  then read out of the ``_parameters``/``_buffers`` dictionaries like ``state_dict()`` would.
* State dicts may be wrapped (``{"state_dict": ...}``, ``{"model": ...}``) and may carry the
  ``module.`` prefix of DataParallel; both are handled. Old torchvision DenseNet key names
  (``norm.1``) are renamed.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ml import __version__
from ml.errors import ModelFileError
from ml.models import bundle, registry
from ml.models.manifest import (
    InputDerivation,
    ModelManifest,
    Normalisation,
    Provenance,
    Task,
    default_normalisation,
)
from ml.models.stubs import MODULE_NAMESPACES, ModuleStub
from ml.models.torchload import safe_torch_load

__all__ = [
    "MODULE_NAMESPACES",
    "WRAPPER_KEYS",
    "ModuleStub",
    "convert_foreign_safetensors",
    "convert_state_dict",
    "convert_torch_file",
    "convert_xrv",
    "extract_state_dict",
    "fit_keys",
    "make_manifest",
    "safe_torch_load",
]

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights")


# ---------------------------------------------------------------------- finding the weights


def _stub_state_dict(obj: ModuleStub, prefix: str = "", depth: int = 0) -> dict[str, Tensor]:
    if depth > 64:
        raise ModelFileError("The pickled model is nested too deeply to be a real network.")
    attrs = obj.__dict__
    out: dict[str, Tensor] = {}
    non_persistent = attrs.get("_non_persistent_buffers_set")
    non_persistent = non_persistent if isinstance(non_persistent, (set, frozenset)) else set()
    for group in ("_parameters", "_buffers"):
        values = attrs.get(group)
        for key, value in values.items() if isinstance(values, Mapping) else ():
            if isinstance(value, Tensor) and not (group == "_buffers" and key in non_persistent):
                out[f"{prefix}{key}"] = value.detach()
    children = attrs.get("_modules")
    for key, child in children.items() if isinstance(children, Mapping) else ():
        if isinstance(child, ModuleStub):
            out.update(_stub_state_dict(child, f"{prefix}{key}.", depth + 1))
    return out


def extract_state_dict(obj: Any, source: str = "the file") -> dict[str, Tensor]:
    """Find the tensors in a loaded checkpoint: a state dict, a wrapped one, or a pickled module."""
    if isinstance(obj, ModuleStub):
        if not isinstance(obj.__dict__.get("_modules"), Mapping):
            raise ModelFileError(f"{source} holds a '{obj.original_name}' object, not a model.")
        return _stub_state_dict(obj)
    if isinstance(obj, Mapping):
        if obj and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
            return {k: v.detach() for k, v in obj.items()}
        for key in WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], (Mapping, ModuleStub)):
                return extract_state_dict(obj[key], source)
        keys = ", ".join(str(k) for k in list(obj)[:6])
        raise ModelFileError(f"No model weights found in {source} (its entries are: {keys}).")
    raise ModelFileError(f"No model weights found in {source} (it holds a {type(obj).__name__}).")


def fit_keys(
    state: Mapping[str, Tensor], architecture: str, num_classes: int, channels: int
) -> dict[str, Tensor]:
    """Strip ``module.``/``model.`` prefixes and rename legacy keys so they match ``architecture``."""
    expected = set(registry.build_model(architecture, num_classes, channels).state_dict())
    out = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
    out = registry.remap_legacy_keys(out)
    for prefix in ("model.", "backbone.", "net."):
        if not (set(out) & expected) and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix) :]: v for k, v in out.items()}
    # checkpoints saved before torch 0.4.1 (e.g. torchvision's DenseNet ImageNet weights) have no
    # BatchNorm ``num_batches_tracked``; torch itself fills it with 0 when loading them
    for key in expected:
        if (
            key.endswith(".num_batches_tracked")
            and key not in out
            and key[: -len("num_batches_tracked")] + "running_mean" in out
        ):
            out[key] = torch.tensor(0, dtype=torch.long)
    return out


def _infer_channels(state: Mapping[str, Tensor], architecture: str) -> int | None:
    weight = state.get(registry.get_spec(architecture).first_conv + ".weight")
    return int(weight.shape[1]) if weight is not None and weight.ndim == 4 else None


def make_manifest(
    *,
    name: str,
    architecture: str,
    labels: Sequence[str],
    task: Task,
    channels: int,
    input_size: int | None = None,
    normalisation: Normalisation | None = None,
    input_derivation: InputDerivation | None = None,
    thresholds: Mapping[str, float] | None = None,
    provenance: Provenance | None = None,
    description: str = "",
    version: str = "1.0",
    **extra: Any,
) -> ModelManifest:
    """A manifest with the registry's defaults for everything not given."""
    spec = registry.get_spec(architecture)
    return ModelManifest(
        name=name,
        architecture=architecture,
        labels=list(labels),
        task=task,
        input_size=input_size or spec.default_input_size,
        channels=channels,
        normalisation=normalisation
        if normalisation is not None
        else default_normalisation(spec.default_normalisation, channels),
        input_derivation=input_derivation or InputDerivation(),
        thresholds=dict(thresholds) if thresholds else None,
        provenance=provenance or Provenance(date=_today()),
        description=description,
        version=version,
        **extra,
    ).validate()


def _today() -> str:
    return _dt.date.today().isoformat()


def convert_state_dict(
    state: Mapping[str, Tensor],
    *,
    architecture: str,
    labels: Sequence[str],
    task: Task,
    name: str,
    channels: int | None = None,
    source: str = "the file",
    **manifest_fields: Any,
) -> tuple[dict[str, Tensor], ModelManifest]:
    """Match a foreign state dict to ``architecture``/``labels``; return ``(state, manifest)``."""
    registry.get_spec(architecture)
    labels = list(labels)
    guess = channels or registry.get_spec(architecture).default_channels
    fitted = fit_keys(state, architecture, len(labels) or 1, guess)
    channels = channels or _infer_channels(fitted, architecture) or guess
    manifest = make_manifest(
        name=name, architecture=architecture, labels=labels, task=task, channels=channels, **manifest_fields
    )
    bundle.check_state_dict(fitted, manifest, source=source)
    return fitted, manifest


def convert_torch_file(
    src: str | os.PathLike[str],
    *,
    architecture: str,
    labels: Sequence[str],
    task: Task,
    name: str | None = None,
    **manifest_fields: Any,
) -> tuple[dict[str, Tensor], ModelManifest]:
    """Read a ``.pth``/``.pt`` file safely and convert it: ``(state, manifest)``."""
    src = Path(src)
    state = extract_state_dict(safe_torch_load(src), src.name)
    manifest_fields.setdefault("provenance", Provenance(date=_today(), extra={"imported_from": src.name}))
    return convert_state_dict(
        state, architecture=architecture, labels=labels, task=task, name=name or src.stem,
        source=src.name, **manifest_fields,
    )  # fmt: skip


def convert_foreign_safetensors(
    src: str | os.PathLike[str],
    *,
    architecture: str,
    labels: Sequence[str],
    task: Task,
    name: str | None = None,
    **manifest_fields: Any,
) -> tuple[dict[str, Tensor], ModelManifest]:
    """Convert a safetensors file without our manifest (e.g. from another tool)."""
    src = Path(src)
    state = bundle.load_state_dict(src)
    manifest_fields.setdefault("provenance", Provenance(date=_today(), extra={"imported_from": src.name}))
    return convert_state_dict(
        state, architecture=architecture, labels=labels, task=task, name=name or src.stem,
        source=src.name, **manifest_fields,
    )  # fmt: skip


# ---------------------------------------------------------------------- TorchXRayVision


def _as_float_list(value: Any) -> list[float] | None:
    if value is None:
        return None
    if isinstance(value, Tensor):
        value = value.detach().flatten().tolist()
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return [float(v) for v in value]
    return None


def convert_xrv(
    src: str | os.PathLike[str],
    *,
    architecture: str = "xrv_densenet121",
    name: str | None = None,
    trained_labels: Sequence[str] | None = None,
    op_threshs: Sequence[float | None] | None = None,
    input_size: int | None = None,
    description: str = "",
    provenance: Provenance | None = None,
) -> tuple[dict[str, Tensor], ModelManifest]:
    """Convert TorchXRayVision weights (state dict or pickled model) into ``(state, manifest)``.

    The outputs keep TorchXRayVision's 18-label order. ``trained_labels`` is TorchXRayVision's
    per-weights label list ('' for outputs those weights were not trained on; they become
    ``hidden_labels``). Thresholds come from the file's ``op_threshs`` buffer when present, else
    from ``op_threshs`` (the catalogue's values); NaN/None means no threshold for that label.
    """
    if architecture not in ("xrv_densenet121", "xrv_resnet50"):
        raise ModelFileError(f"'{architecture}' is not a TorchXRayVision architecture.")
    src = Path(src)
    obj = safe_torch_load(src)
    state = dict(extract_state_dict(obj, src.name))
    file_thresholds = _as_float_list(state.pop("op_threshs", None))
    state = {k: v for k, v in state.items() if not k.endswith(".op_threshs")}
    if file_thresholds is None and isinstance(obj, ModuleStub):
        file_thresholds = _as_float_list(obj.__dict__.get("op_threshs"))
    labels = list(registry.XRV_LABELS)
    thresholds_list = (
        file_thresholds if file_thresholds and len(file_thresholds) == len(labels) else op_threshs
    )
    if thresholds_list is not None and len(thresholds_list) != len(labels):
        raise ModelFileError("TorchXRayVision thresholds (op_threshs) must have 18 entries.")
    thresholds: dict[str, float] = {}
    for label, value in zip(labels, thresholds_list or [None] * len(labels), strict=True):
        if value is not None and math.isfinite(value) and 0.0 < value < 1.0:
            thresholds[label] = float(value)
    hidden = []
    if trained_labels is not None:
        if len(trained_labels) != len(labels):
            raise ModelFileError("The TorchXRayVision label list must have 18 entries.")
        hidden = [label for label, trained in zip(labels, trained_labels, strict=True) if not trained]
    spec = registry.get_spec(architecture)
    return convert_state_dict(
        state,
        architecture=architecture,
        labels=labels,
        task="multilabel",
        name=name or src.stem,
        channels=1,
        source=src.name,
        input_size=input_size or spec.default_input_size,
        normalisation="xrv",
        input_derivation=InputDerivation.xrv(),
        thresholds=thresholds or None,
        calibration="xrv_op_norm" if thresholds else None,
        hidden_labels=hidden,
        provenance=provenance
        or Provenance(
            date=_today(),
            app_version=__version__,
            extra={"converted_from": src.name, "origin": "TorchXRayVision"},
        ),
        description=description or spec.description,
    )
