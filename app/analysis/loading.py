"""Loading the analysis panel's chosen model on its chosen device; runs that wait for the load.

A load that finishes for a model or device that is no longer chosen is ignored (the stale-load
guard: only ``state.loading`` counts); a run asked for while the model loads waits in
``state.queued`` and starts when it is ready. Qt-free; part of
:class:`app.analysis.presenter.AnalysisPresenter`, sharing its :class:`AnalysisState`.
"""

from __future__ import annotations

from collections.abc import Callable

from app.analysis import jobs
from app.analysis.state import AnalysisState, AnalysisView, JobRunner, Load

NO_MODEL = "Choose a model first (or install one from the model library)."


class ModelLoading:
    def __init__(
        self,
        state: AnalysisState,
        view: AnalysisView,
        runner: JobRunner,
        status: Callable[[str], None],
        fail: Callable[[str], None],
        changed: Callable[[], None],
    ) -> None:
        self.state = state
        self.view = view
        self.runner = runner
        self.status = status
        self.fail = fail
        self.changed = changed  # the enabled and busy state may have changed

    def ensure(self, info: jobs.ModelInfo | None) -> None:
        """Load ``info`` (the chosen model) on the chosen device unless it is loaded or loading already."""
        s = self.state
        if info is None:
            return
        self.view.show_model(info)
        if s.loaded is not None and s.loaded.path == info.path and s.loaded_device == s.device:
            self.changed()
            return
        if s.loading is not None and (s.loading.path, s.loading.device) == (info.path, s.device):
            return
        self._load(info)

    def _load(self, info: jobs.ModelInfo) -> None:
        s = self.state
        if s.loading is not None and s.loading.handle is not None:
            s.loading.handle.cancel()  # stale now: free the thread for this one
        s.loaded = None
        load = Load(info.name, info.path, s.device)
        s.loading = load
        self.view.show_device_status(f"Loading {info.name}…")
        load.handle = self.runner.start(
            jobs.load_model(info.path, s.device), f"loading {info.name}",
            finished=lambda loaded: self._loaded(load, loaded), error=lambda m: self._load_failed(load, m),
            progress=lambda d, t, m: self._progress(load, d, t, m),
        )  # fmt: skip
        self.changed()

    def _loaded(self, load: Load, loaded: jobs.LoadedModel) -> None:
        s = self.state
        if load is not s.loading:
            return  # another model or device was chosen meanwhile: the stale-load guard
        s.loading = None
        s.loaded, s.loaded_device = loaded, load.device
        self.view.show_device_status(self._loaded_text())
        self.status(f"{loaded.title} ready on {loaded.device_label}.")
        self.changed()
        self.view.announce("model_loaded", loaded)
        queued, s.queued = s.queued, []
        for run in queued:
            run(loaded)

    def _loaded_text(self) -> str:
        loaded = self.state.loaded
        return f"Model: {loaded.manifest.name} · {loaded.device_label}" if loaded is not None else ""

    def _load_failed(self, load: Load, message: str) -> None:
        s = self.state
        if load is not s.loading:
            return
        s.loading = None
        s.queued = []
        self.view.show_device_status("")
        self.fail(message)
        self.changed()

    def unload(self) -> None:
        s = self.state
        if s.loading is not None and s.loading.handle is not None:
            s.loading.handle.cancel()
        s.loaded, s.loading, s.queued = None, None, []
        self.view.show_device_status("")
        self.changed()

    def with_model(self, run: Callable[[jobs.LoadedModel], None]) -> None:
        s = self.state
        if s.loaded is not None and s.loading is None:
            run(s.loaded)
        elif s.loading is not None:
            s.queued.append(run)
            self.status("The model is loading; the run starts when it is ready.")
            self.changed()  # the waiting run can be cancelled
        else:
            self.fail(NO_MODEL)

    def _progress(self, load: Load, done: int, total: int, message: str) -> None:
        if load is self.state.loading:
            self.view.show_progress(done, total, message)


__all__ = ["NO_MODEL", "ModelLoading"]
