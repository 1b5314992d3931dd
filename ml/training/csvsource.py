"""Training data from a CSV file: one row per image, with a path column and label column(s).

Columns are detected by name when not given (:data:`PATH_COLUMNS`, :data:`LABEL_COLUMNS`, ...):
one label column (one class per row, or several joined by a separator: multi-label), or several
0/1 columns (multi-label; -1 is "uncertain"). Produces a :class:`~ml.training.sources.LabelledSet`
like the folder source.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ml.errors import DataSourceError
from ml.progress import CancelToken, ProgressCallback
from ml.training.sources import LabelledSet, Sample, SourceFilters, SourceReport, finish, inspect_samples

PATH_COLUMNS = ("path", "image", "image_path", "filepath", "file", "filename", "image index", "img", "dicom")
LABEL_COLUMNS = ("label", "labels", "class", "finding labels", "target", "diagnosis", "finding")
PATIENT_COLUMNS = ("patient", "patient_id", "patientid", "patient id")
VIEW_COLUMNS = ("view", "view position", "viewposition", "view_position", "ap/pa", "frontal/lateral")
STUDY_COLUMNS = ("study", "study_id", "studyinstanceuid", "study id")
NO_FINDING = {"no finding", "no_finding", "normal", "none", ""}


@dataclass
class CsvSpec:
    path_column: str = ""
    label_column: str = ""
    label_columns: list[str] = field(default_factory=list)
    separator: str = "|"
    image_root: str = ""
    #: uncertain (-1) values in 0/1 columns: ignore (masked) | zeros | ones
    uncertain: str = "ignore"
    patient_column: str = ""
    view_column: str = ""
    study_column: str = ""


def read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = [dict(r) for r in reader]
    except FileNotFoundError:
        raise DataSourceError(f"The CSV file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataSourceError(f"The CSV file {path.name} cannot be read ({exc}).") from None
    if not header:
        raise DataSourceError(f"The CSV file {path.name} is empty.")
    return header, rows


def _find(header: list[str], wanted: Iterable[str]) -> str:
    low = {h.strip().casefold(): h for h in header}
    for w in wanted:
        if w in low:
            return low[w]
    return ""


def _binary_column(rows: list[dict[str, str]], col: str) -> bool:
    allowed = {"", "0", "1", "-1", "0.0", "1.0", "-1.0"}
    return bool(rows) and all((r.get(col) or "").strip() in allowed for r in rows)


def load_csv(
    path: str | os.PathLike[str],
    spec: CsvSpec | None = None,
    filters: SourceFilters | None = None,
    labels: list[str] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    *,
    kind: str = "csv",
    rows: list[dict[str, str]] | None = None,
    header: list[str] | None = None,
    resolve=None,  # noqa: ANN001 - optional callable(path_value) -> absolute path
) -> LabelledSet:
    """A CSV with a path column and a label column, one 0/1 column per label, or ``a|b`` labels."""
    csv_path = Path(path)
    spec = spec or CsvSpec()
    filters = filters or SourceFilters()
    if rows is None or header is None:
        header, rows = read_csv_rows(csv_path)
    path_col = spec.path_column or _find(header, PATH_COLUMNS)
    if not path_col or path_col not in header:
        raise DataSourceError(
            f"The CSV file {csv_path.name} has no path column: name one column 'path' (or pass its name); "
            f"its columns are: {', '.join(header[:12])}."
        )
    if not rows:
        raise DataSourceError(f"The CSV file {csv_path.name} has no rows.")
    root = Path(spec.image_root) if spec.image_root else csv_path.parent
    patient_col = spec.patient_column or _find(header, PATIENT_COLUMNS)
    view_col = spec.view_column or _find(header, VIEW_COLUMNS)
    study_col = spec.study_column or _find(header, STUDY_COLUMNS)
    label_col = spec.label_column or ("" if spec.label_columns else _find(header, LABEL_COLUMNS))
    onehot = list(spec.label_columns)
    if label_col and label_col not in header:
        raise DataSourceError(f"The CSV file {csv_path.name} has no column '{label_col}'.")
    if not label_col and not onehot:
        skip = {path_col, patient_col, view_col, study_col}
        onehot = [h for h in header if h not in skip and _binary_column(rows, h)]
        if not onehot:
            raise DataSourceError(
                f"The CSV file {csv_path.name} has no label column: add a 'label' column, a '|'-separated "
                "'labels' column, or one 0/1 column per label."
            )
    missing_cols = [c for c in onehot if c not in header]
    if missing_cols:
        raise DataSourceError(f"The CSV file {csv_path.name} has no column '{missing_cols[0]}'.")

    task = "multilabel" if onehot else "multiclass"
    if label_col and any(spec.separator in (r.get(label_col) or "") for r in rows):
        task = "multilabel"
    candidates: list[Sample] = []
    rep = SourceReport(source=str(csv_path), kind=kind)
    found: Counter[str] = Counter()
    for n, row in enumerate(rows, start=2):
        raw_path = (row.get(path_col) or "").strip()
        if not raw_path:
            raise DataSourceError(f"Row {n} of {csv_path.name} has an empty '{path_col}'.")
        full = resolve(raw_path) if resolve else str(root / raw_path)
        ignore: list[str] = []
        if onehot:
            sample_labels = []
            for c in onehot:
                v = (row.get(c) or "").strip()
                if v in ("1", "1.0"):
                    sample_labels.append(c)
                elif v in ("-1", "-1.0"):
                    if spec.uncertain == "ones":
                        sample_labels.append(c)
                    elif spec.uncertain == "ignore":
                        ignore.append(c)
        else:
            value = (row.get(label_col) or "").strip()
            if task == "multilabel":
                sample_labels = [x.strip() for x in value.split(spec.separator) if x.strip()]
                sample_labels = [x for x in sample_labels if x.casefold() not in NO_FINDING]
            else:
                if not value:
                    raise DataSourceError(f"Row {n} of {csv_path.name} has no label in '{label_col}'.")
                sample_labels = [value]
        found.update(sample_labels)
        s = Sample(full, sample_labels, ignore=ignore, meta=row)
        if patient_col:
            s.patient_id = (row.get(patient_col) or "").strip()
        if view_col:
            s.view = (row.get(view_col) or "").strip()
        if study_col:
            s.study_id = (row.get(study_col) or "").strip()
        candidates.append(s)
    names = list(onehot) if onehot else sorted(found)
    if labels:
        unknown = sorted(x for x in found if x not in labels)
        if unknown:
            raise DataSourceError(
                f"Unknown label '{unknown[0]}' in {csv_path.name}; expected one of: {', '.join(labels)}."
            )
        names = list(labels)
    rep.n_found = len(candidates)
    samples = inspect_samples(candidates, rep, filters, progress, cancel)
    return finish(samples, names, task, rep)
