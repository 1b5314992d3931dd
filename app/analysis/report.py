"""Report export: one page (PDF through Qt's own ``QPdfWriter``, or PNG) and batch results as CSV.

The page holds the image with its heatmap and colour scale, the probabilities (bars and threshold
ticks), the model name, version, validation figures and intended use, the patient ID and study date
(so that a printed page can be matched with its study), the date, and the disclaimer "Not for
diagnostic use". The same :func:`paint_report` draws on the PDF writer and on the PNG's ``QImage``.
The patient's name is never printed. Every file is written atomically.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QMarginsF, QPointF, QRectF, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QPageLayout,
    QPageSize,
    QPaintDevice,
    QPainter,
    QPdfWriter,
    QPen,
    QPolygonF,
)

from app.analysis.display import scope_text
from app.analysis.heatmap import HeatmapStyle, blend, colour_heatmap, legend_image
from app.analysis.results import BAR_COLOUR, POSITIVE_COLOUR, UNCALIBRATED_COLOUR, ResultRow, percent, rows_of
from ml.errors import CxrError
from ml.explain import METHOD_LABELS
from ml.fileio import atomic_path
from ml.imaging.display import render
from ml.imaging.image import XRayImage
from ml.inference import export

DISCLAIMER = "Not for diagnostic use"
PNG_SIZE = (1240, 1754)  # A4 at 150 dpi
PDF_DPI = 150
METHOD_NAMES = METHOD_LABELS  # what the report calls each method


@dataclass
class ReportData:
    """Everything one report page shows."""

    image_rgb: np.ndarray  # rows x cols x 3 uint8: the image with its heatmap
    rows: list[ResultRow]
    model_name: str
    model_version: str
    source_name: str = ""
    frame: int = 0
    task: str = "multiclass"
    device: str = ""
    heatmap_text: str = ""  # e.g. "Grad-CAM for Pneumonia"
    legend: np.ndarray | None = None  # the heatmap's colour scale (rows x cols x 3 uint8), when shown
    date: str = field(default_factory=lambda: dt.datetime.now().strftime("%Y-%m-%d %H:%M"))
    disclaimer: str = DISCLAIMER
    notes: list[str] = field(default_factory=list)
    patient_id: str = ""
    study_date: str = ""  # YYYY-MM-DD
    validation: str = ""  # the model's validation figures, one line
    intended_use: str = ""
    scope: str = ""  # the out-of-scope banner ("" when the image is in scope)
    results_hidden: bool = False  # out of scope and not "shown anyway": no probabilities on the page
    evidence: list[str] = field(default_factory=list)  # heatmap method/layer, gating, faithfulness, contours
    outlines: list[np.ndarray] = field(default_factory=list)  # (N, 2) (row, col) polygons over the image


def compose_image(
    image: XRayImage,
    frame: int = 0,
    heatmap: Any = None,
    style: HeatmapStyle | None = None,
    voi: Any = None,
    invert: bool | None = None,
) -> np.ndarray:
    """The frame as 8-bit RGB (the viewer's window and inversion when given) with the heatmap blended in."""
    pixels = render(image, frame, voi, invert)
    rgb = np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels[..., :3]
    style = style or HeatmapStyle()
    if heatmap is not None and style.visible and tuple(heatmap.values.shape[:2]) == tuple(rgb.shape[:2]):
        rgb = blend(rgb, colour_heatmap(heatmap.values, style.colour_map, style.threshold), style.opacity)
    return np.ascontiguousarray(rgb)


def build_report(
    prediction: Any,
    image: XRayImage,
    frame: int,
    heatmap: Any,
    style: HeatmapStyle,
    voi: Any,
    invert: bool | None,
    model_version: str,
    device: str = "",
    *,
    validation: str = "",
    intended_use: str = "",
    show_out_of_scope: bool = False,
    evidence: tuple[str, ...] = (),
    regions: tuple[Any, ...] = (),
) -> ReportData:
    """A :class:`ReportData` for one prediction on ``image``/``frame`` with the heatmap as displayed."""
    rgb = compose_image(image, frame, heatmap, style, voi, invert)
    heatmap_text, legend = "", None
    if heatmap is not None and style.visible:
        legend = legend_image(style.colour_map, style.threshold)
        heatmap_text = f"{METHOD_LABELS.get(heatmap.method, heatmap.method)} for {heatmap.target_label}"
        if not heatmap.complete:
            heatmap_text += f" (partial, {heatmap.fraction_done:.0%})"
    scope = scope_text(prediction)
    if scope and show_out_of_scope:
        scope += " Results shown anyway, for research use only."
    hidden = bool(scope) and not show_out_of_scope
    return ReportData(
        scope=scope, results_hidden=hidden,
        image_rgb=rgb, rows=[] if hidden else rows_of(prediction), model_name=prediction.model_name, model_version=model_version,
        source_name=Path(prediction.path).name, frame=prediction.frame, task=prediction.task, device=device,
        heatmap_text=heatmap_text, legend=legend, disclaimer=DISCLAIMER, notes=[*prediction.messages, *scope_notes(prediction)],
        patient_id=image.meta.patient_id, study_date=_date(image.meta.study_date), validation=validation,
        intended_use=intended_use, evidence=list(evidence),
        outlines=[np.asarray(r.polygon, float) for r in regions] if heatmap is not None and style.visible else [],
    )  # fmt: skip


def scope_notes(prediction: Any) -> list[str]:
    """The scope check's remark on an in-scope image (e.g. the view, or "no feature statistics")."""
    note = getattr(prediction, "scope_note", "")
    return [f"Scope check: {note}."] if note and getattr(prediction, "in_scope", True) else []


def _date(dicom_date: str) -> str:
    """A DICOM DA value (YYYYMMDD) as YYYY-MM-DD; anything else as it is."""
    d = (dicom_date or "").strip()
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


def to_qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


# ---------------------------------------------------------------------------- painting


def _font(device_height: float, points: float, bold: bool = False) -> QFont:
    font = QFont("Sans Serif")
    font.setPixelSize(max(6, int(device_height * points / 842.0)))  # points on an A4-high page
    font.setBold(bold)
    return font


def paint_report(painter: QPainter, width: float, height: float, data: ReportData) -> None:
    """Draw the report page on ``painter`` (a ``width`` x ``height`` device, white background)."""
    unit = height / 842.0  # one A4 point in device units
    margin = 36 * unit
    x0, x1 = margin, width - margin
    y = margin
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)

    def text(
        line: str, points: float, bold: bool = False, colour: QColor | None = None, gap: float = 4,
        wrap: bool = False,
    ) -> None:  # fmt: skip
        nonlocal y
        font = _font(height, points, bold)
        painter.setFont(font)
        painter.setPen(colour or QColor(20, 20, 20))
        line_h = points * 1.35 * unit
        flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        if wrap:  # as many lines as it takes (at most three)
            flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap
            need = painter.boundingRect(QRectF(x0, y, x1 - x0, 3 * line_h), flags, line).height()
            line_h = min(3 * line_h, max(line_h, need))
        painter.drawText(QRectF(x0, y, x1 - x0, line_h), flags, line)
        y += line_h + gap * unit

    text("CXR Studio — AI analysis report", 18, bold=True)
    text(
        f"{data.disclaimer}. A reading aid and research tool: it does not make a diagnosis.",
        11,
        bold=True,
        colour=QColor(180, 30, 30),
    )
    text(
        f"Model: {data.model_name}, version {data.model_version}"
        + (f" · {data.device}" if data.device else ""),
        10,
    )
    if data.validation:
        text(f"Validation: {data.validation}", 9, colour=QColor(60, 60, 60), wrap=True)
    if data.intended_use:
        text(f"Intended use: {data.intended_use}", 9, colour=QColor(60, 60, 60), wrap=True)
    frame = f", frame {data.frame + 1}" if data.frame else ""
    text(f"Image: {data.source_name}{frame}" if data.source_name else "Image", 10)
    study = [f"Patient ID: {data.patient_id or '—'}", f"Study date: {data.study_date or '—'}"]
    text(" · ".join(study), 10)
    text(f"Report date: {data.date}", 10, gap=10)
    if data.scope:
        text(data.scope, 11, bold=True, colour=QColor(150, 90, 0), wrap=True, gap=8)

    # image, scaled to fit the upper part of the page
    qimage = to_qimage(data.image_rgb)
    box_h = (height - y - margin) * 0.55
    box_w = x1 - x0
    scale = min(box_w / qimage.width(), box_h / qimage.height())
    draw_w, draw_h = qimage.width() * scale, qimage.height() * scale
    target = QRectF(x0 + (box_w - draw_w) / 2, y, draw_w, draw_h)
    painter.drawImage(target, qimage)
    if data.outlines:  # the top regions' outlines, as in the viewer
        painter.setPen(QPen(QColor(0, 230, 255), max(1.0, 1.2 * unit)))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for poly in data.outlines:
            painter.drawPolygon(QPolygonF([QPointF(target.left() + c * scale, target.top() + r * scale)
                                           for r, c in poly]))  # fmt: skip
    y += draw_h + 4 * unit
    if data.heatmap_text:
        text(
            f"Heatmap: {data.heatmap_text} (where the model looked; not a finding)",
            9,
            colour=QColor(80, 80, 80),
        )
    if data.legend is not None:  # the colour scale: weak ... strongest in this image
        painter.setFont(_font(height, 8))
        painter.setPen(QColor(80, 80, 80))
        words_w, bar_h = 110 * unit, 8 * unit
        left = QRectF(x0, y, 30 * unit, bar_h)
        bar = QRectF(left.right() + 4 * unit, y, (x1 - x0) * 0.4, bar_h)
        painter.drawText(left, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, "weak")
        painter.drawImage(bar, to_qimage(data.legend))
        painter.drawText(QRectF(bar.right() + 4 * unit, y, words_w, bar_h), Qt.AlignmentFlag.AlignVCenter,
                         "strongest in this image")  # fmt: skip
        y += bar_h + 4 * unit
    for line in data.evidence:  # method/layer, gating, faithfulness, sanity, contour areas
        text(line, 8, colour=QColor(60, 60, 60), gap=1, wrap=True)
    y += 6 * unit

    # probabilities
    kind = "per-label probabilities (threshold ticks)" if data.task == "multilabel" else "class probabilities"
    text(f"Results — {kind}", 12, bold=True)
    if data.results_hidden:
        text("Results hidden: the image does not look like a frontal chest radiograph.", 10)
    label_w = (x1 - x0) * 0.38
    bar_w = (x1 - x0) * 0.45
    row_h = min(16 * unit, (height - margin - y - 40 * unit) / max(1, len(data.rows)))
    font = _font(height, min(10, row_h / unit / 1.5))
    for row in data.rows:
        font.setBold(row.positive)
        painter.setFont(font)
        painter.setPen(UNCALIBRATED_COLOUR if row.uncalibrated else QColor(20, 20, 20))
        label = f"{row.label} (uncalibrated)" if row.uncalibrated else row.label
        painter.drawText(QRectF(x0, y, label_w, row_h), Qt.AlignmentFlag.AlignVCenter, label)
        bar = QRectF(x0 + label_w, y + row_h * 0.2, bar_w, row_h * 0.6)
        painter.setPen(QPen(QColor(170, 170, 170), max(1.0, 0.5 * unit)))
        painter.setBrush(QColor(242, 242, 242))
        painter.drawRect(bar)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(UNCALIBRATED_COLOUR if row.uncalibrated else POSITIVE_COLOUR if row.positive else BAR_COLOUR)
        painter.drawRect(
            QRectF(bar.left(), bar.top(), bar.width() * max(0.0, min(1.0, row.probability)), bar.height())
        )
        if row.threshold is not None:
            tx = bar.left() + bar.width() * row.threshold
            painter.setPen(QPen(QColor(20, 20, 20), max(1.0, 1.5 * unit)))
            painter.drawLine(int(tx), int(bar.top() - 2 * unit), int(tx), int(bar.bottom() + 2 * unit))
        painter.setPen(QColor(20, 20, 20))
        painter.drawText(
            QRectF(bar.right() + 6 * unit, y, x1 - bar.right() - 6 * unit, row_h),
            Qt.AlignmentFlag.AlignVCenter,
            percent(row.probability) + (" +" if row.positive and data.task == "multilabel" else ""),
        )
        y += row_h
    y += 8 * unit
    for note in data.notes:
        text(note, 9, colour=QColor(80, 80, 80), gap=2)
    # the disclaimer again at the foot of the page
    painter.setFont(_font(height, 9, bold=True))
    painter.setPen(QColor(180, 30, 30))
    painter.drawText(
        QRectF(x0, height - margin, x1 - x0, margin * 0.6),
        Qt.AlignmentFlag.AlignCenter,
        f"{data.disclaimer} — CXR Studio",
    )


