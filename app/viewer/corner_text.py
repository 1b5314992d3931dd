"""Corner text like clinical viewers: four corners of outlined text over the image."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6 import QtCore, QtGui, QtWidgets

from ml.imaging.image import ImageMeta, Window

NOT_FOR_DIAGNOSIS = "Not for diagnostic use"


@dataclass
class ViewState:
    """The live numbers the corner text shows besides the header."""

    frame: int = 0
    n_frames: int = 1
    window: Window | None = None  # None for colour images
    window_label: str = ""  # e.g. "VOI LUT" or a preset name
    zoom: float = 1.0  # screen pixels per image pixel
    inverted_by_user: bool = False


def _date(value: str) -> str:
    v = value.strip()
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if len(v) == 8 and v.isdigit() else v


def _person_name(value: str) -> str:
    parts = [p for p in value.split("^") if p]
    if not parts:
        return ""
    return parts[0] + (", " + " ".join(parts[1:]) if len(parts) > 1 else "")


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.4g}"


def corner_lines(meta: ImageMeta, state: ViewState) -> dict[str, list[str]]:
    """The text of each corner ("tl", "tr", "bl", "br"), one string per line."""
    tl = [
        _person_name(meta.patient_name),
        f"ID {meta.patient_id}" if meta.patient_id else "",
        " ".join(
            x
            for x in (
                meta.patient_sex,
                f"born {_date(meta.patient_birth_date)}" if meta.patient_birth_date else "",
            )
            if x
        ),
    ]
    tr = [
        _date(meta.study_date),
        meta.study_description,
        " ".join(x for x in (meta.modality, meta.view_position, meta.laterality) if x),
    ]
    bl = []
    if state.n_frames > 1:
        bl.append(f"Frame {state.frame + 1}/{state.n_frames}")
    if state.window is not None:
        text = f"C {_num(state.window.center)}  W {_num(state.window.width)}"
        if state.window_label:
            text += f"  ({state.window_label})"
        bl.append(text)
    if state.inverted_by_user:
        bl.append("Inverted")
    bl.append(f"Zoom {state.zoom * 100:.0f}%")
    sp = meta.pixel_spacing
    br = []
    if meta.lossy:
        br.append("LOSSY" + (f" ({meta.lossy_reason})" if meta.lossy_reason else ""))
    if sp is None:
        br.append("Pixel spacing: uncalibrated")
    else:
        size = f"{sp.row_mm:.3g} mm" if sp.row_mm == sp.col_mm else f"{sp.row_mm:.3g} x {sp.col_mm:.3g} mm"
        br.append(f"Pixel {size} ({sp.source})")
    br.append(NOT_FOR_DIAGNOSIS)
    return {k: [line for line in v if line] for k, v in {"tl": tl, "tr": tr, "bl": bl, "br": br}.items()}


class CornerTextOverlay(QtWidgets.QWidget):
    """Transparent widget over the view's viewport that paints the corner text with an outline."""

    MARGIN = 8

    def __init__(self, parent: QtWidgets.QWidget):
        super().__init__(parent)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_NoSystemBackground)
        self._lines: dict[str, list[str]] = {}
        font = QtGui.QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF(), 9.0))
        font.setStyleHint(QtGui.QFont.StyleHint.SansSerif)
        self.setFont(font)

    def set_lines(self, lines: dict[str, list[str]]) -> None:
        if lines != self._lines:
            self._lines = lines
            self.update()

    def lines(self) -> dict[str, list[str]]:
        return dict(self._lines)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        if not self._lines:
            return
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        fm = QtGui.QFontMetrics(self.font())
        step = fm.lineSpacing()
        w, h, m = self.width(), self.height(), self.MARGIN
        outline = QtGui.QPen(QtGui.QColor(0, 0, 0, 220), 3.0)
        outline.setJoinStyle(QtCore.Qt.PenJoinStyle.RoundJoin)
        fill = QtGui.QColor(240, 240, 240)
        warn = QtGui.QColor(255, 170, 60)
        for corner, lines in self._lines.items():
            n = len(lines)
            for i, text in enumerate(lines):
                tw = fm.horizontalAdvance(text)
                x = m if corner in ("tl", "bl") else w - m - tw
                top = m if corner in ("tl", "tr") else h - m - n * step
                y = top + i * step + fm.ascent()
                path = QtGui.QPainterPath()
                path.addText(QtCore.QPointF(x, y), self.font(), text)
                p.strokePath(path, outline)
                color = warn if text.startswith("LOSSY") or text == NOT_FOR_DIAGNOSIS else fill
                p.fillPath(path, color)
        p.end()
