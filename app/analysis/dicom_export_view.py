"""The analysis panel's "DICOM…" and "Send to PACS…" buttons: they ask for a folder or a node and
forward to :class:`app.analysis.dicom_export.DicomExport` (the rules live there). Progress shows in
the panel's one progress widget (app.progress.ProgressPanel); the outcome in its status line."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QFileDialog, QInputDialog, QPushButton

from app.analysis.dicom_export import NO_NODES, DicomExport
from app.analysis.runner import QtJobRunner
from ml.errors import CxrError


class DicomExportView:
    """Adds the two buttons to ``panel``'s export row and wires them to a :class:`DicomExport`."""

    def __init__(self, panel: Any, row: Any) -> None:
        self.panel = panel
        self.save_button = QPushButton("DICOM…", objectName="exportDicom")
        self.save_button.setToolTip("Save the results of this DICOM image as a DICOM SR (+ the heatmap as a "
                                    "Parametric Map) into a folder")
        self.send_button = QPushButton("Send to PACS…", objectName="sendDicom")
        self.send_button.setToolTip("Send the results of this DICOM image (SR + heatmap) to a PACS node")
        row.addWidget(self.save_button)
        row.addWidget(self.send_button)
        ui = panel.ui
        self.export = DicomExport(panel.presenter, QtJobRunner(owner=panel), panel.show_status,
                                  busy=self._busy, progress=ui.progress.set_progress)
        self.save_button.clicked.connect(self.save_dialog)
        self.send_button.clicked.connect(self.send_dialog)
        # the "why not" tooltip follows the image and its result
        panel.viewer.imageChanged.connect(self.refresh)
        panel.resultsReady.connect(lambda _r: self.refresh())
        panel.heatmapReady.connect(lambda _h: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        why = self.export.unavailable()
        for b in (self.save_button, self.send_button):
            b.setEnabled(not self.export.busy)
            b.setStatusTip(why)
        self.save_button.setToolTip(why or "Save the results of this DICOM image as a DICOM SR (+ the heatmap "
                                           "as a Parametric Map) into a folder")  # fmt: skip

    def _busy(self, busy: bool) -> None:
        bar = self.panel.ui.progress
        if busy:
            bar.cancellable = False
            bar.set_busy(True)
        elif bar.busy and not self.panel.presenter.busy:
            bar.set_idle()
        self.refresh()

    def save_dialog(self) -> None:
        why = self.export.unavailable()
        if why:
            self.panel.show_status(why)
            return
        folder = QFileDialog.getExistingDirectory(self.panel, "Save the DICOM results into")
        if folder:
            self.export.save(folder)

    def send_dialog(self) -> None:
        why = self.export.unavailable()
        if why:
            self.panel.show_status(why)
            return
        try:
            names = sorted(self.export.nodes())
        except CxrError as exc:
            self.panel.show_status(str(exc))
            return
        if not names:
            self.panel.show_status(NO_NODES)
            return
        name, ok = QInputDialog.getItem(self.panel, "Send to PACS", "PACS node", names, 0, False)
        if ok and name:
            self.export.send(name)


__all__ = ["DicomExportView"]