def _paint_on(device: QPaintDevice, width: float, height: float, data: ReportData) -> None:
    painter = QPainter()
    if not painter.begin(device):
        raise CxrError("Could not start drawing the report.")
    try:
        paint_report(painter, width, height, data)
    finally:
        painter.end()


def _os_error(path: Path, exc: OSError) -> CxrError:
    return CxrError(f"Could not write {path.name}: {exc.strerror or exc}.")


def write_pdf(path: str | os.PathLike[str], data: ReportData) -> Path:
    """One A4 page, written with Qt's ``QPdfWriter``, atomically."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            writer = QPdfWriter(str(tmp))
            writer.setResolution(PDF_DPI)
            writer.setTitle(f"CXR Studio report: {data.model_name} — {data.disclaimer}")
            writer.setCreator("CXR Studio")
            writer.setPageLayout(
                QPageLayout(
                    QPageSize(QPageSize.PageSizeId.A4),
                    QPageLayout.Orientation.Portrait,
                    QMarginsF(0, 0, 0, 0),
                )
            )
            _paint_on(writer, writer.width(), writer.height(), data)
            del writer  # flushes and closes the file
    except OSError as exc:
        raise _os_error(path, exc) from None
    return path


def report_image(data: ReportData, size: tuple[int, int] = PNG_SIZE) -> QImage:
    image = QImage(size[0], size[1], QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    _paint_on(image, size[0], size[1], data)
    return image


def write_png(path: str | os.PathLike[str], data: ReportData, size: tuple[int, int] = PNG_SIZE) -> Path:
    path = Path(path)
    image = report_image(data, size)
    try:
        with atomic_path(path) as tmp:
            if not image.save(str(tmp), "PNG"):
                raise CxrError(f"Could not write the PNG file {path.name}.")
    except OSError as exc:
        raise _os_error(path, exc) from None
    return path


# ---------------------------------------------------------------------------- CSV


prediction_text = export.prediction_text
csv_text = export.csv_text


def write_csv(path: str | os.PathLike[str], predictions: list[Any], labels: list[str] | None = None) -> Path:
    """The same CSV as `cxr predict -o` (ml.inference.export), written atomically."""
    try:
        return export.write_csv(path, predictions, labels)
    except OSError as exc:
        raise _os_error(Path(path), exc) from None


__all__ = [
    "DISCLAIMER",
    "METHOD_NAMES",
    "ReportData",
    "build_report",
    "compose_image",
    "csv_text",
    "paint_report",
    "prediction_text",
    "report_image",
    "to_qimage",
    "write_csv",
    "write_pdf",
    "write_png",
]
