"""`cxr anonymise`: no original name, ID, birth date or instance UID left in any element (sequences
and file meta included), consistent new UIDs across a study, pixel-identical, sources untouched."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from ml.cli import main as cxr

FILES = ("rsna_cxr_pa.dcm", "rsna_cxr_pa_monochrome1.dcm", "RG3_J2KR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm")


def _values(ds: Dataset) -> list[str]:
    """Every element's value as text, recursing into sequences, file meta included."""
    out: list[str] = []
    for elem in [*getattr(ds, "file_meta", []), *ds]:
        if elem.VR == "SQ":
            for item in elem.value:
                out.extend(_values(item))
        elif elem.tag != 0x7FE00010 and elem.VR not in ("OB", "OW", "OF", "OD", "UN"):
            value = elem.value
            out.extend(str(v) for v in value) if isinstance(value, (list, pydicom.multival.MultiValue)) \
                else out.append(str(value))
    return out


def _secrets(ds: Dataset) -> set[str]:
    secrets = {str(ds.get("PatientID", "")), str(ds.get("PatientBirthDate", "")), str(ds.get("PatientName", ""))}
    for value in _values(ds):  # every instance UID (not the standard's own 1.2.840.10008 UIDs)
        if value.count(".") >= 3 and set(value) <= set("0123456789.") and not value.startswith("1.2.840.10008"):
            secrets.add(value)
    return {s for s in secrets if len(s) >= 3}


def test_anonymise_removes_identity_keeps_pixels(dicom_dir, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for name in FILES:
        shutil.copy(dicom_dir / name, src / name)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()}
    out = tmp_path / "out"
    assert cxr(["anonymise", str(src), "-o", str(out)]) == 0
    assert "4 file(s) in 3 stud" in capsys.readouterr().out
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()} == before
    written = sorted(out.rglob("*.dcm"))
    assert len(written) == 4
    originals = {name: pydicom.dcmread(src / name) for name in FILES}
    anonymised = [pydicom.dcmread(p) for p in written]
    secrets = set().union(*(_secrets(ds) for ds in originals.values()))
    for ds in anonymised:
        leaked = secrets & set(_values(ds))
        assert not leaked, f"original identifiers left: {sorted(leaked)[:3]}"
        assert all(s not in v for v in _values(ds) for s in secrets if len(s) > 8)
        assert ds.PatientIdentityRemoved == "YES"
    # the two rsna files share a study and a series: they still do, under new UIDs
    by_pixels = {}
    for ds in anonymised:
        for name, orig in originals.items():
            if orig.pixel_array.shape == ds.pixel_array.shape and np.array_equal(orig.pixel_array, ds.pixel_array) \
                    and name not in by_pixels:
                by_pixels[name] = ds
                break
    assert set(by_pixels) == set(FILES)  # every image pixel-identical to its source
    a, b = by_pixels["rsna_cxr_pa.dcm"], by_pixels["rsna_cxr_pa_monochrome1.dcm"]
    assert a.StudyInstanceUID == b.StudyInstanceUID and a.SeriesInstanceUID == b.SeriesInstanceUID
    assert a.StudyInstanceUID != by_pixels["RG3_J2KR.dcm"].StudyInstanceUID
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID


def test_anonymise_nothing_to_do_is_one_line(tmp_path, capsys):
    (tmp_path / "note.txt").write_text("not dicom")
    assert cxr(["anonymise", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "cxr: error: No DICOM files in the given paths." and not (tmp_path / "out").exists()
