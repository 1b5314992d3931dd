"""Where to save a report or CSV: the save dialog of the analysis panel's exports.

Knows nothing of the panel: it receives the parent widget, the suggested stem and folder.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

KINDS = {
    "pdf": ("PDF report", "{stem}_report.pdf", "PDF files (*.pdf)"),
    "png": ("PNG report", "{stem}_report.png", "PNG images (*.png)"),
    "csv": ("CSV results", "{stem}_results.csv", "CSV files (*.csv)"),
}


def ask_export_path(parent: QWidget, kind: str, stem: str, start: str = "") -> str | None:
    """The path the user chose for the ``kind`` ("pdf", "png", "csv") export (suffix added), or None."""
    title, name, filt = KINDS[kind]
    folder = Path(start) if start else Path.home()
    path, _ = QFileDialog.getSaveFileName(parent, f"Export {title}", str(folder / name.format(stem=stem)), filt)
    if not path:
        return None
    return path if path.lower().endswith("." + kind) else path + "." + kind


__all__ = ["KINDS", "ask_export_path"]
