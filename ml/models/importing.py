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
import pickle
import re
import struct
import threading
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ml import __version__
from ml.errors import CxrError, ModelFileError, UnsafeModelFileError
from ml.models import bundle, registry
from ml.models.manifest import (
    InputDerivation,
    ModelManifest,
    Normalisation,
    Provenance,
    Task,
    default_normalisation,
)

MODULE_NAMESPACES: tuple[str, ...] = (
    "torch.nn.modules.",
    "torch.nn.parallel.",
    "torch.nn.backends.",  # torch < 1.5 pickled nn.Module._backend as a reduce of a thnn getter
    "torchvision.models.",
    "torchvision.ops.",
    "torchxrayvision.",
)
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights")
_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+) was not an allowed global")
_UNSAFE_HINTS = ("GLOBAL", "reduce", "Can only build", "Can only create new object", "blocked")
_LOAD_LOCK = threading.Lock()


class ModuleStub:
    """Inert stand-in for a pickled ``nn.Module`` class: it only stores the pickled attributes."""

    original_name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> ModuleStub:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


def _unsafe(path: Path, detail: str) -> UnsafeModelFileError:
    return UnsafeModelFileError(
        f"{path.name} was refused: loading it would run code stored in the file ({detail}), and CXR "
        "Studio only reads plain weights. Ask for the weights as a state_dict (.pth) or a .safetensors "
        "file, or convert it yourself on a trusted machine with torch.save(model.state_dict(), ...)."
    )


def _stub(name: str) -> type[ModuleStub]:
    return type(name.rsplit(".", 1)[-1], (ModuleStub,), {"original_name": name})


def _scan_zip_globals(path: Path) -> list[str] | None:
    """Globals a zip checkpoint needs beyond torch's safe set (static scan, nothing is loaded)."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a torch checkpoint zip: torch.load reports it below
        return None


def safe_torch_load(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, weights_only=True, map_location="cpu")``, plus inert module stand-ins.

    Raises UnsafeModelFileError when the file references anything other than tensors, containers
    and module classes, ModelFileError when it is not a PyTorch file or is damaged.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"Weights file not found: {path}")
    stubs: dict[str, type[ModuleStub]] = {}
    names = _scan_zip_globals(path)
    if names:
        unsafe = [n for n in names if not n.startswith(MODULE_NAMESPACES)]
        if unsafe:
            raise _unsafe(path, "it references " + ", ".join(sorted(unsafe)[:3]))
        stubs.update({n: _stub(n) for n in names})
    for _attempt in range(256):
        try:
            with _LOAD_LOCK, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with torch.serialization.safe_globals([(cls, n) for n, cls in stubs.items()]):
                    return torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            message = str(exc)
            match = _GLOBAL_RE.search(message)
            if match and match.group(1).startswith(MODULE_NAMESPACES) and match.group(1) not in stubs:
                stubs[match.group(1)] = _stub(match.group(1))  # legacy (non-zip) format: learn and retry
                continue
            if match:
                raise _unsafe(path, f"it references {match.group(1)}") from None
            if "persistent_load" in message and not zipfile.is_zipfile(path):
                # a whole module saved in the pre-1.6 format: torch's reader refuses its class records
                return _legacy_restricted_load(path)
            if any(h in message for h in _UNSAFE_HINTS):
                raise _unsafe(path, "it needs unrestricted unpickling") from None
            raise ModelFileError(f"{path.name} is not a PyTorch weights file, or it is damaged.") from None
        except Exception as exc:  # the restricted unpickler fails in many ways on damaged input
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelFileError(
                f"{path.name} is not a PyTorch weights file, or it is damaged ({text})."
            ) from None
    raise _unsafe(path, "it references too many classes")


# ---------------------------------------------------------------------- pre-1.6 whole-module files
#
# torch's weights-only reader cannot read modules pickled in the legacy (non-zip) format, because
# their classes are stored as persistent ids. This reader handles exactly that case with Python's
# documented way of restricting unpickling (``find_class``): the only callables it hands out are
# the inert stand-ins and the tiny tensor-reference builders below; anything else is refused.

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}  # fmt: skip


class _StorageRef:
    def __init__(self, dtype: torch.dtype, numel: int) -> None:
        self.dtype, self.numel = dtype, numel
        self.data: Tensor | None = None


class _TensorRef:
    def __init__(self, storage: _StorageRef, base: int, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.base, self.offset, self.size, self.stride = storage, base, offset, size, stride


class _StorageView:
    def __init__(self, root: _StorageRef, offset: int) -> None:
        self.root, self.offset = root, offset


def _rebuild_tensor(storage: Any, offset: int, size: Any, stride: Any, *_rest: Any) -> _TensorRef:
    root, base = (storage.root, storage.offset) if isinstance(storage, _StorageView) else (storage, 0)
    if not isinstance(root, _StorageRef):
        raise pickle.UnpicklingError("tensor without storage")
    return _TensorRef(root, int(base), int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, *_rest: Any) -> Any:
    return data


def _reconstructor(cls: Any, base: Any, state: Any = None) -> Any:
    if isinstance(cls, type) and issubclass(cls, ModuleStub):
        return cls()
    raise pickle.UnpicklingError("copyreg._reconstructor of a non-module class")


class _StorageType:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class _Safe:
    """A callable handed to the unpickler: no ``__dict__``, so BUILD cannot alter it."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Any) -> None:
        object.__setattr__(self, "_fn", fn)

    def __setattr__(self, name: str, value: Any) -> None:
        raise pickle.UnpicklingError("attribute assignment on a restricted global")

    def __call__(self, *args: Any) -> Any:
        return object.__getattribute__(self, "_fn")(*args)


