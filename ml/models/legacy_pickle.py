"""Reader for whole modules pickled in the pre-1.6 (non-zip) torch format.

torch's weights-only reader cannot read modules pickled in the legacy (non-zip) format, because
their classes are stored as persistent ids. This reader handles exactly that case with Python's
documented way of restricting unpickling (``find_class``): the only callables it hands out are
the inert stand-ins and the tiny tensor-reference builders below; anything else is refused.
"""

from __future__ import annotations

import pickle
import pickletools
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
    return _TensorRef(root, _count(base), _count(offset), tuple(size), tuple(stride))


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

    def __init__(self, fh: Any, path: Path, storages: dict[str, _StorageRef], file_size: int) -> None:
        super().__init__(fh, encoding="utf-8")
        self.path, self.storages = path, storages
        self.file_size, self.declared = file_size, 0
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
        if kind == "storage" and len(pid) >= 6:
            storage_type, root_key, _location, numel, view = pid[1:6]
            if not isinstance(storage_type, _StorageType):
                raise pickle.UnpicklingError("unknown storage type")
            root = self.storages.get(str(root_key))
            if root is None:
                root = _StorageRef(storage_type.dtype, _count(numel))
                self.declared += root.numel * _element_size(root.dtype)
                if self.declared > self.file_size:
                    raise _TooLarge(self.declared)
                self.storages[str(root_key)] = root
            if view is None:
                return root
            if not isinstance(view, tuple) or len(view) < 2:
                raise pickle.UnpicklingError("bad storage view")
            return _StorageView(root, _count(view[1]))
        raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")


class _TooLarge(Exception):
    def __init__(self, declared: int) -> None:
        super().__init__(declared)
        self.declared = declared


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
        raise pickle.UnpicklingError("a size in the file is not a valid count")
    return value


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _damaged(path: Path, detail: str = "") -> ModelFileError:
    suffix = f" ({detail})" if detail else ""
    return ModelFileError(f"{path.name} is not a PyTorch weights file, or it is damaged{suffix}.")


def _too_large(path: Path, declared: int, size: int) -> ModelFileError:
    return ModelFileError(
        f"{path.name} is damaged: it declares {declared:,} bytes of weights but the file holds only "
        f"{size:,} bytes."
    )


_BUFFER_OPCODES = {"BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER"}  # pickle protocol 5: never in a torch file
_OPCODES = {op.code: op for op in pickletools.opcodes}


class _Bounded:
    """``read(n)`` of at most what the file holds (a claimed length of petabytes allocates nothing)."""

    def __init__(self, fh: Any, file_size: int) -> None:
        self.fh, self.file_size = fh, file_size

    def read(self, n: int = -1) -> bytes:
        left = max(0, self.file_size - self.fh.tell())
        return bytes(self.fh.read(left if n is None or n < 0 else min(n, left)))

    def readline(self) -> bytes:
        return bytes(self.fh.readline(max(0, self.file_size - self.fh.tell())))


def _refuse_buffer_opcodes(fh: Any, path: Path, file_size: int) -> None:
    """Scan the next pickle's opcodes (then seek back): protocol-5 buffer opcodes are refused before
    CPython's unpickler sees them - a BYTEARRAY8 with a bogus length makes it free a bytearray that
    still has an exported buffer ("SystemError: deallocated bytearray object has exported buffers",
    Python 3.11). Anything else malformed is left to the unpickler to report."""
    start, bounded = fh.tell(), _Bounded(fh, file_size)
    try:
        while code := fh.read(1):
            op = _OPCODES.get(code.decode("latin-1"))
            if op is None or op.name == "STOP":
                return
            if op.name in _BUFFER_OPCODES:
                raise _damaged(path, "it holds pickle protocol 5 buffers")
            if op.arg is not None:
                op.arg.reader(bounded)  # type: ignore[arg-type]  # read() and readline() are all it uses
    except ModelFileError:
        raise
    except Exception:  # noqa: BLE001 - malformed: the unpickler reports it
        return
    finally:
        fh.seek(start)


