"""The model library dialog: installed models with their cards, import, download from the catalogue, remove.

The view of :class:`app.analysis.library_presenter.LibraryPresenter` (state and rules live there).
Everything that touches model files runs in background jobs (:mod:`app.analysis.jobs`); errors
(offline, a refused unsafe pickle, a file that is not a model) arrive as one readable message,
shown in the dialog's message line and in a non-blocking message box.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.analysis import jobs
from app.analysis.jobs import inspect_file as inspect_file  # re-exported
from app.analysis.library_presenter import CATALOGUE, INSTALLED, LibraryPresenter
from app.analysis.runner import QtJobRunner
from app.dialogs import NOT_FOR_DIAGNOSTIC_USE, show_message
from app.progress import ProgressPanel, megabytes_text
from app.workers import Progress

MODEL_FILTER = "Model files (*.safetensors *.pth *.pt);;All files (*)"
TASKS = (
    ("multiclass", "Multi-class (one answer, softmax)"),
    ("multilabel", "Multi-label (each label yes/no, sigmoid)"),
)


def _metric_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_metric_text(v)}" for k, v in value.items())
    return str(value)


def card_html(manifest: Any, path: str | Path | None = None) -> str:
    """The model's card: what it is, what it was trained on, how well it did, and the disclaimer."""
    e = html.escape
    m = manifest
    p = m.provenance
    visible = [x for x in m.labels if x and x not in (m.hidden_labels or [])]
    task = "multi-label" if m.task == "multilabel" else "multi-class"
    rows = [
        ("Version", e(str(m.version))),
        ("Architecture", e(m.architecture)),
        ("Task", f"{task}, {len(visible)} label(s)"),
        ("Labels", e(", ".join(visible))),
        ("Input", f"{m.input_size} px, {m.channels} channel(s), {e(m.input_derivation.resize)}"),
        ("Training data", e(p.training_data or "not recorded")),
    ]
    if m.hidden_labels:
        rows.insert(4, ("Not trained on", e(", ".join(x for x in m.hidden_labels if x)) or "—"))
    if p.split:
        rows.append(("Split", e(p.split)))
    if p.metrics:
        rows.append(("Metrics", e("; ".join(f"{k}: {_metric_text(v)}" for k, v in p.metrics.items()))))
    if m.thresholds:
        rows.append(("Thresholds", "per label" + (" (calibrated)" if m.calibration else "")))
    if p.date:
        rows.append(("Date", e(p.date)))
    if p.source_url:
        rows.append(("Source", e(p.source_url)))
    if path:
        rows.append(("File", e(Path(path).name)))
    table = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
    desc = f"<p>{e(m.description)}</p>" if m.description else ""
    disclaimer = e((m.disclaimer or NOT_FOR_DIAGNOSTIC_USE).rstrip("."))
    return (
        f"<h3>{e(m.name)}</h3>{desc}<table cellspacing='2' cellpadding='2'>{table}</table>"
        f"<p style='color:#b41e1e'><b>{disclaimer}.</b></p>"
    )


def catalogue_html(entry: Any) -> str:
    e = html.escape
    labels = (
        entry.trained_labels()
        if entry.kind == "xrv"
        else (["1000 ImageNet classes"] if entry.labels == "imagenet" else list(entry.labels))
    )
    rows = [("Architecture", e(entry.architecture)), ("Labels", e(", ".join(labels))),
            ("Training data", e(entry.training_data or "—")), ("Licence", e(entry.license or "—")),
            ("From", e(entry.host))]  # fmt: skip
    table = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
    return (
        f"<h3>{e(entry.name)}</h3><p>{e(entry.description)}</p><table>{table}</table>"
        f"<p style='color:#b41e1e'><b>{NOT_FOR_DIAGNOSTIC_USE}.</b></p>"
    )


