"""List what to index: files, folders, ZIP archives and DICOMDIRs (see :mod:`ml.imaging.index`).

:func:`iter_files` is cheap: a folder walk, a ZIP central directory, DICOMDIR records; no file
header is read. OS bookkeeping files (.DS_Store, Thumbs.db, __MACOSX/, ._*) are left out.
:class:`ArchiveCache` extracts ZIP members, one by one as they are read, into a cache folder
(:func:`default_cache_dir`, never next to the user's files; the archive itself is only read).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import threading
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ml.errors import ImagingError
from ml.imaging.dicomdir import read_dicomdir
from ml.imaging.sniff import ZIP_MAGIC, read_head

# Extraction limits (a ZIP bomb must not fill the disk): one member may expand at most
# MAX_RATIO times its compressed size (when over RATIO_FREE bytes), and one archive may write at
# most MAX_TOTAL_FACTOR times its own size plus TOTAL_SLACK bytes into the cache.
MAX_RATIO = 100
RATIO_FREE = 16 << 20
MAX_TOTAL_FACTOR = 8
TOTAL_SLACK = 64 << 20
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
        source = f"{path}:{info.filename}"
        if not info.filename or not parts:  # zipfile cuts a name at its first NUL: "" is left
            yield ListedFile(path, source, info.filename, f"A member of {name} has an empty or invalid name: skipped.")
            continue
        if info.is_dir() or any(_is_junk(p) for p in parts):
            continue
        if "\0" in info.filename or any(ord(c) < 32 for c in info.filename):
            shown = info.filename.replace("\0", "\\0").encode("unicode_escape").decode("ascii")
            yield ListedFile(path, source, info.filename, f"A member of {name} has an invalid name ({shown!r}): skipped.")
        elif info.flag_bits & 0x1:
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
            if not _is_regular(full):
                yield ListedFile(full, full, error=f"{fname} is not a regular file (a pipe, socket or device): skipped.")
            elif fname.lower().endswith(".zip"):
                yield from _list_zip(full)
            else:
                yield ListedFile(full, full)


def _is_regular(path: str) -> bool:
    """A regular file (symlinks followed), checked with stat: a FIFO is never opened here."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return True  # let reading it give the real reason (broken link, permission...)


def _list_dicomdir(path: str) -> Iterator[ListedFile]:
    """The files a DICOMDIR references (pydicom's FileSet); the whole folder when its records
    are broken. References leading out of the DICOMDIR's folder are refused, never read."""
    listing = read_dicomdir(path)
    if listing.outside:
        yield ListedFile(path, path, error=(
            f"DICOMDIR references {listing.outside} file(s) outside its folder: they were not read."
        ))
    if listing.problem:
        yield ListedFile(path, path, error=f"DICOMDIR {listing.problem}: the folder was scanned instead.")
        yield from (f for f in _walk(listing.root) if os.path.basename(f.path).upper() != "DICOMDIR")
        return
    for ref in listing.files:
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
        elif not _is_regular(path):
            yield ListedFile(path, path, error=f"{Path(path).name} is not a regular file (a pipe, socket or device).")
        elif Path(path).name.upper() == "DICOMDIR":
            yield from _list_dicomdir(path)
        elif path.lower().endswith(".zip") or (not Path(path).suffix and _head(path, 4) == ZIP_MAGIC):
            yield from _list_zip(path)
        else:
            yield ListedFile(path, path)


def _head(path: str, n: int) -> bytes:
    try:
        return read_head(path, n)
    except ImagingError:
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
    """Extracts ZIP members on demand into ``<cache>/archives/<archive id>/<member path>``
    (a member whose name had to be made safe, ``../x.dcm`` say, goes under ``_renamed/<hash>/``
    so it never collides with ``x.dcm``). Extraction is capped (see :data:`MAX_RATIO`,
    :data:`MAX_TOTAL_FACTOR`): a member over the cap is an :class:`ImagingError`, not written."""

    def __init__(self, cache_dir: Path | None) -> None:
        self._root = cache_dir
        self._open: dict[str, tuple[zipfile.ZipFile, Path]] = {}
        self._written: dict[str, int] = {}

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
            self._written[zip_path] = 0
        return self._open[zip_path]

    @staticmethod
    def member_path(target: Path, member: str) -> Path:
        raw = PurePosixPath(member.replace("\\", "/")).parts
        parts = [p.replace(":", "_").replace("\0", "_") for p in raw if p not in ("", ".", "..", "/")]
        if parts != list(raw) or not parts:
            digest = hashlib.sha1(member.encode("utf-8", "surrogateescape")).hexdigest()[:12]
            return target.joinpath("_renamed", digest, *(parts or ["member"]))
        return target.joinpath(*parts)

    def head(self, zip_path: str, member: str, n: int = 132) -> bytes:
        """The first ``n`` bytes of a member, read from its stream (nothing is written)."""
        zf, _ = self._archive(zip_path)
        with zf.open(zf.getinfo(member)) as src:
            return src.read(n)

    def extract(self, zip_path: str, member: str) -> str:
        zf, target = self._archive(zip_path)
        info = zf.getinfo(member)
        dest = self.member_path(target, member)
        if dest.is_file() and dest.stat().st_size == info.file_size:
            return str(dest)
        name = PurePosixPath(member.replace("\\", "/")).name or member
        if info.file_size > RATIO_FREE and info.file_size > MAX_RATIO * max(1, info.compress_size):
            raise ImagingError(
                f"{name} in {Path(zip_path).name} would expand {info.file_size // max(1, info.compress_size)}"
                " times its compressed size: not extracted (a damaged or hostile archive)."
            )
        allowed = MAX_TOTAL_FACTOR * os.path.getsize(zip_path) + TOTAL_SLACK
        if self._written[zip_path] + info.file_size > allowed:
            raise ImagingError(
                f"{name} in {Path(zip_path).name} was not extracted: the archive would write more than "
                f"{allowed >> 20} MiB into the cache."
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            with zf.open(info) as src, open(tmp, "wb") as out:
                left = info.file_size
                while chunk := src.read(min(1 << 20, left + 1)):
                    left -= len(chunk)
                    if left < 0:
                        raise ImagingError(f"{name} in {Path(zip_path).name} is larger than its archive says.")
                    out.write(chunk)
            os.replace(tmp, dest)  # atomic: a half-written file is never seen under the real name
        finally:
            if tmp.exists():
                tmp.unlink()
        self._written[zip_path] += info.file_size
        return str(dest)

    def close(self) -> None:
        for zf, _ in self._open.values():
            zf.close()
        self._open.clear()
