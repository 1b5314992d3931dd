"""The model file: one ``.safetensors`` file holding the weights and the JSON manifest.

* :func:`save_model` writes atomically (temporary file in the same folder, fsync, ``os.replace``).
* :func:`read_manifest` reads only the header (a few kB), fast enough to list a library.
* :func:`load_model` rebuilds the architecture named in the manifest and loads the weights, with a
  readable :class:`~ml.errors.ModelFileError` for every way a file can be wrong.

Nothing here uses pickle: safetensors stores raw tensors and a JSON header.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.errors import ModelFileError
from ml.fileio import follow_umask
from ml.models.manifest import MANIFEST_KEY, ModelManifest

if TYPE_CHECKING:  # torch is imported only when weights are touched: listing a library stays light
    import torch
    from torch import Tensor, nn

MAX_HEADER_BYTES = 100 * 1024 * 1024
SUFFIX = ".safetensors"


# ---------------------------------------------------------------------- header


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse a safetensors header: ``(tensor_entries, metadata)``; checks the file is complete."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise ModelFileError(f"{path.name} is not a model file (it is only {size} bytes long).")
            (n,) = struct.unpack("<Q", prefix)
            if n < 2 or n > MAX_HEADER_BYTES:
                raise ModelFileError(f"{path.name} is not a model file (not in safetensors format).")
            raw = fh.read(n)
    except FileNotFoundError:
        raise ModelFileError(f"Model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a folder, not a model file.") from None
    except PermissionError:
        raise ModelFileError(f"No permission to read the model file {path}.") from None
    if len(raw) < n:
        if raw.lstrip().startswith(b"{"):
            raise ModelFileError(
                f"{path.name} is truncated (the file ends inside its header); download or copy it again."
            )
        raise ModelFileError(f"{path.name} is not a model file (not in safetensors format).")
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError(f"{path.name} is not a model file (not in safetensors format).") from None
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path.name} is damaged (bad metadata block).")
    end = 0
    for key, entry in header.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in offsets)
            and offsets[0] <= offsets[1]
        ):
            raise ModelFileError(f"{path.name} is damaged (bad entry for tensor '{key[:80]}').")
        end = max(end, offsets[1])
    available = size - 8 - n
    if available < end:
        raise ModelFileError(
            f"{path.name} is truncated: it holds {available} of {end} bytes of weights; "
            "download or copy it again."
        )
    return header, metadata


def read_manifest(path: str | os.PathLike[str]) -> ModelManifest:
    """Read only the manifest of a model file (no weights are loaded)."""
    path = Path(path)
    _, metadata = read_header(path)
    text = metadata.get(MANIFEST_KEY)
    if text is None:
        raise ModelFileError(
            f"{path.name} is a safetensors file but not a CXR Studio model (it has no manifest); "
            "use import and name its architecture and labels to convert it."
        )
    return ModelManifest.from_json(text)


# ---------------------------------------------------------------------- save


def _state_dict_of(model_or_state: nn.Module | Mapping[str, Tensor]) -> dict[str, Tensor]:
    from torch import Tensor, nn

    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else dict(model_or_state)
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise ModelFileError(f"Weight '{key}' is not a tensor.")
        # clone: safetensors refuses tensors that share storage (tied or sliced weights)
        out[key] = value.detach().to("cpu").contiguous().clone()
    return out


def check_state_dict(state: Mapping[str, Tensor], manifest: ModelManifest, source: str = "") -> nn.Module:
    """Build the manifest's architecture and load ``state`` strictly; name any mismatching tensor."""
    import torch

    from ml.models import registry

    spec = registry.get_spec(manifest.architecture)
    model = registry.build_model(spec.name, len(manifest.labels), manifest.channels)
    expected = model.state_dict()
    where = f" in {source}" if source else ""
    what = f"architecture '{spec.name}' with {len(manifest.labels)} labels and {manifest.channels} channel(s)"
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s), e.g. '{missing[0]}'")
        if unexpected:
            parts.append(f"{len(unexpected)} unknown tensor(s), e.g. '{unexpected[0]}'")
        raise ModelFileError(f"The weights{where} do not match {what}: {'; '.join(parts)}.")
    for key, ref in expected.items():
        got = state[key]
        if tuple(got.shape) != tuple(ref.shape):
            raise ModelFileError(
                f"The weights{where} do not match {what}: tensor '{key}' has shape "
                f"{list(got.shape)} but {list(ref.shape)} is expected."
            )
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise ModelFileError(
                f"The weights{where} cannot work: tensor '{key}' holds NaN or infinite values."
            )
    model.load_state_dict({k: state[k].to(ref.dtype) for k, ref in expected.items()})
    return model


def save_model(
    path: str | os.PathLike[str],
    model_or_state_dict: nn.Module | Mapping[str, Tensor],
    manifest: ModelManifest,
    *,
    validate: bool = True,
) -> Path:
    """Write ``model_or_state_dict`` with ``manifest`` to ``path`` atomically; return the path.

    With ``validate`` the weights are first checked against the manifest's architecture and labels,
    so a file that would not load is never written.
    """
    path = Path(path)
    manifest.validate()
    state = _state_dict_of(model_or_state_dict)
    if validate:
        check_state_dict(state, manifest)
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        save_file(state, str(tmp), metadata={MANIFEST_KEY: manifest.to_json(), "format": "pt"})
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        follow_umask(tmp)  # mkstemp makes 0600: a model file gets the mode a plain open() gives
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- load


def load_state_dict(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """All tensors of a safetensors file (ours or foreign), with the same error messages."""
    path = Path(path)
    read_header(path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ModelFileError(f"{path.name} could not be read as a model file: {exc}") from None


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelManifest]:
    """Load a CXR Studio model file: ``(model in eval mode on device, manifest)``."""
    path = Path(path)
    manifest = read_manifest(path)
    state = load_state_dict(path, "cpu")
    model = check_state_dict(state, manifest, source=path.name)
    model.eval()
    return model.to(device), manifest
