"""The patient -> study -> series (-> instance) tree with thumbnails.

The panel keeps its own :class:`ml.imaging.index.StudyIndex`; entries arriving from indexing are
added to it (duplicates are dropped there) and the tree mirrors its display order. A series with
one file is one row; a series with several files lists them as children. Thumbnails are asked
for as series appear (and for instances when a series is expanded) and fill in as they finish.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from app.browser.thumbnails import ThumbnailLoader
from ml.imaging.index import InstanceEntry, PatientEntry, SeriesEntry, StudyEntry, StudyIndex

KEY_ROLE = Qt.ItemDataRole.UserRole + 1
ICON_SIZE = 64


def _date(value: str) -> str:
    v = value.strip()
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if len(v) == 8 and v.isdigit() else v


def _position(items: list, obj: object) -> int:
    """Index of ``obj`` by identity (entries are dataclasses: == would compare whole subtrees)."""
    return next(i for i, x in enumerate(items) if x is obj)


def _placeholder(size: int, text: str = "") -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor("#101214"))
    painter = QPainter(pix)
    painter.setPen(QPen(QColor("#3a4048"), 1))
    painter.drawRect(0, 0, size - 1, size - 1)
    if text:
        painter.setPen(QColor("#8a94a0"))
        painter.drawText(pix.rect(), Qt.AlignmentFlag.AlignCenter, text)
    painter.end()
    return QIcon(pix)


def patient_text(p: PatientEntry) -> str:
    parts = [p.name or p.patient_id or "(no name)"]
    if p.patient_id and p.patient_id != p.name:
        parts.append(p.patient_id)
    details = ", ".join(x for x in (p.sex, f"born {_date(p.birth_date)}" if p.birth_date else "") if x)
    return "  ·  ".join(parts) + (f"   ({details})" if details else "")


def study_text(s: StudyEntry) -> str:
    if s.uid.startswith("folder:"):
        return f"Folder {s.description}" if s.description else "Image files"
    date = _date(s.date) or "(no date)"
    return f"{date}  ·  {s.description}" if s.description else date


def series_text(s: SeriesEntry) -> str:
    first = s.instances[0] if s.instances else None
    if first is not None and first.meta.kind != "dicom":
        return f"{s.description}\n{first.meta.kind.upper()} · {first.meta.columns}×{first.meta.rows}"
    n = len(s.instances)
    head = " · ".join(x for x in (s.modality, f"#{s.number}" if s.number is not None else "") if x)
    frames = first.meta.n_frames if first is not None and n == 1 else 1
    count = f"{n} images" if n > 1 else (f"{frames} frames" if frames > 1 else "1 image")
    if first is not None and all(not i.is_image for i in s.instances):
        count = first.meta.sop_class_name or "no image"
    line1 = f"{head}  {s.description}".strip() or "Series"
    return f"{line1}\n{count}"


def instance_text(i: InstanceEntry) -> str:
    name = i.source.replace("\\", "/").rsplit("/", 1)[-1]
    number = f"#{i.meta.instance_number}  " if i.meta.instance_number is not None else ""
    if not i.is_image:
        return f"{number}{i.meta.sop_class_name or 'Non-image object'} (no image)"
    return f"{number}{name}"


class BrowserPanel(QWidget):
    """Shows indexed studies; emits ``instanceSelected(InstanceEntry)`` on selection."""

    instanceSelected = Signal(object)

    def __init__(self, thumbnails: ThumbnailLoader | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("browserPanel")
        self.index = StudyIndex()
        self.thumbnails = thumbnails or ThumbnailLoader(parent=self)
        self.thumbnails.ready.connect(self._thumbnail_ready)
        self.thumbnails.failed.connect(self._thumbnail_failed)
        self.caption = QLabel("Drop DICOM files, folders or ZIPs here")
        self.caption.setObjectName("panelCaption")
        self.caption.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setObjectName("browserTree")
        self.tree.setHeaderHidden(True)
        self.tree.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        self.tree.setIndentation(14)
        self.tree.setAnimated(False)
        self.tree.setUniformRowHeights(False)
        self.tree.currentItemChanged.connect(self._current_changed)
        self.tree.itemExpanded.connect(self._expanded)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.caption)
        layout.addWidget(self.tree)
        self._items: dict[str, QTreeWidgetItem] = {}  # key -> item
        self._objects: dict[str, object] = {}  # key -> entry object
        self._by_path: dict[str, list[QTreeWidgetItem]] = {}  # image path -> items showing it
        self._placeholder = _placeholder(ICON_SIZE)
        self._no_image = _placeholder(ICON_SIZE, "no image")
        self._broken = _placeholder(ICON_SIZE, "error")

    # -- keys --------------------------------------------------------------------------------------
    @staticmethod
    def _keys(patient: PatientEntry, study: StudyEntry, series: SeriesEntry) -> tuple[str, str, str]:
        return f"p|{patient.key}", f"s|{patient.key}|{study.uid}", f"se|{patient.key}|{study.uid}|{series.uid}"

    # -- filling -----------------------------------------------------------------------------------
    def add_instances(self, entries: list[InstanceEntry]) -> list[InstanceEntry]:
        """Add entries (duplicates are ignored); returns the ones that were new."""
        added = [e for e in entries if self.index.add(e)]
        for entry in added:
            self._place(entry)
        if added:
            self._update_caption()
        return added

    def _child(self, parent: QTreeWidgetItem | None, key: str, position: int, obj: object) -> tuple[QTreeWidgetItem, bool]:
        item = self._items.get(key)
        if item is not None:
            return item, False
        item = QTreeWidgetItem()
        item.setData(0, KEY_ROLE, key)
        if parent is None:
            self.tree.insertTopLevelItem(position, item)
        else:
            parent.insertChild(position, item)
        self._items[key] = item
        self._objects[key] = obj
        return item, True

    def _place(self, entry: InstanceEntry) -> None:
        located = self.index.locate(entry)
        if located is None:
            return
        patient, study, series = located
        pkey, skey, sekey = self._keys(patient, study, series)
        p_item, new_p = self._child(None, pkey, _position(self.index.patients, patient), patient)
        p_item.setText(0, patient_text(patient))
        p_item.setToolTip(0, "Patient")
        s_item, new_s = self._child(p_item, skey, _position(patient.studies, study), study)
        s_item.setText(0, study_text(study))
        tip = [x for x in (study.description, f"Accession {study.accession}" if study.accession else "") if x]
        s_item.setToolTip(0, "\n".join(tip) or "Study")
        se_item, new_se = self._child(s_item, sekey, _position(study.series, series), series)
        se_item.setText(0, series_text(series))
        if new_p:
            p_item.setExpanded(True)
        if new_s:
            s_item.setExpanded(True)
        if new_se:
            self._set_icon_for(se_item, self._series_image(series))
        if len(series.instances) > 1:
            if se_item.childCount() == 0:  # the series just got its second file: list both
                for i, inst in enumerate(series.instances):
                    self._add_instance_item(se_item, inst, i)
            else:
                self._add_instance_item(se_item, entry, _position(series.instances, entry))
            first = self._series_image(series)
            if first is not None and se_item.data(0, KEY_ROLE + 1) != first.path:
                self._set_icon_for(se_item, first)

    def _add_instance_item(self, parent: QTreeWidgetItem, entry: InstanceEntry, position: int) -> None:
        item, new = self._child(parent, f"i|{entry.path}", position, entry)
        item.setText(0, instance_text(entry))
        item.setToolTip(0, entry.source)
        if new:
            item.setIcon(0, self._placeholder if entry.is_image else self._no_image)
            if parent.isExpanded():
                self._set_icon_for(item, entry)

    @staticmethod
    def _series_image(series: SeriesEntry) -> InstanceEntry | None:
        return next((i for i in series.instances if i.is_image), None)

    def _set_icon_for(self, item: QTreeWidgetItem, entry: InstanceEntry | None) -> None:
        old = item.data(0, KEY_ROLE + 1)
        if old and item in self._by_path.get(old, []):
            self._by_path[old].remove(item)
        if entry is None:
            item.setIcon(0, self._no_image)
            item.setData(0, KEY_ROLE + 1, "")
            return
        item.setData(0, KEY_ROLE + 1, entry.path)
        self._by_path.setdefault(entry.path, []).append(item)
        cached = self.thumbnails.icon(entry.path)
        item.setIcon(0, cached or self._placeholder)
        if cached is None:
            self.thumbnails.request(entry.path)

    def _thumbnail_ready(self, path: str, icon: QIcon) -> None:
        for item in self._by_path.get(path, []):
            item.setIcon(0, icon)

    def _thumbnail_failed(self, path: str, _message: str) -> None:
        for item in self._by_path.get(path, []):
            item.setIcon(0, self._broken)

    def _expanded(self, item: QTreeWidgetItem) -> None:
        for i in range(item.childCount()):
            child = item.child(i)
            entry = self._objects.get(child.data(0, KEY_ROLE))
            if isinstance(entry, InstanceEntry) and entry.is_image and not child.data(0, KEY_ROLE + 1):
                self._set_icon_for(child, entry)

    def add_errors(self, errors: list[tuple[str, str]]) -> None:
        known = set(self.index.errors)
        self.index.errors.extend(e for e in errors if e not in known)
        self._update_caption()

    def clear(self) -> None:
        self.thumbnails.clear()
        self.tree.clear()
        self.index = StudyIndex()
        self._items.clear()
        self._objects.clear()
        self._by_path.clear()
        self._update_caption()

    def _update_caption(self) -> None:
        n = len(self.index)
        if n == 0 and not self.index.errors:
            self.caption.setText("Drop DICOM files, folders or ZIPs here")
            return
        studies = sum(len(p.studies) for p in self.index.patients)
        text = (f"{len(self.index.patients)} patient{'s' * (len(self.index.patients) != 1)}, "
                f"{studies} stud{'ies' if studies != 1 else 'y'}, {n} file{'s' * (n != 1)}")
        if self.index.errors:
            text += f" · {len(self.index.errors)} not opened"
        self.caption.setText(text)

    # -- selection ---------------------------------------------------------------------------------
    def entry_for(self, item: QTreeWidgetItem | None) -> InstanceEntry | None:
        """The instance an item stands for (a series: its first image, else its first file)."""
        if item is None:
            return None
        obj = self._objects.get(item.data(0, KEY_ROLE))
        if isinstance(obj, InstanceEntry):
            return obj
        if isinstance(obj, SeriesEntry):
            return self._series_image(obj) or (obj.instances[0] if obj.instances else None)
        return None

    def _current_changed(self, current: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        entry = self.entry_for(current)
        if entry is not None:
            self.instanceSelected.emit(entry)

    def select_path(self, path: str) -> bool:
        """Select the row showing ``path`` (its instance row, else its series row)."""
        item = self._items.get(f"i|{path}")
        if item is None:
            for entry in self.index.instances():
                if entry.path == path:
                    located = self.index.locate(entry)
                    if located is not None:
                        item = self._items.get(self._keys(*located)[2])
                    break
        if item is None:
            return False
        self.tree.setCurrentItem(item)
        self.tree.scrollToItem(item)
        return True

    def current_entry(self) -> InstanceEntry | None:
        return self.entry_for(self.tree.currentItem())

    def row_texts(self) -> list[str]:
        """Every row's text, depth first (for tests and accessibility checks)."""
        out: list[str] = []

        def walk(item: QTreeWidgetItem) -> None:
            out.append(item.text(0))
            for i in range(item.childCount()):
                walk(item.child(i))

        for i in range(self.tree.topLevelItemCount()):
            walk(self.tree.topLevelItem(i))
        return out
