"""Anonymised DICOM export with dicognito (a kept de-identification library, PS3.15 Basic Application
Level Confidentiality Profile style): new names, IDs and UIDs, consistent across everything in one
export (one study keeps one new StudyInstanceUID, the series and references follow), dates shifted
by one offset per patient. Pixel data is left as it is; the source files are never modified.
Not for diagnostic use.
"""

from __future__ import annotations

import os
from pathlib import Path

from ml.errors import CxrError
from ml.progress import CancelToken, ProgressCallback, check, report


class AnonymiseError(CxrError):
    """An export could not be anonymised (one readable line)."""


def _dicom_files(paths: list[Path]) -> list[Path]:
    from ml.imaging.sniff import sniff_kind

    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise AnonymiseError(f"{path.name}: no such file or folder.")
        candidates = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for p in candidates:
            try:
                if sniff_kind(p) == "dicom":
                    found.append(p)
            except (OSError, CxrError):
                continue
    if not found:
        raise AnonymiseError("No DICOM files in the given paths.")
    return found


def anonymise(paths: list[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
              progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
              seed: str | None = None) -> list[Path]:
    """Anonymise the DICOM files under ``paths`` into ``out_dir/<study>/<series>/<instance>.dcm``."""
    import pydicom
    from dicognito.anonymizer import Anonymizer
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    from ml.fileio import atomic_path

    files = _dicom_files([Path(p) for p in paths])
    out = Path(out_dir)
    anonymizer = Anonymizer(seed=seed)  # one instance: the same original UID maps to the same new one
    written: list[Path] = []
    for i, src in enumerate(files):
        check(cancel)
        try:
            ds = pydicom.dcmread(src)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one line
            raise AnonymiseError(f"{src.name} cannot be read as DICOM ({type(exc).__name__}).") from None
        anonymizer.anonymize(ds)
        ds.remove_private_tags()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID  # we wrote this file
        ds.file_meta.ImplementationVersionName = "CXRSTUDIO"
        ds.file_meta.pop("SourceApplicationEntityTitle", None)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "dicognito (PS3.15 basic profile); CXR Studio export"
        dest = out / str(ds.StudyInstanceUID) / str(ds.SeriesInstanceUID) / f"{ds.SOPInstanceUID}.dcm"
        n = 1
        while dest in written:  # two sources with one SOP Instance UID: keep both, never overwrite
            n += 1
            dest = dest.with_name(f"{ds.SOPInstanceUID}_{n}.dcm")
        with atomic_path(dest) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        written.append(dest)
        report(progress, i + 1, len(files), f"anonymised {i + 1} of {len(files)}")
    return written
