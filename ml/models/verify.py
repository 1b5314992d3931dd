"""Is a downloaded file a complete weights file? A cheap structural check before it is kept.

An HTML error page, a truncated body or any other file that cannot be weights is refused with a
:class:`~ml.errors.ModelFileError` before a download takes its final name. Nothing is unpickled.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

from ml.errors import ModelFileError

_LEGACY_PREFIX = b"\x80\x02\x8a\x0a"  # pickle protocol 2, then the 10-byte legacy torch magic number


def check_weights_file(path: Path) -> None:
    """Raise ModelFileError unless ``path`` looks like a complete safetensors or PyTorch file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise ModelFileError(f"{path.name} cannot be read ({exc.strerror or exc}).") from None
    if head[:4] == b"PK\x03\x04":
        _check_torch_zip(path)
        return
    if head.startswith(_LEGACY_PREFIX):
        from ml.models.legacy_pickle import check_declared_sizes

        check_declared_sizes(path)
        return
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] > 1:
        from ml.models import bundle

        bundle.read_header(path)  # checks the header parses and the data is all there
        return
    kind = "an HTML page" if head.lstrip()[:1] == b"<" else "not a weights file"
    raise ModelFileError(f"{path.name} is {kind}, not PyTorch or safetensors weights")


def _check_torch_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ModelFileError(f"{path.name} is an incomplete or damaged archive ({exc})") from None
    if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        raise ModelFileError(f"{path.name} is a ZIP archive but not a PyTorch weights file")
