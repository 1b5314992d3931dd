"""The model library dialog: installed models with their cards, import, download from the catalogue, remove.

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
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.analysis import jobs
from app.dialogs import NOT_FOR_DIAGNOSTIC_USE, show_message
from app.workers import Job

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


def inspect_file(path: str):  # noqa: ANN201 - a job function
    """Job: is ``path`` one of our model files? Returns ``(ours, architectures)``."""

    def run(_progress: Any, _cancel: Any) -> tuple[bool, list[str]]:
        from ml.models import bundle, registry

        ours = False
        if Path(path).suffix.lower() == bundle.SUFFIX:
            _, metadata = bundle.read_header(path)
            ours = bundle.MANIFEST_KEY in metadata
        return ours, registry.architectures()

    return run


class ModelLibraryDialog(QDialog):
    """List, import, download, remove and show the card of models. ``libraryChanged`` after a change."""

    libraryChanged = Signal()
    INSTALLED, CATALOGUE = 0, 1

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model library")
        self.setObjectName("modelLibrary")
        self.resize(820, 560)
        self.models: list[jobs.ModelInfo] = []
        self.entries: list[Any] = []
        self.job: Job | None = None  # the running import/download/remove
        self.last_error = ""
        self.last_notice: QMessageBox | None = None

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
        self.progress = QProgressBar(objectName="libraryProgress")
        self.cancel_button = QToolButton(text="Cancel", objectName="libraryCancel")
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(self.progress, 1)
        bottom.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.message)
        layout.addLayout(bottom)
        layout.addWidget(close)

        self.installed.currentRowChanged.connect(self._show_card)
        self.catalogue.currentRowChanged.connect(self._show_entry)
        self.import_button.clicked.connect(self.import_dialog)
        self.remove_button.clicked.connect(self.remove_selected)
        self.download_button.clicked.connect(self.download_selected)
        self.cancel_button.clicked.connect(self.cancel)
        self._set_busy(False)
        self.refresh()
        jobs.start(jobs.load_catalogue, "reading the model catalogue", finished=self._set_catalogue,
                   error=self._fail)  # fmt: skip

    # -- listing -----------------------------------------------------------------------------------
    def refresh(self) -> None:
        jobs.start(jobs.list_models, "listing installed models", finished=self._set_models, error=self._fail)

    def _set_models(self, models: list[jobs.ModelInfo]) -> None:
        current = self.selected_model()
        self.models = list(models)
        self.installed.clear()
        for m in self.models:
            item = QListWidgetItem(m.name if m.error is None else f"{m.name} (damaged)")
            item.setToolTip(m.error or str(m.path))
            self.installed.addItem(item)
        if not self.models:
            self.card.setHtml("<p>No model is installed yet. Download one from the catalogue, "
                              "or import a model file.</p>")  # fmt: skip
        names = [m.name for m in self.models]
        self.installed.setCurrentRow(names.index(current.name) if current and current.name in names else 0)
        self.remove_button.setEnabled(bool(self.models))

    def _set_catalogue(self, entries: list[Any]) -> None:
        self.entries = list(entries)
        self.catalogue.clear()
        for entry in self.entries:
            item = QListWidgetItem(entry.name)
            item.setToolTip(entry.description)
            self.catalogue.addItem(item)
        self.catalogue.setCurrentRow(0)

    def selected_model(self) -> jobs.ModelInfo | None:
        row = self.installed.currentRow()
        return self.models[row] if 0 <= row < len(self.models) else None

    def _show_card(self, row: int) -> None:
        if not 0 <= row < len(self.models):
            return
        m = self.models[row]
        if m.manifest is None:
            self.card.setHtml(f"<h3>{html.escape(m.name)}</h3><p>This file cannot be used: "
                              f"{html.escape(m.error or '')}</p>")  # fmt: skip
        else:
            self.card.setHtml(card_html(m.manifest, m.path))

    def _show_entry(self, row: int) -> None:
        if 0 <= row < len(self.entries):
            self.catalogue_card.setHtml(catalogue_html(self.entries[row]))

    def show_catalogue(self) -> None:
        self.tabs.setCurrentIndex(self.CATALOGUE)

    # -- actions -----------------------------------------------------------------------------------
    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a model file", str(Path.home()), MODEL_FILTER)
        if path:
            self.import_path(path)

    def import_path(self, path: str, fields: dict[str, Any] | None = None) -> None:
        """Import ``path``; our .safetensors directly, anything else after the architecture/labels form."""
        if fields is not None:
            self._run(jobs.import_file(path, **fields), f"Importing {Path(path).name}")
            return
        self._run(inspect_file(path), f"Reading {Path(path).name}", lambda res: self._inspected(path, res))

    def _inspected(self, path: str, result: tuple[bool, list[str]]) -> None:
        self.job = None  # the inspection is over; what follows is a new operation
        ours, architectures = result
        if ours:
            self.import_path(path, {})
            return
        form = ImportForm(path, architectures, self)
        self.import_form = form
        form.accepted.connect(lambda: self._form_accepted(path, form))
        form.open()

    def _form_accepted(self, path: str, form: ImportForm) -> None:
        fields = form.fields()
        if not fields["labels"]:
            self._fail("Name the labels of the model (in output order) to import it.")
            return
        self.import_path(path, fields)

    def download_selected(self) -> None:
        row = self.catalogue.currentRow()
        if 0 <= row < len(self.entries):
            self.download(self.entries[row].name)

    def download(self, name: str) -> None:
        self._run(jobs.download_model(name), f"Downloading {name}")

    def remove_selected(self) -> None:
        m = self.selected_model()
        if m is None:
            return
        answer = QMessageBox.question(self, "Remove model", f"Remove the model '{m.name}' from the library?")
        if answer == QMessageBox.StandardButton.Yes:
            self.remove(m.name)

    def remove(self, name: str) -> None:
        self._run(jobs.remove_model(name), f"Removing {name}")

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    # -- running -----------------------------------------------------------------------------------
    def _run(self, fn: Any, what: str, finished: Any = None) -> None:
        if self.job is not None:
            self._fail("Wait for the current operation to finish (or cancel it).")
            return
        self.message.setText(what + "…")
        self.last_error = ""
        self._set_busy(True)
        job = Job(fn, what[0].lower() + what[1:])
        job.signals.finished.connect(finished or self._changed)
        job.signals.error.connect(self._fail)
        job.signals.progress.connect(self._progress)
        job.signals.cancelled.connect(lambda: self.message.setText("Cancelled."))
        job.signals.done.connect(lambda: self._done(job))
        self.job = job
        job.start()

    def _changed(self, result: Any) -> None:
        if isinstance(result, jobs.ModelInfo):
            self.message.setText(f"'{result.name}' is installed.")
        elif isinstance(result, str):
            self.message.setText(f"'{result}' was removed.")
        self.refresh()
        self.tabs.setCurrentIndex(self.INSTALLED)
        self.libraryChanged.emit()

    def _progress(self, done: int, total: int, message: str) -> None:
        self.progress.setRange(0, max(0, total))
        self.progress.setValue(done if total else 0)
        if total > 1024 * 1024:
            self.progress.setFormat(f"{message}: {done / 2**20:.1f} of {total / 2**20:.1f} MB")
        else:
            self.progress.setFormat(message)

    def _done(self, job: Job) -> None:
        if job is self.job:
            self.job = None
            self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        for button in (self.import_button, self.remove_button, self.download_button):
            button.setEnabled(not busy)
        if busy:
            self.progress.setRange(0, 0)

    def _fail(self, message: str) -> None:
        self.last_error = message
        self.message.setText(message)
        if self.last_notice is not None:
            try:
                self.last_notice.close()
            except RuntimeError:
                pass
        self.last_notice = show_message(self, "Model library", message)


__all__ = ["ImportForm", "ModelLibraryDialog", "card_html", "catalogue_html", "inspect_file"]
