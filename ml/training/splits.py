"""Patient-level train/validation/test splits, stratified by label and seeded.

Every image of a patient lands in the same split: :func:`check_no_leak` refuses a split where one
patient is in two splits. Patient IDs come from (``SplitConfig.patient_id``):

* ``auto``: the DICOM PatientID / CSV patient column when every image has one, else a known
  file-name pattern (NIH ``<patient>_<n>.png``, CheXpert ``patientNNNNN/``, paediatric pneumonia
  ``personN_...`` / ``IM-NNNN-...``), else each image is its own patient (image-level split);
* ``dicom`` / ``column:NAME`` / ``regex:PATTERN`` (matched against the file name; first group, or the
  whole match) / ``path-regex:PATTERN`` (against the path relative to the images' common folder) / ``none``.
"""

from __future__ import annotations

import csv
import io
import os
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.errors import DataSourceError
from ml.training.config import SplitConfig
from ml.training.sources import LabelledSet, Sample

SPLITS = ("train", "val", "test")

KNOWN_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("NIH <patient>_<n>.png", re.compile(r"(?:^|[\\/])(\d{5,8})_\d+\.png$", re.IGNORECASE)),
    ("CheXpert patientNNNNN/", re.compile(r"(?:^|[\\/])(patient\d+)[\\/]", re.IGNORECASE)),
    ("paediatric pneumonia personN_", re.compile(r"(?:^|[\\/])(person\d+)_", re.IGNORECASE)),
    ("paediatric pneumonia IM-NNNN-", re.compile(r"(?:^|[\\/])(?:NORMAL\d?-)?(IM-\d+)-\d+", re.IGNORECASE)),
]


@dataclass
class Split:
    """Which images are in which split, and at what level (patient or image) it was made."""

    samples: list[Sample]
    assignment: list[str]  # one of SPLITS per sample
    patients: list[str]
    level: str  # "patient" | "image"
    source: str  # how patient IDs were found
    labels: list[str] = field(default_factory=list)

    def indices(self, name: str) -> list[int]:
        return [i for i, a in enumerate(self.assignment) if a == name]

    def subset(self, name: str) -> list[Sample]:
        return [s for s, a in zip(self.samples, self.assignment, strict=True) if a == name]

    def summary(self) -> dict[str, Any]:
        """Patients and images per split, and images per split and class."""
        out: dict[str, Any] = {"level": self.level, "patient_ids": self.source, "splits": {}}
        for name in SPLITS:
            idx = self.indices(name)
            per_class = Counter(label for i in idx for label in self.samples[i].labels)
            out["splits"][name] = {
                "images": len(idx),
                "patients": len({self.patients[i] for i in idx}),
                "per_class": {label: per_class.get(label, 0) for label in self.labels},
            }
        return out

    def summary_lines(self) -> list[str]:
        s = self.summary()
        lines = [f"{self.level}-level split (patient IDs: {self.source})"]
        for name in SPLITS:
            d = s["splits"][name]
            classes = ", ".join(f"{k} {v}" for k, v in d["per_class"].items())
            lines.append(f"  {name:5s} {d['images']:6d} images, {d['patients']:6d} patients ({classes})")
        return lines


# --------------------------------------------------------------------------- patient IDs


def resolve_patient_ids(samples: list[Sample], mode: str = "auto") -> tuple[list[str], str, str]:
    """``(ids, level, description)``: one patient ID per sample."""
    mode = (mode or "auto").strip()
    per_image = ([f"image:{i}" for i in range(len(samples))], "image", "none (each image its own patient)")
    if mode == "none":
        return per_image
    if mode in ("dicom", "column") or mode.startswith("column:"):
        if mode.startswith("column:"):
            col = mode.split(":", 1)[1]
            if samples and not any(col in s.meta for s in samples):
                raise DataSourceError(f"There is no column '{col}' to take patient IDs from.")
            ids = [(s.meta.get(col) or "").strip() for s in samples]
            what = f"column {col}"
        else:
            ids = [s.patient_id for s in samples]
            what = "DICOM PatientID" if mode == "dicom" else "patient column"
        missing = sum(1 for x in ids if not x)
        if missing:
            raise DataSourceError(
                f"{missing} image(s) have no patient ID ({what}); choose another patient ID source or 'none'."
            )
        return ids, "patient", what
    if mode.startswith(("regex:", "path-regex:")):
        return _pattern_ids(samples, mode)
    if mode != "auto":
        raise DataSourceError(
            f"Unknown patient ID source '{mode}'; use auto, dicom, none, regex:PATTERN, path-regex:PATTERN or column:NAME."
        )
    if samples and all(s.patient_id for s in samples):
        return [s.patient_id for s in samples], "patient", "DICOM PatientID / patient column"
    ids, used = [], set()
    for s in samples:
        for name, pattern in KNOWN_PATTERNS:
            pid = _match(pattern, s.path)
            if pid:
                ids.append(pid)
                used.add(name)
                break
        else:
            return per_image
    return ids, "patient", f"file names ({', '.join(sorted(used))})"


