"""Known pretrained weights (``catalogue.json`` next to this module) and how to convert them.

Two kinds of entries:

* ``"xrv"``: TorchXRayVision chest X-ray classifiers (official GitHub release URLs). Their label list
  has '' for outputs those weights were not trained on, ``op_threshs`` has ``null`` where the label
  has no calibrated operating point.
* ``"torchvision"``: ImageNet-1K weights for the registry architectures (URLs from torchvision's
  ``Weights`` enums), a starting point for fine-tuning. Their file names carry the first hex digits
  of the file's SHA-256 (torchvision's convention), which the download verifies.

``size``/``sha256`` are ``null`` where not published; the download then checks the size the server
announces and, where there is one, the hash prefix.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ml.errors import CxrError
from ml.fileio import sha256_file
from ml.models.manifest import IMAGENET_NORMALISATION, InputDerivation, ModelManifest, Provenance

if TYPE_CHECKING:  # listing the catalogue imports neither torch nor torchvision
    from torch import Tensor

CATALOGUE_PATH = Path(__file__).with_name("catalogue.json")
#: torchvision's ImageNet-1K ``meta["categories"]`` (the same list for every architecture), stored
#: so that naming the classes does not import torchvision
IMAGENET_CLASSES_PATH = Path(__file__).with_name("imagenet_classes.json")


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    kind: str
    architecture: str
    url: str
    input_size: int
    labels: list[str] | str
    size: int | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    op_threshs: list[float | None] | None = None
    training_data: str = ""
    description: str = ""
    license: str = ""
    source: str = ""
    citation: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        """The name of the downloaded file (the URL's last path component)."""
        return os.path.basename(urlparse(self.url).path)

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or ""

    def label_names(self) -> list[str]:
        """The output labels of the converted model, in output order."""
        if self.kind == "xrv":
            from ml.models import registry

            return list(registry.XRV_LABELS)
        if self.labels == "imagenet":
            return imagenet_categories(self.architecture)
        assert isinstance(self.labels, list)
        return list(self.labels)

    def trained_labels(self) -> list[str]:
        """Labels the weights were trained on (TorchXRayVision: the non-empty entries)."""
        if self.kind == "xrv" and isinstance(self.labels, list):
            return [x for x in self.labels if x]
        return self.label_names()


def imagenet_categories(architecture: str) -> list[str]:
    """ImageNet-1K class names (torchvision's weight metadata, stored), made unique ("crane (2)")."""
    with IMAGENET_CLASSES_PATH.open(encoding="utf-8") as fh:
        names = list(json.load(fh)["categories"])
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[CatalogueEntry, ...]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    fields_ = set(CatalogueEntry.__dataclass_fields__)
    return tuple(CatalogueEntry(**{k: v for k, v in e.items() if k in fields_}) for e in data["entries"])


def load_catalogue(path: str | os.PathLike[str] | None = None) -> list[CatalogueEntry]:
    """All catalogue entries (the packaged ``catalogue.json`` unless ``path`` is given)."""
    return list(_load(str(path or CATALOGUE_PATH)))


def get_entry(name: str, path: str | os.PathLike[str] | None = None) -> CatalogueEntry:
    for entry in load_catalogue(path):
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in load_catalogue(path))
    raise CxrError(f"'{name}' is not in the model catalogue. Known names: {known}.")


def match_file(
    path: str | os.PathLike[str],
    architecture: str | None = None,
    catalogue_path: str | os.PathLike[str] | None = None,
) -> CatalogueEntry | None:
    """The catalogue entry a weights file is, by file name, size and hash; None when it is none.

    The file name must be the release file's; the size and the SHA-256 (or its published prefix)
    must match where the catalogue records them. ``architecture``, when given, must be the entry's.
    """
    path = Path(path)
    size = path.stat().st_size
    digest: str | None = None
    for entry in load_catalogue(catalogue_path):
        if entry.filename != path.name or (architecture and entry.architecture != architecture):
            continue
        if entry.size is not None and entry.size != size:
            continue
        if entry.sha256 or entry.sha256_prefix:
            digest = digest or sha256_file(path)
            if entry.sha256 and digest != entry.sha256.lower():
                continue
            if entry.sha256_prefix and not digest.startswith(entry.sha256_prefix.lower()):
                continue
        return entry
    return None


def convert_xrv_import(
    src: str | os.PathLike[str],
    *,
    architecture: str = "xrv_densenet121",
    name: str | None = None,
    catalogue_path: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, Tensor], ModelManifest]:
    """``cxr models import FILE --arch xrv_...``: a catalogue file keeps the catalogue's calibration.

    A file recognised by :func:`match_file` is converted exactly as a download of its entry (its
    trained labels and operating points; untrained outputs hidden). Any other file is converted with
    the operating points it carries itself, if any; without them it is uncalibrated (see
    :func:`calibration_note`).
    """
    entry = match_file(src, architecture, catalogue_path)
    from ml.models import importing

    if entry is None:
        return importing.convert_xrv(src, architecture=architecture, name=name)
    state, manifest = convert_download(entry, src)
    manifest.name = name or entry.name
    manifest.provenance.extra["imported_from"] = Path(src).name
    manifest.provenance.extra["recognised_as"] = entry.name
    return state, manifest.validate()


def calibration_note(manifest: ModelManifest) -> str | None:
    """A plain sentence when a multi-label model lacks operating points (None when it has them all)."""
    if manifest.task != "multilabel":
        return None
    missing = [x for x in manifest.visible_labels if x not in (manifest.thresholds or {})]
    if not missing:
        return None
    if len(missing) == len(manifest.visible_labels):
        return (
            f"'{manifest.name}' is uncalibrated: it has no operating points, so its outputs are raw "
            "probabilities and no label is marked as a positive finding. (A TorchXRayVision release "
            "file keeps its calibration when imported under its original file name.)"
        )
    return (
        f"'{manifest.name}' has no operating point for {len(missing)} label(s) ({', '.join(missing)}): "
        "they are shown as uncalibrated and never marked as positive findings."
    )


def convert_download(
    entry: CatalogueEntry, path: str | os.PathLike[str]
) -> tuple[dict[str, Tensor], ModelManifest]:
    """Convert a downloaded weights file of ``entry`` into ``(state, manifest)``."""
    from ml.models import importing

    provenance = Provenance(
        training_data=entry.training_data,
        metrics=dict(entry.metrics),
        date=importing._today(),
        source_url=entry.url,
        extra={"license": entry.license, "source": entry.source, "citation": entry.citation},
    )
    if entry.kind == "xrv":
        assert isinstance(entry.labels, list)
        return importing.convert_xrv(
            path,
            architecture=entry.architecture,
            name=entry.name,
            trained_labels=entry.labels,
            op_threshs=entry.op_threshs,
            input_size=entry.input_size,
            description=entry.description,
            provenance=provenance,
        )
    if entry.kind == "torchvision":
        return importing.convert_torch_file(
            path,
            architecture=entry.architecture,
            labels=entry.label_names(),
            task="multiclass",
            name=entry.name,
            channels=3,
            input_size=entry.input_size,
            normalisation={k: list(v) for k, v in IMAGENET_NORMALISATION.items()},
            input_derivation=InputDerivation(resize="squash"),
            description=entry.description,
            provenance=provenance,
        )
    raise CxrError(f"Catalogue entry '{entry.name}' has an unknown kind '{entry.kind}'.")
