"""The browser presenter over a mock view: no display, no Qt, no torch.

The mock view keeps its rows as nested lists and, like Qt, refuses an insertion past the end of
its parent (Qt ignores it silently: that is how the browser once lost patients, issue 10).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.browser.presenter import BrowserPresenter, insert_position
from app.browser.texts import opened_message
from ml.imaging.image import ImageMeta
from ml.imaging.index import InstanceEntry

REPO = Path(__file__).resolve().parents[1]


class MockView:
    def __init__(self) -> None:
        self.children: dict[str | None, list[str]] = {None: []}
        self.text: dict[str, str] = {}
        self.tooltip: dict[str, str] = {}
        self.expanded: set[str] = set()
        self.icon: dict[str, str] = {}  # key -> thumbnail path, "<placeholder>" or "<no image>"
        self.caption = ""

    def insert_row(self, parent, position, key):
        siblings = self.children[parent]
        assert 0 <= position <= len(siblings), f"row {key} at {position} of {len(siblings)}"
        siblings.insert(position, key)
        self.children[key] = []

    def set_row(self, key, text, tooltip):
        self.text[key] = text
        self.tooltip[key] = tooltip

    def expand_row(self, key):
        self.expanded.add(key)

    def show_thumbnail(self, key, path):
        self.icon[key] = path

    def show_placeholder(self, key, image):
        self.icon[key] = "<placeholder>" if image else "<no image>"

    def clear_rows(self):
        self.children = {None: []}
        self.text.clear()

    def set_caption(self, text):
        self.caption = text

    def top_texts(self) -> list[str]:
        return [self.text[k] for k in self.children[None]]

    def walk(self, key=None) -> list[str]:
        out = []
        for k in self.children[key]:
            out.append(self.text[k])
            out += self.walk(k)
        return out


def entry(path: str, patient: str = "", study: str = "", series: str = "", number: int | None = None,
          date: str = "", kind: str = "dicom", image: bool = True) -> InstanceEntry:
    meta = ImageMeta(path=path, kind=kind, patient_name=patient, patient_id=patient.upper()[:3],
                     study_uid=study, study_date=date, series_uid=series, series_number=1,
                     sop_instance_uid=f"1.2.{abs(hash(path))}" if kind == "dicom" else "",
                     instance_number=number, modality="CR" if kind == "dicom" else "", rows=8, columns=8)
    return InstanceEntry(path=path, meta=meta, is_image=image, source=path)


def folder_of_patients(n: int) -> list[InstanceEntry]:
    names = ["Zed", "Alice", "Mona", "Bob", "Yara", "Carl", "Xena", "Dora", "Walt", "Eve", "Vic", "Finn"]
    return [entry(f"/d/{i}.dcm", names[i], f"st{i}", f"se{i}") for i in range(n)]


@pytest.fixture
def presenter() -> tuple[BrowserPresenter, MockView]:
    view = MockView()
    return BrowserPresenter(view), view


def test_one_batch_of_twelve_patients_gives_twelve_sorted_rows(presenter):
    p, view = presenter
    added = p.add_instances(folder_of_patients(12))
    assert len(added) == 12
    rows = view.top_texts()
    assert len(rows) == 12
    assert [r.split("  ")[0] for r in rows] == sorted(r.split("  ")[0] for r in rows)
    assert view.caption == "12 patients, 12 studies, 12 files"
    assert view.walk() == p.texts()  # the view shows exactly the presenter's tree


@pytest.mark.parametrize("batch", [1, 2, 5, 12])
def test_batches_of_any_size_give_the_same_tree(batch):
    entries = folder_of_patients(12)
    ref_view = MockView()
    BrowserPresenter(ref_view).add_instances(entries)
    view = MockView()
    p = BrowserPresenter(view)
    for i in range(0, len(entries), batch):
        p.add_instances(entries[i: i + batch])
    assert view.walk() == ref_view.walk()
    assert len(view.top_texts()) == 12


def test_a_png_after_dicom_gets_its_row_in_no_patient_last(presenter):
    p, view = presenter
    p.add_instances(folder_of_patients(5))
    p.add_instances([entry("/x/nih/a.png", kind="png", image=True)])
    top = view.children[None]
    assert len(top) == 6 and view.text[top[-1]] == "(no patient)"
    (study,) = view.children[top[-1]]
    assert view.text[study] == "Folder nih"
    (series,) = view.children[study]
    assert view.icon[series] == "/x/nih/a.png"  # its thumbnail is asked for
    assert p.key_for_path("/x/nih/a.png") == series
    assert p.entry_for(series).path == "/x/nih/a.png"


def test_studies_by_date_and_instances_by_number_whatever_the_arrival_order(presenter):
    p, view = presenter
    late = entry("/a/late.dcm", "Ann", "s2", "x2", date="20240101")
    early = entry("/a/early.dcm", "Ann", "s1", "x1", date="20200101")
    third, first, second = (entry(f"/a/i{n}.dcm", "Ann", "s1", "x1", number=n, date="20200101") for n in (3, 1, 2))
    p.add_instances([late, third])
    p.add_instances([early, first, second])
    (patient,) = view.children[None]
    studies = view.children[patient]
    assert [view.text[s][:10] for s in studies] == ["2020-01-01", "2024-01-01"]
    (series,) = view.children[studies[0]]
    assert [view.text[i].split()[0] for i in view.children[series]] == ["#1", "#2", "#3", "early.dcm"]
    assert view.text[series].endswith("4 images")
    assert view.icon[series] == "/a/i1.dcm"  # the series shows its first image


def test_duplicates_are_dropped_and_counted(presenter, tmp_path):
    p, view = presenter
    a = entry("/d/a.dcm", "Ann", "s", "x")
    copy = InstanceEntry(path="/e/a.dcm", meta=a.meta, is_image=True, source="/e/a.dcm")
    assert p.add_instances([a]) == [a]
    assert p.add_instances([a, copy]) == []
    assert len(view.walk()) == 3 and p.index.duplicates == [("/e/a.dcm", "/d/a.dcm")]
    assert opened_message(p.index) == "Opened 1 file (1 duplicate copy of open images not listed again)."


def test_instance_thumbnails_wait_until_their_series_is_expanded(presenter):
    p, view = presenter
    p.add_instances([entry(f"/s/{n}.dcm", "Ann", "s", "x", number=n) for n in (1, 2)])
    (patient,) = view.children[None]
    (study,) = view.children[patient]
    (series,) = view.children[study]
    assert {patient, study} <= view.expanded and series not in view.expanded
    kids = view.children[series]
    assert [view.icon[k] for k in kids] == ["<placeholder>", "<placeholder>"]
    p.expanded(series)
    assert [view.icon[k] for k in kids] == ["/s/1.dcm", "/s/2.dcm"]
    p.add_instances([entry("/s/3.dcm", "Ann", "s", "x", number=3)])  # arrives while expanded
    assert view.icon[view.children[series][-1]] == "/s/3.dcm"


def test_non_image_objects_and_errors(presenter):
    p, view = presenter
    p.add_instances([entry("/r/sr.dcm", "Ann", "s", "x", image=False)])
    (patient,) = view.children[None]
    (study,) = view.children[patient]
    (series,) = view.children[study]
    assert view.icon[series] == "<no image>"
    p.add_errors([("/r/notes.txt", "not an image"), ("/r/notes.txt", "not an image")])
    assert view.caption == "1 patient, 1 study, 1 file · 1 not opened"
    p.clear()
    assert view.children[None] == [] and view.caption == "Drop DICOM files, folders or ZIPs here"
    assert len(p.index) == 0 and p.texts() == []


def test_insert_position_counts_only_rows_already_shown():
    class R:
        def __init__(self, e):
            self.entry = e
    order = ["a", "b", "c", "d", "e"]
    shown = [R(order[1]), R(order[3])]
    assert insert_position(order, shown, order[4]) == 2  # not 4: only two rows exist
    assert insert_position(order, shown, order[2]) == 1
    assert insert_position(order, shown, order[0]) == 0


def test_presenters_and_models_import_without_qt_or_torch():
    code = (
        "import sys\n"
        "import app.browser.presenter, app.tags.presenter, app.viewer.state\n"
        "bad = [m for m in ('PySide6', 'pyqtgraph', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
