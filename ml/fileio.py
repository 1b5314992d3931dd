"""Atomic file writes (write to a temporary name in the same folder, then rename) and the one file
SHA-256."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ml.errors import CxrError

if TYPE_CHECKING:
    from ml.progress import CancelToken


def current_umask() -> int:
    """The process umask (read from /proc where it can be, so no other thread sees a changed umask)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | os.PathLike[str]) -> None:
    """Give a file made by ``tempfile.mkstemp`` (always 0600) the mode a plain ``open()`` would give it.

    Reports, exports, CSVs, DICOM files and models the app writes then follow the user's umask
    (0644 with the usual 022) instead of staying private to the user.
    """
    with contextlib.suppress(OSError):  # a file system without modes (FAT, some network shares)
        os.chmod(path, 0o666 & ~current_umask())


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str], *, private: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success it replaces ``dest`` in one step.

    The file gets the user's umask mode, or 0600 with ``private`` (files that may hold credentials).
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:  # a read-only or missing drive, a file where a folder should be...
        raise CxrError(
            f"Cannot write {dest.name} in {dest.parent}: {exc.strerror or type(exc).__name__}."
        ) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if not private:
            follow_umask(tmp_path)
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(dest: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(dest: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(dest, text.encode("utf-8"))


def save_png_atomic(dest: str | os.PathLike[str], array) -> None:  # noqa: ANN001 - numpy array
    """Save an 8-bit grey (HxW) or RGB (HxWx3) array as PNG, atomically."""
    from PIL import Image

    with atomic_path(dest) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def sha256_file(path: str | os.PathLike[str], cancel: CancelToken | None = None) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB blocks; ``cancel`` is checked between blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            if cancel is not None:
                cancel.check()
            digest.update(block)
    return digest.hexdigest()
