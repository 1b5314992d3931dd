"""What the analysis panel says about a heatmap (issue 14): gating, contours, faithfulness, sanity.

Qt-free and torch-free; part of :class:`app.analysis.presenter.AnalysisPresenter`, sharing its
:class:`~app.analysis.state.AnalysisState`. It is the one place that tells the view to draw a
heatmap (:meth:`HeatmapEvidence.show`), so its rules hold wherever a map is shown:

- **Gating** (CheXlocalize's practice, :func:`ml.explain.gating.gate`): a map for a label below the
  model's operating point (the manifest's thresholds; two-class models record one on P(second
  class); without one, the top class) is hidden, with "No evidence above threshold", until the
  user asks to "Show anyway".
- **Contours**: the outlines of the map's top regions (computed with the map, in its job) with their
  areas in mm² from the pixel spacing, or in px² when the image has none; drawn on request.
- **Faithfulness** (on request, a background job): the deletion score of the map shown, as one
  sentence. It belongs to that very map (compared by identity), so it never shows next to another
  image's map or a newer map of the same image.
- **Sanity** (on request): Adebayo's randomisation check of the method on the image shown; a method
  that fails is flagged whenever its map is shown for that model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.analysis import evidence_jobs
from app.analysis.state import AnalysisState, AnalysisView, ImageSource, Key, result_key
from ml.explain import METHOD_LABELS as METHOD_NAMES  # torch-free (ml.explain loads torch lazily)
from ml.explain.gating import gate

NOT_CLASSIFIED = "Not classified yet: the operating point is checked once the image is classified"
NO_MAP = "Compute a heatmap of this image first."


@dataclass(frozen=True)
class EvidenceShown:
    """What the view shows next to the heatmap (all empty: no heatmap)."""

    method: str = ""  # "Grad-CAM at layer3 for PNEUMONIA"
    gate_note: str = ""  # why the map is hidden, or that it is shown anyway; "" above the operating point
    gated: bool = False  # below the operating point: the "Show anyway" control is offered
    show_anyway: bool = False
    faithfulness: str = ""  # the deletion score of this map, as a sentence, once measured
    sanity: str = ""  # the randomisation check's verdict for this method and model, once run
    sanity_failed: bool = False
    regions: tuple[Any, ...] = ()  # outlines to draw (ml.explain.contours.Region); () draws none
    contour_text: str = ""  # "Top region: 1,234 mm²"
    flagged: tuple[str, ...] = ()  # methods that failed the randomisation check on this model (marked in the picker)


@dataclass
class EvidenceState:
    show_anyway: bool = False
    contours: bool = False
    details: evidence_jobs.Explained | None = None  # layer and regions of the state's heatmap
    score: tuple[Any, Any] | None = None  # (heatmap, DeletionScore): the score belongs to that map
    sanity: dict[tuple[str, str, str], Any] = field(default_factory=dict)  # (model, method, layer) -> result
    gate: Any = None  # the ml.explain.gating.Gate of the map shown (None: no map, or not classified)


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def points(delta: float) -> str:
    return f"{abs(delta) * 100:.0f} point{'s' if round(abs(delta) * 100) != 1 else ''}"


def faithfulness_sentence(score: Any) -> str:
    """"Removing the top 10% of this map lowers P(PNEUMONIA) by 34 points (91% → 57%); a random 10%
    of the same shape by 3 points." (the probability in percentage points)."""
    pct = f"{score.fraction * 100:.0f}%"

    def change(delta: float, same_as: float | None = None, it: str = "") -> str:
        if round(abs(delta) * 100) == 0:
            return f"changes {it}by less than 1 point"
        verb = "lowers" if delta >= 0 else "raises"
        if same_as is not None and round(abs(same_as) * 100) != 0 and (delta >= 0) == (same_as >= 0):
            return f"by {points(delta)}"  # "...; a random 10% of the same shape by 3 points"
        return f"{verb} {it}by {points(delta)}"

    out = (f"Removing the top {pct} of this map {change(score.drop, it=f'P({score.label}) ')} "
           f"({score.probability:.0%} → {score.deleted:.0%})")  # fmt: skip
    if score.random_drop is not None:
        out += f"; a random {pct} of the same shape {change(score.random_drop, score.drop, 'it ')}"
    return out + "."


def area_text(region: Any) -> str:
    """"1,234 mm²" from the pixel spacing, or "5,678 px²" (image pixels) when the image has none."""
    if region.area_mm2 is not None:
        return f"{region.area_mm2:,.0f} mm²"
    return f"{region.area_px:,} px²"


