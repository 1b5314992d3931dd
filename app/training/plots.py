"""Plots and heatmap tables of the training wizard (pyqtgraph wrapped here, once).

* :class:`CurvesWidget`: live training curves (train/validation loss; validation accuracy and AUROC);
* :class:`RocPlot`: one ROC curve per class with the chance diagonal;
* :class:`ReliabilityPlot`: the reliability diagram before/after temperature scaling;
* :class:`HeatmapTable`: a table whose cells are coloured by value (confusion matrix, per-class
  precision/recall/F1), readable without a colour legend because every cell shows its number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies)
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def _plot(title: str, left: str, bottom: str) -> pg.PlotWidget:
    w = pg.PlotWidget(background="w")
    w.setTitle(title, color="#222", size="10pt")
    item = w.getPlotItem()
    item.showGrid(x=True, y=True, alpha=0.2)
    item.setLabel("left", left, color="#333")
    item.setLabel("bottom", bottom, color="#333")
    for axis in ("left", "bottom"):
        item.getAxis(axis).setPen(pg.mkPen("#666"))
        item.getAxis(axis).setTextPen(pg.mkPen("#333"))
        item.getAxis(axis).enableAutoSIPrefix(False)
    item.addLegend(offset=(-10, 10), labelTextColor="#222", brush=pg.mkBrush(255, 255, 255, 200))
    w.setMinimumHeight(160)
    return w


class CurvesWidget(QWidget):
    """Loss and validation-metric curves, updated as epoch and batch events arrive."""

    def __init__(self, parent: QWidget | None = None) -> None:
        from PySide6.QtWidgets import QHBoxLayout

        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.loss_plot = _plot("Loss", "loss", "epoch")
        self.metric_plot = _plot("Validation", "score", "epoch")
        self.metric_plot.setYRange(0.0, 1.0)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.metric_plot)

        def curve(plot: pg.PlotWidget, name: str, colour: str, symbol: str | None = "o", width: float = 2,
                  style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> pg.PlotDataItem:  # fmt: skip
            return plot.plot(
                [], [], name=name, pen=pg.mkPen(colour, width=width, style=style), symbol=symbol,
                symbolSize=6, symbolBrush=colour, symbolPen=colour,
            )  # fmt: skip

        self.batch_curve = curve(self.loss_plot, "train (running)", "#9bbcd6", None, 1)
        self.curves = {
            "train_loss": curve(self.loss_plot, "train", PALETTE[0]),
            "val_loss": curve(self.loss_plot, "validation", PALETTE[1]),
            "val_accuracy": curve(self.metric_plot, "accuracy", PALETTE[2]),
            "val_auroc": curve(self.metric_plot, "AUROC", PALETTE[3]),
        }
        self.clear()

    def clear(self) -> None:
        self.epochs: dict[int, dict[str, float | None]] = {}
        self.batches: list[tuple[float, float]] = []
        self._redraw()

    def add_batch(self, epoch: int, batch: int, batches: int, loss: float | None) -> None:
        if loss is None or batches <= 0:
            return
        x = epoch - 1 + batch / batches
        self.batches = [p for p in self.batches if p[0] < x] + [(x, float(loss))]
        xs: list[float] = []
        ys: list[float] = []
        for px, py in self.batches:  # the running mean restarts every epoch: one line per epoch
            if xs and math.ceil(px) != math.ceil(xs[-1]):
                xs.append(xs[-1])
                ys.append(float("nan"))
            xs.append(px)
            ys.append(py)
        self.batch_curve.setData(xs, ys, connect="finite")

    def add_epoch(self, event: dict) -> None:
        epoch = int(event.get("epoch") or 0)
        self.epochs[epoch] = {key: event.get(key) for key in self.curves}
        self._redraw()

    def points(self, key: str) -> list[tuple[float, float]]:
        """(epoch, value) of one curve (train_loss, val_loss, val_accuracy, val_auroc)."""
        return [(float(e), float(v[key])) for e, v in sorted(self.epochs.items()) if v.get(key) is not None]

    def _redraw(self) -> None:
        for key, item in self.curves.items():
            pts = self.points(key)
            item.setData([p[0] for p in pts], [p[1] for p in pts])
        if not self.epochs:
            self.batch_curve.setData([], [])


class _UnitSquarePlot(pg.PlotWidget):
    """A white, fixed (no mouse) plot of values in [0, 1] x [0, 1] with a legend: the ROC and
    reliability diagrams of the evaluation page."""

    def __init__(self, title: str, left: str, bottom: str, legend_offset: tuple[int, int],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent, background="w")
        item = self.getPlotItem()
        item.setTitle(title, color="#222", size="10pt")
        item.setLabel("left", left, color="#333")
        item.setLabel("bottom", bottom, color="#333")
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        for axis in ("left", "bottom"):
            item.getAxis(axis).setPen(pg.mkPen("#666"))
            item.getAxis(axis).setTextPen(pg.mkPen("#333"))
        self.legend = item.addLegend(
            offset=legend_offset, labelTextColor="#222", brush=pg.mkBrush(255, 255, 255, 210)
        )
        self.setMinimumSize(260, 240)
        self.curves: dict[str, pg.PlotDataItem] = {}


class RocPlot(_UnitSquarePlot):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("ROC curves (test split)", "sensitivity (true-positive rate)",
                         "1 − specificity (false-positive rate)", (-10, -10), parent)

    def set_curves(self, roc: dict, auroc: dict[str, float | None] | None = None) -> None:
        self.clear()
        self.legend.clear()
        self.plot([0, 1], [0, 1], pen=pg.mkPen("#999", width=1, style=Qt.PenStyle.DashLine))
        self.curves = {}
        for i, (label, pts) in enumerate((roc or {}).items()):
            if not pts:
                continue
            a = (auroc or {}).get(label)
            name = f"{label} (AUROC {a:.2f})" if a is not None else label
            self.curves[label] = self.plot(
                pts["fpr"], pts["tpr"], name=name, pen=pg.mkPen(PALETTE[i % len(PALETTE)], width=2)
            )
        self.getPlotItem().vb.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)


class ReliabilityPlot(_UnitSquarePlot):
    """Reliability diagram: observed frequency against mean predicted probability per bin, with the
    diagonal of perfect calibration; one curve before and one after temperature scaling."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Reliability", "observed frequency", "mean predicted probability", (10, 10), parent)

    def set_curves(self, title: str, curves: dict[str, tuple[list[float], list[float]]]) -> None:
        self.clear()
        self.legend.clear()
        self.getPlotItem().setTitle(title, color="#222", size="10pt")
        self.plot([0, 1], [0, 1], pen=pg.mkPen("#999", width=1, style=Qt.PenStyle.DashLine))
        self.curves = {}
        for i, (name, (x, y)) in enumerate(curves.items()):
            colour = PALETTE[(i + 1) % len(PALETTE)]
            self.curves[name] = self.plot(x, y, name=name, pen=pg.mkPen(colour, width=2), symbol="o",
                                          symbolSize=6, symbolBrush=colour, symbolPen=colour)  # fmt: skip
        self.getPlotItem().vb.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)


