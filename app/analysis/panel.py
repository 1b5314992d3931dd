"""The analysis panel (a dock), the view of :class:`app.analysis.presenter.AnalysisPresenter`.

It builds the widgets (:class:`app.analysis.panel_layout.PanelWidgets`), renders what the presenter
tells it (the :class:`app.analysis.state.AnalysisView` protocol) and forwards what the user does to
the presenter; the state and the rules live there. It receives what it needs: the viewer (for the
heatmap layer, the window and inversion of reports), what is open (an ``ImageSource``), settings
and the window's notification and status bar callbacks; it never reaches into the main window.

All model work runs on one background thread (a one-thread pool, so loading, classifying and
explaining never compete for the CPU); torch is imported by those jobs only, never at start.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QWidget

from app.analysis import report
from app.analysis.dicom_export_view import DicomExportView
from app.analysis.evidence_view import ContourLayer
from app.analysis.heatmap import HeatmapLayer
from app.analysis.library_dialog import ModelLibraryDialog, card_html
from app.analysis.panel_export import ask_export_path
from app.analysis.panel_layout import DEVICES as DEVICES  # re-exported
from app.analysis.panel_layout import PanelWidgets
from app.analysis.presenter import AnalysisPresenter
from app.analysis.runner import QtJobRunner
from app.analysis.state import EMPTY as EMPTY  # re-exported
from app.analysis.state import LISTING as LISTING
from app.analysis.state import READY as READY
from app.analysis.state import Enabled, ExplainRequest, ImageSource, SettingsStore
from ml.errors import CxrError

Notify = Callable[[str, str], None]  # (headline, details): a status line and a message box
StatusMessage = Callable[[str, int], None]  # (text, milliseconds): the status bar


def _state(name: str) -> property:
    return property(lambda self: getattr(self.presenter.state, name), doc=f"The presenter's ``{name}``.")


class ViewerImages:
    """An :class:`ImageSource` of a viewer alone (no browser: no series, no studies)."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer

    def current(self) -> tuple[Any, int] | None:
        image = self.viewer.image()
        return (image, self.viewer.frame()) if image is not None else None

    def series_paths(self) -> list[str]:
        image = self.viewer.image()
        return [str(image.meta.path)] if image is not None else []

    def study_paths(self) -> list[str]:
        return []

    def study_count(self) -> int:
        return 0

    def show_path(self, path: str) -> bool:
        return False


