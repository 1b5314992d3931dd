"""The files a DICOMDIR references, through pydicom's :class:`~pydicom.fileset.FileSet`.

pydicom resolves each record's ReferencedFileID against the File-set root; this module only adds
the safety rule: a reference that resolves outside the DICOMDIR's own folder (``..`` components,
absolute paths, symbolic links leading out) is refused, never read.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DicomdirListing:
    """``files``: referenced files inside the folder, in record order. ``problem``: why the
    DICOMDIR cannot be trusted as a listing ("" when it can). ``outside``: references refused
    because they lead out of the folder."""

    root: str
    files: list[str] = field(default_factory=list)
    missing: int = 0
    outside: int = 0
    problem: str = ""


def read_dicomdir(path: str | os.PathLike[str]) -> DicomdirListing:
    from pydicom import dcmread
    from pydicom.fileset import FileSet

    root = Path(path).resolve().parent
    listing = DicomdirListing(os.fspath(root))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(os.fspath(path))
            records = sum(1 for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r)
            fileset = FileSet(ds)  # drops (with a warning) records whose file does not exist
            refs = [Path(instance.path) for instance in fileset]
    except PermissionError:  # pydicom refuses a ReferencedFileID outside the File-set root
        listing.problem = "references files outside its folder (refused)"
        return listing
    except RecursionError:
        listing.problem = "cannot be read (RecursionError)"
        return listing
    except Exception as exc:  # noqa: BLE001 - any damage means: fall back to scanning
        listing.problem = f"cannot be read ({type(exc).__name__})"
        return listing
    listing.missing = max(0, records - len(refs))
    for ref in refs:
        try:
            inside = ref.resolve().is_relative_to(root)
        except (OSError, RuntimeError, ValueError):
            inside = False
        if not inside:
            listing.outside += 1
        elif not ref.is_file():
            listing.missing += 1
        else:
            listing.files.append(os.fspath(ref))
    if listing.missing:
        listing.problem = f"references {listing.missing} file(s) that are missing"
    elif not listing.files:
        listing.problem = "references no files" if not listing.outside else "references only files outside its folder"
    return listing
