"""The probabilities table: one row per label, sorted, with a bar, a threshold tick and positives marked.

:class:`ProbabilityModel` holds one :class:`ml.inference.predictor.Prediction` as rows
(:class:`ResultRow`, sorted by decreasing probability); :class:`ProbabilityDelegate` paints the
probability column as a bar with a tick at the label's decision threshold; positives are bold and
tinted; labels without an operating point (``Prediction.uncalibrated``) are greyed, marked
"uncalibrated" and listed last. :class:`ResultsTable` is the view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
)

BAR_COLOUR = QColor(70, 130, 200)
POSITIVE_COLOUR = QColor(215, 95, 40)
POSITIVE_BACKGROUND = QColor(255, 236, 220)
TICK_COLOUR = QColor(30, 30, 30)
UNCALIBRATED_COLOUR = QColor(150, 150, 150)
ROW_ROLE = Qt.ItemDataRole.UserRole + 1  # the ResultRow of a row

_Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class ResultRow:
    label: str
    probability: float
    threshold: float | None  # multi-label decision threshold; None for multi-class (or uncalibrated)
    positive: bool
    uncalibrated: bool = False  # no operating point: never positive, not comparable with the others


def rows_of(prediction: Any) -> list[ResultRow]:
    """Rows of a Prediction, by decreasing probability (calibrated order for TorchXRayVision),
    uncalibrated labels last."""
    labels, probs = prediction.labels, prediction.probabilities
    thresholds = prediction.thresholds or [None] * len(labels)
    key = prediction.calibrated or probs
    flags = list(getattr(prediction, "uncalibrated", None) or [False] * len(labels))
    positives = set(prediction.positives)

    def order(i: int) -> tuple[bool, float]:
        k = probs[i] if flags[i] or math.isnan(key[i]) else key[i]
        return flags[i], -float(k)

    return [
        ResultRow(labels[i], float(probs[i]), thresholds[i], labels[i] in positives and not flags[i], flags[i])
        for i in sorted(range(len(labels)), key=order)
    ]


def percent(p: float) -> str:
    value = 100.0 * p
    if 0 < value < 0.1:
        return "<0.1%"
    return f"{value:.1f}%"


class ProbabilityModel(QAbstractTableModel):
    HEADERS = ("Label", "Probability")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[ResultRow] = []
        self.prediction: Any = None

    def set_prediction(self, prediction: Any) -> None:
        self.beginResetModel()
        self.prediction = prediction
        self._rows = rows_of(prediction) if prediction is not None else []
        self.endResetModel()

    def rows(self) -> list[ResultRow]:
        return list(self._rows)

    def rowCount(self, parent: _Index | None = None) -> int:  # noqa: N802 - Qt override
        return 0 if parent is not None and parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index | None = None) -> int:  # noqa: N802
        return 0 if parent is not None and parent.isValid() else 2

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        if role == ROW_ROLE:
            return row
        if role == Qt.ItemDataRole.DisplayRole:
            if index.column() == 0:
                return f"{row.label} (uncalibrated)" if row.uncalibrated else row.label
            return percent(row.probability)
        if role == Qt.ItemDataRole.ToolTipRole:
            if row.uncalibrated:
                return (f"{row.label}: {percent(row.probability)}, uncalibrated: the model has no operating "
                        "point for this label, so it is never called positive")  # fmt: skip
            tip = f"{row.label}: {percent(row.probability)}"
            if row.threshold is not None:
                tip += f" (threshold {percent(row.threshold)})"
            return tip + (" — above threshold" if row.positive and row.threshold is not None else "")
        if role == Qt.ItemDataRole.FontRole and row.positive:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.BackgroundRole and row.positive:
            return QBrush(POSITIVE_BACKGROUND)
        if role == Qt.ItemDataRole.ForegroundRole and row.uncalibrated:
            return QBrush(UNCALIBRATED_COLOUR)
        if role == Qt.ItemDataRole.ForegroundRole and row.positive:
            return QBrush(QColor(20, 20, 20))
        return None


class ProbabilityDelegate(QStyledItemDelegate):
    """Paints a probability as a bar with its percentage, and a tick at the decision threshold."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        row: ResultRow | None = index.data(ROW_ROLE)
        if row is None or index.column() != 1:
            super().paint(painter, option, index)
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(option.rect, option.palette.highlight())
        elif row.positive:
            painter.fillRect(option.rect, POSITIVE_BACKGROUND)
        rect = QRectF(option.rect).adjusted(4, 4, -4, -4)
        painter.setPen(QPen(QColor(180, 180, 180), 1))
        painter.setBrush(QColor(245, 245, 245))
        painter.drawRect(rect)
        bar = QRectF(
            rect.left(), rect.top(), rect.width() * max(0.0, min(1.0, row.probability)), rect.height()
        )
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(UNCALIBRATED_COLOUR if row.uncalibrated else POSITIVE_COLOUR if row.positive else BAR_COLOUR)
        painter.drawRect(bar)
        if row.threshold is not None:
            x = rect.left() + rect.width() * max(0.0, min(1.0, row.threshold))
            painter.setPen(QPen(TICK_COLOUR, 2))
            painter.drawLine(int(x), int(rect.top()) - 3, int(x), int(rect.bottom()) + 3)
        font = QFont(option.font)
        font.setBold(row.positive)
        painter.setFont(font)
        painter.setPen(UNCALIBRATED_COLOUR if row.uncalibrated else QColor(20, 20, 20))
        painter.drawText(
            rect.adjusted(4, 0, -4, 0),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
            percent(row.probability),
        )
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: _Index) -> QSize:  # noqa: N802
        hint = super().sizeHint(option, index)
        return QSize(max(hint.width(), 140), max(hint.height(), 24))


class ResultsTable(QTableView):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setObjectName("resultsTable")
        self.probabilities = ProbabilityModel(self)
        self.setModel(self.probabilities)
        self.delegate = ProbabilityDelegate(self)
        self.setItemDelegateForColumn(1, self.delegate)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(26)
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setShowGrid(False)
        self.setAlternatingRowColors(False)

    def set_prediction(self, prediction: Any) -> None:
        self.probabilities.set_prediction(prediction)

    def rows(self) -> list[ResultRow]:
        return self.probabilities.rows()


__all__ = ["ProbabilityDelegate", "ProbabilityModel", "ResultRow", "ResultsTable", "percent", "rows_of"]
