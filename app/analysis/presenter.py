"""The analysis panel's presenter: all its state and rules, Qt-free and torch-free (mantidimaging's pattern).

The view forwards what the user does (:meth:`select_model`, :meth:`run_image`, :meth:`explain`,
:meth:`cancel`, :meth:`image_changed`, ...); the presenter updates its :class:`AnalysisState`, starts
background work through a :class:`JobRunner` and tells the view what to show through
:class:`AnalysisView`. The rules it owns:

- one model is loaded at a time, on the chosen device; a load that finishes for a model or device
  that is no longer chosen is ignored (the stale-load guard);
- a run asked for while the model loads waits for it, and starts when it is ready;
- switching the model cancels the run going (its late result is ignored) and forgets the results
  of the previous model; switching the device lets the run finish (same model, same results);
- results are kept per image, keyed by (path, frame); the table shows the result of the image shown,
  or nothing, never another image's result; the heatmap is shown over the image it was computed on;
- which actions are enabled (:func:`app.analysis.state.enabled_state`);
- a heatmap is drawn only as its gate allows, with its outlines, faithfulness and sanity verdict
  (:class:`app.analysis.evidence.HeatmapEvidence`; Explain on an unclassified image classifies it in
  the same job, since the gate needs the model's call).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from app.analysis import evidence_jobs, jobs
from app.analysis.display import ReportInputs, ResultDisplay
from app.analysis.evidence import METHOD_NAMES, HeatmapEvidence
from app.analysis.loading import ModelLoading
from app.analysis.state import (
    EMPTY,
    READY,
    AnalysisState,
    AnalysisView,
    ImageSource,
    JobRunner,
    Key,
    Run,
    SettingsStore,
    enabled_state,
    result_key,
)

DEVICE_SETTING = "analysis/device"
NO_IMAGE = "Open an image first."


class AnalysisPresenter:
    def __init__(
        self,
        view: AnalysisView,
        images: ImageSource,
        runner: JobRunner,
        settings: SettingsStore | None = None,
        lister: JobRunner | None = None,
    ) -> None:
        self.view = view
        self.images = images
        self.runner = runner
        self.lister = lister or runner  # listing models must not wait behind a long run
        self.settings = settings
        self.state = AnalysisState(device=settings.value(DEVICE_SETTING, "auto") if settings else "auto")
        self.evidence = HeatmapEvidence(self.state, view, images, self._start, lambda run: self.loading.with_model(run),
                                        self.fail, self._manifest_of, self.update_enabled)  # fmt: skip
        self.display = ResultDisplay(self.state, view, images, self._status, self.update_enabled, self.evidence.show)
        self.loading = ModelLoading(self.state, view, runner, self._status, self.fail, self.update_enabled)

    # ============================================================== helpers
    def current_key(self) -> Key | None:
        return self.display.current_key()

    def model_info(self, name: str | None = None) -> jobs.ModelInfo | None:
        name = name or self.state.selected
        return next((m for m in self.state.models if m.name == name), None)

    def _manifest_of(self, name: str | None) -> object:
        info = self.model_info(name) if name else None
        return info.manifest if info is not None else None

    def _status(self, text: str) -> None:
        self.state.status = text
        self.view.show_status(text)

    def fail(self, message: str) -> None:
        self.state.last_error = message
        self.state.status = message
        self.view.show_error(message)
        self.view.announce("failed", message)

    def update_enabled(self) -> None:
        s = self.state
        enabled = enabled_state(s, self.images.current() is not None, self.images.study_count())
        self.view.set_enabled(replace(enabled, evidence=enabled.explain and self.evidence.measurable()))
        self.view.show_busy(s.run is not None or s.loading is not None, s.run is not None or bool(s.queued))

    # ============================================================== models
    def refresh_models(self) -> None:
        """List the installed models in the background (this is where torch first loads)."""
        self.lister.start(jobs.list_models, "listing installed models", finished=self.models_listed,
                          error=self.fail)  # fmt: skip

    def models_listed(self, models: list[jobs.ModelInfo]) -> None:
        s = self.state
        usable = [m for m in models if m.manifest is not None]
        s.models = usable
        names = [m.name for m in usable]
        previous = s.selected
        if usable:
            default = next((m.name for m in usable if m.default), names[0])
            s.selected = previous if previous in names else default
        else:
            s.selected = None
        self.view.show_models([(m.name, f"{m.name} ({m.manifest.version})") for m in usable], s.selected)
        s.page = READY if usable else EMPTY
        self.view.show_page(s.page)
        if s.selected != previous:
            if s.run is not None:
                self._abandon_run("Stopped the run: its model is no longer installed.")
            self.display.forget()
        if usable:
            self.loading.ensure(self.model_info())
        else:
            self.loading.unload()
        self.view.announce("models_listed", models)

    def select_model(self, name: str) -> bool:
        """Choose the model ``name`` (False when it is not installed)."""
        s = self.state
        if self.model_info(name) is None:
            return False
        if name != s.selected:
            s.selected = name
            self.view.show_models([(m.name, f"{m.name} ({m.manifest.version})") for m in s.models], name)
            if s.run is not None:  # its result would be the previous model's
                self._abandon_run("Stopped the run: another model was chosen.")
            self.display.forget()
        self.loading.ensure(self.model_info())
        return True

    def select_device(self, device: str) -> None:
        s = self.state
        if device == s.device:
            return
        s.device = device
        if self.settings is not None:
            self.settings.set_value(DEVICE_SETTING, device)
        self.view.show_device(device)
        if s.models:
            self.loading.ensure(self.model_info())

    # ============================================================== runs
    def set_auto_explain(self, on: bool) -> None:
        self.state.auto_explain = bool(on)

    def set_show_out_of_scope(self, on: bool) -> None:
        """"Show anyway (research use)": show the results of images flagged as out of scope."""
        s = self.state
        if bool(on) == s.show_out_of_scope:
            return
        s.show_out_of_scope = bool(on)
        if s.prediction is not None:
            self.display.show_prediction(s.prediction)

    def run_image(self) -> None:
        """Classify the viewer's current image and frame (then Grad-CAM it when asked)."""
        current = self.images.current()
        if current is None:
            self.fail(NO_IMAGE)
            return
        image, frame = current
        key = result_key(image, frame)
        self.loading.with_model(lambda loaded: self._start(
            jobs.predict_images(loaded, [(image, frame)]), "classifying the image", "single", key))  # fmt: skip

    def run_series(self) -> None:
        self.run_files(self.images.series_paths(), "the current series")

    def run_all(self) -> None:
        self.run_files(self.images.study_paths(), "every open study")

    def run_files(self, paths: list[str], what: str = "the files") -> None:
        if not paths:
            self.fail("There is no image to classify: open a study first.")
            return
        paths = list(paths)
        self.loading.with_model(lambda loaded: self._start(jobs.classify_files(loaded, paths), f"classifying {what}",
                                                    "batch"))  # fmt: skip

    def run_folder(self, paths: list[str]) -> None:
        """Classify a folder (or files, ZIPs) that is not open in the browser."""
        paths = list(paths)
        self.loading.with_model(lambda loaded: self._start(jobs.classify_files(loaded, paths),
                                                    "classifying a folder", "batch"))  # fmt: skip

    def explain(self, method: str | None = None) -> None:
        """A heatmap of the chosen (or given) method and target for the current image and frame."""
        current = self.images.current()
        if current is None:
            self.fail(NO_IMAGE)
            return
        image, frame = current
        request = self.view.heatmap_request()
        method = method or request.method
        options = dict(request.options) if method == request.method else {}  # occlusion window, CAM layer
        key = result_key(image, frame)
        classify = key not in self.state.results  # the gate needs the model's call on this image
        self.loading.with_model(lambda loaded: self._start(
            evidence_jobs.explain(loaded, image, frame, method, request.target, options, classify),
            f"computing the {METHOD_NAMES.get(method, method)} heatmap", "explain", key))  # fmt: skip

    def _start(self, fn: Any, what: str, kind: str, key: Key | None = None, payload: Any = None) -> Run | None:
        """Start ``fn`` as the run (one at a time); its outcome comes back through ``_finished`` & co."""
        s = self.state
        if s.run is not None:
            self.fail("Another analysis is running; wait for it or cancel it.")
            return None
        s.last_outcome, s.last_error = "", ""
        self._status(what[0].upper() + what[1:] + "…")
        run = Run(kind, s.selected, key, payload=payload)
        s.run = run
        if kind == "explain":
            s.heatmap, s.heatmap_key = None, key
            self.evidence.show(None)
        run.handle = self.runner.start(
            fn, what,
            finished=lambda result: self._finished(run, result), error=lambda m: self._run_failed(run, m),
            progress=lambda d, t, m: self._progress_of(run, d, t, m), partial=lambda h: self._partial(run, h),
            cancelled=lambda: self._cancelled(run), done=lambda: self._run_done(run),
        )  # fmt: skip
        self.update_enabled()
        return run

    def cancel(self) -> None:
        s = self.state
        if s.queued:
            s.queued = []
            self._status("Cancelled: the run waiting for the model will not start.")
            self.update_enabled()
        if s.run is not None and s.run.handle is not None:
            s.run.handle.cancel()
            self._status("Cancelling…")

    def _abandon_run(self, why: str) -> None:
        """Cancel the run going and ignore whatever it still sends."""
        s = self.state
        run, s.run = s.run, None
        if run is not None and run.handle is not None:
            run.handle.cancel()
        s.explain_next = False
        s.last_outcome = "cancelled"
        self._status(why)
        self.update_enabled()

    @property
    def busy(self) -> bool:
        return self.state.busy

    # -- job outcomes (each ignored when its run is no longer the current one) ----------------------
    def _progress_of(self, run: Run, done: int, total: int, message: str) -> None:
        if run is self.state.run:
            self.view.show_progress(done, total, message)

    def _finished(self, run: Run, result: Any) -> None:
        if run is not self.state.run:
            return
        if run.kind == "single":
            self._single_done(run, result)
        elif run.kind == "batch":
            self._batch_done(result)
        elif run.kind in ("faithfulness", "sanity"):
            self._status(self.evidence.finished(run, result))  # the sentence, also next to the map
            s = self.state
            s.last_outcome = "finished"
            self.view.announce(run.kind + "_ready", result)
        else:
            self._explained(run, result)

    def _single_done(self, run: Run, predictions: list[Any]) -> None:
        s = self.state
        for p in predictions:
            s.results[(p.path, p.frame)] = p
        s.batch = None
        self.view.show_batch(None)
        s.last_outcome = "finished"
        still_shown = run.key == self.current_key()
        self.display.show_current()
        if predictions and not still_shown:
            self._status(f"{Path(predictions[0].path).name} was classified; another image is shown now.")
        self.view.announce("results_ready", predictions)
        # Grad-CAM is quick; occlusion is on demand. It starts once this run is over (_run_done).
        s.explain_next = bool(s.auto_explain and predictions and still_shown)

    def _batch_done(self, result: jobs.BatchOutcome) -> None:
        s = self.state
        s.batch = result
        for p in result.predictions:
            s.results[(p.path, p.frame)] = p
        self.view.show_batch(list(result.predictions))
        self.display.show_current(quiet=True)
        n = len(result.predictions)
        text = f"{n} image(s) classified with {result.model_name}. Export them as CSV."
        if result.errors:
            text += f" {len(result.errors)} file(s) could not be read: " + "; ".join(
                m for _p, m in result.errors[:3]
            )
        if result.skipped:
            text += f" {len(result.skipped)} file(s) that are not images were left out."
        flagged = sum(1 for p in result.predictions if not getattr(p, "in_scope", True))
        if flagged:
            text += f" {flagged} image(s) do not look like frontal chest radiographs (results hidden)."
        self._status(text)
        s.last_outcome = "finished"
        self.view.announce("results_ready", result.predictions)

    def _explained(self, run: Run, result: Any) -> None:
        s = self.state
        s.heatmap = heatmap = self.evidence.explained(run.key, result)  # with its layer, outlines, prediction
        if run.key == self.current_key():
            self.display.show_current(quiet=True)  # the map as its gate allows (and a prediction made with it)
        method = METHOD_NAMES.get(heatmap.method, heatmap.method)
        gate = self.evidence.state.gate if run.key == self.current_key() else None
        if gate is not None and not gate.shown:
            self._status(f"{method} for {heatmap.target_label}: {gate.note} ('Show anyway' shows it).")
        elif heatmap.values.size and float(heatmap.values.max()) <= 0.0:
            self._status(f"{method} found no positive evidence for {heatmap.target_label}: nothing to overlay.")
        else:
            self._status(f"{method} for {heatmap.target_label}: where the model looked (not a finding).")
        s.last_outcome = "finished"
        self.view.announce("heatmap_ready", heatmap)

    def _partial(self, run: Run, heatmap: Any) -> None:
        s = self.state
        if run is s.run and run.key == s.heatmap_key:
            s.heatmap = heatmap
            if run.key == self.current_key():
                self.evidence.show(heatmap)
            self.view.announce("heatmap_partial", heatmap)

    def _run_failed(self, run: Run, message: str) -> None:
        if run is self.state.run:
            self.state.last_outcome = "error"
            self.fail(message)

    def _cancelled(self, run: Run) -> None:
        s = self.state
        if run is not s.run:
            return
        s.last_outcome = "cancelled"
        partial = " (the partial heatmap stays shown)" if s.heatmap is not None and not s.heatmap.complete else ""
        self._status("Cancelled" + partial + ".")

    def _run_done(self, run: Run) -> None:
        s = self.state
        if run is not s.run:
            return
        s.run = None
        self.update_enabled()
        if s.explain_next:
            s.explain_next = False
            self.explain("gradcam")

    # ============================================================== what is shown (app.analysis.display)
    def image_changed(self) -> None:
        """The viewer shows another image or frame: show its result and heatmap, or nothing."""
        self.display.show_current()

    def batch_row_chosen(self, row: int) -> None:
        self.display.batch_row_chosen(row)

    def report_inputs(self) -> ReportInputs:
        inputs = self.display.report_inputs()
        drawn, lines = self.evidence.report_lines(self.current_key())
        regions = self.evidence.shown(inputs.heatmap, self.evidence.gate_of(inputs.heatmap)).regions if drawn else ()
        return replace(inputs, heatmap=inputs.heatmap if drawn else None, evidence=tuple(lines), regions=regions)

    def csv_inputs(self) -> tuple[list[Any], list[str] | None]:
        return self.display.csv_inputs()

    def export_stem(self, kind: str) -> str:
        return self.display.export_stem(kind)

    def shutdown(self) -> None:
        """Cancel what runs (the window is closing)."""
        s = self.state
        for job in (s.run, s.loading):
            if job is not None and job.handle is not None:
                job.handle.cancel()
        s.queued = []


__all__ = ["DEVICE_SETTING", "METHOD_NAMES", "AnalysisPresenter"]
