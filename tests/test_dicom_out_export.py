"""Anonymised export with a DICOMDIR (issue 12): `cxr anonymise --dicomdir / --zip` and the browser's
"Export anonymised…" on a study. No original name, ID, birth date or UID in any output file (the
DICOMDIR included), the DICOMDIR reads with pydicom's FileSet and with dcmtk's dcmdump, the images
are pixel-identical, the sources are unchanged, and a cancel or a taken name leaves nothing."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.fileset import FileSet

from ml.cli import main as cxr
from ml.dicom_out.anonymise import AnonymiseError, export
from ml.errors import CancelledError
from ml.progress import CancelToken
from tests.test_dicom_out_anonymise import FILES, _secrets, _values


@pytest.fixture
def sources(dicom_dir, tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in FILES:
        shutil.copy(dicom_dir / name, src / name)
    return src


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _check_file_set(root: Path, sources: Path) -> list[pydicom.Dataset]:
    """The file-set under ``root``: readable, complete, de-identified, pixel-identical."""
    dump = subprocess.run(["dcmdump", str(root / "DICOMDIR")], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0 and "DirectoryRecordSequence" in dump.stdout, dump.stderr[-500:]
    fs = FileSet(pydicom.dcmread(root / "DICOMDIR"))
    assert len(fs) == len(FILES)
    originals = {name: pydicom.dcmread(sources / name) for name in FILES}
    secrets = set().union(*(_secrets(ds) for ds in originals.values()))
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == len(FILES) + 1  # the images and the DICOMDIR, nothing else
    for path in files:
        ds = pydicom.dcmread(path)
        values = _values(ds)
        leaked = secrets & set(values)
        assert not leaked, f"{path.name}: original identifiers left: {sorted(leaked)[:3]}"
        assert all(s not in v for v in values for s in secrets if len(s) > 8)
    images = [instance.load() for instance in fs]
    for name, orig in originals.items():
        assert any(ds.pixel_array.shape == orig.pixel_array.shape and np.array_equal(ds.pixel_array, orig.pixel_array)
                   for ds in images), f"{name} is not pixel-identical in the export"
    studies = {str(ds.StudyInstanceUID) for ds in images}
    assert len(studies) == 3  # the two rsna files still share one (new) study
    assert len({str(ds.SOPInstanceUID) for ds in images}) == len(FILES)  # unique in a file-set
    return images


def test_cli_dicomdir_folder(sources, tmp_path):
    before = _hashes(sources)
    out = tmp_path / "share"
    assert cxr(["anonymise", str(sources), "-o", str(out), "--dicomdir"]) == 0
    _check_file_set(out, sources)
    assert _hashes(sources) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["share", "src"]  # no staging folder left


def test_cli_zip_with_dicomdir(sources, tmp_path, capsys):
    before = _hashes(sources)
    target = tmp_path / "case.zip"
    assert cxr(["anonymise", str(sources), "-o", str(target), "--zip"]) == 0
    assert "case.zip" in capsys.readouterr().out
    with zipfile.ZipFile(target) as zf:
        assert "DICOMDIR" in zf.namelist()
        zf.extractall(tmp_path / "unzipped")
    _check_file_set(tmp_path / "unzipped", sources)
    assert _hashes(sources) == before


def test_taken_name_and_cancel_leave_nothing(sources, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert cxr(["anonymise", str(sources), "-o", str(taken), "--dicomdir"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        export([sources], tmp_path / "never", cancel=token)
    with pytest.raises(AnonymiseError):
        export([tmp_path / "missing"], tmp_path / "never2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "taken"]


def test_browser_exports_a_study_anonymised(qtbot, sources, tmp_path):
    from app.browser import BrowserPanel
    from app.workers import running_jobs
    from ml.imaging.index import build_index

    before = _hashes(sources)
    panel = BrowserPanel()
    qtbot.addWidget(panel)
    panel.add_instances(list(build_index([sources], cache_dir=tmp_path / "cache").instances()))
    rsna = pydicom.dcmread(sources / "rsna_cxr_pa.dcm", stop_before_pixels=True)
    study_key = next(k for k in panel.presenter._rows if k.startswith("s|") and k.endswith(str(rsna.StudyInstanceUID)))
    files = panel.presenter.export_files(study_key)
    assert sorted(Path(f).name for f in files) == ["rsna_cxr_pa.dcm", "rsna_cxr_pa_monochrome1.dcm"]
    assert panel.presenter.export_name(study_key) == "anonymised_study"
    menu = panel.context_menu_for(panel._items[study_key])
    action = next(a for a in menu.actions() if a.objectName() == "browserExportAnonymised")
    assert action.isEnabled() and action.text() == "Export anonymised…"

    asked: list = []
    panel.exportRequested.disconnect()
    panel.exportRequested.connect(lambda f, name: asked.append((f, name)))
    action.trigger()  # the widget forwards the intent with the presenter's files
    assert asked == [(files, "anonymised_study")]

    out = tmp_path / "export"
    job = panel.exporter().start(files, str(out), as_zip=False)
    assert panel.export_progress.job is job or job.is_done  # the panel's progress bar follows it
    qtbot.waitUntil(lambda: job.is_done, timeout=60_000)
    assert panel.export_progress.job is None and panel.export_progress.isHidden()
    assert job.state == "finished", job.error_message
    assert "2 file(s) exported anonymised" in panel.caption.text()
    fs = FileSet(pydicom.dcmread(out / "DICOMDIR"))
    assert len(fs) == 2
    secrets = _secrets(rsna)
    for instance in fs:
        ds = instance.load()
        assert not secrets & set(_values(ds)) and ds.PatientIdentityRemoved == "YES"
    assert _hashes(sources) == before
    qtbot.waitUntil(lambda: running_jobs() == 0, timeout=30_000)


def test_references_follow_the_new_uids_and_a_file_that_cannot_be_written_is_one_error(dicom_dir, tmp_path, capsys,
                                                                                       monkeypatch):
    from ml.dicom_out.measurements import PlanarMeasurement, measurement_sr, read_measurements
    from ml.dicom_out.results import read_source, write

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(dicom_dir / "rsna_cxr_pa.dcm", src / "chest.dcm")
    write(measurement_sr(read_source(src / "chest.dcm"), [PlanarMeasurement("distance", [(1.0, 2.0), (30.0, 40.0)],
                                                                            {"mm": 8.4})]), src, "chest_sr")
    out = tmp_path / "out"
    export([src], out)
    fs = FileSet(pydicom.dcmread(out / "DICOMDIR"))
    by_modality = {str(ds.Modality): ds for ds in (i.load() for i in fs)}
    image, sr = by_modality["CR"], by_modality["SR"]
    original = pydicom.dcmread(src / "chest.dcm", stop_before_pixels=True)
    assert image.SOPInstanceUID != original.SOPInstanceUID
    assert read_measurements(sr)[0].sop_instance_uid == image.SOPInstanceUID  # the SR still points at its image
    assert sr.StudyInstanceUID == image.StudyInstanceUID and sr.PatientID == image.PatientID

    # Deflated Image Frame Compression: pydicom 3.0 cannot write it unless pynetdicom's import taught
    # it the UID; make the refusal independent of what else is imported
    shutil.copy(dicom_dir / "liver_deflate.dcm", src / "deflated.dcm")
    save_as = pydicom.Dataset.save_as

    def refuse_deflated(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if str(self.file_meta.get("TransferSyntaxUID", "")) == "1.2.840.10008.1.2.8.1":
            raise ValueError("The Transfer Syntax UID '1.2.840.10008.1.2.8.1' is not a valid transfer syntax")
        return save_as(self, *args, **kwargs)

    monkeypatch.setattr(pydicom.Dataset, "save_as", refuse_deflated)
    assert cxr(["anonymise", str(src), "-o", str(tmp_path / "out2"), "--zip"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "deflated.dcm cannot be written anonymised" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]
