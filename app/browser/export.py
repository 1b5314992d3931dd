"""Browser > context menu > "Export anonymised…": a patient, study, series or image exported as
de-identified DICOM (ml.dicom_out.anonymise: dicognito, new UIDs consistent across the export) into a
new folder or a ZIP file, both with a DICOMDIR. Runs as a job; the source files are only read.
Which files a row stands for is the presenter's rule (:meth:`BrowserPresenter.export_files`).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from app.workers import Job

EXPORT_ACTION_TEXT = "Export anonymised…"


class AnonymisedExporter(QObject):
    """Asks where to, runs the export as a job and says how it went (``done(message)``)."""

    done = Signal(str)
    started = Signal(object)  # the export's Job (for a progress panel)

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self._parent = parent
        self.job: Job | None = None
        self.last_message = ""

    def ask(self, files: list[str], name: str) -> None:
        """Folder or ZIP, then where; starts the export."""
        if not files:
            self._finish("There are no DICOM files to export here.")
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Export anonymised",
                          f"Export {len(files)} DICOM file(s) de-identified, with a DICOMDIR "
                          "(not for diagnostic use). The original files are not changed.", parent=self._parent)
        folder = box.addButton("Folder…", QMessageBox.ButtonRole.AcceptRole)
        archive = box.addButton("ZIP file…", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        start = str(Path.home() / name)
        if box.clickedButton() is folder:
            dest = QFileDialog.getSaveFileName(self._parent, "New folder for the export", start)[0]
            if dest:
                self.start(files, dest, as_zip=False)
        elif box.clickedButton() is archive:
            dest = QFileDialog.getSaveFileName(self._parent, "ZIP file", start + ".zip", "ZIP files (*.zip)")[0]
            if dest:
                self.start(files, dest, as_zip=True)

    def start(self, files: list[str], dest: str, as_zip: bool) -> Job:
        from ml.dicom_out.anonymise import export

        def run(progress, cancel):  # noqa: ANN001, ANN202 - worker thread
            return export(list(files), dest, dicomdir=True, as_zip=as_zip, progress=progress, cancel=cancel)

        job = Job(run, "exporting anonymised DICOM")
        job.signals.finished.connect(
            lambda target: self._finish(f"{len(files)} file(s) exported anonymised to {Path(target).name}"))
        job.signals.error.connect(lambda message: self._finish(f"Export failed: {message}"))
        job.signals.cancelled.connect(lambda: self._finish("Export cancelled: nothing was written."))
        self.job = job
        job.start()
        self.started.emit(job)
        return job

    def _finish(self, message: str) -> None:
        self.last_message = message
        self.done.emit(message)
