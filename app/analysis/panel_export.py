"""The analysis panel's report and export part (see :class:`app.analysis.panel.AnalysisPanel`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QFileDialog

from app.analysis import report
from ml.errors import CxrError

if TYPE_CHECKING:
    from app.analysis.panel import AnalysisPanel


def result_key(image: Any, frame: int) -> tuple[str, int]:
    """What results and heatmaps are keyed by: (image path, frame)."""
    return str(image.meta.path), int(frame)


def report_data(panel: AnalysisPanel) -> report.ReportData:
    """The report of the results shown, for the viewer's image, window and heatmap."""
    p = panel.prediction
    image = panel.viewer.image()
    if p is None or image is None:
        raise CxrError("Run a model on an image first: there are no results to report.")
    frame = panel.viewer.frame()
    if (p.path, p.frame) != result_key(image, frame):
        raise CxrError("The results shown are for another image; run the model on this image first.")
    version = next((str(m.manifest.version) for m in panel.models if m.name == p.model_name), "")
    return report.build_report(
        p, image, frame, panel.heatmap if panel.heatmap_key == result_key(image, frame) else None,
        panel.controls.style(), panel.viewer.voi(), image.meta.inverted != panel.viewer.is_inverted(),
        version, panel.loaded.device_label if panel.loaded is not None else "",
    )  # fmt: skip


def export_dialog(panel: AnalysisPanel, kind: str) -> None:
    """Ask where to save the ``kind`` ("pdf", "png", "csv") export and write it."""
    stem = Path(panel.prediction.path).stem if panel.prediction is not None else "results"
    names = {
        "pdf": ("PDF report", f"{stem}_report.pdf", "PDF files (*.pdf)"),
        "png": ("PNG report", f"{stem}_report.png", "PNG images (*.png)"),
        "csv": (
            "CSV results",
            f"{stem if panel.batch is None else 'batch'}_results.csv",
            "CSV files (*.csv)",
        ),
    }
    title, name, filt = names[kind]
    start = getattr(getattr(panel.main_window, "prefs", None), "last_directory", "") or str(Path.home())
    path, _ = QFileDialog.getSaveFileName(panel, f"Export {title}", str(Path(start) / name), filt)
    if not path:
        return
    if not path.lower().endswith("." + kind):
        path += "." + kind
    try:
        written = {"pdf": panel.export_pdf, "png": panel.export_png, "csv": panel.export_csv}[kind](path)
    except CxrError as exc:
        panel._fail(str(exc))
        return
    panel.main_window.statusBar().showMessage(f"Exported {written.name}", 5000)
