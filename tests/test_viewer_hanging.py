"""Chest hanging protocol (compare with prior, issue 10): current left, most recent prior frontal of the
same patient right, laterals on a second row; dates in the captions."""

from __future__ import annotations

from app.viewer.hanging import chest_hanging, is_frontal, is_lateral
from ml.imaging.image import ImageMeta
from ml.imaging.index import InstanceEntry


def cxr(name: str, date: str, view: str = "PA", pid: str = "P1", study: str | None = None,
        image: bool = True) -> InstanceEntry:
    meta = ImageMeta(path=name, patient_id=pid, study_date=date, study_uid=study or f"study-{pid}-{date}",
                     view_position=view, modality="DX")
    return InstanceEntry(path=name, meta=meta, is_image=image, source=name)


def test_current_left_most_recent_prior_frontal_right():
    current = cxr("now.dcm", "20240301")
    others = [
        cxr("old.dcm", "20190105"),
        cxr("last_year.dcm", "20230110"),
        cxr("later.dcm", "20250101"),  # a later study is not a prior
        cxr("other_patient.dcm", "20231201", pid="P2"),
        cxr("lat_only.dcm", "20231111", view="LL"),  # a study without a frontal is skipped
        cxr("sr.dcm", "20231215", image=False),
        current,
    ]
    h = chest_hanging(current, others)
    assert (h.rows, h.cols) == (1, 2)
    assert h.cell(0, 0).entry is current and h.cell(0, 0).caption == "Current 2024-03-01"
    assert h.cell(0, 1).entry.path == "last_year.dcm" and h.cell(0, 1).caption == "Prior 2023-01-10"


def test_laterals_go_to_a_second_row():
    current = cxr("now_pa.dcm", "20240301")
    entries = [current, cxr("now_lat.dcm", "20240301", view="LL"), cxr("then_pa.dcm", "20230110"),
               cxr("then_lat.dcm", "20230110", view="RL")]
    h = chest_hanging(current, entries)
    assert (h.rows, h.cols) == (2, 2)
    assert [h.cell(r, c).entry.path for r, c in ((0, 0), (0, 1), (1, 0), (1, 1))] == [
        "now_pa.dcm", "then_pa.dcm", "now_lat.dcm", "then_lat.dcm"]
    assert h.cell(1, 1).caption == "Prior lateral 2023-01-10"


def test_no_prior_without_patient_id_or_earlier_study():
    current = cxr("now.dcm", "20240301", pid="")
    assert chest_hanging(current, [current, cxr("x.dcm", "20200101", pid="")]).cols == 1
    alone = cxr("now.dcm", "20240301")
    h = chest_hanging(alone, [alone, cxr("same_study.dcm", "20240301", study="study-P1-20240301")])
    assert (h.rows, h.cols) == (1, 1) and len(h.cells) == 1


def test_views():
    assert is_frontal(ImageMeta(view_position="ap")) and is_frontal(ImageMeta())
    assert is_lateral(ImageMeta(view_position="LL")) and not is_frontal(ImageMeta(view_position="LL"))
    assert not is_frontal(ImageMeta(view_position="RLD")) and not is_lateral(ImageMeta(view_position="RLD"))
