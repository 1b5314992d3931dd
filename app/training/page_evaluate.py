"""Wizard page 5: test-split metrics, confusion matrix, ROC curves, misclassified images, and saving."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from app.training.common import Gallery, MessageLabel
from app.training.plots import HeatmapTable, RocPlot
from app.workers import Job

COLUMNS = ["Precision", "Recall (sensitivity)", "Specificity", "F1", "AUROC", "AUROC 95% CI", "Images"]
ROW_HEIGHT = 26
KEYS = ["precision", "recall", "specificity", "f1", "auroc"]


def _num(v: Any, fmt: str = "{:.3f}") -> str:
    return "–" if v is None else fmt.format(v)


def _install(model_path: Path, name: str):  # noqa: ANN202
    def run(_progress: Any, _cancel: Any) -> Any:
        from ml.models.library import install_model_file

        return install_model_file(model_path, name=name or None)

    return run


class EvaluatePage(QWizardPage):
    def __init__(self, wizard: Any) -> None:
        super().__init__()
        self.wiz = wizard
        self.setTitle("5. Evaluate and save")
        self.setSubTitle("How the model does on the test images it never saw during training. "
                         "Research use only: not for diagnostic use.")  # fmt: skip
        self.metrics: dict[str, Any] | None = None
        self.saved_name: str | None = None
        self.saved_path: Path | None = None
        self.pending_open: str | None = None
        self.save_job: Job | None = None
        self._watching = False  # connected to the viewer's imageChanged
        self._build()

    def _build(self) -> None:
        self.headline = QLabel("")
        self.headline.setObjectName("evalHeadline")
        self.headline.setWordWrap(True)
        self.headline.setStyleSheet("font-size: 11pt;")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("metricsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        self.table.setToolTip("–: not defined (e.g. precision when no image was predicted as that class)")
        self.confusion = HeatmapTable("#1f5fa8")
        self.confusion.setObjectName("confusionMatrix")
        self.confusion_label = QComboBox()  # multi-label: which label's 2x2 matrix
        self.confusion_label.setVisible(False)
        self.prf = HeatmapTable("#2e8540")
        self.roc = RocPlot()
        self.gallery = Gallery(96)
        self.gallery.setObjectName("misclassified")
        self.gallery_note = QLabel("Double-click an image to open it in the viewer.")
        self.gallery_note.setWordWrap(True)

        cm_box = QWidget()
        cm = QVBoxLayout(cm_box)
        cm.setContentsMargins(0, 0, 0, 0)
        cm.addWidget(QLabel("Confusion matrix (rows: true class, columns: predicted)"))
        cm.addWidget(self.confusion_label)
        cm.addWidget(self.confusion, 1)
        prf_box = QWidget()
        pl = QVBoxLayout(prf_box)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(QLabel("Precision, recall and F1 per class"))
        pl.addWidget(self.prf, 1)
        overview = QWidget()
        grid = QGridLayout(overview)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(cm_box, 0, 0)
        grid.addWidget(prf_box, 0, 1)
        grid.addWidget(self.roc, 0, 2)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        gal = QWidget()
        gl = QVBoxLayout(gal)
        gl.addWidget(self.gallery_note)
        gl.addWidget(self.gallery, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(overview, "Charts")
        self.tabs.addTab(gal, "Misclassified images")

        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("model name in the library")
        self.save_button = QPushButton("Save to model library")
        self.save_button.setObjectName("saveButton")
        self.message = MessageLabel()
        self.message.setObjectName("evalMessage")
        save_row = QHBoxLayout()
        save_row.addWidget(QLabel("Name"))
        save_row.addWidget(self.name_edit, 1)
        save_row.addWidget(self.save_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addWidget(self.table)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(save_row)
        layout.addWidget(self.message)
        self.save_button.clicked.connect(self.save)
        self.gallery.activated_path.connect(self.open_image)
        self.confusion_label.currentIndexChanged.connect(self._show_label_matrix)

    # ------------------------------------------------------------------ metrics
    def initializePage(self) -> None:  # noqa: N802 - Qt override
        run_dir = self.wiz.run_dir
        if run_dir is None:
            return
        try:
            self.metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self.message.error(f"Cannot read the run's metrics ({exc}).")
            return
        self.show_metrics(self.metrics)
        if not self.saved_name:
            self.name_edit.setText(run_dir.name)
        self.save_button.setEnabled((run_dir / "model.safetensors").is_file())

    def show_metrics(self, metrics: dict[str, Any]) -> None:
        test = metrics.get("test") or {}
        labels = list(test.get("labels") or [])
        multilabel = test.get("task") == "multilabel"
        parts = [f"Test split: {test.get('n_images')} images of {test.get('n_patients')} patients."]
        if test.get("loss") is not None:
            parts.append(f"Loss {test['loss']:.4f}.")
        if test.get("accuracy") is not None:
            what = "Accuracy (per label)" if multilabel else "Accuracy"
            parts.append(f"{what} {test['accuracy'] * 100:.1f}%.")
        if metrics.get("best_epoch"):
            parts.append(f"Best epoch {metrics['best_epoch']} by {metrics.get('monitor')}.")
        if (test.get("n_images") or 0) < 30:
            parts.append("Very few test images: these numbers are rough (see the confidence intervals).")
        self.headline.setText(" ".join(parts))

        cols = COLUMNS + (["Threshold"] if multilabel else [])
        self.table.setColumnCount(len(cols))
        self.table.setHorizontalHeaderLabels(cols)
        per_class = test.get("per_class") or {}
        rows = [(label, per_class.get(label, {})) for label in labels] + [
            ("Macro average", test.get("macro") or {})
        ]
        self.table.setRowCount(len(rows))
        self.table.setVerticalHeaderLabels([r[0] for r in rows])
        for i, (_label, m) in enumerate(rows):
            ci = m.get("auroc_ci95")
            values = [_num(m.get(k)) for k in KEYS]
            values.append(f"{ci[0]:.3f} – {ci[1]:.3f}" if ci else "–")
            values.append(str(m.get("support", "")) if "support" in m else "")
            if multilabel:
                values.append(_num(m.get("threshold"), "{:.2f}"))
            for j, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(i, j, item)
        height = self.table.horizontalHeader().sizeHint().height() + 2 * self.table.frameWidth()
        self.table.setFixedHeight(height + ROW_HEIGHT * len(rows) + 2)

        self.prf.set_matrix([[per_class.get(x, {}).get(k) for k in ("precision", "recall", "f1")] for x in labels],
                            labels, ["precision", "recall", "F1"], "{:.2f}", vmax=1.0)  # fmt: skip
        cm = test.get("confusion_matrix")
        self.confusion_label.blockSignals(True)
        self.confusion_label.clear()
        if multilabel and isinstance(cm, dict):
            self.confusion_label.addItems(list(cm))
            self.confusion_label.setVisible(True)
            self.confusion_label.blockSignals(False)
            self._show_label_matrix()
        else:
            self.confusion_label.setVisible(False)
            self.confusion_label.blockSignals(False)
            self.confusion.set_matrix(cm or [], labels, labels, row_norm=True)
        self.roc.set_curves(test.get("roc") or {}, {x: per_class.get(x, {}).get("auroc") for x in labels})
        entries = []
        for m in metrics.get("misclassified") or []:
            truth = m.get("label") or ", ".join(m.get("labels") or []) or "none"
            pred = m.get("predicted")
            pred = ", ".join(pred) or "none" if isinstance(pred, list) else pred
            prob = f" ({m['probability'] * 100:.0f}%)" if m.get("probability") is not None else ""
            entries.append(
                (m["path"], f"{truth} → {pred}{prob}", f"{m['path']}\ntrue: {truth}\npredicted: {pred}")
            )
        self.gallery.set_items(entries)
        self.tabs.setTabText(1, f"Misclassified images ({len(entries)})")

    def _show_label_matrix(self) -> None:
        cm = ((self.metrics or {}).get("test") or {}).get("confusion_matrix")
        label = self.confusion_label.currentText()
        if isinstance(cm, dict) and label in cm:
            self.confusion.set_matrix(
                cm[label], [f"not {label}", label], [f"not {label}", label], row_norm=True
            )

    # ------------------------------------------------------------------ save and open
    def save(self) -> None:
        run_dir = self.wiz.run_dir
        if run_dir is None or self.save_job is not None:
            return
        name = self.name_edit.text().strip() or run_dir.name
        self.message.info("Saving…")
        self.save_button.setEnabled(False)
        job = Job(_install(run_dir / "model.safetensors", name), "saving the model into the library")
        job.signals.finished.connect(self._saved)
        job.signals.error.connect(self._save_failed)
        self.save_job = job.start()

    def _save_failed(self, message: str) -> None:
        self.save_job = None
        self.save_button.setEnabled(True)
        self.message.error(message)

    def _saved(self, installed: Any) -> None:
        self.save_job = None
        self.saved_name, self.saved_path = installed.name, Path(installed.path)
        panel = self._panel()
        if panel is not None:
            panel.modelsListed.connect(self._select_saved)
            panel.refresh_models()
        self.message.info(f"Saved as '{installed.name}' in the model library"
                          + (" and chosen in the analysis panel." if panel is not None else "."))  # fmt: skip

    def _panel(self) -> Any:
        return getattr(self.wiz.main_window, "analysis_panel", None)

    def _select_saved(self, _models: Any) -> None:
        panel = self._panel()
        if panel is None:
            return
        try:
            panel.modelsListed.disconnect(self._select_saved)
        except (RuntimeError, TypeError):
            pass
        if self.saved_name:
            panel.select_model(self.saved_name)

    def open_image(self, path: str) -> None:
        """Show a misclassified image in the viewer, then run the saved model with its heatmap."""
        window = self.wiz.main_window
        if window is None:
            return
        window.open_paths([path])
        panel = self._panel()
        if panel is None:
            return
        if not self.saved_name:
            self.message.info("Opened in the viewer. Save the model to the library to see its prediction and "
                              "heatmap there.")  # fmt: skip
            return
        self.pending_open = os.path.abspath(path)
        signal = getattr(getattr(window, "viewer", None), "imageChanged", None)
        if signal is not None and not self._watching:
            signal.connect(self._image_shown)
            self._watching = True

    def _image_shown(self) -> None:
        window = self.wiz.main_window
        current = getattr(getattr(window, "loader", None), "current_path", None)
        if not self.pending_open or not current or os.path.abspath(str(current)) != self.pending_open:
            return
        self.pending_open = None
        window.viewer.imageChanged.disconnect(self._image_shown)
        self._watching = False
        panel = self._panel()
        if panel.current_model_name() != self.saved_name:
            panel.select_model(self.saved_name)
        auto = getattr(panel, "auto_explain", None)
        if auto is not None:
            auto.setChecked(True)
        panel.run_current()
        dock = getattr(window, "analysis_dock", None)
        if dock is not None:
            dock.raise_()