class AnalysisPanel(QWidget):
    """The AI analysis dock: model picker and card, runs, results, heatmap, report export."""

    modelsListed = Signal(object)  # list[jobs.ModelInfo]
    modelLoaded = Signal(object)  # jobs.LoadedModel
    resultsReady = Signal(object)  # list[Prediction] of the last run
    heatmapReady = Signal(object)  # ml.explain.Heatmap (complete)
    heatmapPartial = Signal(object)  # ml.explain.Heatmap (occlusion, while it runs)
    failed = Signal(str)  # a readable message

    _WIDGETS = ("stack", "empty_label", "download_button", "import_button", "model_combo", "library_button",
                "card", "card_toggle", "device_combo", "run_image_button", "run_series_button",
                "run_all_button", "progress", "cancel_button", "status", "batch_combo", "table", "controls",
                "auto_explain", "evidence", "pdf_button", "png_button", "csv_button", "disclaimer")  # fmt: skip

    def __init__(
        self,
        viewer: Any,
        images: ImageSource | None = None,
        *,
        settings: SettingsStore | None = None,
        notify: Notify | None = None,
        status_message: StatusMessage | None = None,
        last_directory: Callable[[], str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("analysisPanel")
        self.viewer = viewer
        self.images = images or ViewerImages(viewer)
        self._notify = notify
        self._status_message = status_message
        self._last_directory = last_directory
        self.library: ModelLibraryDialog | None = None
        self.menu_actions: list[Any] = []
        self.device_label = QLabel("", objectName="analysisDevice")  # the host puts it on its status bar
        self.device_label.setToolTip("The model in use and the device it runs on")
        self.device_label.setVisible(False)
        self.ui = PanelWidgets(self)
        for name in self._WIDGETS:
            setattr(self, name, getattr(self.ui, name))
        self.layer = HeatmapLayer(viewer)
        self.contours = ContourLayer(viewer)
        self.presenter = AnalysisPresenter(self, self.images, QtJobRunner(threads=1, name="analysis", owner=self),
                                           settings, lister=QtJobRunner(owner=self))  # fmt: skip
        self.show_device(self.presenter.state.device)
        self.presenter.set_auto_explain(self.auto_explain.isChecked())
        self._connect()
        self.dicom_export = DicomExportView(self, self.ui.export_row)  # SR + Parametric Map: save or send
        self.show_busy(False, False)
        self.presenter.update_enabled()

    def _connect(self) -> None:
        p, ui = self.presenter, self.ui
        ui.download_button.clicked.connect(lambda: self.open_library(catalogue=True))
        ui.import_button.clicked.connect(self.import_model_dialog)
        ui.library_button.clicked.connect(lambda: self.open_library())
        ui.model_combo.currentIndexChanged.connect(lambda _i: self._model_picked())
        ui.device_combo.currentIndexChanged.connect(lambda _i: p.select_device(self.device()))
        ui.card_toggle.toggled.connect(ui.card.setVisible)
        ui.run_image_button.clicked.connect(p.run_image)
        ui.run_series_button.clicked.connect(p.run_series)
        ui.run_all_button.clicked.connect(p.run_all)
        ui.progress.cancelRequested.connect(p.cancel)
        ui.auto_explain.toggled.connect(p.set_auto_explain)
        ui.scope_toggle.toggled.connect(p.set_show_out_of_scope)
        ui.controls.explainRequested.connect(lambda: p.explain())
        ui.controls.styleChanged.connect(self.layer.set_style)
        ev = p.evidence  # the heatmap's gate, outlines, faithfulness and sanity check
        ui.evidence.showAnywayToggled.connect(ev.set_show_anyway)
        ui.evidence.contoursToggled.connect(ev.set_contours)
        ui.evidence.faithfulnessRequested.connect(ev.measure_faithfulness)
        ui.evidence.sanityRequested.connect(ev.check_sanity)
        ui.batch_combo.currentIndexChanged.connect(p.batch_row_chosen)
        ui.pdf_button.clicked.connect(lambda: self.export_dialog("pdf"))
        ui.png_button.clicked.connect(lambda: self.export_dialog("png"))
        ui.csv_button.clicked.connect(lambda: self.export_dialog("csv"))
        self.viewer.imageChanged.connect(self._image_changed)  # a slot of the panel: gone with it

    def _image_changed(self) -> None:
        self.presenter.image_changed()

    def _model_picked(self) -> None:
        name = self.current_model_name()
        if name is not None:
            self.presenter.select_model(name)

    # ============================================================== the AnalysisView protocol
    def show_page(self, page: int) -> None:
        self.ui.stack.setCurrentIndex(page)

    def show_models(self, items: list[tuple[str, str]], selected: str | None) -> None:
        combo = self.ui.model_combo
        combo.blockSignals(True)
        if [(combo.itemData(i), combo.itemText(i)) for i in range(combo.count())] != items:
            combo.clear()
            for name, text in items:
                combo.addItem(text, name)
        combo.setCurrentIndex(combo.findData(selected) if selected is not None else -1)
        combo.blockSignals(False)

    def show_model(self, info: Any) -> None:
        m = info.manifest
        self.ui.card.setHtml(card_html(m, info.path))
        self.ui.controls.set_labels([x for x in m.labels if x and x not in m.hidden_labels])
        self.ui.controls.set_defaults_for_input(int(m.input_size))

    def show_device(self, device: str) -> None:
        combo = self.ui.device_combo
        combo.blockSignals(True)
        combo.setCurrentIndex(max(0, combo.findData(device)))
        combo.blockSignals(False)

    def show_status(self, text: str) -> None:
        self.ui.status.setText(text)

    def show_device_status(self, text: str) -> None:
        self.device_label.setText(text)
        self.device_label.setVisible(bool(text))

    def show_busy(self, busy: bool, cancellable: bool) -> None:
        bar = self.ui.progress  # app.progress.ProgressPanel, driven by the presenter's state
        bar.cancellable = cancellable
        if busy and not bar.busy:
            bar.set_busy(True)
        elif not busy and bar.busy:
            bar.set_idle()  # the bar stops: no "busy" animation left behind after "ready"
        bar.cancel_button.setVisible(busy and cancellable)

    def show_progress(self, done: int, total: int, message: str) -> None:
        self.ui.progress.set_progress(done, total, message)

    def show_prediction(self, prediction: Any) -> None:
        self.ui.table.set_prediction(prediction)

    def show_scope(self, text: str, hidden: bool) -> None:
        ui = self.ui
        ui.scope_banner.setText(text)
        ui.scope_banner.setVisible(bool(text))
        ui.scope_toggle.blockSignals(True)
        ui.scope_toggle.setChecked(bool(text) and not hidden)
        ui.scope_toggle.blockSignals(False)
        ui.scope_toggle.setVisible(bool(text))

    def show_batch(self, predictions: list[Any] | None) -> None:
        combo = self.ui.batch_combo
        combo.blockSignals(True)
        combo.clear()
        for p in predictions or []:
            frame = f" [frame {p.frame + 1}]" if p.frame else ""
            flag = "" if getattr(p, "in_scope", True) else " (out of scope)"
            combo.addItem(f"{Path(p.path).name}{frame}: {report.prediction_text(p) or '—'}{flag}")
        key = self.presenter.current_key()
        rows = [(p.path, p.frame) for p in predictions or []]
        combo.setCurrentIndex(rows.index(key) if key in rows else -1)
        combo.blockSignals(False)
        combo.setVisible(bool(predictions))

    def show_heatmap(self, heatmap: Any) -> None:
        if heatmap is None:
            self.layer.clear()
        else:
            self.layer.set_heatmap(heatmap)

    def show_evidence(self, shown: Any) -> None:
        self.ui.evidence.render(shown)
        self.contours.set_regions(shown.regions)
        self.ui.controls.set_flagged(shown.flagged)

    def set_enabled(self, enabled: Enabled) -> None:
        ui = self.ui
        ui.evidence.set_enabled(enabled.evidence)
        for widget, on in ((ui.run_image_button, enabled.run_image), (ui.run_series_button, enabled.run_series),
                           (ui.run_all_button, enabled.run_all), (ui.controls.explain_button, enabled.explain),
                           (ui.pdf_button, enabled.pdf), (ui.png_button, enabled.png),
                           (ui.csv_button, enabled.csv)):  # fmt: skip
            widget.setEnabled(on)

    def show_error(self, message: str) -> None:
        self.ui.status.setText(message)
        if self._notify is not None:
            self._notify("Analysis", message)

    def heatmap_request(self) -> ExplainRequest:
        c = self.ui.controls
        return ExplainRequest(c.method_key(), c.target_label(), c.options())

    def announce(self, event: str, payload: Any) -> None:
        signal = {"models_listed": self.modelsListed, "model_loaded": self.modelLoaded,
                  "results_ready": self.resultsReady, "heatmap_ready": self.heatmapReady,
                  "heatmap_partial": self.heatmapPartial, "failed": self.failed}.get(event)  # fmt: skip
        if signal is not None:
            signal.emit(payload)

    # ============================================================== what the window and the tests use
    def refresh_models(self) -> None:
        self.presenter.refresh_models()

    def current_model_name(self) -> str | None:
        return self.ui.model_combo.currentData() or None

    def select_model(self, name: str) -> bool:
        return self.presenter.select_model(name)

    def device(self) -> str:
        return str(self.ui.device_combo.currentData())

    def run_current(self) -> None:
        self.presenter.run_image()

    def run_series(self) -> None:
        self.presenter.run_series()

    def run_all(self) -> None:
        self.presenter.run_all()

    def run_files(self, paths: list[str], what: str = "the files") -> None:
        self.presenter.run_files(paths, what)

    def run_folder(self, paths: list[str]) -> None:
        self.presenter.run_folder(paths)

    def explain(self, method: str | None = None) -> None:
        self.presenter.explain(method)

    def cancel(self) -> None:
        self.presenter.cancel()

    def shutdown(self) -> None:
        self.presenter.shutdown()

    @property
    def busy(self) -> bool:
        return self.presenter.busy

    # the presenter's state, read-only
    models = _state("models")
    loaded = _state("loaded")
    prediction = _state("prediction")
    results = _state("results")
    batch = _state("batch")
    heatmap = _state("heatmap")
    heatmap_key = _state("heatmap_key")
    last_outcome = _state("last_outcome")
    last_error = _state("last_error")

    # ============================================================== library
    def open_library(self, catalogue: bool = False) -> ModelLibraryDialog:
        if self.library is None:
            self.library = ModelLibraryDialog(self.window())
            self.library.libraryChanged.connect(self.refresh_models)
        if catalogue:
            self.library.show_catalogue()
        self.library.show()
        self.library.raise_()
        return self.library

    def import_model_dialog(self) -> None:
        self.open_library().import_dialog()

    # ============================================================== reports
    def report_data(self) -> report.ReportData:
        """The report of the results shown, for the viewer's image, window and heatmap."""
        inputs = self.presenter.report_inputs()
        image, frame = self.images.current()  # report_inputs checked there is one
        inverted = image.meta.inverted != self.viewer.is_inverted()
        return report.build_report(inputs.prediction, image, frame, inputs.heatmap, self.ui.controls.style(),
                                   self.viewer.voi(), inverted, inputs.model_version, inputs.device,
                                   validation=inputs.validation, intended_use=inputs.intended_use,
                                   show_out_of_scope=inputs.show_out_of_scope, evidence=inputs.evidence,
                                   regions=inputs.regions)  # fmt: skip

    def export_pdf(self, path: str | os.PathLike[str]) -> Path:
        return report.write_pdf(path, self.report_data())

    def export_png(self, path: str | os.PathLike[str]) -> Path:
        return report.write_png(path, self.report_data())

    def export_csv(self, path: str | os.PathLike[str]) -> Path:
        predictions, labels = self.presenter.csv_inputs()
        return report.write_csv(path, predictions, labels)

    def export_dialog(self, kind: str) -> None:
        """Ask where to save the ``kind`` ("pdf", "png", "csv") export and write it."""
        start = self._last_directory() if self._last_directory is not None else ""
        path = ask_export_path(self, kind, self.presenter.export_stem(kind), start)
        if not path:
            return
        try:
            written = {"pdf": self.export_pdf, "png": self.export_png, "csv": self.export_csv}[kind](path)
        except CxrError as exc:
            self.presenter.fail(str(exc))
            return
        if self._status_message is not None:
            self._status_message(f"Exported {written.name}", 5000)


__all__ = ["DEVICES", "EMPTY", "LISTING", "READY", "AnalysisPanel", "ViewerImages"]