class _RestrictedUnpickler(pickle.Unpickler):
    SAFE: dict[str, Any] = {
        "collections.OrderedDict": OrderedDict,
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
        "copyreg._reconstructor": _reconstructor,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
        "torch.Size": tuple,
    }

    def __init__(self, fh: Any, path: Path, storages: dict[str, _StorageRef]) -> None:
        super().__init__(fh, encoding="utf-8")
        self.path, self.storages = path, storages
        self.stubs: dict[str, type[ModuleStub]] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = "builtins" if module == "__builtin__" else module  # protocol-2 spelling
        full = f"{module}.{name}"
        if full in self.SAFE:
            return _Safe(self.SAFE[full])
        if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if full.startswith(MODULE_NAMESPACES):
            return self.stubs.setdefault(full, _stub(full))
        raise _unsafe(self.path, f"it references {full}")

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError("bad persistent id")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":
            cls = pid[1]
            if not (isinstance(cls, type) and issubclass(cls, ModuleStub)):
                raise pickle.UnpicklingError("module record without a module class")
            return cls
        if kind == "storage":
            storage_type, root_key, _location, numel, view = pid[1:6]
            if not isinstance(storage_type, _StorageType):
                raise pickle.UnpicklingError("unknown storage type")
            root = self.storages.setdefault(str(root_key), _StorageRef(storage_type.dtype, int(numel)))
            return _StorageView(root, int(view[1])) if view is not None else root
        raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")


def _legacy_restricted_load(path: Path) -> Any:
    storages: dict[str, _StorageRef] = {}
    try:
        with path.open("rb") as fh:

            def load() -> Any:
                return _RestrictedUnpickler(fh, path, storages).load()

            if load() != _LEGACY_MAGIC or load() != _LEGACY_PROTOCOL:
                raise ModelFileError(f"{path.name} is not a PyTorch weights file, or it is damaged.")
            info = load()
            if isinstance(info, dict) and info.get("little_endian") is False:
                raise ModelFileError(f"{path.name} was saved on a big-endian machine; it cannot be read.")
            result = load()
            for key in load():
                ref = storages[str(key)]
                (numel,) = struct.unpack("<q", fh.read(8))
                nbytes = numel * torch.empty((), dtype=ref.dtype).element_size()
                raw = fh.read(nbytes)
                if numel != ref.numel or len(raw) != nbytes:
                    raise ModelFileError(f"{path.name} is truncated or damaged; download or copy it again.")
                ref.data = (
                    torch.frombuffer(bytearray(raw), dtype=ref.dtype)
                    if nbytes
                    else torch.empty(0, dtype=ref.dtype)
                )
    except CxrError:
        raise
    except Exception as exc:  # damaged input fails in many ways; none of them runs code
        raise ModelFileError(
            f"{path.name} is not a PyTorch weights file, or it is damaged ({exc})."
        ) from None
    return _materialise(result, path)


def _materialise(obj: Any, path: Path, seen: dict[int, Any] | None = None) -> Any:
    seen = {} if seen is None else seen
    if id(obj) in seen:
        return seen[id(obj)]
    if isinstance(obj, _TensorRef):
        data = obj.storage.data
        if data is None:
            raise ModelFileError(f"{path.name} is damaged (a tensor has no data).")
        out: Any = data[obj.base :].as_strided(obj.size, obj.stride, obj.offset).clone()
    elif isinstance(obj, dict):
        out = obj
        seen[id(obj)] = out
        for key in list(obj):
            obj[key] = _materialise(obj[key], path, seen)
    elif isinstance(obj, (list, tuple)):
        out = type(obj)(_materialise(v, path, seen) for v in obj) if isinstance(obj, tuple) else obj
        if isinstance(obj, list):
            obj[:] = [_materialise(v, path, seen) for v in obj]
    elif isinstance(obj, ModuleStub):
        out = obj
        seen[id(obj)] = out
        for key, value in list(obj.__dict__.items()):
            obj.__dict__[key] = _materialise(value, path, seen)
    else:
        out = obj
    seen[id(obj)] = out
    return out


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
