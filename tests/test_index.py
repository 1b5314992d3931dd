"""Indexing files, folders, ZIPs and DICOMDIRs into the patient/study/series tree (headers only)."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.fileset import FileSet

from ml.errors import CancelledError
from ml.imaging.index import (
    NO_PATIENT,
    InstanceEntry,
    StudyIndex,
    build_index,
    iter_files,
    read_header,
)
from ml.imaging.read import read_image, read_meta
from ml.progress import CancelToken
from tests.helpers.dicom_factory import new_uid, write_dicom, write_sr

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def shared_data() -> Path:
    assert (SHARED_DATA / "dicom").is_dir(), f"shared test data missing: {SHARED_DATA}"
    return SHARED_DATA


# Two patients, three studies, several series. Folder and file names deliberately sort in a
# different order than the tree must (patients by name, studies by date, series/instances by
# number), and instances are written out of order.
STUDIES = {
    "alpha_new": dict(patient="Alpha^Anna", pid="PA", date="20240315", desc="Chest follow-up"),
    "alpha_old": dict(patient="Alpha^Anna", pid="PA", date="20230101", desc="Chest"),
    "beta": dict(patient="Beta^Bob", pid="PB", date="20220202", desc="Chest PA"),
}
# study key -> [(series number, description, instance numbers)]; None = an SR without pixels
SERIES = {
    "alpha_old": [(2, "LAT", [2, 1]), (1, "PA", [3, 1, 2])],
    "alpha_new": [(1, "AP", [1]), (99, None, [1])],
    "beta": [(5, "PA", [2, 1])],
}


@pytest.fixture()
def study_folder(tmp_path: Path) -> tuple[Path, dict]:
    """Writes the tree above into ``tmp_path/input`` and returns (folder, uids)."""
    root = tmp_path / "input"
    uids: dict = {}
    folders = {"alpha_new": "a_second", "alpha_old": "z_first/deeper", "beta": "m_beta"}
    for key, study in STUDIES.items():
        study_uid = new_uid()
        uids[key] = {"study": study_uid, "series": {}}
        for number, desc, instances in SERIES[key]:
            series_uid = new_uid()
            uids[key]["series"][number] = series_uid
            for n in instances:
                common = dict(
                    patient_name=study["patient"], patient_id=study["pid"], study_uid=study_uid,
                    study_date=study["date"], study_description=study["desc"], series_uid=series_uid,
                    series_number=number, instance_number=n,
                )
                name = root / folders[key] / f"{random.Random(f'{key}{number}{n}').randrange(10**6):06d}.dcm"
                if desc is None:
                    write_sr(name, **common)
                else:
                    write_dicom(name, series_description=desc, rows=16, columns=16, **common)
    return root, uids


def shape(index: StudyIndex) -> list:
    """The tree as plain values, for comparing indexes built from different sources."""
    return [
        (
            p.name,
            p.patient_id,
            [
                (s.uid, s.date, [(se.uid, se.number, [(i.meta.instance_number, i.is_image) for i in se.instances])
                                 for se in s.series])
                for s in p.studies
            ],
        )
        for p in index.patients
    ]


def expected_shape(uids: dict) -> list:
    def study(key: str) -> tuple:
        series = sorted(SERIES[key])
        return (
            uids[key]["study"],
            STUDIES[key]["date"],
            [(uids[key]["series"][n], n, [(i, desc is not None) for i in sorted(inst)]) for n, desc, inst in series],
        )

    return [
        ("Alpha Anna", "PA", [study("alpha_old"), study("alpha_new")]),
        ("Beta Bob", "PB", [study("beta")]),
    ]


def test_folder_builds_sorted_patient_study_series_tree(study_folder):
    root, uids = study_folder
    index = build_index([root])
    assert index.errors == []
    assert shape(index) == expected_shape(uids)
    assert len(index) == 9
    alpha_old = index.patients[0].studies[0]
    assert alpha_old.description == "Chest"
    assert [se.description for se in alpha_old.series] == ["PA", "LAT"]
    sr = index.patients[0].studies[1].series[1].instances[0]
    assert sr.is_image is False and sr.meta.modality == "SR" and not sr.meta.has_pixels
    for entry in index.instances():
        assert entry.source == entry.path and Path(entry.path).is_file()
        assert entry.meta.patient_name in ("Alpha Anna", "Beta Bob")


def test_zip_gives_same_tree_and_is_left_untouched(study_folder, tmp_path):
    root, uids = study_folder
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    archive = user_dir / "study.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*.dcm")):
            zf.write(path, path.relative_to(root).as_posix())
        zf.writestr("__MACOSX/._junk", b"x")  # OS bookkeeping: not listed
    before = hashlib.sha256(archive.read_bytes()).hexdigest()
    mtime = archive.stat().st_mtime_ns
    cache = tmp_path / "cache"

    index = build_index([archive], cache_dir=cache)
    assert index.errors == []
    assert shape(index) == expected_shape(uids)
    for entry in index.instances():
        archive_part, _, member = entry.source.rpartition(":")
        assert archive_part == str(archive)
        assert Path(entry.path).is_relative_to(cache) and Path(entry.path).is_file()
        assert Path(entry.path).as_posix().endswith(member)  # nested member path kept
    first_image = next(e for e in index.instances() if e.is_image)
    assert read_image(first_image.path).frames.shape == (1, 16, 16)

    again = build_index([archive], cache_dir=cache)  # extracted copies are reused
    assert [e.path for e in again.instances()] == [e.path for e in index.instances()]
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == before
    assert archive.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in user_dir.iterdir()) == ["study.zip"]


def test_zip_cache_defaults_to_user_cache_dir_not_next_to_the_zip(study_folder, tmp_path, monkeypatch):
    root, _ = study_folder
    archive = tmp_path / "user" / "one.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(next(root.rglob("*.dcm")), "sub/one.dcm")
    monkeypatch.setenv("CXR_STUDIO_CACHE_DIR", str(tmp_path / "appcache"))
    index = build_index([archive])
    (entry,) = list(index.instances())
    assert Path(entry.path).is_relative_to(tmp_path / "appcache")
    assert entry.source == f"{archive}:sub/one.dcm"
    assert sorted(p.name for p in archive.parent.iterdir()) == ["one.zip"]


def test_dicomdir_is_followed_and_broken_records_fall_back_to_scanning(study_folder, tmp_path):
    root, uids = study_folder
    fs = FileSet()
    for path in sorted(root.rglob("*.dcm")):
        fs.add(path)
    media = tmp_path / "media"
    fs.write(media)
    dicomdir = media / "DICOMDIR"

    listed = list(iter_files([dicomdir]))
    assert len(listed) == 9 and all(f.error is None for f in listed)
    index = build_index([dicomdir])
    assert index.errors == []
    assert shape(index) == expected_shape(uids)

    # Scanning the folder finds the same files; the DICOMDIR itself is not an instance or error.
    assert shape(build_index([media])) == expected_shape(uids)
    assert build_index([media]).errors == []

    # A record pointing at a missing file: the folder is scanned instead, and the user is told.
    victim = next(e for e in index.instances() if e.meta.instance_number == 3)
    os.remove(victim.path)
    broken = build_index([dicomdir])
    assert len(broken) == 8
    ((source, message),) = broken.errors
    assert source == str(dicomdir) and "missing" in message and "scanned" in message

    dicomdir.write_bytes(b"garbage" * 100)  # unreadable DICOMDIR: same fallback
    garbled = build_index([dicomdir])
    assert len(garbled) == 8
    assert [m for _, m in garbled.errors] == ["DICOMDIR cannot be read (InvalidDicomError): the folder was scanned instead."]


def test_real_files_index_from_headers_only(shared_data, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("indexing must not decode pixels")

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(no_decoding))
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    index = build_index([shared_data / "dicom", shared_data / "cxr"])

    files = sorted(str(p) for p in (shared_data / "dicom").iterdir()) + sorted(
        str(p) for p in (shared_data / "cxr").rglob("*") if p.is_file()
    )
    instances = {e.source: e for e in index.instances()}
    errors = dict(index.errors)
    duplicates = dict(index.duplicates)
    for f in files:  # every file is accounted for, none silently dropped
        assert (f in instances) + (f in errors) + (f in duplicates) == 1, f

    deflate = instances[str(shared_data / "dicom" / "liver_deflate.dcm")]
    assert deflate.is_image and deflate.meta.transfer_syntax_name == "Deflated Image Frame Compression"
    truncated = errors[str(shared_data / "dicom" / "emri_small_jpeg_2k_lossless_too_short.dcm")]
    assert "truncated" in truncated and "emri_small_jpeg_2k_lossless_too_short.dcm" in truncated
    # Same SOP Instance UID as rsna_cxr_pa.dcm but a different image (MONOCHROME1): both are shown.
    mono1 = instances[str(shared_data / "dicom" / "rsna_cxr_pa_monochrome1.dcm")]
    assert mono1.meta.photometric == "MONOCHROME1" and not duplicates
    cxr = instances[str(shared_data / "dicom" / "rsna_cxr_pa.dcm")]
    assert cxr.meta.modality == "CR" and cxr.meta.rows == 1024 and cxr.meta.pixel_spacing.row_mm == pytest.approx(0.168)

    # PNG/JPEG: one "(no patient)" patient, a study per folder, a series per file (named after it).
    nobody = index.patients[-1]
    assert nobody.name == NO_PATIENT
    pneumonia = next(s for s in nobody.studies if s.description == "PNEUMONIA")
    assert len(pneumonia.series) == 8
    assert pneumonia.series[0].description == "person1946_bacteria_4874.jpeg"
    assert pneumonia.series[0].instances[0].meta.kind == "jpeg"
    names = [p.name.casefold() for p in index.patients if p.key != NO_PATIENT]
    assert names == sorted(names)


def test_header_facts_match_the_full_reader(shared_data):
    for path in sorted((shared_data / "dicom").glob("*.dcm")):
        if "too_short" in path.name:
            continue
        fast, full = read_header(path).to_dict(), read_meta(path).to_dict()
        # read_meta cannot see pixel data it stopped before; read_header records it exactly
        for key in ("has_pixels", "float_pixels"):
            fast.pop(key), full.pop(key)
        assert fast == full, path.name


def test_non_images_are_listed_as_errors_with_readable_messages(tmp_path):
    (tmp_path / "notes.txt").write_text("Patient history: nothing to see here.\n")
    (tmp_path / "blob.bin").write_bytes(random.Random(0).randbytes(4096))
    (tmp_path / "empty.dcm").write_bytes(b"")
    ds = write_dicom(tmp_path / "cut.dcm", rows=64, columns=64)
    data = Path(ds.filename).read_bytes()
    Path(ds.filename).write_bytes(data[: len(data) - 1000])
    head = write_dicom(tmp_path / "head.dcm", rows=64, columns=64)
    raw = Path(head.filename).read_bytes()
    cut = raw.index(str(head.SeriesInstanceUID).encode()) + 5  # inside a header value (UID lengths vary)
    Path(head.filename).write_bytes(raw[:cut])
    write_dicom(tmp_path / "ok.dcm", preamble=False)  # no preamble: still DICOM

    index = build_index([tmp_path, tmp_path / "missing.dcm"])
    errors = dict(index.errors)
    assert errors[str(tmp_path / "notes.txt")] == "notes.txt is not a DICOM or image file."
    assert errors[str(tmp_path / "blob.bin")] == "blob.bin is not a DICOM or image file."
    assert errors[str(tmp_path / "empty.dcm")] == "empty.dcm is empty."
    assert errors[str(tmp_path / "cut.dcm")] == "cut.dcm: truncated pixel data (the file ends early)."
    assert errors[str(tmp_path / "missing.dcm")] == "missing.dcm does not exist."
    assert errors[str(tmp_path / "head.dcm")] == "head.dcm is damaged or truncated: its header is incomplete."
    assert [e.source for e in index.instances()] == [str(tmp_path / "ok.dcm")]


def test_cancel_raises_promptly(study_folder):
    root, _ = study_folder
    token = CancelToken()
    delivered: list[InstanceEntry] = []

    def progress(done: int, total: int, message: str) -> None:
        if done >= 3:
            token.cancel()

    with pytest.raises(CancelledError):
        build_index([root], progress=progress, cancel=token, on_batch=delivered.extend, batch_size=1)
    assert len(delivered) == 3  # stopped at the very next file

    cancelled = CancelToken()
    cancelled.cancel()
    with pytest.raises(CancelledError):
        build_index([root], cancel=cancelled)


def test_progress_counts_up_and_batches_deliver_every_entry_once(tmp_path):
    study, series = new_uid(), new_uid()
    for i in range(23):
        write_dicom(tmp_path / f"{i:03d}.dcm", study_uid=study, series_uid=series, instance_number=23 - i,
                    rows=8, columns=8)
    (tmp_path / "readme.txt").write_text("not an image")
    calls: list[tuple[int, int, str]] = []
    batches: list[list[InstanceEntry]] = []
    index = build_index([tmp_path], progress=lambda d, t, m: calls.append((d, t, m)), on_batch=batches.append,
                        batch_size=5)

    reading = [(d, t) for d, t, _ in calls if t]
    assert reading[0] == (0, 24) and reading[-1] == (24, 24)
    assert all(a[0] <= b[0] for a, b in zip(reading, reading[1:], strict=False))
    assert len(reading) >= 5  # at least once per batch
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    delivered = [e.source for b in batches for e in b]
    assert sorted(delivered) == sorted(e.source for e in index.instances())
    assert [e.meta.instance_number for e in index.instances()] == list(range(1, 24))


def test_duplicates_are_indexed_once_and_reported(tmp_path):
    ds = write_dicom(tmp_path / "a" / "one.dcm")
    (tmp_path / "b").mkdir()
    shutil.copy(ds.filename, tmp_path / "b" / "copy.dcm")
    index = build_index([tmp_path / "a", tmp_path / "b"])
    assert len(index) == 1 and index.errors == []
    assert index.duplicates == [(str(tmp_path / "b" / "copy.dcm"), str(tmp_path / "a" / "one.dcm"))]


def test_add_and_merge_build_the_same_tree(study_folder):
    root, uids = study_folder
    folders = sorted(p for p in root.iterdir())
    merged = build_index([folders[0]])
    added = merged.merge(build_index(folders[1:]))
    assert added == len(merged) - len(build_index([folders[0]]))
    assert shape(merged) == expected_shape(uids)

    manual = StudyIndex()
    entries = list(build_index([root]).instances())
    for entry in reversed(entries):
        assert manual.add(entry) is True
    assert manual.add(entries[0]) is False
    assert shape(manual) == expected_shape(uids)
    patient, study, series = manual.locate(entries[0])
    assert entries[0] in series.instances and series in study.series and study in patient.studies


def test_png_files_group_per_folder(tmp_path):
    for folder in ("ward_b", "ward_a"):
        for name in ("z.png", "a.png"):
            (tmp_path / folder).mkdir(exist_ok=True)
            Image.fromarray(np.zeros((8, 12), np.uint8)).save(tmp_path / folder / name)
    index = build_index([tmp_path])
    (patient,) = index.patients
    assert patient.name == NO_PATIENT
    assert [s.description for s in patient.studies] == ["ward_a", "ward_b"]
    assert [se.description for se in patient.studies[0].series] == ["a.png", "z.png"]
    entry = patient.studies[0].series[0].instances[0]
    assert entry.is_image and entry.meta.kind == "png" and (entry.meta.rows, entry.meta.columns) == (8, 12)


def test_png_files_in_a_zip_group_per_member_folder(tmp_path):
    buf = tmp_path / "a.png"
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(buf)
    archive = tmp_path / "exports.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(buf, "ward/one.png")
        zf.write(buf, "top.png")
    index = build_index([archive], cache_dir=tmp_path / "cache")
    assert index.errors == []
    studies = {s.description: [se.description for se in s.series] for s in index.patients[0].studies}
    assert studies == {"exports.zip": ["top.png"], "ward": ["one.png"]}
