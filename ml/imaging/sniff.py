"""The one answer to "what kind of file is this?", from its first bytes.

Every reader (``cxr info``/``render``/``predict``, the index, the training scan) asks
:func:`sniff_kind`; nothing else looks at magic numbers. Only regular files are opened: a FIFO,
socket or device in a scanned folder is refused without blocking (opened with ``O_NONBLOCK``,
then checked with ``fstat``), so a stray named pipe can never hang the indexer.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO, Literal

from ml.errors import ImagingError, NotAnImageError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
ZIP_MAGIC = b"PK\x03\x04"
HEAD_SIZE = 132  # 128-byte preamble + "DICM"

Kind = Literal["png", "jpeg", "dicom", "zip", "empty", "unknown"]

# A DICOM stream without preamble starts with a group 0002 (file meta) or 0008 (identification)
# element, little or big endian.
_RAW_DICOM_GROUPS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


def has_preamble(head: bytes) -> bool:
    return len(head) >= HEAD_SIZE and head[128:132] == b"DICM"


def kind_of(head: bytes) -> Kind:
    """The kind of a file from its first :data:`HEAD_SIZE` bytes."""
    if not head:
        return "empty"
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if has_preamble(head):
        return "dicom"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if len(head) >= 8 and head[:2] in _RAW_DICOM_GROUPS:
        return "dicom"  # plausible; the header reader confirms it
    return "unknown"


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for reading, refusing anything that is not a regular file, without blocking.

    Raises :class:`ImagingError` (missing, unreadable) or :class:`NotAnImageError` (a folder, a
    pipe, a device) with a readable message.
    """
    name = Path(path).name or os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ImagingError(f"{name} does not exist.") from None
    except IsADirectoryError:
        raise NotAnImageError(f"{name} is a folder, not an image file.") from None
    except PermissionError:
        raise ImagingError(f"{name} cannot be read: permission denied.") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        raise ImagingError(f"{name} cannot be read ({getattr(exc, 'strerror', None) or exc}).") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise NotAnImageError(f"{name} is a folder, not an image file.")
        if not stat.S_ISREG(mode):
            raise NotAnImageError(f"{name} is not a regular file (a pipe, socket or device): skipped.")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_head(path: str | os.PathLike[str], n: int = HEAD_SIZE) -> bytes:
    with open_regular(path) as fh:
        return fh.read(n)


def sniff_kind(path: str | os.PathLike[str]) -> Kind:
    """'png', 'jpeg', 'dicom' (with preamble, or a plausible raw stream), 'zip', 'empty' or
    'unknown'. Raises :class:`ImagingError` when the file cannot be opened (see :func:`open_regular`)."""
    return kind_of(read_head(path))


def is_regular_file(path: str | os.PathLike[str]) -> bool:
    """True for a regular file (follows symlinks); never opens it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False
