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
        try:
            with atomic_path(dest) as tmp:
                ds.save_as(tmp, enforce_file_format=True)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # e.g. a transfer syntax pydicom cannot write
            syntax = str(ds.file_meta.get("TransferSyntaxUID", "?"))
            raise AnonymiseError(f"{src.name} cannot be written anonymised (transfer syntax {syntax}: "
                                 f"{type(exc).__name__}); leave it out of the export.") from None
        written.append(dest)
        report(progress, i + 1, len(files), f"anonymised {i + 1} of {len(files)}")
    return written


def _staging(dest: Path) -> Path:
    import tempfile

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    except OSError as exc:
        raise AnonymiseError(f"Cannot write in {dest.parent}: {exc.strerror or type(exc).__name__}.") from None


def _write_dicomdir(files: list[Path], folder: Path) -> int:
    """A PS3.10 file-set of ``files`` in ``folder`` (pydicom FileSet: DICOMDIR plus its own
    PTnnnnnn/STnnnnnn/SEnnnnnn/IMnnnnnn names); the number of instances in it."""
    import pydicom
    from pydicom.fileset import FileSet

    fs = FileSet()
    fs.ID = "CXRSTUDIO"
    seen: set[str] = set()
    for path in files:
        ds = pydicom.dcmread(path)
        if str(ds.SOPInstanceUID) in seen:  # two sources shared one UID: a file-set needs them apart
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        seen.add(str(ds.SOPInstanceUID))
        for keyword, default in (("StudyID", "1"), ("SeriesNumber", 1), ("InstanceNumber", 1),
                                 ("StudyDate", "19000101"), ("StudyTime", "000000")):
            if ds.get(keyword) in (None, ""):  # type 1 in the directory records
                setattr(ds, keyword, default)
        try:
            fs.add(ds)
        except (ValueError, KeyError, AttributeError) as exc:  # a SOP class or value a DICOMDIR cannot hold
            raise AnonymiseError(f"{path.name} cannot be listed in a DICOMDIR ({str(exc).splitlines()[0][:120]}); "
                                 "export without --dicomdir or leave it out.") from None
    fs.write(folder)
    return len(fs)


def export(paths: list[str | os.PathLike[str]], dest: str | os.PathLike[str], *, dicomdir: bool = True,
           as_zip: bool = False, progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
           seed: str | None = None) -> Path:
    """Anonymise ``paths`` into the new folder ``dest`` (or the ZIP file ``dest`` with ``as_zip``),
    with a DICOMDIR unless ``dicomdir`` is False. Written in a staging folder and renamed at the
    end: a failure or a cancel leaves nothing behind. The source files are only read."""
    import shutil
    import zipfile

    from ml.fileio import atomic_path

    target = Path(dest)
    if as_zip and target.suffix.lower() != ".zip":
        target = target.with_name(target.name + ".zip")
    if target.exists() and (as_zip or not target.is_dir() or any(target.iterdir())):
        raise AnonymiseError(f"{target.name} already exists: choose a new {'file' if as_zip else 'folder'}.")
    staging = _staging(target)
    try:
        plain = staging / "plain"
        written = anonymise(paths, plain, progress=progress, cancel=cancel, seed=seed)
        check(cancel)
        if dicomdir:
            tree = staging / "fileset"
            _write_dicomdir(written, tree)
        else:
            tree = plain
        check(cancel)
        if as_zip:
            with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for f in sorted(p for p in tree.rglob("*") if p.is_file()):
                    zf.write(f, f.relative_to(tree).as_posix())
        else:
            if target.is_dir():
                target.rmdir()  # an empty folder the user picked
            os.replace(tree, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def add_cli_arguments(p) -> None:  # noqa: ANN001 - argparse.ArgumentParser
    """`cxr anonymise` output options (ml.cli_pacs registers the subcommand)."""
    p.add_argument("--dicomdir", action="store_true",
                   help="write a DICOM file-set: a DICOMDIR with PT/ST/SE/IM folders (-o must be a new folder)")
    p.add_argument("--zip", action="store_true", help="write one ZIP file (-o FILE.zip) holding a DICOMDIR file-set")


def run_cli(args) -> int:  # noqa: ANN001 - argparse.Namespace
    """`cxr anonymise PATH... -o OUT [--dicomdir | --zip]`; the exit status."""
    if not (getattr(args, "dicomdir", False) or getattr(args, "zip", False)):
        written = anonymise(list(args.paths), args.output)
        studies = {p.parent.parent.name for p in written}
        print(f"{len(written)} file(s) in {len(studies)} stud(y/ies) anonymised into {args.output}")
        return 0
    target = export(list(args.paths), args.output, dicomdir=True, as_zip=bool(args.zip))
    print(f"anonymised DICOM file-set with a DICOMDIR written to {target}")
    return 0
