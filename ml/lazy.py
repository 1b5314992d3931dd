"""The first import of torch and torchvision, once and serialised across threads.

Python's import lock is per module, and it does not make a big package's first import safe from
two threads: a thread that imports a *submodule* (``torch.nn.functional``, ``torch._refs``) while
another thread is still executing ``torch/__init__`` sees the parent already in ``sys.modules``
and runs the submodule against a half-initialised torch, and when two threads' module locks form
a cycle CPython hands one of them the partial module ("concurrent circular import"). The app saw
this on a first start as ``'_OpNamespace' 'prims' object has no attribute 'sum'`` in the
"listing installed models" job while another worker was importing torchvision.

:func:`ensure_torch` does the first import of torch and torchvision (and, when asked, captum and
ONNX Runtime) under one module-level lock; every worker-thread job of the app that may be the
first to need torch calls it before touching ``ml`` code that imports torch. After the first call
it costs a flag test. This module itself imports nothing heavy (the window imports it before
torch is allowed to load).
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType

_LOCK = threading.Lock()
_DONE: set[str] = set()

#: what "torch is ready" means for the app: the models' registry needs both
CORE = ("torch", "torchvision")


def ensure_torch(*extra: str) -> ModuleType:
    """Import torch, torchvision and ``extra`` (e.g. ``"captum.attr"``, ``"onnxruntime"``) once,
    one thread at a time; returns the torch module. Cheap after the first call.

    A missing optional ``extra`` (ONNX Runtime is optional) is left for its user to report."""
    wanted = CORE + extra
    if _DONE.issuperset(wanted):
        return sys.modules["torch"]
    with _LOCK:
        for name in wanted:
            if name in _DONE:
                continue
            try:
                importlib.import_module(name)
            except ImportError:
                if name in CORE:
                    raise
            _DONE.add(name)
    return sys.modules["torch"]


def torch_ready() -> bool:
    """True once :func:`ensure_torch` has imported torch and torchvision in this process."""
    return _DONE.issuperset(CORE)


__all__ = ["CORE", "ensure_torch", "torch_ready"]
