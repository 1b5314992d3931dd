"""Issue 10 item 8, the viewer-side smalls: the error dialog's bullets, measurement labels inside
the view, the heatmap legend, the tool bar."""

from __future__ import annotations

import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.dialogs import format_problems, show_message

LONG = "1.2.840.113619.2.55.3.604688119.969.1268071029.320.1.2.840.113619.2.55.3.6046881.dcm"


def laid_out_lines(label: QtWidgets.QLabel) -> list[str]:
    """The lines a word-wrapping label shows at its width (Qt's own text layout)."""
    out = []
    for paragraph in label.text().split("\n"):
        layout = QtGui.QTextLayout(paragraph, label.font())
        option = QtGui.QTextOption()
        option.setWrapMode(QtGui.QTextOption.WrapMode.WordWrap)
        layout.setTextOption(option)
        layout.beginLayout()
        while True:
            line = layout.createLine()
            if not line.isValid():
                break
            line.setLineWidth(label.width())
            out.append(paragraph[line.textStart() : line.textStart() + line.textLength()])
        layout.endLayout()
    return out


def test_a_bullet_is_never_alone_on_its_line(qtbot):
    details = format_problems([(LONG, f"{LONG} is damaged and cannot be read as DICOM."), ("b", "b.png is empty.")])
    box = show_message(None, "CXR Studio", "2 files could not be opened", details)
    qtbot.addWidget(box)
    qtbot.waitExposed(box)
    label = next(w for w in box.findChildren(QtWidgets.QLabel) if "damaged" in w.text())
    lines = laid_out_lines(label)
    assert len(lines) >= 2
    assert all(line.strip() not in ("•", "") for line in lines), lines
    box.close()