def _pattern_ids(samples: list[Sample], mode: str) -> tuple[list[str], str, str]:
    """``regex:`` matches each FILE NAME, ``path-regex:`` each path relative to the images' common folder."""
    kind, text = mode.split(":", 1)
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise DataSourceError(f"The patient ID pattern is not a valid regular expression ({exc}).") from None
    rel = _relative_paths([s.path for s in samples])
    names = [r.rsplit("/", 1)[-1] for r in rel]
    on_name = kind == "regex"
    subjects, others = (names, rel) if on_name else (rel, names)
    ids = [_match(pattern, x) for x in subjects]
    target = "file name" if on_name else "path relative to the data folder"
    other, other_mode = ("relative path", "path-regex:") if on_name else ("file name", "regex:")
    misses = [i for i, x in enumerate(ids) if not x]
    if misses:
        would = [i for i in misses if _match(pattern, others[i])]
        neither = [i for i in misses if i not in set(would)]
        parts = []
        if neither:
            parts.append(f"{len(neither)} whose {target} it does not match, e.g. {subjects[neither[0]]}")
        if would:
            parts.append(
                f"{len(would)} whose {target} it does not match although the {other} would "
                f"(use {other_mode}{text}), e.g. {subjects[would[0]]}"
            )
        raise DataSourceError(
            f"The patient ID pattern {text} (matched against each {target}) matches "
            f"{len(samples) - len(misses)} of {len(samples)} file(s); it misses " + "; ".join(parts) + "."
        )
    return ids, "patient", f"{target} pattern {pattern.pattern}"


def _relative_paths(paths: list[str]) -> list[str]:
    """Paths relative to the folder all of them share (``/`` separated)."""
    if not paths:
        return []
    dirs = [os.path.dirname(os.path.abspath(p)) for p in paths]
    try:
        base = os.path.commonpath(dirs)
    except ValueError:  # different drives
        base = ""
    return [(os.path.relpath(os.path.abspath(p), base) if base else p).replace(os.sep, "/") for p in paths]


def _match(pattern: re.Pattern[str], path: str) -> str:
    m = pattern.search(path.replace(os.sep, "/"))
    if not m:
        return ""
    groups = [g for g in m.groups() if g]
    return groups[0] if groups else m.group(0)


# --------------------------------------------------------------------------- splitting


def _stratum(labels: list[list[str]], counts: Counter[str]) -> str:
    """A patient's stratum: its most frequent label set, the rarest label of it for multi-label."""
    sets = Counter(tuple(sorted(x)) for x in labels)
    top = sets.most_common(1)[0][0]
    if not top:
        return ""
    return min(top, key=lambda x: (counts[x], x))


def _allocate(n: int, ratios: list[float]) -> list[int]:
    """Split ``n`` items by ``ratios`` (largest remainder); later splits get one each when possible."""
    total = sum(ratios) or 1.0
    raw = [n * r / total for r in ratios]
    out = [int(x) for x in raw]
    for i in sorted(range(len(ratios)), key=lambda i: raw[i] - out[i], reverse=True)[: n - sum(out)]:
        out[i] += 1
    for i in range(len(ratios) - 1, 0, -1):  # a class with few patients still gets one in test and val
        if ratios[i] > 0 and out[i] == 0 and out[0] > 1:
            out[i] += 1
            out[0] -= 1
    return out


