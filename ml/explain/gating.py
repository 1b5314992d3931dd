"""Gating (the CheXlocalize practice): no heatmap for a finding the model does not call.

Below the operating point, a heatmap still shows *something* (the map is normalised to its own
maximum), which reads as evidence where there is none. So by default it is hidden, with the note
"no evidence above threshold", and an explicit "show anyway". The operating point is the
model's: for multi-label models the label's threshold (a label without one, "uncalibrated", is
always gated); for multi-class models the label's recorded threshold (two-class models record
one, on P(second class): the first class is then "above" when that probability is below it), and
without one the label must be the top label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NO_EVIDENCE = "No evidence above threshold: heatmap hidden"
UNCALIBRATED = "No operating point for this label (uncalibrated): heatmap hidden"
SHOWN_ANYWAY = "Below the operating point: heatmap shown on request, not evidence of a finding"


@dataclass(frozen=True)
class Gate:
    label: str
    above: bool  # the finding is at or above the operating point
    shown: bool  # draw the heatmap (above, or show_anyway)
    note: str  # "" when above; why it is hidden (or "shown anyway") otherwise


def gate(
    prediction: Any, label: str, show_anyway: bool = False, operating_points: dict[str, float] | None = None
) -> Gate:
    """Should the heatmap for ``label`` be drawn for this :class:`~ml.inference.predictor.Prediction`?

    ``operating_points``: the manifest's ``thresholds`` (used for multi-class models, whose
    predictions carry none)."""
    labels = list(prediction.labels)
    if label not in labels:
        return Gate(label, False, bool(show_anyway), SHOWN_ANYWAY if show_anyway else NO_EVIDENCE)
    i = labels.index(label)
    flags = list(getattr(prediction, "uncalibrated", []) or [])
    if getattr(prediction, "task", "multiclass") == "multilabel":
        uncal = bool(flags[i]) if i < len(flags) else False
        above = (not uncal) and label in list(prediction.positives)
        reason = UNCALIBRATED if uncal else NO_EVIDENCE
    else:
        points = operating_points or {}
        probs = list(getattr(prediction, "probabilities", []) or [])
        other = [x for x in labels if x != label]
        if label in points and i < len(probs):
            above = float(probs[i]) >= float(points[label])
        elif len(labels) == 2 and other[0] in points and len(probs) == 2:
            above = float(probs[labels.index(other[0])]) < float(points[other[0]])
        else:
            above = label == prediction.top_label
        reason = NO_EVIDENCE
    if above:
        return Gate(label, True, True, "")
    return Gate(label, False, bool(show_anyway), SHOWN_ANYWAY if show_anyway else reason)


__all__ = ["NO_EVIDENCE", "SHOWN_ANYWAY", "UNCALIBRATED", "Gate", "gate"]
