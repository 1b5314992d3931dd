"""The analysis panel (a dock): model picker and card, runs, results, heatmap, report export.

All model work runs on one background thread (a one-thread pool, so loading, classifying and
explaining never compete for the CPU), through :class:`app.workers.Job`; the window never freezes.
torch is imported by those jobs only, never at application start: the installed models are listed
by a job started after the event loop is running.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QWidget

from app.analysis import jobs, panel_export, panel_layout, report
from app.analysis.heatmap import HeatmapLayer
from app.analysis.library_dialog import ModelLibraryDialog, card_html
from app.analysis.panel_export import result_key as _key
from app.analysis.panel_layout import DEVICES as DEVICES  # re-exported
from app.analysis.panel_layout import EMPTY, READY
from app.analysis.panel_layout import LISTING as LISTING  # re-exported
from app.analysis.report import METHOD_NAMES
from app.workers import Job, make_pool
from ml.errors import CxrError


class AnalysisPanel(QWidget):
    """The AI analysis dock. ``window`` is the main window (viewer, browser, status bar, settings)."""

    modelsListed = Signal(object)  # list[jobs.ModelInfo]
    modelLoaded = Signal(object)  # jobs.LoadedModel
    resultsReady = Signal(object)  # list[Prediction] of the last run
    heatmapReady = Signal(object)  # ml.explain.Heatmap (complete)
    failed = Signal(str)  # a readable message

    def __init__(self, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("analysisPanel")
        self.main_window = window
        self.viewer = window.viewer
        self.pool = make_pool(1, "analysis")
        self.models: list[jobs.ModelInfo] = []
        self.loaded: jobs.LoadedModel | None = None
        self._load_job: Job | None = None
        self._after_load: list[Any] = []
        self.job: Job | None = None  # the running classification / explanation
        self.last_outcome = ""  # "finished", "cancelled", "error" of the last run
        self.last_error = ""
        self.results: dict[tuple[str, int], Any] = {}  # (path, frame) -> Prediction
        self.prediction: Any = None  # shown in the table
        self.batch: jobs.BatchResult | None = None
        self.heatmap: Any = None
        self.heatmap_key: tuple[str, int] | None = None
        self.library: ModelLibraryDialog | None = None
        self._loaded_device = "auto"
        self._explain_key: tuple[str, int] | None = None
        self._explain_next = False
        self.device_label: QLabel | None = None  # the status bar label (set by install())
        self.layer = HeatmapLayer(self.viewer)
        self.relay = jobs.PartialRelay(self)
        self.relay.partial.connect(self._partial)
        self._build()
        self._connect()

    # ============================================================== layout (app.analysis.panel_layout)
    def _build(self) -> None:
        panel_layout.build_layout(self)
        self._set_busy(False)
        self._update_enabled()

    def _connect(self) -> None:
        panel_layout.connect_signals(self)

    def _settings_value(self, key: str, default: str) -> str:
        settings = getattr(getattr(self.main_window, "settings", None), "qsettings", None)
        return str(settings.value(key, default)) if settings is not None else default

    # ============================================================== models
    def refresh_models(self) -> None:
        """List the installed models in the background (this is where torch first loads)."""
        jobs.start(jobs.list_models, "listing installed models", finished=self._set_models, error=self._fail)

    def _set_models(self, models: list[jobs.ModelInfo]) -> None:
        usable = [m for m in models if m.manifest is not None]
        current = self.current_model_name()
        self.models = usable
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for m in usable:
            self.model_combo.addItem(f"{m.name} ({m.manifest.version})", m.name)
        self.model_combo.blockSignals(False)
        self.stack.setCurrentIndex(READY if usable else EMPTY)
        if usable:
            names = [m.name for m in usable]
            self.model_combo.setCurrentIndex(names.index(current) if current in names else 0)
            self._model_chosen()
        else:
            self._unload()
        self.modelsListed.emit(models)

    def current_model_name(self) -> str | None:
        return self.model_combo.currentData() or None

    def select_model(self, name: str) -> bool:
        i = self.model_combo.findData(name)
        if i >= 0:
            self.model_combo.setCurrentIndex(i)
        return i >= 0

    def device(self) -> str:
        return str(self.device_combo.currentData())

    def _model_info(self) -> jobs.ModelInfo | None:
        name = self.current_model_name()
        return next((m for m in self.models if m.name == name), None)

    def _model_chosen(self, *_args: Any) -> None:
        info = self._model_info()
        if info is None:
            return
        self.card.setHtml(card_html(info.manifest, info.path))
        self.controls.set_labels(
            [x for x in info.manifest.labels if x and x not in info.manifest.hidden_labels]
        )
        self.controls.set_defaults_for_input(int(info.manifest.input_size))
        if self.loaded is None or self.loaded.path != info.path or self._loaded_device != self.device():
            self._load(info)

    def _device_chosen(self, *_args: Any) -> None:
        settings = getattr(getattr(self.main_window, "settings", None), "qsettings", None)
        if settings is not None:
            settings.setValue("analysis/device", self.device())
        if self.models:
            self._model_chosen()

    def _unload(self) -> None:
        self.loaded = None
        self._set_device_status("")
        self._update_enabled()

    def _load(self, info: jobs.ModelInfo) -> None:
        """Load and warm up ``info`` in the background; queued runs start when it is ready."""
        self.loaded = None
        device = self.device()
        self._set_device_status(f"Loading {info.name}…")
        job = jobs.start(jobs.load_model(info.path, device), f"loading {info.name}", self.pool,
                         progress=self._progress, error=self._load_failed)  # fmt: skip
        job.signals.finished.connect(lambda loaded: self._loaded(job, loaded, device))
        self._load_job = job
        self._update_enabled()

    def _loaded(self, job: Job, loaded: jobs.LoadedModel, device: str) -> None:
        if job is not self._load_job:
            return  # another model was chosen meanwhile
        self._load_job = None
        self.loaded = loaded
        self._loaded_device = device
        self._set_device_status(f"Model: {loaded.manifest.name} · {loaded.device_label}")
        self.status.setText(f"{loaded.title} ready on {loaded.device_label}.")
        self._update_enabled()
        self.modelLoaded.emit(loaded)
        pending, self._after_load = self._after_load, []
        for run in pending:
            run()

    def _load_failed(self, message: str) -> None:
        self._load_job = None
        self._after_load = []
        self._set_device_status("")
        self._fail(message)
        self._update_enabled()

    def _set_device_status(self, text: str) -> None:
        label = self.device_label
        if label is not None:
            label.setText(text)
            label.setVisible(bool(text))

    def _with_model(self, run: Any) -> None:
        if self.loaded is not None:
            run()
        elif self._load_job is not None:
            self._after_load.append(run)
            self.status.setText("The model is loading; the run starts when it is ready.")
        else:
            self._fail("Choose a model first (or install one from the model library).")

    # ============================================================== library
    def open_library(self, catalogue: bool = False) -> ModelLibraryDialog:
        if self.library is None:
            self.library = ModelLibraryDialog(self.main_window)
            self.library.libraryChanged.connect(self.refresh_models)
        if catalogue:
            self.library.show_catalogue()
        self.library.show()
        self.library.raise_()
        return self.library

    def import_model_dialog(self) -> None:
        self.open_library().import_dialog()

    # ============================================================== runs
    def run_current(self) -> None:
        """Classify the viewer's current image and frame (then Grad-CAM it when asked)."""
        image = self.viewer.image()
        if image is None:
            self._fail("Open an image first.")
            return
        frame = self.viewer.frame()
        self._with_model(
            lambda: self._start(
                jobs.predict_images(self.loaded, [(image, frame)]), "classifying the image", single=True
            )
        )

    def series_paths(self) -> list[str]:
        browser = getattr(self.main_window, "browser", None)
        entry = browser.current_entry() if browser is not None else None
        located = browser.index.locate(entry) if entry is not None else None
        if located is None:
            image = self.viewer.image()
            return [str(image.meta.path)] if image is not None else []
        return [i.path for i in located[2].instances if i.is_image]

    def study_paths(self) -> list[str]:
        browser = getattr(self.main_window, "browser", None)
        return [i.path for i in browser.index.instances() if i.is_image] if browser is not None else []

    def run_series(self) -> None:
        self.run_files(self.series_paths(), "the current series")

    def run_all(self) -> None:
        self.run_files(self.study_paths(), "every open study")

    def run_files(self, paths: list[str], what: str = "the files") -> None:
        if not paths:
            self._fail("There is no image to classify: open a study first.")
            return
        self._with_model(lambda: self._start(jobs.predict_files(self.loaded, paths), f"classifying {what}"))

    def run_folder(self, paths: list[str]) -> None:
        """Classify a folder (or files/ZIPs) that is not open in the browser."""
        self._with_model(
            lambda: self._start(jobs.index_and_predict(self.loaded, list(paths)), "classifying a folder")
        )

    def explain(self, method: str | None = None) -> None:
        """Heatmap of the chosen (or given) method and target for the current image and frame."""
        image = self.viewer.image()
        if image is None:
            self._fail("Open an image first.")
            return
        frame = self.viewer.frame()
        method = method or self.controls.method_key()
        target = self.controls.target_label()
        options = self.controls.options() if method == "occlusion" else {}
        self._with_model(
            lambda: self._start(
                jobs.explain(self.loaded, image, frame, method, target, options, self.relay),
                f"computing the {METHOD_NAMES.get(method, method)} heatmap",
                explain_key=_key(image, frame),
            )
        )

    def _start(
        self, fn: Any, what: str, single: bool = False, explain_key: tuple[str, int] | None = None
    ) -> None:
        if self.job is not None:
            self._fail("Another analysis is running; wait for it or cancel it.")
            return
        self.last_outcome, self.last_error = "", ""
        self.status.setText(what[0].upper() + what[1:] + "…")
        self._explain_key = explain_key
        if explain_key is not None:
            self.layer.clear()
            self.heatmap, self.heatmap_key = None, explain_key
        job = jobs.start(fn, what, self.pool, progress=self._progress, error=self._run_failed,
                         cancelled=self._cancelled, done=self._run_done)  # fmt: skip
        if explain_key is not None:
            job.signals.finished.connect(self._explained)
        elif single:
            job.signals.finished.connect(self._single_done)
        else:
            job.signals.finished.connect(self._batch_done)
        self.job = job
        self._set_busy(True)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.setText("Cancelling…")

    @property
    def busy(self) -> bool:
        return self.job is not None

    # -- job outcomes ------------------------------------------------------------------------------
    def _single_done(self, predictions: list[Any]) -> None:
        for p in predictions:
            self.results[(p.path, p.frame)] = p
        self.batch = None
        self.batch_combo.setVisible(False)
        self._show_prediction(predictions[0] if predictions else None)
        self.last_outcome = "finished"
        self.resultsReady.emit(predictions)
        # Grad-CAM is quick; occlusion is on demand. It starts once this job is over (see _run_done).
        self._explain_next = bool(self.auto_explain.isChecked() and predictions)

    def _batch_done(self, result: jobs.BatchResult) -> None:
        self.batch = result
        for p in result.predictions:
            self.results[(p.path, p.frame)] = p
        self.batch_combo.blockSignals(True)
        self.batch_combo.clear()
        for p in result.predictions:
            frame = f" [frame {p.frame + 1}]" if p.frame else ""
            self.batch_combo.addItem(f"{Path(p.path).name}{frame}: {report.prediction_text(p) or '—'}")
        self.batch_combo.blockSignals(False)
        self.batch_combo.setVisible(bool(result.predictions))
        image = self.viewer.image()
        shown = self.results.get(_key(image, self.viewer.frame())) if image is not None else None
        self._show_prediction(shown or (result.predictions[0] if result.predictions else None))
        n = len(result.predictions)
        text = f"{n} image(s) classified with {result.model_name}. Export them as CSV."
        if result.errors:
            text += f" {len(result.errors)} file(s) could not be read: " + "; ".join(
                m for _p, m in result.errors[:3]
            )
        self.status.setText(text)
        self.last_outcome = "finished"
        self.resultsReady.emit(result.predictions)

    def _explained(self, heatmap: Any) -> None:
        self.heatmap = heatmap
        self.layer.set_heatmap(heatmap)
        method = METHOD_NAMES.get(heatmap.method, heatmap.method)
        if heatmap.values.size and float(heatmap.values.max()) <= 0.0:
            self.status.setText(f"{method} found no positive evidence for {heatmap.target_label}: nothing to overlay.")
        else:
            self.status.setText(f"{method} for {heatmap.target_label}: where the model looked (not a finding).")
        self.last_outcome = "finished"
        self.heatmapReady.emit(heatmap)

    def _partial(self, heatmap: Any) -> None:
        if self.job is not None and self._explain_key is not None and self._explain_key == self.heatmap_key:
            self.heatmap = heatmap
            self.layer.set_heatmap(heatmap)

    def _run_failed(self, message: str) -> None:
        self.last_outcome = "error"
        self._fail(message)

    def _cancelled(self) -> None:
        self.last_outcome = "cancelled"
        partial = (
            " (the partial heatmap stays shown)"
            if self.heatmap is not None and not self.heatmap.complete
            else ""
        )
        self.status.setText("Cancelled" + partial + ".")

    def _run_done(self) -> None:
        self.job = None
        self._set_busy(False)
        if self._explain_next:
            self._explain_next = False
            self.explain("gradcam")

    def _show_prediction(self, prediction: Any) -> None:
        self.prediction = prediction
        self.table.set_prediction(prediction)
        if prediction is not None and self.batch is None:
            top = ", ".join(prediction.positives) if prediction.task == "multilabel" else prediction.top_label
            self.status.setText(f"{Path(prediction.path).name}: {top or 'no label above its threshold'} "
                                f"({prediction.model_name}).")  # fmt: skip
        self._update_enabled()

    def _batch_row_chosen(self, row: int) -> None:
        if self.batch is not None and 0 <= row < len(self.batch.predictions):
            self._show_prediction(self.batch.predictions[row])

    def _image_changed(self) -> None:
        image = self.viewer.image()
        key = _key(image, self.viewer.frame()) if image is not None else None
        if key != self.heatmap_key:
            self.layer.clear()
            self.heatmap = None
        if key is not None and key in self.results:
            self._show_prediction(self.results[key])
        elif self.batch is None:
            self._show_prediction(None)
        self._update_enabled()

    # ============================================================== export (app.analysis.panel_export)
    def report_data(self) -> report.ReportData:
        """The report of the results shown, for the viewer's image, window and heatmap."""
        return panel_export.report_data(self)

    def export_pdf(self, path: str | os.PathLike[str]) -> Path:
        return report.write_pdf(path, self.report_data())

    def export_png(self, path: str | os.PathLike[str]) -> Path:
        return report.write_png(path, self.report_data())

    def export_csv(self, path: str | os.PathLike[str]) -> Path:
        if self.batch is not None and self.batch.predictions:
            return report.write_csv(path, self.batch.predictions, self.batch.labels)
        if self.prediction is not None:
            return report.write_csv(path, [self.prediction])
        raise CxrError("There are no results to export yet.")

    def _export_dialog(self, kind: str) -> None:
        panel_export.export_dialog(self, kind)

    # ============================================================== state
    def _progress(self, done: int, total: int, message: str) -> None:
        self.progress.setVisible(True)
        self.progress.setRange(0, max(0, total))
        self.progress.setValue(done)
        self.progress.setFormat(f"{message} (%p%)" if total else message)

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)
        self._update_enabled()

    def _update_enabled(self, *_args: Any) -> None:
        has_image = self.viewer.image() is not None
        ready = self.current_model_name() is not None and not self.busy
        self.run_image_button.setEnabled(ready and has_image)
        self.run_series_button.setEnabled(ready and has_image)
        browser = getattr(self.main_window, "browser", None)
        self.run_all_button.setEnabled(ready and browser is not None and len(browser.index) > 0)
        self.controls.explain_button.setEnabled(ready and has_image)
        has_result = self.prediction is not None
        self.pdf_button.setEnabled(has_result and has_image)
        self.png_button.setEnabled(has_result and has_image)
        self.csv_button.setEnabled(has_result or bool(self.batch and self.batch.predictions))

    def _fail(self, message: str) -> None:
        self.last_error = message
        self.status.setText(message)
        notify = getattr(self.main_window, "notify", None)
        if callable(notify):
            notify("Analysis", message)
        self.failed.emit(message)

    def shutdown(self) -> None:
        """Cancel what runs (the main window is closing)."""
        for job in (self.job, self._load_job):
            if job is not None:
                job.cancel()
        self._after_load = []


__all__ = ["AnalysisPanel"]
