"""Measurement overlay: pyqtgraph ROIs in image pixel coordinates, kept per image key.

The ROIs are children of the view's image group, so they follow zoom, pan, rotation and flips
and stay attached to the anatomy. Values come from :mod:`app.viewer.measure`; what is remembered
per image lives in the display model's :class:`app.viewer.state.MeasurementStore`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.viewer.measure import Measurement, Point, RegionReader, evaluate
from app.viewer.state import MeasurementStore
from ml.imaging.image import PixelSpacing

PEN = pg.mkPen((0, 230, 255), width=2)
SELECTED_PEN = pg.mkPen((255, 190, 0), width=3)
LABEL_COLOR = (255, 255, 160)
Z_MEASUREMENTS = 100


@dataclass
class MeasureContext:
    """What measuring needs from the displayed image."""

    shape: tuple[int, int]  # rows, cols
    read: RegionReader  # modality values of a region of the current frame
    spacing: PixelSpacing | None
    unit: str = ""


class PolylineROI(pg.ROI):
    """Two (distance) or three (angle) freely movable points joined by straight lines."""

    def __init__(self, points: list[Point], **args):
        super().__init__([0, 0], [1, 1], rotatable=False, resizable=False, **args)
        for p in points:
            self.addFreeHandle(p)

    def points(self) -> list[Point]:
        out = []
        for h in self.handles:
            q = self.mapToParent(h["item"].pos())
            out.append((q.x(), q.y()))
        return out

    def _local_points(self) -> list[QtCore.QPointF]:
        return [h["item"].pos() for h in self.handles]

    def paint(self, p, *args):
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, self._antialias)
        p.setPen(self.currentPen)
        p.drawPolyline(QtGui.QPolygonF(self._local_points()))

    def shape(self):
        path = QtGui.QPainterPath()
        pts = self._local_points()
        if len(pts) < 2:
            return path
        path.moveTo(pts[0])
        for q in pts[1:]:
            path.lineTo(q)
        px = self.pixelLength(pg.Point(1, 0)) or 1.0
        stroker = QtGui.QPainterPathStroker()
        stroker.setWidth(8 * px)
        return stroker.createStroke(path)

    def boundingRect(self):
        return self.shape().boundingRect()


def _add_corner_handles(roi: pg.ROI) -> None:
    for corner in ((0, 0), (1, 0), (0, 1), (1, 1)):
        roi.addScaleHandle(list(corner), [1 - corner[0], 1 - corner[1]])


class RectROI(pg.ROI):
    """Axis-aligned (in image coordinates) rectangle with a scale handle on each corner."""

    def __init__(self, pos, size, **args):
        super().__init__(pos, size, rotatable=False, **args)
        _add_corner_handles(self)


class EllipseROI(pg.EllipseROI):
    """Axis-aligned ellipse with a scale handle on each corner of its bounding box (no rotation)."""

    def _addHandles(self):
        _add_corner_handles(self)


def _away_from_arms(points: list[Point]) -> tuple[float, float]:
    """Label anchor that puts the angle's text on the far side of the vertex from its arms."""
    (ax, ay), (bx, by), (cx, cy) = points[:3]
    ux, uy, vx, vy = ax - bx, ay - by, cx - bx, cy - by
    nu, nv = math.hypot(ux, uy) or 1.0, math.hypot(vx, vy) or 1.0
    dx, dy = ux / nu + vx / nv, uy / nu + vy / nv
    n = math.hypot(dx, dy)
    if n < 1e-6:  # straight angle: put the text above
        return 0.5, 1.0
    return 0.5 + 0.5 * dx / n, 0.5 + 0.5 * dy / n


@dataclass
class _Item:
    m: Measurement
    roi: pg.ROI
    label: pg.TextItem
    # mouse buttons and hover acceptance of its graphics, kept while it is being drawn
    saved_input: dict[int, tuple[QtCore.Qt.MouseButton, bool]] = field(default_factory=dict)
    anchor: Point = (0.0, 0.0)  # where the label belongs (image coordinates)


