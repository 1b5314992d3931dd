"""``torch.load`` restricted to weights, plus inert module stand-ins (see :mod:`ml.models.importing`)."""

from __future__ import annotations

import os
import pickle
import re
import threading
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ml.errors import ModelFileError
from ml.models.legacy_pickle import check_declared_sizes, legacy_restricted_load
from ml.models.stubs import MODULE_NAMESPACES, ModuleStub, stub_class, unsafe_error

_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+) was not an allowed global")
_UNSAFE_HINTS = ("GLOBAL", "reduce", "Can only build", "Can only create new object", "blocked")
_LOAD_LOCK = threading.Lock()


def is_zip(path: Path) -> bool:
    """``zipfile.is_zipfile`` that answers False for damaged archives instead of raising."""
    try:
        return zipfile.is_zipfile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False


def _scan_zip_globals(path: Path) -> list[str] | None:
    """Globals a zip checkpoint needs beyond torch's safe set (static scan, nothing is loaded)."""
    if not is_zip(path):
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
            raise unsafe_error(path, "it references " + ", ".join(sorted(unsafe)[:3]))
        stubs.update({n: stub_class(n) for n in names})
    elif names is None and not is_zip(path):
        check_declared_sizes(path)  # torch's legacy reader allocates what the file claims, unchecked
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
                stubs[match.group(1)] = stub_class(match.group(1))  # legacy (non-zip) format: learn and retry
                continue
            if match:
                raise unsafe_error(path, f"it references {match.group(1)}") from None
            if "persistent_load" in message and not is_zip(path):
                # a whole module saved in the pre-1.6 format: torch's reader refuses its class records
                return legacy_restricted_load(path)
            if any(h in message for h in _UNSAFE_HINTS):
                raise unsafe_error(path, "it needs unrestricted unpickling") from None
            raise ModelFileError(f"{path.name} is not a PyTorch weights file, or it is damaged.") from None
        except Exception as exc:  # the restricted unpickler fails in many ways on damaged input
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelFileError(
                f"{path.name} is not a PyTorch weights file, or it is damaged ({text})."
            ) from None
    raise unsafe_error(path, "it references too many classes")
