"""List what to index: files, folders, ZIP archives and DICOMDIRs (see :mod:`ml.imaging.index`).

:func:`iter_files` is cheap: a folder walk, a ZIP central directory, DICOMDIR records; no file
header is read. OS bookkeeping files (.DS_Store, Thumbs.db, __MACOSX/, ._*) are left out.
:class:`ArchiveCache` extracts ZIP members, one by one as they are read, into a cache folder
(:func:`default_cache_dir`, never next to the user's files; the archive itself is only read).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pydicom

ZIP_MAGIC = b"PK\x03\x04"
# Operating-system bookkeeping files that are never the user's images.
_JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini", "__macosx"}


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class ListedFile:
    """One thing :func:`iter_files` found. ``member`` is set for a file inside the ZIP ``path``;
    ``error`` is set when the listing itself failed (missing path, unreadable archive...)."""

    path: str
    source: str
    member: str | None = None
    error: str | None = None


def _is_junk(name: str) -> bool:
    return name.casefold() in _JUNK_NAMES or name.startswith("._")


def _list_zip(path: str) -> Iterator[ListedFile]:
    name = Path(path).name
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        yield ListedFile(path, path, error=f"{name} is not a readable ZIP archive ({exc}).")
        return
    for info in infos:
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if info.is_dir() or any(_is_junk(p) for p in parts):
            continue
        source = f"{path}:{info.filename}"
        if info.flag_bits & 0x1:
            yield ListedFile(path, source, info.filename, f"{parts[-1]} in {name} is password-protected.")
        elif info.filename.lower().endswith(".zip"):
            yield ListedFile(
                path, source, info.filename, f"{parts[-1]} is a ZIP inside {name}: extract it and open it."
            )
        else:
            yield ListedFile(path, source, info.filename)


def _walk(folder: str) -> Iterator[ListedFile]:
    for root, dirs, files in os.walk(folder, onerror=None):
        dirs[:] = sorted(d for d in dirs if not _is_junk(d))
        for fname in sorted(files):
            if _is_junk(fname):
                continue
            full = os.path.join(root, fname)
            if fname.lower().endswith(".zip"):
                yield from _list_zip(full)
            else:
                yield ListedFile(full, full)


def _list_dicomdir(path: str) -> Iterator[ListedFile]:
    """The files a DICOMDIR references; the whole folder when its records are broken."""
    root = os.path.dirname(os.path.abspath(path))
    refs: list[str] = []
    problem = ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
        for record in ds.DirectoryRecordSequence:
            file_id = record.get("ReferencedFileID")
            if file_id:
                parts = [file_id] if isinstance(file_id, str) else list(file_id)
                refs.append(os.path.join(root, *[str(p) for p in parts]))
        missing = sum(1 for r in refs if not os.path.isfile(r))
        if not refs:
            problem = "references no files"
        elif missing:
            problem = f"references {missing} file(s) that are missing"
    except Exception as exc:  # noqa: BLE001 - any damage means: fall back to scanning
        problem = f"cannot be read ({type(exc).__name__})"
    if problem:
        yield ListedFile(path, path, error=f"DICOMDIR {problem}: the folder was scanned instead.")
        yield from (f for f in _walk(root) if os.path.basename(f.path).upper() != "DICOMDIR")
        return
    for ref in refs:
        yield ListedFile(ref, ref)


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[ListedFile]:
    """List every file to index: files as given, folders recursively (sorted), ZIP members (a
    ``.zip`` file, or an extension-less file that is a ZIP; not .docx and the like), the files a
    DICOMDIR references. Cheap: nothing but the listing is read. OS bookkeeping files
    (.DS_Store, Thumbs.db, __MACOSX/, ._*) are left out; everything else is listed."""
    for raw in paths:
        path = os.fspath(raw)
        if os.path.isdir(path):
            yield from _walk(path)
        elif not os.path.exists(path):
            yield ListedFile(path, path, error=f"{Path(path).name or path} does not exist.")
        elif Path(path).name.upper() == "DICOMDIR":
            yield from _list_dicomdir(path)
        elif path.lower().endswith(".zip") or (not Path(path).suffix and _head(path, 4) == ZIP_MAGIC):
            yield from _list_zip(path)
        else:
            yield ListedFile(path, path)


def _head(path: str, n: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


# --------------------------------------------------------------------------- ZIP cache


def default_cache_dir() -> Path:
    """Where extracted ZIP members go: $CXR_STUDIO_CACHE_DIR, else <$CXR_STUDIO_HOME>/cache when that
    is set (everything of the app's in one folder), else the user's cache folder."""
    env = os.environ.get("CXR_STUDIO_CACHE_DIR")
    if env:
        return Path(env)
    from ml.paths import user_cache_dir

    return user_cache_dir()


class ArchiveCache:
    """Extracts ZIP members on demand into ``<cache>/archives/<archive id>/<member path>``."""

    def __init__(self, cache_dir: Path | None) -> None:
        self._root = cache_dir
        self._open: dict[str, tuple[zipfile.ZipFile, Path]] = {}

    def _archive(self, zip_path: str) -> tuple[zipfile.ZipFile, Path]:
        if zip_path not in self._open:
            st = os.stat(zip_path)
            ident = f"{os.path.abspath(zip_path)}|{st.st_size}|{st.st_mtime_ns}"
            digest = hashlib.sha1(ident.encode("utf-8", "surrogateescape")).hexdigest()[:16]
            if self._root is None:
                self._root = default_cache_dir()
            target = self._root / "archives" / digest
            try:
                target.mkdir(parents=True, exist_ok=True)
            except OSError:  # read-only home: fall back to the temp folder
                target = Path(tempfile.gettempdir()) / "cxr-studio-cache" / "archives" / digest
                target.mkdir(parents=True, exist_ok=True)
            self._open[zip_path] = (zipfile.ZipFile(zip_path), target)
        return self._open[zip_path]

    def extract(self, zip_path: str, member: str) -> str:
        zf, target = self._archive(zip_path)
        info = zf.getinfo(member)
        parts = [p for p in PurePosixPath(member.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
        parts = [p.replace(":", "_") for p in parts] or ["member"]
        dest = target.joinpath(*parts)
        if dest.is_file() and dest.stat().st_size == info.file_size:
            return str(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
        with zf.open(info) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, dest)  # atomic: a half-written file is never seen under the real name
        return str(dest)

    def close(self) -> None:
        for zf, _ in self._open.values():
            zf.close()
        self._open.clear()
