"""The user's model library: where model files live, listing, installing, removing, resolving.

Layout under the user data directory (:func:`cxr_home`)::

    <home>/models/<name>.safetensors   installed models (one file each, manifest inside)
    <home>/cache/                      downloads (``.part`` files resume after an interruption)
    <home>/models/default.json         which installed model is the default (and which shipped
                                       default-model file was installed, so a removal sticks)

The default model ships with the app in ``resources/models/`` (:func:`bundled_default_model`);
:func:`ensure_default_model` copies it into the library on first use, with no network.

``<home>`` is ``$CXR_STUDIO_HOME`` when set, else the platform's per-user data folder:
``~/.local/share/cxr-studio`` (or ``$XDG_DATA_HOME/cxr-studio``) on Linux,
``~/Library/Application Support/CXR Studio`` on macOS, ``%LOCALAPPDATA%\\CXR Studio`` on Windows.
Every write is atomic (temporary file in the target folder, then ``os.replace``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.errors import ModelFileError
from ml.fileio import follow_umask, sha256_file
from ml.logfile import user_data_dir
from ml.models import bundle
from ml.models.manifest import ModelManifest, Task

if TYPE_CHECKING:
    from torch import Tensor

ENV_HOME = "CXR_STUDIO_HOME"


def cxr_home() -> Path:
    """The user data directory (not created here); one definition for the whole app."""
    return user_data_dir().expanduser()


def models_dir(create: bool = True) -> Path:
    path = cxr_home() / "models"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(create: bool = True) -> Path:
    path = cxr_home() / "cache"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class InstalledModel:
    name: str
    path: Path
    manifest: ModelManifest | None
    #: why the file cannot be used (damaged, newer format, ...); None when it is fine
    error: str | None = None
    #: the library's default model (used when no model is named)
    default: bool = False


def file_name_for(name: str) -> str:
    """A safe file name for model ``name`` (letters, digits, ``.``, ``_``, ``-``)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    return stem[:120] + bundle.SUFFIX


def list_models() -> list[InstalledModel]:
    """Every model file in the library, reading manifests only; broken files carry ``error``."""
    out = []
    for path in sorted(models_dir().glob("*" + bundle.SUFFIX)):
        try:
            manifest = bundle.read_manifest(path)
            out.append(InstalledModel(manifest.name, path, manifest))
        except ModelFileError as exc:
            out.append(InstalledModel(path.stem, path, None, str(exc)))
        except Exception as exc:  # any other failure of one file must not hide the rest of the library
            out.append(
                InstalledModel(
                    path.stem, path, None, f"{path.name} could not be read ({type(exc).__name__})."
                )
            )
    chosen = _read_default_record().get("name")
    for m in out:
        m.default = m.manifest is not None and m.error is None and m.name == chosen
    return out


def find_model(name: str) -> InstalledModel | None:
    """The installed model called ``name`` (manifest name, else file stem), or None."""
    models = list_models()
    for m in models:
        if m.manifest is not None and m.name == name:
            return m
    for m in models:
        if m.path.stem == name or m.path.name == name:
            return m
    return None


