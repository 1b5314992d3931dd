"""Reader for whole modules pickled in the pre-1.6 (non-zip) torch format.

torch's weights-only reader cannot read modules pickled in the legacy (non-zip) format, because
their classes are stored as persistent ids. This reader handles exactly that case with Python's
documented way of restricting unpickling (``find_class``): the only callables it hands out are
the inert stand-ins and the tiny tensor-reference builders below; anything else is refused.
"""

from __future__ import annotations

import pickle
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ml.errors import CxrError, ModelFileError
from ml.models.stubs import MODULE_NAMESPACES, ModuleStub, stub_class, unsafe_error

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
            return self.stubs.setdefault(full, stub_class(full))
        raise unsafe_error(self.path, f"it references {full}")

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


def legacy_restricted_load(path: Path) -> Any:
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
