"""Prediction exports shared by the CLI (`cxr predict -o`) and the GUI (batch CSV).

CSV columns: ``path``, ``frame`` (from 1), one column per label with what the analysis panel shows
(:attr:`Prediction.shown`: the calibrated probability, 0.5 = the operating point, for calibrated
models such as TorchXRayVision's; the raw probability otherwise; empty for a label without an
operating point in a calibrated model), ``prediction``, ``in_scope`` (``yes``/``no``: the
out-of-scope guard, :mod:`ml.inference.scope`), ``scope_note`` (why not, or a remark) and
``disclaimer`` ("Not for diagnostic use." on every row). When any row is calibrated, one
``<label> raw probability`` column per label (the raw sigmoid) follows; when any label has no
operating point, ``uncalibrated_labels`` lists them (';'-joined): never positive findings.
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
    raw = any(getattr(p, "calibrated", None) is not None for p in predictions)
    flagged = any(any(getattr(p, "uncalibrated", None) or []) for p in predictions)
    extra = [f"{label} raw probability" for label in labels] if raw else []
    extra += ["uncalibrated_labels"] if flagged else []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "frame", *labels, "prediction", "in_scope", "scope_note", "disclaimer", *extra,
                     *(["error"] if errors else [])])  # fmt: skip
    for p in predictions:
        scores = p.scores
        shown = dict(zip(p.labels, _shown(p), strict=True))
        flags = dict(zip(p.labels, getattr(p, "uncalibrated", None) or [False] * len(p.labels), strict=True))
        writer.writerow(
            [
                p.path,
                p.frame + 1,
                *(_number(shown.get(label)) for label in labels),
                prediction_text(p),
                "yes" if getattr(p, "in_scope", True) else "no",
                getattr(p, "scope_note", ""),
                DISCLAIMER,
                *((_number(scores.get(label)) for label in labels) if raw else ()),
                *([";".join(x for x in labels if flags.get(x))] if flagged else []),
                *([""] if errors else []),
            ]
        )
    for path, message in errors:
        writer.writerow([path, "", *("" for _ in labels), "", "no", "not classified (see error)", DISCLAIMER,
                         *("" for _ in extra), message])  # fmt: skip
    return out.getvalue()


def _shown(prediction: Any) -> list[float | None]:
    shown = getattr(prediction, "shown", None)
    return list(shown) if shown is not None else list(prediction.probabilities)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


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
