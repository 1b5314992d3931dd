"""The analysis panel's state, its enabled-state rule and the protocols its presenter talks through.

Qt-free and torch-free: :class:`app.analysis.presenter.AnalysisPresenter` owns an
:class:`AnalysisState`; the view (:class:`app.analysis.panel.AnalysisPanel`) implements
:class:`AnalysisView`; the host (main window) provides an :class:`ImageSource`, a
:class:`JobRunner` (background jobs) and optionally a :class:`SettingsStore`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.analysis.jobs import BatchOutcome, LoadedModel, ModelInfo

Key = tuple[str, int]  # (image path, frame): what results and heatmaps belong to

EMPTY, LISTING, READY = 0, 1, 2  # the panel's pages: no model installed, listing, the picker


def result_key(image: Any, frame: int) -> Key:
    """What results and heatmaps are keyed by: (image path, frame)."""
    return str(image.meta.path), int(frame)


# ---------------------------------------------------------------------------- what the presenter talks to


class JobHandle(Protocol):
    def cancel(self) -> None: ...


class JobRunner(Protocol):
    """Starts ``fn(progress, cancel)`` in the background; the callbacks arrive on the GUI thread.
    ``partial`` receives what the function hands to ``progress.partial(value)`` (partial results)."""

    def start(
        self,
        fn: Callable[..., Any],
        description: str,
        *,
        finished: Callable[[Any], None] | None = None,
        error: Callable[[str], None] | None = None,
        progress: Callable[[int, int, str], None] | None = None,
        cancelled: Callable[[], None] | None = None,
        done: Callable[[], None] | None = None,
        partial: Callable[[Any], None] | None = None,
    ) -> JobHandle: ...


class ImageSource(Protocol):
    """What is open: the viewer's image and frame, the browser's series and studies."""

    def current(self) -> tuple[Any, int] | None: ...  # (XRayImage, frame) shown, or None

    def series_paths(self) -> list[str]: ...

    def study_paths(self) -> list[str]: ...

    def study_count(self) -> int: ...

    def show_path(self, path: str) -> bool: ...  # show an open file in the viewer; False if not open


class SettingsStore(Protocol):
    def value(self, key: str, default: str) -> str: ...

    def set_value(self, key: str, value: str) -> None: ...


@dataclass(frozen=True)
class ExplainRequest:
    method: str = "gradcam"  # a name of ml.explain.METHODS, or "default"
    target: str | None = None  # None: the model's top label
    options: dict[str, Any] = field(default_factory=dict)  # occlusion window/stride; a CAM layer


@dataclass(frozen=True)
class Enabled:
    """Which of the panel's actions can be used now."""

    run_image: bool = False
    run_series: bool = False
    run_all: bool = False
    explain: bool = False
    pdf: bool = False
    png: bool = False
    csv: bool = False
    evidence: bool = False  # faithfulness and the sanity check of the map shown (see app.analysis.evidence)


class AnalysisView(Protocol):
    """What the presenter tells the view (the view renders; it decides nothing)."""

    def show_page(self, page: int) -> None: ...  # EMPTY, LISTING or READY

    def show_models(self, items: list[tuple[str, str]], selected: str | None) -> None: ...  # (name, text)

    def show_model(self, info: ModelInfo) -> None: ...  # card, heatmap target labels, occlusion defaults

    def show_device(self, device: str) -> None: ...

    def show_status(self, text: str) -> None: ...

    def show_device_status(self, text: str) -> None: ...  # "" hides it

    def show_busy(self, busy: bool, cancellable: bool) -> None: ...  # progress (and cancel) shown

    def show_progress(self, done: int, total: int, message: str) -> None: ...

    def show_prediction(self, prediction: Any) -> None: ...  # None clears the table

    def show_scope(self, text: str, hidden: bool) -> None: ...  # out-of-scope banner ("" hides it); results hidden?

    def show_batch(self, predictions: list[Any] | None) -> None: ...  # None hides the batch list

    def show_heatmap(self, heatmap: Any) -> None: ...  # None clears the layer

    def show_evidence(self, shown: Any) -> None: ...  # app.analysis.evidence.EvidenceShown: gate, scores, contours

    def set_enabled(self, enabled: Enabled) -> None: ...

    def show_error(self, message: str) -> None: ...  # one readable line, also told to the user

    def heatmap_request(self) -> ExplainRequest: ...  # the method, target and options chosen

    def announce(self, event: str, payload: Any) -> None: ...  # models_listed, model_loaded, ...


# ---------------------------------------------------------------------------- the state


@dataclass
class Load:
    """A model load in flight (compared by identity: a stale load is not ``state.loading``)."""

    name: str
    path: Any
    device: str
    handle: JobHandle | None = None


@dataclass
class Run:
    """A classification or explanation in flight."""

    kind: str  # "single", "batch", "explain", "faithfulness" or "sanity"
    model: str | None
    key: Key | None = None  # the image a single run or explanation is for
    handle: JobHandle | None = None
    payload: Any = None  # what the result belongs to (faithfulness: the heatmap; sanity: model, method, layer)


@dataclass
class AnalysisState:
    page: int = LISTING
    models: list[ModelInfo] = field(default_factory=list)
    selected: str | None = None
    device: str = "auto"
    loaded: LoadedModel | None = None
    loaded_device: str = ""
    loading: Load | None = None
    queued: list[Callable[[LoadedModel], None]] = field(default_factory=list)  # runs waiting for a load
    run: Run | None = None
    auto_explain: bool = True
    explain_next: bool = False
    #: "Show anyway (research use)": results of images the out-of-scope guard flagged are shown
    show_out_of_scope: bool = False
    results: dict[Key, Any] = field(default_factory=dict)  # (path, frame) -> Prediction
    prediction: Any = None  # the one shown in the table
    batch: BatchOutcome | None = None
    heatmap: Any = None
    heatmap_key: Key | None = None
    status: str = ""
    last_outcome: str = ""  # "finished", "cancelled" or "error" of the last run
    last_error: str = ""

    @property
    def busy(self) -> bool:
        return self.run is not None


def enabled_state(state: AnalysisState, has_image: bool, studies: int) -> Enabled:
    """The enabled-state rule: runs need a chosen model and no run going (a load may be going: the
    run is queued); reports need the result of the image shown; CSV needs any result."""
    ready = state.selected is not None and not state.busy
    has_result = state.prediction is not None
    batch = bool(state.batch and state.batch.predictions)
    return Enabled(
        run_image=ready and has_image,
        run_series=ready and has_image,
        run_all=ready and studies > 0,
        explain=ready and has_image,
        pdf=has_result and has_image,
        png=has_result and has_image,
        csv=has_result or batch,
    )


__all__ = [
    "EMPTY",
    "LISTING",
    "READY",
    "AnalysisState",
    "AnalysisView",
    "Enabled",
    "ExplainRequest",
    "ImageSource",
    "JobHandle",
    "JobRunner",
    "Key",
    "Load",
    "Run",
    "SettingsStore",
    "enabled_state",
    "result_key",
]