def _blend(value: float, hue: QColor) -> QColor:
    """White (0) to ``hue`` (1)."""
    v = min(max(value, 0.0), 1.0)
    return QColor(
        round(255 + (hue.red() - 255) * v),
        round(255 + (hue.green() - 255) * v),
        round(255 + (hue.blue() - 255) * v),
    )


class HeatmapTable(QTableWidget):
    """A read-only table of numbers whose cell colour follows the value."""

    def __init__(self, hue: str = "#1f5fa8", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hue = QColor(hue)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)

    def set_matrix(
        self,
        values: Sequence[Sequence[float | None]],
        rows: Sequence[str],
        cols: Sequence[str],
        fmt: str = "{:.0f}",
        vmax: float | None = None,
        row_norm: bool = False,
    ) -> None:
        """Fill the table; ``row_norm`` colours each cell by its share of the row (confusion matrices)."""
        self.clear()
        self.setRowCount(len(rows))
        self.setColumnCount(len(cols))
        self.setVerticalHeaderLabels(list(rows))
        self.setHorizontalHeaderLabels(list(cols))
        finite = [v for r in values for v in r if v is not None]
        top = vmax if vmax is not None else (max(finite) if finite else 1.0) or 1.0
        for i, row in enumerate(values):
            total = sum(v for v in row if v is not None) if row_norm else 0
            for j, v in enumerate(row):
                item = QTableWidgetItem("–" if v is None else fmt.format(v))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if v is not None:
                    level = (v / total if total else 0.0) if row_norm else v / top
                    bg = _blend(level, self.hue)
                    item.setBackground(bg)
                    item.setForeground(QColor("white") if level > 0.55 else QColor("#111"))
                self.setItem(i, j, item)

    def values(self) -> list[list[str]]:
        return [[self.item(i, j).text() for j in range(self.columnCount())] for i in range(self.rowCount())]
