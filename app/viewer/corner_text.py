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
        self._cache: dict[str, QtGui.QImage] = {}
        font = QtGui.QFont(self.font())
        font.setBold(True)
        font.setPointSizeF(max(font.pointSizeF(), 9.0))
        font.setStyleHint(QtGui.QFont.StyleHint.SansSerif)
        self.setFont(font)

    def set_lines(self, lines: dict[str, list[str]]) -> None:
        """Show new text; only the corners whose text changed are repainted."""
        if lines == self._lines:
            return
        changed = [k for k in set(lines) | set(self._lines) if lines.get(k) != self._lines.get(k)]
        dirty = QtCore.QRect()
        for corner in changed:
            dirty = dirty.united(self._block_rect(corner))  # where the old text was
            self._cache.pop(corner, None)
        self._lines = lines
        for corner in changed:
            dirty = dirty.united(self._block_rect(corner))  # where the new text goes
        if not dirty.isEmpty():
            self.update(dirty.adjusted(-2, -2, 2, 2))

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        self.update()
        super().resizeEvent(event)

    def _block(self, corner: str) -> QtGui.QImage | None:
        lines = self._lines.get(corner)
        if not lines:
            return None
        if corner not in self._cache:
            self._cache[corner] = self._render_block(lines, corner in ("tr", "br"))
        return self._cache[corner]

    def _block_rect(self, corner: str) -> QtCore.QRect:
        img = self._block(corner)
        if img is None:
            return QtCore.QRect()
        size = img.deviceIndependentSize()
        w, h, m = self.width(), self.height(), self.MARGIN
        if corner in ("top", "bottom"):  # orientation markers: the middle of an edge
            x = (w - size.width()) / 2
        else:
            x = m if corner in ("tl", "bl", "left") else w - m - size.width()
        if corner in ("left", "right"):
            y = (h - size.height()) / 2
        else:
            y = m if corner in ("tl", "tr", "top") else h - m - size.height()
        return QtCore.QRectF(x, y, size.width(), size.height()).toAlignedRect()

    def lines(self) -> dict[str, list[str]]:
        """Corner text by corner ("tl", "tr", "bl", "br") and orientation markers by edge ("left", ...)."""
        return dict(self._lines)

    def _render_block(self, lines: list[str], right_aligned: bool) -> QtGui.QImage:
        """One corner's lines as a transparent image: light text with a dark outline (1 px, 8 ways)."""
        fm = QtGui.QFontMetrics(self.font())
        step, pad = fm.lineSpacing(), 2
        width = max(fm.horizontalAdvance(t) for t in lines) + 2 * pad
        dpr = self.devicePixelRatioF()
        img = QtGui.QImage(
            int(width * dpr),
            int((len(lines) * step + 2 * pad) * dpr),
            QtGui.QImage.Format.Format_ARGB32_Premultiplied,
        )
        img.setDevicePixelRatio(dpr)
        img.fill(QtCore.Qt.GlobalColor.transparent)
        p = QtGui.QPainter(img)
        p.setFont(self.font())
        shadow = QtGui.QColor(0, 0, 0, 230)
        for i, text in enumerate(lines):
            x = (width - pad - fm.horizontalAdvance(text)) if right_aligned else pad
            y = pad + i * step + fm.ascent()
            p.setPen(shadow)
            for dx, dy in ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)):
                p.drawText(QtCore.QPointF(x + dx, y + dy), text)
            warn = text.startswith("LOSSY") or text == NOT_FOR_DIAGNOSIS
            p.setPen(QtGui.QColor(255, 170, 60) if warn else QtGui.QColor(240, 240, 240))
            p.drawText(QtCore.QPointF(x, y), text)
        p.end()
        return img

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        if not self._lines:
            return
        p = QtGui.QPainter(self)
        for corner in self._lines:
            img = self._block(corner)
            if img is not None:
                p.drawImage(self._block_rect(corner).topLeft(), img)
        p.end()