def _read_pickles(fh: Any, path: Path, storages: dict[str, _StorageRef]) -> tuple[Any, Any]:
    file_size = path.stat().st_size
    unpickler_state = {"declared": 0}

    def load() -> Any:
        _refuse_buffer_opcodes(fh, path, file_size)
        unpickler = _RestrictedUnpickler(fh, path, storages, file_size)
        unpickler.declared = unpickler_state["declared"]
        try:
            return unpickler.load()
        finally:
            unpickler_state["declared"] = unpickler.declared

    if load() != _LEGACY_MAGIC or load() != _LEGACY_PROTOCOL:
        raise _damaged(path)
    info = load()
    if isinstance(info, dict) and info.get("little_endian") is False:
        raise ModelFileError(f"{path.name} was saved on a big-endian machine; it cannot be read.")
    return load(), load()


def check_declared_sizes(path: Path) -> None:
    """Refuse a pre-1.6 file whose storages claim more bytes than the file holds, before torch allocates."""
    try:
        with path.open("rb") as fh:
            _read_pickles(fh, path, {})
    except _TooLarge as exc:
        raise _too_large(path, exc.declared, path.stat().st_size) from None
    except (CxrError, Exception):  # anything else: torch's own reader decides and reports it
        return


def legacy_restricted_load(path: Path) -> Any:
    storages: dict[str, _StorageRef] = {}
    try:
        with path.open("rb") as fh:
            result, keys = _read_pickles(fh, path, storages)
            remaining = path.stat().st_size - fh.tell()
            for key in keys:
                ref = storages[str(key)]
                (numel,) = struct.unpack("<q", fh.read(8))
                nbytes = numel * _element_size(ref.dtype)
                remaining -= 8
                if numel != ref.numel or not 0 <= nbytes <= remaining:
                    raise ModelFileError(f"{path.name} is truncated or damaged; download or copy it again.")
                raw = fh.read(nbytes)
                remaining -= nbytes
                if len(raw) != nbytes:
                    raise ModelFileError(f"{path.name} is truncated or damaged; download or copy it again.")
                ref.data = (
                    torch.frombuffer(bytearray(raw), dtype=ref.dtype)
                    if nbytes
                    else torch.empty(0, dtype=ref.dtype)
                )
        return _materialise(result, path, {}, 0)
    except _TooLarge as exc:
        raise _too_large(path, exc.declared, path.stat().st_size) from None
    except CxrError:
        raise
    except RecursionError:
        raise ModelFileError(f"{path.name} is damaged (its contents are nested too deeply).") from None
    except Exception as exc:  # damaged input fails in many ways; none of them runs code
        text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise _damaged(path, text) from None


_MAX_DEPTH = 200


def _tensor(ref: _TensorRef, path: Path) -> Tensor:
    data = ref.storage.data
    if data is None:
        raise ModelFileError(f"{path.name} is damaged (a tensor has no data).")
    size = tuple(_count(v) for v in ref.size)
    stride = tuple(_count(v) for v in ref.stride)
    if len(size) != len(stride) or len(size) > 16:
        raise ModelFileError(f"{path.name} is damaged (a tensor's shape and strides do not match).")
    available = data.numel() - ref.base
    elements = 1
    for dim in size:
        elements *= dim
    if elements:
        last = ref.offset + sum((d - 1) * st for d, st in zip(size, stride, strict=True))
        if available <= 0 or last >= available or elements > max(available, 1):
            raise ModelFileError(f"{path.name} is damaged (a tensor reaches outside its data).")
    return data[ref.base :].as_strided(size, stride, ref.offset).clone()


def _materialise(obj: Any, path: Path, seen: dict[int, Any], depth: int) -> Any:
    if id(obj) in seen:
        return seen[id(obj)]
    if depth > _MAX_DEPTH:
        raise ModelFileError(f"{path.name} is damaged (its contents are nested too deeply).")
    depth += 1
    if isinstance(obj, _TensorRef):
        out: Any = _tensor(obj, path)
    elif isinstance(obj, dict):
        out = obj
        seen[id(obj)] = out
        for key in list(obj):
            obj[key] = _materialise(obj[key], path, seen, depth)
    elif isinstance(obj, list):
        out = obj
        seen[id(obj)] = out
        obj[:] = [_materialise(v, path, seen, depth) for v in obj]
    elif isinstance(obj, tuple):
        out = tuple(_materialise(v, path, seen, depth) for v in obj)
    elif isinstance(obj, ModuleStub):
        out = obj
        seen[id(obj)] = out
        for key, value in list(obj.__dict__.items()):
            obj.__dict__[key] = _materialise(value, path, seen, depth)
    else:
        out = obj
    seen[id(obj)] = out
    return out