class ImportForm(QDialog):
    """Architecture, labels and task of a foreign weights file (.pth/.pt, or safetensors without manifest)."""

    def __init__(self, path: str, architectures: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Import {Path(path).name}")
        self.setObjectName("importForm")
        self.architecture = QComboBox(objectName="importArchitecture")
        self.architecture.addItems(architectures)
        self.labels = QPlainTextEdit(objectName="importLabels")
        self.labels.setPlaceholderText("One label per line (or separated by commas), in output order")
        self.labels.setFixedHeight(110)
        self.task = QComboBox(objectName="importTask")
        for key, text in TASKS:
            self.task.addItem(text, key)
        self.name = QLineEdit(Path(path).stem, objectName="importName")
        form = QFormLayout(self)
        form.addRow(QLabel("This file holds weights only. Say what they are:"))
        form.addRow("Architecture", self.architecture)
        form.addRow("Labels", self.labels)
        form.addRow("Task", self.task)
        form.addRow("Name", self.name)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def label_list(self) -> list[str]:
        text = self.labels.toPlainText().replace(",", "\n")
        return [x.strip() for x in text.splitlines() if x.strip()]

    def fields(self) -> dict[str, Any]:
        return {"architecture": self.architecture.currentText(), "labels": self.label_list(),
                "task": self.task.currentData(), "name": self.name.text().strip() or None}  # fmt: skip


def _progress_text(p: Progress) -> str:
    return megabytes_text(p) if p.total > 1024 * 1024 else p.message


class ModelLibraryDialog(QDialog):
    """List, import, download, remove and show the card of models. ``libraryChanged`` after a change."""

    libraryChanged = Signal()
    INSTALLED, CATALOGUE = INSTALLED, CATALOGUE

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model library")
        self.setObjectName("modelLibrary")
        self.resize(820, 560)
        self.last_notice: QMessageBox | None = None
        self.import_form: ImportForm | None = None

        self.tabs = QTabWidget()
        # installed
        self.installed = QListWidget(objectName="installedModels")
        self.card = QTextBrowser(objectName="modelCard")
        self.card.setOpenExternalLinks(False)
        self.import_button = QPushButton("Import file…", objectName="importButton")
        self.remove_button = QPushButton("Remove", objectName="removeButton")
        inst = QWidget()
        lay = QVBoxLayout(inst)
        split = QSplitter()
        split.addWidget(self.installed)
        split.addWidget(self.card)
        split.setSizes([260, 520])
        lay.addWidget(split)
        row = QHBoxLayout()
        row.addWidget(self.import_button)
        row.addStretch(1)
        row.addWidget(self.remove_button)
        lay.addLayout(row)
        self.tabs.addTab(inst, "Installed")
        # catalogue
        self.catalogue = QListWidget(objectName="catalogueList")
        self.catalogue_card = QTextBrowser()
        self.download_button = QPushButton("Download", objectName="downloadButton")
        cat = QWidget()
        lay2 = QVBoxLayout(cat)
        split2 = QSplitter()
        split2.addWidget(self.catalogue)
        split2.addWidget(self.catalogue_card)
        split2.setSizes([260, 520])
        lay2.addWidget(split2)
        row2 = QHBoxLayout()
        row2.addStretch(1)
        row2.addWidget(self.download_button)
        lay2.addLayout(row2)
        self.tabs.addTab(cat, "Download")
        # status line
        self.message = QLabel("", objectName="libraryMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = ProgressPanel(formatter=_progress_text, cancel_tooltip="Stop this operation",
                                      object_name="libraryProgress")  # fmt: skip
        self.cancel_button = self.progress.cancel_button
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.message)
        layout.addWidget(self.progress)
        layout.addWidget(close)

        self.presenter = LibraryPresenter(self, QtJobRunner(owner=self))
        p = self.presenter
        self.installed.currentRowChanged.connect(p.model_chosen)
        self.catalogue.currentRowChanged.connect(self._show_entry)
        self.import_button.clicked.connect(self.import_dialog)
        self.remove_button.clicked.connect(self.remove_selected)
        self.download_button.clicked.connect(self.download_selected)
        self.progress.cancelRequested.connect(p.cancel)
        p.start()

    # -- the LibraryView protocol ------------------------------------------------------------------
    def show_models(self, models: list[jobs.ModelInfo], selected: int) -> None:
        self.installed.blockSignals(True)
        self.installed.clear()
        for m in models:
            item = QListWidgetItem(m.name if m.error is None else f"{m.name} (damaged)")
            item.setToolTip(m.error or str(m.path))
            self.installed.addItem(item)
        self.installed.setCurrentRow(selected)
        self.installed.blockSignals(False)

    def show_card(self, model: jobs.ModelInfo | None) -> None:
        if model is None:
            self.card.setHtml("<p>No model is installed yet. Download one from the catalogue, "
                              "or import a model file.</p>")  # fmt: skip
        elif model.manifest is None:
            self.card.setHtml(f"<h3>{html.escape(model.name)}</h3><p>This file cannot be used: "
                              f"{html.escape(model.error or '')}</p>")  # fmt: skip
        else:
            self.card.setHtml(card_html(model.manifest, model.path))

    def show_entries(self, entries: list[Any] | None) -> None:
        if entries is None:  # still being read
            self.catalogue.clear()
            self.catalogue_card.setHtml("<p>Reading the catalogue of pretrained models…</p>")
            return
        self.catalogue.clear()
        for entry in entries:
            item = QListWidgetItem(entry.name)
            item.setToolTip(entry.description)
            self.catalogue.addItem(item)
        self.catalogue.setCurrentRow(0)

    def show_catalogue(self) -> None:
        self.tabs.setCurrentIndex(self.CATALOGUE)

    def show_tab(self, tab: int) -> None:
        self.tabs.setCurrentIndex(tab)

    def show_message(self, text: str) -> None:
        self.message.setText(text)

    def show_error(self, message: str) -> None:
        self.message.setText(message)
        if self.last_notice is not None:
            try:
                self.last_notice.close()
            except RuntimeError:
                pass
        self.last_notice = show_message(self, "Model library", message)

    def show_busy(self, busy: bool) -> None:
        if busy and not self.progress.busy:
            self.progress.set_busy(True)
        elif not busy and self.progress.busy:
            self.progress.set_idle()

    def show_progress(self, done: int, total: int, message: str) -> None:
        self.progress.set_progress(done if total else 0, total, message)

    def set_enabled(self, import_: bool, remove: bool, download: bool) -> None:
        self.import_button.setEnabled(import_)
        self.remove_button.setEnabled(remove)
        self.download_button.setEnabled(download)

    def ask_import_form(self, path: str, architectures: list[str]) -> None:
        form = ImportForm(path, architectures, self)
        self.import_form = form
        form.accepted.connect(lambda: self.presenter.form_accepted(path, form.fields()))
        form.open()

    def library_changed(self) -> None:
        self.libraryChanged.emit()

    # -- what the panel and the tests use ----------------------------------------------------------
    @property
    def models(self) -> list[jobs.ModelInfo]:
        return self.presenter.state.models

    @property
    def entries(self) -> list[Any]:
        return self.presenter.state.entries or []

    @property
    def last_error(self) -> str:
        return self.presenter.state.last_error

    @last_error.setter
    def last_error(self, value: str) -> None:
        self.presenter.state.last_error = value

    @property
    def busy(self) -> bool:
        return self.presenter.state.operation is not None

    def refresh(self) -> None:
        self.presenter.refresh()

    def selected_model(self) -> jobs.ModelInfo | None:
        return self.presenter.selected_model()

    def _show_entry(self, row: int) -> None:
        if 0 <= row < len(self.entries):
            self.catalogue_card.setHtml(catalogue_html(self.entries[row]))

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a model file", str(Path.home()), MODEL_FILTER)
        if path:
            self.import_path(path)

    def import_path(self, path: str, fields: dict[str, Any] | None = None) -> None:
        self.presenter.import_path(path, fields)

    def download_selected(self) -> None:
        row = self.catalogue.currentRow()
        if 0 <= row < len(self.entries):
            self.download(self.entries[row].name)

    def download(self, name: str) -> None:
        self.presenter.download(name)

    def remove_selected(self) -> None:
        m = self.selected_model()
        if m is None:
            return
        answer = QMessageBox.question(self, "Remove model", f"Remove the model '{m.name}' from the library?")
        if answer == QMessageBox.StandardButton.Yes:
            self.remove(m.name)

    def remove(self, name: str) -> None:
        self.presenter.remove(name)

    def cancel(self) -> None:
        self.presenter.cancel()


__all__ = ["ImportForm", "ModelLibraryDialog", "card_html", "catalogue_html", "inspect_file"]
