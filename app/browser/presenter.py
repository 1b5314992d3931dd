"""The study browser's state and rules, Qt-free (tested over a mock view, no display needed).

The presenter owns the :class:`ml.imaging.index.StudyIndex` (duplicates are dropped there) and a
plain-data copy of the tree the view shows: patient -> study -> series (-> instance) rows. It
decides where every new row goes (its sorted position among the rows *already shown*, so rows
arriving in batches never land past the end of their parent), what each row says, which
thumbnail it shows and what the caption reads. The view only draws rows and forwards intent
(a row expanded, collapsed or selected) through a small protocol:

    view.insert_row(parent_key | None, position, key)   position is always 0..len(siblings)
    view.set_row(key, text, tooltip)
    view.expand_row(key)
    view.show_thumbnail(key, path)      the thumbnail of ``path`` (a placeholder until it exists)
    view.show_placeholder(key, image)   an empty frame (image=True) or "no image"
    view.clear_rows()
    view.set_caption(text)

A series with one file is one row; a series with several files lists them as children.
Thumbnails are asked for as series appear, and for instances when their series is expanded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from app.browser.texts import (
    caption_text,
    instance_text,
    patient_text,
    series_text,
    study_text,
    study_tooltip,
)
from ml.imaging.index import InstanceEntry, PatientEntry, SeriesEntry, StudyEntry, StudyIndex

Entry = PatientEntry | StudyEntry | SeriesEntry | InstanceEntry


class BrowserView(Protocol):
    def insert_row(self, parent: str | None, position: int, key: str) -> None: ...
    def set_row(self, key: str, text: str, tooltip: str) -> None: ...
    def expand_row(self, key: str) -> None: ...
    def show_thumbnail(self, key: str, path: str) -> None: ...
    def show_placeholder(self, key: str, image: bool) -> None: ...
    def clear_rows(self) -> None: ...
    def set_caption(self, text: str) -> None: ...


@dataclass(eq=False)
class Row:
    """One row of the tree as plain data."""

    key: str
    entry: Entry
    parent: Row | None
    children: list[Row] = field(default_factory=list)
    text: str = ""
    tooltip: str = ""
    thumbnail: str | None = None  # path of the image whose thumbnail it shows; None: none asked for
    expanded: bool = False


def insert_position(order: list, shown: list[Row], obj: object) -> int:
    """Where ``obj`` goes among the ``shown`` sibling rows, given the full sorted ``order`` (the
    index's list): the number of shown rows whose entry comes before it. Always 0..len(shown)."""
    shown_ids = {id(r.entry) for r in shown}
    position = 0
    for x in order:
        if x is obj:
            break
        if id(x) in shown_ids:
            position += 1
    return min(position, len(shown))


def series_image(series: SeriesEntry) -> InstanceEntry | None:
    return next((i for i in series.instances if i.is_image), None)


class BrowserPresenter:
    def __init__(self, view: BrowserView):
        self.view = view
        self.index = StudyIndex()
        self.roots: list[Row] = []
        self._rows: dict[str, Row] = {}

    # -- keys ----------------------------------------------------------------------------------
    @staticmethod
    def keys(patient: PatientEntry, study: StudyEntry, series: SeriesEntry) -> tuple[str, str, str]:
        return f"p|{patient.key}", f"s|{patient.key}|{study.uid}", f"se|{patient.key}|{study.uid}|{series.uid}"

    def row(self, key: str) -> Row | None:
        return self._rows.get(key)

    # -- filling -------------------------------------------------------------------------------
    def add_instances(self, entries: list[InstanceEntry]) -> list[InstanceEntry]:
        """Add entries (duplicates are ignored); returns the ones that were new."""
        added = [e for e in entries if self.index.add(e)]
        for entry in added:
            self._place(entry)
        if added:
            self.view.set_caption(caption_text(self.index))
        return added

    def add_errors(self, errors: list[tuple[str, str]]) -> None:
        known = set(self.index.errors)
        for error in errors:
            if error not in known:
                known.add(error)
                self.index.errors.append(error)
        self.view.set_caption(caption_text(self.index))

    def clear(self) -> None:
        self.index = StudyIndex()
        self.roots = []
        self._rows.clear()
        self.view.clear_rows()
        self.view.set_caption(caption_text(self.index))

    def caption(self) -> str:
        return caption_text(self.index)

    def _child(self, parent: Row | None, key: str, order: list, obj: Entry) -> tuple[Row, bool]:
        row = self._rows.get(key)
        if row is not None:
            return row, False
        siblings = self.roots if parent is None else parent.children
        position = insert_position(order, siblings, obj)
        row = Row(key, obj, parent)
        siblings.insert(position, row)
        self._rows[key] = row
        self.view.insert_row(None if parent is None else parent.key, position, key)
        return row, True

    def _set_text(self, row: Row, text: str, tooltip: str) -> None:
        if (row.text, row.tooltip) != (text, tooltip):
            row.text, row.tooltip = text, tooltip
            self.view.set_row(row.key, text, tooltip)

    def _expand(self, row: Row) -> None:
        row.expanded = True
        self.view.expand_row(row.key)

    def _place(self, entry: InstanceEntry) -> None:
        located = self.index.locate(entry)
        if located is None:
            return
        patient, study, series = located
        pkey, skey, sekey = self.keys(patient, study, series)
        p_row, new_p = self._child(None, pkey, self.index.patients, patient)
        self._set_text(p_row, patient_text(patient), "Patient")
        s_row, new_s = self._child(p_row, skey, patient.studies, study)
        self._set_text(s_row, study_text(study), study_tooltip(study))
        se_row, new_se = self._child(s_row, sekey, study.series, series)
        self._set_text(se_row, series_text(series), "")
        if new_p:
            self._expand(p_row)
        if new_s:
            self._expand(s_row)
        if new_se:
            self._set_thumbnail(se_row, series_image(series))
        if len(series.instances) > 1:
            if not se_row.children:  # the series just got its second file: list them all
                for inst in series.instances:
                    self._add_instance_row(se_row, inst)
            else:
                self._add_instance_row(se_row, entry)
            first = series_image(series)
            if first is not None and se_row.thumbnail != first.path:
                self._set_thumbnail(se_row, first)

    def _add_instance_row(self, parent: Row, entry: InstanceEntry) -> None:
        series = parent.entry
        assert isinstance(series, SeriesEntry)
        row, new = self._child(parent, f"i|{entry.path}", series.instances, entry)
        self._set_text(row, instance_text(entry), entry.source)
        if new:
            self.view.show_placeholder(row.key, entry.is_image)
            if parent.expanded:
                self._set_thumbnail(row, entry)

    def _set_thumbnail(self, row: Row, entry: InstanceEntry | None) -> None:
        if entry is None:
            row.thumbnail = ""
            self.view.show_placeholder(row.key, False)
            return
        row.thumbnail = entry.path
        self.view.show_thumbnail(row.key, entry.path)

    # -- user intent ---------------------------------------------------------------------------
    def expanded(self, key: str) -> None:
        """The user (or the view) expanded a row: its image rows get their thumbnails now."""
        row = self._rows.get(key)
        if row is None:
            return
        row.expanded = True
        for child in row.children:
            if isinstance(child.entry, InstanceEntry) and child.entry.is_image and not child.thumbnail:
                self._set_thumbnail(child, child.entry)

    def collapsed(self, key: str) -> None:
        row = self._rows.get(key)
        if row is not None:
            row.expanded = False

    # -- selection -----------------------------------------------------------------------------
    def entry_for(self, key: str | None) -> InstanceEntry | None:
        """The instance a row stands for (a series: its first image, else its first file)."""
        row = self._rows.get(key) if key is not None else None
        obj = row.entry if row is not None else None
        if isinstance(obj, InstanceEntry):
            return obj
        if isinstance(obj, SeriesEntry):
            return series_image(obj) or (obj.instances[0] if obj.instances else None)
        return None

    def key_for_path(self, path: str) -> str | None:
        """The row showing ``path``: its instance row, else its series row."""
        key = f"i|{path}"
        if key in self._rows:
            return key
        for entry in self.index.instances():
            if entry.path == path:
                located = self.index.locate(entry)
                if located is not None and self.keys(*located)[2] in self._rows:
                    return self.keys(*located)[2]
                break
        return None

    def texts(self) -> list[str]:
        """Every row's text, depth first."""
        out: list[str] = []

        def walk(row: Row) -> None:
            out.append(row.text)
            for child in row.children:
                walk(child)

        for root in self.roots:
            walk(root)
        return out

    def image_of_result(self, entry: InstanceEntry, reference) -> InstanceEntry | None:  # noqa: ANN001
        """For a results object (SR, Parametric Map; ``reference(path)`` gives the SOP Instance UID of
        the image it belongs to) the open image it belongs to; None for anything else."""
        from app.browser.rules import OVERLAY_CLASSES

        if entry.meta.sop_class_uid not in OVERLAY_CLASSES:
            return None
        uid = reference(entry.path)
        if not uid:
            return None
        return next((e for e in self.index.instances() if e.is_image and e.meta.sop_instance_uid == uid
                     and e.path != entry.path), None)

    # -- anonymised export ---------------------------------------------------------------------
    def export_files(self, key: str | None) -> list[str]:
        """The DICOM files under a row (patient, study, series or one instance), in tree order, for
        "Export anonymised…"; empty when there are none (PNG/JPEG cannot be exported as DICOM)."""
        row = self._rows.get(key) if key is not None else None
        if row is None:
            return []
        entry = row.entry
        if isinstance(entry, InstanceEntry):
            entries = [entry]
        elif isinstance(entry, SeriesEntry):
            entries = list(entry.instances)
        elif isinstance(entry, StudyEntry):
            entries = [i for s in entry.series for i in s.instances]
        else:
            entries = [i for st in entry.studies for s in st.series for i in s.instances]
        return [e.path for e in entries if e.meta.kind == "dicom"]

    def export_name(self, key: str | None) -> str:
        """A default name for the export (the level only: never the patient's name or ID)."""
        level = {"p": "patient", "s": "study", "se": "series", "i": "image"}.get((key or "").split("|")[0], "export")
        return f"anonymised_{level}"
