"""Inert stand-ins for pickled ``nn.Module`` classes, and the refusal message for unsafe files.

Only class names under :data:`MODULE_NAMESPACES` are mapped to a stand-in; the real class is never
imported and no method of it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml.errors import UnsafeModelFileError

MODULE_NAMESPACES: tuple[str, ...] = (
    "torch.nn.modules.",
    "torch.nn.parallel.",
    "torch.nn.backends.",  # torch < 1.5 pickled nn.Module._backend as a reduce of a thnn getter
    "torchvision.models.",
    "torchvision.ops.",
    "torchxrayvision.",
)


class ModuleStub:
    """Inert stand-in for a pickled ``nn.Module`` class: it only stores the pickled attributes."""

    original_name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> ModuleStub:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


def unsafe_error(path: Path, detail: str) -> UnsafeModelFileError:
    return UnsafeModelFileError(
        f"{path.name} was refused: loading it would run code stored in the file ({detail}), and CXR "
        "Studio only reads plain weights. Ask for the weights as a state_dict (.pth) or a .safetensors "
        "file, or convert it yourself on a trusted machine with torch.save(model.state_dict(), ...)."
    )


def stub_class(name: str) -> type[ModuleStub]:
    return type(name.rsplit(".", 1)[-1], (ModuleStub,), {"original_name": name})
