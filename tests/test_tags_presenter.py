"""The tag panel presenter over a mock view: search rules and summary, no display, no Qt."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from app.tags.presenter import TagPresenter
from app.tags.rows import dataset_rows

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class MockView:
    def __init__(self) -> None:
        self.rows: list = []
        self.flags: list[tuple[bool, bool]] = []
        self.summary = ""

    def show_rows(self, rows):
        self.rows = rows

    def apply_filter(self, flags):
        self.flags = list(flags)

    def set_summary(self, text):
        self.summary = text


@pytest.fixture(scope="module")
def rows():
    path = DATA / "dicom" / "rsna_cxr_pa.dcm"
    if not path.is_file():
        pytest.fail(f"shared test data missing: {path}")
    return dataset_rows(dcmread(path, stop_before_pixels=False))


@pytest.fixture
def presenter():
    view = MockView()
    return TagPresenter(view), view


def test_every_element_is_listed_and_counted(presenter, rows):
    p, view = presenter
    p.set_rows(rows)
    assert view.rows is rows and len(view.flags) == p.n_rows > 30
    assert all(visible for visible, _ in view.flags)
    assert view.summary == f"{p.n_rows} elements"
    assert ("(0028,0030)", "Pixel Spacing", "0.168\\0.168") in p.visible_rows()


@pytest.mark.parametrize("query", ["PixelSpacing", "0028,0030", "00280030", "0.168", "  pixel spacing "])
def test_search_by_keyword_tag_or_value(presenter, rows, query):
    p, view = presenter
    p.set_rows(rows)
    p.set_filter(query)
    assert [r[0] for r in p.visible_rows()] == ["(0028,0030)"]
    assert view.summary == f"1 of {p.n_rows} elements match “{query.strip()}”"
    p.set_filter("")
    assert len(p.visible_rows()) == p.n_rows and view.summary == f"{p.n_rows} elements"


def test_search_keeps_ancestors_open_and_descendants_of_a_match(presenter):
    from app.tags.rows import TagRow

    inner = TagRow("(0008,0100)", "Code Value", "CodeValue", "SH", "T-D3000")
    item = TagRow("", "Item 1", "", "", "", [inner, TagRow("(0008,0104)", "Code Meaning", "CodeMeaning", "LO", "Chest")])
    seq = TagRow("(0008,2218)", "Anatomic Region Sequence", "AnatomicRegionSequence", "SQ", "1 item", [item])
    other = TagRow("(0010,0010)", "Patient's Name", "PatientName", "PN", "Doe^Jane")
    p, view = presenter
    p.set_rows([seq, other])
    p.set_filter("t-d3000")
    assert p.visible_rows() == [seq_row(seq), ("", "Item 1", ""), ("(0008,0100)", "Code Value", "T-D3000")]
    assert view.flags[0] == (True, True) and view.flags[1] == (True, True)  # opened down to the match
    assert view.flags[-1] == (False, False)
    p.set_filter("anatomic region")  # a matching sequence shows all of its items
    assert len(p.visible_rows()) == 4
    p.set_filter("no such thing")
    assert p.visible_rows() == [] and view.summary == "0 of 5 elements match “no such thing”"


def seq_row(r):
    return (r.tag, r.name, r.value)


def test_clear_and_files_without_a_header(presenter, rows):
    p, view = presenter
    p.set_rows(rows)
    p.set_no_header("c.png")
    assert view.rows == [] and view.summary == "c.png: no DICOM header (PNG/JPEG file)"
    p.clear("report.dcm is a Basic Text SR")
    assert view.summary == "report.dcm is a Basic Text SR" and p.visible_rows() == []
    p.set_filter("")  # nothing listed: the explanation stays
    assert view.summary == "report.dcm is a Basic Text SR"


def test_a_header_only_file_keeps_why_in_the_summary(presenter, rows):
    p, view = presenter
    p.clear("liver_deflate.dcm: could not be decoded")
    p.set_rows(rows, note=view.summary)  # the header arrives after the decoding failed
    assert view.summary == f"liver_deflate.dcm: could not be decoded · {p.n_rows} elements"
    p.set_filter("PixelSpacing")
    assert view.summary.startswith("liver_deflate.dcm: could not be decoded · 1 of ")
    p.set_rows(rows)  # the next file: no note
    assert view.summary == f"1 of {p.n_rows} elements match “PixelSpacing”"