def resolve_model(spec: str | os.PathLike[str]) -> Path:
    """MODEL on the command line: an existing file path, or the name of an installed model."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder; give a model file or an installed model's name.")
    found = find_model(str(spec))
    if found is not None:
        if found.error:
            raise ModelFileError(found.error)
        return found.path
    if path.suffix or os.sep in str(spec) or "/" in str(spec):
        raise ModelFileError(f"Model file not found: {spec}")
    names = [m.name for m in list_models() if m.error is None]
    hint = f"Installed models: {', '.join(names)}." if names else "No model is installed yet."
    raise ModelFileError(f"No model file or installed model named '{spec}'. {hint}")


def _target_for(manifest: ModelManifest, overwrite: bool) -> Path:
    existing = find_model(manifest.name)
    target = models_dir() / file_name_for(manifest.name)
    if existing is not None:
        if not overwrite:
            raise ModelFileError(
                f"A model named '{manifest.name}' is already installed; remove it first or choose another name."
            )
        target = existing.path
    elif target.exists() and not overwrite:
        raise ModelFileError(f"The library already has a file {target.name}; remove it first.")
    return target


def install_state(
    state: Mapping[str, Tensor], manifest: ModelManifest, *, overwrite: bool = False
) -> InstalledModel:
    """Write converted weights + manifest into the library (atomically)."""
    target = _target_for(manifest, overwrite)
    bundle.save_model(target, state, manifest)
    return InstalledModel(manifest.name, target, manifest)


def install_model_file(
    src: str | os.PathLike[str], *, name: str | None = None, overwrite: bool = False
) -> InstalledModel:
    """Copy a CXR Studio model file into the library after checking that it loads."""
    src = Path(src)
    manifest = bundle.read_manifest(src)
    state = bundle.load_state_dict(src)
    bundle.check_state_dict(state, manifest, source=src.name)
    if name and name != manifest.name:
        manifest.name = name
        return install_state(state, manifest.validate(), overwrite=overwrite)
    target = _target_for(manifest, overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp_name)
        follow_umask(tmp_name)  # mkstemp makes 0600
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return InstalledModel(manifest.name, target, manifest)


def import_model(
    src: str | os.PathLike[str],
    *,
    architecture: str | None = None,
    labels: Sequence[str] | None = None,
    task: Task | None = None,
    name: str | None = None,
    overwrite: bool = False,
    **manifest_fields: Any,
) -> InstalledModel:
    """``cxr models import FILE``: add any supported weights file to the library.

    * our ``.safetensors`` -> checked and copied;
    * other ``.safetensors`` or ``.pth``/``.pt`` -> needs ``architecture`` and ``labels``
      (``task`` defaults to multi-class); read without unrestricted pickle, converted, installed;
    * ``architecture`` ``xrv_densenet121``/``xrv_resnet50`` without labels -> TorchXRayVision
      weights (18 outputs, ``op_threshs`` from the file when present).
    """
    from ml.models import importing, registry

    src = Path(src)
    if not src.is_file():
        raise ModelFileError(f"File not found: {src}")
    is_safetensors = _looks_like_safetensors(src)
    if is_safetensors:
        _, metadata = bundle.read_header(src)
        if bundle.MANIFEST_KEY in metadata:
            return install_model_file(src, name=name, overwrite=overwrite)
    if architecture is None:
        raise ModelFileError(
            f"{src.name} is not a CXR Studio model: name its architecture ({', '.join(registry.architectures())}) "
            "and its labels to import it."
        )
    if labels is None and architecture in ("xrv_densenet121", "xrv_resnet50") and not is_safetensors:
        from ml.models.catalogue import convert_xrv_import  # catalogue files keep their calibration

        state, manifest = convert_xrv_import(src, architecture=architecture, name=name)
        return install_state(state, manifest, overwrite=overwrite)
    if not labels:
        raise ModelFileError(f"Name the labels of {src.name} (in output order) to import it.")
    convert = importing.convert_foreign_safetensors if is_safetensors else importing.convert_torch_file
    state, manifest = convert(
        src, architecture=architecture, labels=labels, task=task or "multiclass", name=name, **manifest_fields
    )
    return install_state(state, manifest, overwrite=overwrite)


def _looks_like_safetensors(path: Path) -> bool:
    if path.suffix == bundle.SUFFIX:
        return True
    with path.open("rb") as fh:
        head = fh.read(9)
    return (
        len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < bundle.MAX_HEADER_BYTES
    )


def remove_model(name: str) -> Path:
    """Delete an installed model (by name or file stem); returns the removed path."""
    found = find_model(name)
    if found is None:
        raise ModelFileError(f"No installed model named '{name}'.")
    found.path.unlink()
    return found.path


# --------------------------------------------------------------------------- the default model

DEFAULT_MODEL_NAME = "cxr-default-pneumonia"
DEFAULT_RECORD = "default.json"


def bundled_models_dir() -> Path:
    """``resources/models`` of the source tree, or of a PyInstaller bundle (``sys._MEIPASS``)."""
    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parents[2]))
    return base / "resources" / "models"


def bundled_default_model() -> Path | None:
    """The default model file shipped with the app, or None when this build has none."""
    path = bundled_models_dir() / file_name_for(DEFAULT_MODEL_NAME)
    return path if path.is_file() else None


def _record_path() -> Path:
    return models_dir() / DEFAULT_RECORD


def _read_default_record() -> dict[str, Any]:
    try:
        data = json.loads(_record_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_default_record(data: dict[str, Any]) -> None:
    from ml.fileio import write_text_atomic

    write_text_atomic(_record_path(), json.dumps(data, indent=2, sort_keys=True) + "\n")


def set_default_model(name: str | None) -> None:
    """Make the installed model ``name`` the default (None: no default)."""
    record = _read_default_record()
    if name is not None:
        found = find_model(name)
        if found is None or found.error:
            raise ModelFileError(f"No usable installed model named '{name}'.")
        name = found.name
    record["name"] = name
    _write_default_record(record)


def ensure_default_model() -> InstalledModel | None:
    """Install the shipped default model into the library the first time (no network) and return
    the library's default model, or None when there is none.

    A shipped file is installed once: when the user removes it, it stays removed until an app
    update ships a different file. A default the user chose is kept.
    """
    src = bundled_default_model()
    record = _read_default_record()
    if src is not None:
        digest = sha256_file(src)
        if record.get("installed_sha256") != digest:
            installed = install_model_file(src, overwrite=True)
            if record.get("name") in (None, DEFAULT_MODEL_NAME, installed.name):
                record["name"] = installed.name
            record["installed_sha256"] = digest
            _write_default_record(record)
    return default_model()


def default_model() -> InstalledModel | None:
    """The library's default model (without installing anything), or None."""
    return next((m for m in list_models() if m.default), None)


def resolve_default_model() -> Path:
    """The model used when a command names none: the default model, installed on first use."""
    found = ensure_default_model()
    if found is None:
        raise ModelFileError(
            "No model was given and no default model is installed; name one with --model "
            "(see 'cxr models list')."
        )
    return found.path
