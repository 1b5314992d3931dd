"""Training data sources: a folder with one sub-folder per class here, a CSV of paths and labels in
:mod:`ml.training.csvsource`, dataset layouts in :mod:`ml.training.presets`.

Both produce a :class:`LabelledSet`: a list of :class:`Sample` (path, labels, patient, view, ...),
the label names, the task (multi-class or multi-label) and a :class:`SourceReport` (images per
class, unreadable files with the reason, duplicates found by content hash, filtered-out counts).

Scanning reads only headers (DICOM tags, PNG/JPEG sizes) and hashes file contents; pixels are
decoded once later, into the run's cache (:mod:`ml.training.dataset`). Files are opened read-only:
the user's images are never modified.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ml.errors import CxrError, DataSourceError
from ml.progress import CancelToken, ProgressCallback, check, report

IMAGE_SUFFIXES = {".dcm", ".dicom", ".dic", ".png", ".jpg", ".jpeg", ""}
IGNORED_DIRS = {"masks", "mask", "__macosx", ".ipynb_checkpoints"}
JUNK_FILES = {".ds_store", "thumbs.db", "desktop.ini"}
LATERAL_VIEWS = {"LL", "RL", "LAT", "LATERAL", "LLD", "RLD", "LEFT LATERAL", "RIGHT LATERAL"}
MAX_LISTED = 200  # unreadable/duplicate lists are capped in reports (counts are not)


@dataclass
class Sample:
    """One image with its labels. ``ignore``: labels whose value is unknown (masked in the loss)."""

    path: str
    labels: list[str]
    patient_id: str = ""
    study_id: str = ""
    view: str = ""
    rows: int = 0
    cols: int = 0
    sha1: str = ""
    ignore: list[str] = field(default_factory=list)
    #: a split the dataset itself defines ("train", "val", "test"), else ""
    predefined_split: str = ""
    #: extra per-image columns (CSV row values), used for column-based patient IDs
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class SourceReport:
    source: str = ""
    kind: str = ""  # folder | csv | preset name
    task: str = "multiclass"
    labels: list[str] = field(default_factory=list)
    per_class: dict[str, int] = field(default_factory=dict)
    n_found: int = 0
    n_images: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    n_unreadable: int = 0
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (duplicate, first seen)
    n_duplicates: int = 0
    filtered: dict[str, int] = field(default_factory=dict)  # reason -> count
    notes: list[str] = field(default_factory=list)

    def add_unreadable(self, path: str, reason: str) -> None:
        self.n_unreadable += 1
        if len(self.unreadable) < MAX_LISTED:
            self.unreadable.append((path, reason))

    def add_filtered(self, reason: str, n: int = 1) -> None:
        self.filtered[reason] = self.filtered.get(reason, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_lines(self) -> list[str]:
        lines = [f"{self.n_images} images, {len(self.labels)} labels ({self.task}) from {self.source}"]
        lines += [f"  {label}: {self.per_class.get(label, 0)}" for label in self.labels]
        if self.n_unreadable:
            lines.append(
                f"  {self.n_unreadable} file(s) skipped as unreadable, e.g. "
                f"{Path(self.unreadable[0][0]).name}: {self.unreadable[0][1]}"
            )
        if self.n_duplicates:
            lines.append(f"  {self.n_duplicates} duplicate file(s) skipped (same content as another file)")
        for reason, n in self.filtered.items():
            lines.append(f"  {n} image(s) left out: {reason}")
        lines += [f"  note: {n}" for n in self.notes]
        return lines


@dataclass
class LabelledSet:
    samples: list[Sample]
    labels: list[str]
    task: str  # multiclass | multilabel
    report: SourceReport

    def label_counts(self) -> dict[str, int]:
        counts = Counter(label for s in self.samples for label in s.labels)
        return {label: counts.get(label, 0) for label in self.labels}


@dataclass
class SourceFilters:
    frontal_only: bool = True
    single_image_studies: bool = False
    min_size: int = 0
    dedupe: bool = True


# --------------------------------------------------------------------------- helpers


def file_hash(path: str | os.PathLike[str]) -> str:
    """SHA-1 of the file's bytes (read-only, in 1 MiB chunks)."""
    h = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_candidate_file(name: str) -> bool:
    low = name.lower()
    if low in JUNK_FILES or low.startswith("._") or low.startswith("."):
        return False
    return Path(low).suffix in IMAGE_SUFFIXES