class MeasurementLayer(QtCore.QObject):
    """Creates, edits, selects, deletes and remembers measurements for the displayed image."""

    changed = QtCore.Signal()

    def __init__(
        self,
        parent_item: QtWidgets.QGraphicsItem,
        context: Callable[[], MeasureContext | None],
        store: MeasurementStore,
        bounds: Callable[[], QtCore.QRectF | None] | None = None,
    ):
        super().__init__()
        self._bounds = bounds  # the visible area in scene coordinates: labels are kept inside it
        self._parent = parent_item
        self._context = context
        self._store = store
        self._items: list[_Item] = []
        self._selected: _Item | None = None
        self._drawing: _Item | None = None
        self._visible = True

    # ------------------------------------------------------------------ per-image storage
    def switch(self, key: str | None) -> None:
        """Show the measurements remembered for ``key`` (none when key is None or new)."""
        self.cancel()
        for item in self._items:
            self._remove_graphics(item)
        self._items, self._selected = [], None
        for m in self._store.switch(key):
            self._items.append(self._make_item(m))
        self.refresh()

    def forget(self, keys: list[str] | None = None) -> None:
        """Drop remembered measurements (all of them when ``keys`` is None), e.g. when a study closes."""
        self._store.forget(keys)

    def _save(self) -> None:
        self._store.save([i.m for i in self._items])

    # ------------------------------------------------------------------ queries
    def measurements(self) -> list[Measurement]:
        return [i.m for i in self._items]

    def selected(self) -> Measurement | None:
        return self._selected.m if self._selected else None

    def drawing(self) -> str | None:
        return self._drawing.m.kind if self._drawing else None

    def graphics_items(self) -> list[QtWidgets.QGraphicsItem]:
        return [g for i in self._items for g in (i.roi, i.label)]

    # ------------------------------------------------------------------ interactive creation
    def begin(self, kind: str, p: Point) -> None:
        self.cancel()
        m = Measurement(kind, [p, p])
        item = self._make_item(m)
        self._drawing = item
        self._set_interactive(item, False)
        self._items.append(item)
        self._select(item)

    def drag_to(self, p: Point) -> None:
        """Move the point being placed (the last one)."""
        if self._drawing is None:
            return
        m = self._drawing.m
        m.points[-1] = p
        self._apply_points(self._drawing)

    def add_point(self, p: Point) -> bool:
        """Angle tool: fix the current point at ``p`` and start the next. True when the angle is complete."""
        item = self._drawing
        if item is None:
            return False
        item.m.points[-1] = p
        if item.m.kind == "angle" and len(item.m.points) < 3:
            item.m.points.append(p)
            item.roi.addFreeHandle(p)
            self._set_interactive(item, False)
            self._apply_points(item)
            return False
        self.finish()
        return True

    def finish(self) -> Measurement | None:
        """End the measurement being drawn; a degenerate one (under 1 pixel) is discarded."""
        item, self._drawing = self._drawing, None
        if item is None:
            return None
        self._set_interactive(item, True)
        (xa, ya), (xb, yb) = item.m.points[0], item.m.points[-1]
        if item.m.kind in ("rect", "ellipse"):
            degenerate = abs(xb - xa) < 1 or abs(yb - ya) < 1
        else:
            degenerate = all(math.dist(item.m.points[0], q) < 1 for q in item.m.points[1:])
        if degenerate:
            self._discard(item)
            return None
        self._apply_points(item)
        self._save()
        self.changed.emit()
        return item.m

    def cancel(self) -> None:
        if self._drawing is not None:
            item, self._drawing = self._drawing, None
            self._discard(item)

    # ------------------------------------------------------------------ editing
    def delete_selected(self) -> bool:
        item = self._selected
        if item is None:
            return False
        if item is self._drawing:
            self._drawing = None
        self._discard(item)
        self._save()
        self.changed.emit()
        return True

    def clear(self) -> None:
        self.cancel()
        for item in self._items:
            self._remove_graphics(item)
        self._items, self._selected = [], None
        self._save()
        self.changed.emit()

    def select_none(self) -> None:
        self._select(None)

    def set_visible(self, visible: bool) -> None:
        self._visible = visible
        for g in self.graphics_items():
            g.setVisible(visible)

    def refresh(self) -> None:
        """Recompute every value (new frame, new image) and redraw labels."""
        for item in self._items:
            self._update_value(item)
        self.changed.emit()

    # ------------------------------------------------------------------ internals
    def _make_item(self, m: Measurement) -> _Item:
        if m.kind in ("distance", "angle"):
            roi: pg.ROI = PolylineROI(list(m.points), pen=PEN)
        else:
            (xa, ya), (xb, yb) = m.points[:2]
            pos, size = (min(xa, xb), min(ya, yb)), (max(abs(xb - xa), 1e-3), max(abs(yb - ya), 1e-3))
            roi = (RectROI if m.kind == "rect" else EllipseROI)(pos, size, pen=PEN)
        roi.setParentItem(self._parent)
        roi.setZValue(Z_MEASUREMENTS)
        roi.setAcceptedMouseButtons(QtCore.Qt.MouseButton.LeftButton)
        label = pg.TextItem("", color=LABEL_COLOR, anchor=(0, 0), fill=pg.mkBrush(0, 0, 0, 170))
        label.setParentItem(self._parent)
        label.setZValue(Z_MEASUREMENTS + 1)
        item = _Item(m, roi, label)
        roi.sigRegionChanged.connect(lambda _r, it=item: self._on_roi_changed(it))
        roi.sigRegionChangeFinished.connect(lambda _r: (self._save(), self.changed.emit()))
        roi.sigClicked.connect(lambda _r, _ev, it=item: self._select(it))
        roi.setVisible(self._visible)
        label.setVisible(self._visible)
        self._update_value(item)
        return item

    @staticmethod
    def _set_interactive(item: _Item, on: bool) -> None:
        """While a measurement is drawn its ROI and handles ignore the mouse: the point being placed
        follows the cursor, so the next click would otherwise land on the ROI instead of the tool."""
        for g in [item.roi, *(h["item"] for h in item.roi.handles)]:
            saved = item.saved_input.pop(id(g), None) if on else None
            if on and saved is not None:
                g.setAcceptedMouseButtons(saved[0])
                g.setAcceptHoverEvents(saved[1])
            elif not on:
                item.saved_input.setdefault(id(g), (g.acceptedMouseButtons(), g.acceptHoverEvents()))
                g.setAcceptedMouseButtons(QtCore.Qt.MouseButton.NoButton)
                g.setAcceptHoverEvents(False)

    def _apply_points(self, item: _Item) -> None:
        """Move the ROI to the measurement's points (while drawing)."""
        roi, pts = item.roi, item.m.points
        roi.blockSignals(True)
        try:
            if isinstance(roi, PolylineROI):
                for h, p in zip(roi.handles, pts, strict=False):
                    roi.movePoint(h["item"], QtCore.QPointF(*p), finish=False)
            else:
                (xa, ya), (xb, yb) = pts[:2]
                roi.setPos(min(xa, xb), min(ya, yb), update=False, finish=False)
                roi.setSize((max(abs(xb - xa), 1e-3), max(abs(yb - ya), 1e-3)), update=True, finish=False)
        finally:
            roi.blockSignals(False)
        self._update_value(item)

    def _on_roi_changed(self, item: _Item) -> None:
        if item is self._drawing:
            return
        roi = item.roi
        if isinstance(roi, PolylineROI):
            item.m.points = roi.points()
        else:
            pos, size = roi.pos(), roi.size()
            item.m.points = [(pos.x(), pos.y()), (pos.x() + size.x(), pos.y() + size.y())]
        self._update_value(item)
        self.changed.emit()

    def _update_value(self, item: _Item) -> None:
        ctx = self._context()
        m = item.m
        if ctx is not None:
            evaluate(m, ctx.shape, ctx.read, ctx.spacing, ctx.unit)
        item.label.setText(m.value)
        if m.kind == "distance":
            anchor = m.points[-1]
        elif m.kind == "angle" and len(m.points) >= 3:
            anchor = m.points[1]
            item.label.setAnchor(_away_from_arms(m.points))
        else:
            anchor = (max(p[0] for p in m.points[:2]), max(p[1] for p in m.points[:2]))
        item.anchor = anchor
        self._keep_inside(item)

    def keep_labels_inside(self) -> None:
        """Move labels that would be cut by the view's edge back inside (after zoom, pan, resize)."""
        for item in self._items:
            self._keep_inside(item)

    def _keep_inside(self, item: _Item) -> None:
        label = item.label
        label.setPos(*item.anchor)
        view = self._bounds() if self._bounds is not None else None
        if view is None or view.isEmpty() or label.scene() is None:
            return
        anchor = self._parent.mapToScene(QtCore.QPointF(*item.anchor))
        if not view.contains(anchor):
            return  # the measured point is off screen: its label goes with it
        label.updateTransform(force=True)
        rect, view = label.sceneBoundingRect(), view.adjusted(3, 3, -3, -3)
        dx = max(view.left() - rect.left(), 0.0) + min(view.right() - rect.right(), 0.0)
        dy = max(view.top() - rect.top(), 0.0) + min(view.bottom() - rect.bottom(), 0.0)
        if dx or dy:
            label.setPos(self._parent.mapFromScene(label.scenePos() + QtCore.QPointF(dx, dy)))

    def _select(self, item: _Item | None) -> None:
        if self._selected is not None and self._selected in self._items:
            self._selected.roi.setPen(PEN)
        self._selected = item
        if item is not None:
            item.roi.setPen(SELECTED_PEN)

    def _discard(self, item: _Item) -> None:
        if item in self._items:
            self._items.remove(item)
        if self._selected is item:
            self._selected = None
        self._remove_graphics(item)

    @staticmethod
    def _remove_graphics(item: _Item) -> None:
        for g in (item.roi, item.label):
            scene = g.scene()
            if scene is not None:
                scene.removeItem(g)
            g.setParentItem(None)
