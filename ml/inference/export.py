"""Prediction exports shared by the CLI (`cxr predict -o`) and the GUI (batch CSV).

CSV columns: ``path``, ``frame`` (from 1), one column per label with its probability,
``prediction``, ``in_scope`` (``yes``/``no``: the out-of-scope guard, :mod:`ml.inference.scope`),
``scope_note`` (why not, or a remark) and ``disclaimer`` ("Not for diagnostic use." on every row).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ml import DISCLAIMER
from ml.fileio import atomic_path


def prediction_text(prediction: Any) -> str:
    """The ``prediction`` column: the top class (multi-class) or the positive labels joined by ';'."""
    if prediction.task == "multilabel":
        return ";".join(prediction.positives)
    return prediction.top_label


def csv_text(
    predictions: Sequence[Any],
    labels: Sequence[str] | None = None,
    errors: Sequence[tuple[str, str]] = (),
) -> str:
    """The CSV. ``errors`` (path, message) of files that could not be classified add an ``error``
    column (empty on result rows) and one row per failed file after the results."""
    labels = list(labels or (predictions[0].labels if predictions else []))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "frame", *labels, "prediction", "in_scope", "scope_note", "disclaimer",
                     *(["error"] if errors else [])])  # fmt: skip
    for p in predictions:
        scores = p.scores
        writer.writerow(
            [
                p.path,
                p.frame + 1,
                *(f"{scores[label]:.6f}" if label in scores else "" for label in labels),
                prediction_text(p),
                "yes" if getattr(p, "in_scope", True) else "no",
                getattr(p, "scope_note", ""),
                DISCLAIMER,
                *([""] if errors else []),
            ]
        )
    for path, message in errors:
        writer.writerow([path, "", *("" for _ in labels), "", "no", "not classified (see error)", DISCLAIMER, message])
    return out.getvalue()


def write_csv(
    path: str | os.PathLike[str],
    predictions: Sequence[Any],
    labels: Sequence[str] | None = None,
    errors: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write the CSV atomically (temporary file, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(csv_text(predictions, labels, errors), encoding="utf-8")
    return path