def walk_images(folder: str | os.PathLike[str]) -> list[str]:
    """Image candidates under ``folder`` (recursive, sorted; ``masks/`` folders skipped)."""
    out: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d.lower() not in IGNORED_DIRS and not d.startswith("."))
        out.extend(os.path.join(root, f) for f in sorted(files) if is_candidate_file(f))
    return out


def is_lateral(view: str) -> bool:
    return view.strip().upper() in LATERAL_VIEWS


# --------------------------------------------------------------------------- checking files


def inspect_samples(
    samples: Iterable[Sample],
    rep: SourceReport,
    filters: SourceFilters,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[Sample]:
    """Read each file's header, hash it and apply the filters; unreadable files go to the report."""
    from ml.imaging.header import read_header

    samples = list(samples)
    kept: list[Sample] = []
    seen: dict[str, Sample] = {}
    for i, s in enumerate(samples):
        check(cancel)
        report(progress, i, len(samples), "checking images")
        if not os.path.isfile(s.path):
            why = "file not found" if not os.path.exists(s.path) else "not a file"
            _report_unreadable(rep, s.path, why)
            continue
        try:
            meta = read_header(s.path)
            if not meta.has_pixels or not meta.rows or not meta.columns:
                raise DataSourceError("it holds no image")
            s.sha1 = file_hash(s.path)
        except CxrError as exc:
            _report_unreadable(rep, s.path, str(exc))
            continue
        except OSError as exc:
            _report_unreadable(rep, s.path, exc.strerror or str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - a damaged file must be reported, never crash the scan
            _report_unreadable(rep, s.path, f"cannot be read ({type(exc).__name__})")
            continue
        s.rows, s.cols = int(meta.rows), int(meta.columns)
        if meta.kind == "dicom":
            s.patient_id = s.patient_id or meta.patient_id
            s.study_id = s.study_id or meta.study_uid
            s.view = s.view or meta.view_position
        if filters.frontal_only and is_lateral(s.view):
            rep.add_filtered("lateral view (frontal views only)")
            continue
        if filters.min_size and min(s.rows, s.cols) < filters.min_size:
            rep.add_filtered(f"smaller than {filters.min_size} pixels")
            continue
        if filters.dedupe and s.sha1 in seen:
            rep.n_duplicates += 1
            if len(rep.duplicates) < MAX_LISTED:
                rep.duplicates.append((s.path, seen[s.sha1].path))
            continue
        seen[s.sha1] = s
        kept.append(s)
    report(progress, len(samples), len(samples), "checking images")
    if filters.single_image_studies:
        per_study = Counter(s.study_id for s in kept if s.study_id)
        multi = {k for k, n in per_study.items() if n > 1}
        if multi:
            dropped = [s for s in kept if s.study_id in multi]
            rep.add_filtered("study with more than one image", len(dropped))
            kept = [s for s in kept if s.study_id not in multi]
    return kept


def _report_unreadable(rep: SourceReport, path: str, reason: str) -> None:
    rep.add_unreadable(path, reason.rstrip("."))


def finish(samples: list[Sample], labels: list[str], task: str, rep: SourceReport) -> LabelledSet:
    """Fill the report's counts and check that the set can train a model."""
    rep.labels = list(labels)
    rep.task = task
    rep.n_images = len(samples)
    counts = Counter(label for s in samples for label in s.labels)
    rep.per_class = {label: counts.get(label, 0) for label in labels}
    where = rep.source
    if not samples:
        if rep.n_unreadable:
            raise DataSourceError(
                f"No usable images in {where}: all {rep.n_unreadable} file(s) are unreadable, e.g. "
                f"{Path(rep.unreadable[0][0]).name}: {rep.unreadable[0][1]}."
            )
        raise DataSourceError(f"No usable images in {where} (after the filters).")
    if task == "multiclass":
        present = [label for label in labels if counts.get(label, 0) > 0]
        if len(present) < 2:
            only = present[0] if present else "none"
            raise DataSourceError(
                f"Only one class ({only}) has images in {where}: training needs at least two classes."
            )
        empty = [label for label in labels if counts.get(label, 0) == 0]
        if empty:
            rep.notes.append(f"class(es) without images: {', '.join(empty)}")
    return LabelledSet(samples, list(labels), task, rep)


# --------------------------------------------------------------------------- folder per class


def class_folders(root: Path) -> list[tuple[str, list[Path]]]:
    """``[(label, [folders])]``: sub-folders of ``root`` grouped case-insensitively, sorted."""
    groups: dict[str, tuple[str, list[Path]]] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if d.name.lower() in IGNORED_DIRS or d.name.startswith("."):
            continue
        key = d.name.casefold()
        if key not in groups:
            groups[key] = (d.name, [])
        groups[key][1].append(d)
    return sorted(groups.values(), key=lambda g: g[0].casefold())


def load_folder(
    path: str | os.PathLike[str],
    filters: SourceFilters | None = None,
    labels: list[str] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    *,
    kind: str = "folder",
) -> LabelledSet:
    """A folder with one sub-folder per class (searched recursively for DICOM/PNG/JPEG)."""
    root = Path(path)
    _check_folder(root)
    filters = filters or SourceFilters()
    groups = class_folders(root)
    loose = [f for f in root.iterdir() if f.is_file() and is_candidate_file(f.name)]
    if not groups:
        if loose:
            raise DataSourceError(
                f"No class sub-folders found in {root}: expected one folder per class, "
                "e.g. NORMAL/ and PNEUMONIA/, with the images inside."
            )
        raise DataSourceError(
            f"{root} is empty: expected one sub-folder per class, e.g. NORMAL/ and PNEUMONIA/."
        )
    names = [name for name, _ in groups]
    if labels:
        wanted = {x.casefold(): x for x in labels}
        unknown = [n for n in names if n.casefold() not in wanted]
        if unknown:
            raise DataSourceError(
                f"Unknown label '{unknown[0]}' (folder in {root}); expected one of: {', '.join(labels)}."
            )
        names = list(labels)
    rep = SourceReport(source=str(root), kind=kind)
    if loose:
        rep.notes.append(f"{len(loose)} file(s) directly in {root.name} (outside any class folder) ignored")
    candidates: list[Sample] = []
    for name, folders in groups:
        label = next(n for n in names if n.casefold() == name.casefold())
        for folder in folders:
            candidates.extend(Sample(p, [label]) for p in walk_images(folder))
    rep.n_found = len(candidates)
    if not candidates:
        raise DataSourceError(f"No images found in the class folders of {root} ({', '.join(names)}).")
    samples = inspect_samples(candidates, rep, filters, progress, cancel)
    return finish(samples, names, "multiclass", rep)


def _check_folder(root: Path) -> None:
    if not root.exists():
        raise DataSourceError(f"The data folder {root} does not exist.")
    if not root.is_dir():
        raise DataSourceError(
            f"{root} is not a folder: give a folder with one sub-folder per class or a CSV file."
        )
    if not os.access(root, os.R_OK | os.X_OK):
        raise DataSourceError(f"No permission to read the folder {root}.")


def remap_labels(data: LabelledSet, mapping: dict[str, str], labels: list[str]) -> LabelledSet:
    """Rename/merge labels (e.g. 4 classes -> negative vs rest) and recount."""
    for s in data.samples:
        s.labels = sorted({mapping.get(x, x) for x in s.labels})
    data.labels = list(labels)
    return finish(data.samples, labels, data.task, data.report)


def restrict_to(data: LabelledSet, keep: Iterable[Sample]) -> LabelledSet:
    keep = list(keep)
    return finish(keep, data.labels, data.task, data.report)