def split_dataset(data: LabelledSet, config: SplitConfig | None = None, seed: int = 0) -> Split:
    """Patient-level split of ``data`` stratified by label (``config.ratios``, default 70/15/15)."""
    config = config or SplitConfig()
    samples = list(data.samples)
    ids, level, source = resolve_patient_ids(samples, config.patient_id)
    rng = random.Random(seed)
    by_patient: dict[str, list[int]] = defaultdict(list)
    for i, pid in enumerate(ids):
        by_patient[pid].append(i)
    counts = Counter(label for s in samples for label in s.labels)
    strata: dict[str, list[str]] = defaultdict(list)
    for pid in sorted(by_patient):
        strata[_stratum([samples[i].labels for i in by_patient[pid]], counts)].append(pid)

    if config.balanced and data.task == "multiclass":
        smallest = min(len(v) for v in strata.values())
        for key in sorted(strata):
            rng.shuffle(strata[key])
            strata[key] = sorted(strata[key][:smallest])
    if config.max_images and config.max_images < len(samples):
        frac = config.max_images / len(samples)
        for key in sorted(strata):
            rng.shuffle(strata[key])
            keep, n = [], 0
            budget = max(1, round(sum(len(by_patient[p]) for p in strata[key]) * frac))
            for pid in strata[key]:
                if n >= budget:
                    break
                keep.append(pid)
                n += len(by_patient[pid])
            strata[key] = sorted(keep)

    predefined = config.use_predefined and any(s.predefined_split for s in samples)
    assign: dict[str, str] = {}
    for key in sorted(strata):
        pids = list(strata[key])
        rng.shuffle(pids)
        if predefined:
            _assign_predefined(pids, by_patient, samples, config.ratios, assign, rng)
            continue
        n_train, n_val, _ = _allocate(len(pids), list(config.ratios))
        for j, pid in enumerate(pids):
            assign[pid] = "train" if j < n_train else "val" if j < n_train + n_val else "test"
    kept = [i for i in range(len(samples)) if ids[i] in assign]
    split = Split(
        samples=[samples[i] for i in kept],
        assignment=[assign[ids[i]] for i in kept],
        patients=[ids[i] for i in kept],
        level=level,
        source=source,
        labels=list(data.labels),
    )
    check_no_leak(split)
    if not split.indices("train"):
        raise DataSourceError("The split left no images for training; add images or change the ratios.")
    return split


def _assign_predefined(pids, by_patient, samples, ratios, assign, rng) -> None:  # noqa: ANN001
    """Keep a dataset's own split; splits it does not define are taken from its training part."""
    given = {pid: {samples[i].predefined_split or "train" for i in by_patient[pid]} for pid in pids}
    present = set().union(*given.values()) if given else set()
    missing = [name for name in ("val", "test") if name not in present and ratios[SPLITS.index(name)] > 0]
    pool = []
    for pid in pids:
        parts = given[pid]
        # a patient the dataset put in two splits goes to the most held-out one: never leak
        choice = "test" if "test" in parts else "val" if "val" in parts else "train"
        if choice == "train" and missing:
            pool.append(pid)
        else:
            assign[pid] = choice
    names = ["train", *missing]
    counts = _allocate(len(pool), [ratios[SPLITS.index(x)] for x in names])
    j = 0
    for name, count in zip(names, counts, strict=True):
        for pid in pool[j : j + count]:
            assign[pid] = name
        j += count


def check_no_leak(split: Split) -> None:
    """Raise DataSourceError if any patient has images in two splits."""
    where: dict[str, str] = {}
    for pid, name in zip(split.patients, split.assignment, strict=True):
        other = where.setdefault(pid, name)
        if other != name:
            raise DataSourceError(
                f"A patient has images in both the {other} and the {name} split: refusing to train on a "
                "split that leaks patients between training and evaluation."
            )


# --------------------------------------------------------------------------- split.csv


def split_csv_text(split: Split) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "labels", "patient", "split", "sha1"])
    for s, name, pid in zip(split.samples, split.assignment, split.patients, strict=True):
        w.writerow([s.path, "|".join(s.labels), pid, name, s.sha1])
    return buf.getvalue()


def write_split_csv(path: str | os.PathLike[str], split: Split) -> None:
    from ml.fileio import write_text_atomic

    write_text_atomic(path, split_csv_text(split))


def read_split_csv(path: str | os.PathLike[str], data: LabelledSet) -> Split:
    """Rebuild a split (e.g. to resume a run) from its split.csv and the re-scanned source."""
    by_path = {s.path: s for s in data.samples}
    samples, assignment, patients = [], [], []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            s = by_path.get(row["path"])
            if s is None:
                raise DataSourceError(
                    f"{Path(row['path']).name} from the run's split is no longer in the data source; "
                    "the data changed since the run started."
                )
            if row.get("sha1") and s.sha1 and row["sha1"] != s.sha1:
                raise DataSourceError(f"{Path(s.path).name} changed since the run started; cannot resume.")
            samples.append(s)
            assignment.append(row["split"])
            patients.append(row["patient"])
    split = Split(samples, assignment, patients, "patient", "split.csv", list(data.labels))
    check_no_leak(split)
    return split