def contour_text(regions: list[Any]) -> str:
    if not regions:
        return "No region at half of the map's maximum."
    names = ("Top region", "2nd", "3rd")
    parts = [f"{names[i] if i < 3 else f'{i + 1}th'}: {area_text(r)}" for i, r in enumerate(regions)]
    unit = "" if all(r.area_mm2 is not None for r in regions) else " (no pixel spacing: areas in image pixels)"
    return "Outlined at half of the map's maximum. " + "; ".join(parts) + unit + "."


def sanity_text(result: Any) -> str:
    name = method_name(result.method)
    figures = (f"rank correlation {result.spearman:.2f} with the map of a randomised model "
               f"(bound {result.bound:.2f}, {result.n_images} image{'s' if result.n_images != 1 else ''})")  # fmt: skip
    if result.passed:
        return f"{name} passes the randomisation check: {figures}."
    return (f"⚠ {name} FAILS the randomisation check: its map barely changes when the model's weights are "
            f"randomised ({figures}); it shows the image more than the model.")  # fmt: skip


class HeatmapEvidence:
    def __init__(
        self,
        state: AnalysisState,
        view: AnalysisView,
        images: ImageSource,
        start: Callable[..., Any],
        with_model: Callable[[Callable[[Any], None]], None],
        fail: Callable[[str], None],
        manifest_of: Callable[[str | None], Any],
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.main = state
        self.state = EvidenceState()
        self.view = view
        self.images = images
        self.start = start  # the presenter's _start: one run at a time, progress, cancel
        self.with_model = with_model
        self.fail = fail
        self.manifest_of = manifest_of  # model name -> its manifest (None when not installed)
        self.changed = changed  # what is shown changed: the enabled state may have too

    # ------------------------------------------------------------------ what is shown
    def _current_key(self) -> Key | None:
        current = self.images.current()
        return result_key(*current) if current is not None else None

    def gate_of(self, heatmap: Any) -> Any:
        """The gate of ``heatmap`` (on the image it belongs to), or None when that image has no result."""
        prediction = self.main.results.get(self.main.heatmap_key) if self.main.heatmap_key is not None else None
        if prediction is None:
            return None
        manifest = self.manifest_of(getattr(prediction, "model_name", None))
        points_ = dict(getattr(manifest, "thresholds", None) or {})
        return gate(prediction, heatmap.target_label, self.state.show_anyway, points_)

    def show(self, heatmap: Any) -> None:
        """Draw ``heatmap`` (the state's map of the image shown, or None) as its gate allows, and say
        what is known about it."""
        st = self.state
        if heatmap is None:
            st.gate = None
            self.view.show_heatmap(None)
            self.view.show_evidence(EvidenceShown(flagged=self.flagged()))
        else:
            st.gate = g = self.gate_of(heatmap)
            self.view.show_heatmap(heatmap if g is None or g.shown else None)
            self.view.show_evidence(self.shown(heatmap, g))
        self.changed()

    def shown(self, heatmap: Any, g: Any) -> EvidenceShown:
        st = self.state
        details = st.details if st.details is not None and st.details.heatmap is heatmap else None
        layer = details.layer if details is not None else ""
        method = method_name(heatmap.method) + (f" at {layer}" if layer else "") + f" for {heatmap.target_label}"
        visible = g is None or g.shown
        score = st.score[1] if st.score is not None and st.score[0] is heatmap else None
        result = st.sanity.get((str(self.main.selected), heatmap.method, layer))
        regions = tuple(details.regions) if details is not None and st.contours and visible else ()
        return EvidenceShown(
            method=method, gate_note=NOT_CLASSIFIED if g is None else g.note, gated=g is not None and not g.above,
            show_anyway=st.show_anyway, faithfulness=faithfulness_sentence(score) if score is not None else "",
            sanity=sanity_text(result) if result is not None else "",
            sanity_failed=result is not None and not result.passed, regions=regions,
            contour_text=contour_text(list(regions)) if details is not None and st.contours and visible else "",
            flagged=self.flagged(),
        )  # fmt: skip

    def flagged(self) -> tuple[str, ...]:
        """Methods that failed the randomisation check (at any layer) on the chosen model."""
        model = str(self.main.selected)
        return tuple(sorted({m for (name, m, _layer), r in self.state.sanity.items() if name == model and not r.passed}))

    def refresh(self) -> None:
        """Show the image's map again (an option changed)."""
        key = self._current_key()
        self.show(self.main.heatmap if key is not None and key == self.main.heatmap_key else None)

    def measurable(self) -> bool:
        """A complete map of the image shown is drawn: faithfulness and the sanity check can run on it."""
        m = self.main
        if m.heatmap is None or not getattr(m.heatmap, "complete", False) or m.heatmap_key != self._current_key():
            return False
        g = self.gate_of(m.heatmap)
        return g is None or g.shown

    # ------------------------------------------------------------------ user intent
    def set_show_anyway(self, on: bool) -> None:
        self.state.show_anyway = bool(on)
        self.refresh()

    def set_contours(self, on: bool) -> None:
        self.state.contours = bool(on)
        self.refresh()

    def _target(self) -> tuple[Any, int, Key, Any] | None:
        current = self.images.current()
        heatmap = self.main.heatmap
        if current is None or not self.measurable():
            self.fail(NO_MAP)
            return None
        return current[0], current[1], result_key(*current), heatmap

    def measure_faithfulness(self) -> None:
        """The deletion score of the map shown, in the background."""
        target = self._target()
        if target is None:
            return
        image, frame, key, heatmap = target
        self.with_model(lambda loaded: self.start(evidence_jobs.faithfulness(loaded, image, frame, heatmap),
                                                  "measuring how faithful the heatmap is", "faithfulness", key,
                                                  payload=heatmap))  # fmt: skip

    def check_sanity(self) -> None:
        """Adebayo's randomisation check of the shown map's method (and layer), on this image."""
        target = self._target()
        if target is None:
            return
        image, frame, key, heatmap = target
        details = self.state.details
        layer = details.layer if details is not None and details.heatmap is heatmap else ""
        what = (str(self.main.selected), heatmap.method, layer)
        self.with_model(lambda loaded: self.start(
            evidence_jobs.sanity(loaded, image, frame, heatmap.method, layer, heatmap.target_label),
            f"checking {method_name(heatmap.method)} against a randomised model", "sanity", key, payload=what))  # fmt: skip

    # ------------------------------------------------------------------ job outcomes
    def explained(self, key: Key | None, result: Any) -> Any:
        """Keep what came with a map (layer, regions, a prediction); returns the map."""
        if not isinstance(result, evidence_jobs.Explained):
            self.state.details = None
            return result
        self.state.details = result
        if result.prediction is not None and key is not None and key not in self.main.results:
            self.main.results[key] = result.prediction
        return result.heatmap

    def finished(self, run: Any, result: Any) -> str:
        """A faithfulness or sanity run ended; returns the status line."""
        if run.kind == "faithfulness":
            heatmap = run.payload
            if heatmap is not self.main.heatmap:  # a newer map (or none) is there now: not its score
                return "The heatmap changed while it was measured; measure it again."
            self.state.score = (heatmap, result)
            text = faithfulness_sentence(result)
        else:
            self.state.sanity[run.payload] = result
            text = sanity_text(result)
        self.refresh()
        return text

    def report_lines(self, key: Key | None) -> tuple[bool, list[str]]:
        """(draw the map in the report?, lines about it) for the image ``key``."""
        m = self.main
        heatmap = m.heatmap if key is not None and key == m.heatmap_key else None
        if heatmap is None:
            return False, []
        g = self.gate_of(heatmap)
        shown = self.shown(heatmap, g)
        lines = [f"Heatmap method: {shown.method}."]
        if g is None:
            lines.append(f"Gating: {NOT_CLASSIFIED}.")
        elif g.above and self._has_operating_point():
            lines.append("Gating: the finding is at or above the model's operating point: heatmap shown.")
        elif g.above:
            lines.append(f"Gating: {heatmap.target_label} is the most probable class (the model records no "
                         "operating point): heatmap shown.")  # fmt: skip
        else:
            lines.append(f"Gating: {g.note}.")
        if shown.faithfulness:
            lines.append(f"Faithfulness: {shown.faithfulness}")
        if shown.sanity:
            lines.append(f"Sanity: {shown.sanity}")
        if shown.contour_text:
            lines.append(f"Contours: {shown.contour_text}")
        return (g is None or g.shown), lines

    def _has_operating_point(self) -> bool:
        prediction = self.main.results.get(self.main.heatmap_key) if self.main.heatmap_key is not None else None
        manifest = self.manifest_of(getattr(prediction, "model_name", None))
        return bool(getattr(manifest, "thresholds", None)) or getattr(prediction, "task", "") == "multilabel"


__all__ = [
    "METHOD_NAMES", "NO_MAP", "NOT_CLASSIFIED", "EvidenceShown", "EvidenceState", "HeatmapEvidence",
    "area_text", "contour_text", "faithfulness_sentence", "method_name", "sanity_text",
]  # fmt: skip
