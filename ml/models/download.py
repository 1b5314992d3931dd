"""Downloading pretrained weights: resumable, verified, atomic, cancellable (urllib only).

:func:`download` streams into ``<dest>.part``. When the connection drops it resumes with an HTTP
``Range`` request (automatically ``retries`` times, and again on the next call: the ``.part`` file is
kept after an interruption or a cancel). When complete it checks the size and the SHA-256 (full hash,
or torchvision's hash prefix); a mismatch deletes the file. Only then is it renamed into place with
``os.replace``, so ``dest`` is either absent or complete.

:func:`install_from_catalogue` downloads a catalogue entry into the library's cache, converts it to
a CXR Studio model file and installs it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ml import __version__
from ml.errors import DownloadError, ModelFileError
from ml.fileio import sha256_file
from ml.models import catalogue, library
from ml.models.verify import check_weights_file
from ml.progress import CancelToken, ProgressCallback, check, report

CHUNK = 256 * 1024
#: slower than this (bytes/s, averaged over each ``timeout`` window) is a stalled download
MIN_RATE = 1024
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class _Interrupted(Exception):
    """The body stopped before its announced end; the ``.part`` file holds what arrived."""


def _host(url: str) -> str:
    return urlparse(url).hostname or url


def _offline(url: str, reason: object) -> DownloadError:
    return DownloadError(f"Cannot reach {_host(url)}: check the network connection ({reason}).")


def _too_slow(url: str, label: str, why: str) -> DownloadError:
    return DownloadError(
        f"The download of {label} from {_host(url)} was stopped: {why}. The part received is kept; "
        "run it again to resume."
    )


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _validators(response: Any, total: int | None) -> dict[str, Any] | None:
    """What identifies this version of the file on the server: ETag/Last-Modified and its length."""
    etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
    if not (etag or modified) or not total:
        return None
    return {"etag": etag, "last_modified": modified, "length": total}


def _write_validators(part: Path, validators: dict[str, Any] | None) -> None:
    sidecar = _sidecar(part)
    if validators is None:
        sidecar.unlink(missing_ok=True)
    else:
        sidecar.write_text(json.dumps(validators), encoding="utf-8")


def _read_validators(part: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_sidecar(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and (data.get("etag") or data.get("last_modified")) else None


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _sidecar(part).unlink(missing_ok=True)


def _fetch(
    url: str,
    part: Path,
    expected_size: int | None,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    timeout: float,
    label: str,
    checked: bool = True,
    deadline: float | None = None,
) -> None:
    """One HTTP request appending to ``part``; raises _Interrupted when the body is cut short.

    ``checked``: a checksum will verify the result, so any ``.part`` may be resumed. Without one a
    ``.part`` is resumed only when the server's validators still match those it was started with.
    """
    have = part.stat().st_size if part.exists() else 0
    started = _read_validators(part) if have and not checked else None
    if have and not checked and started is None:
        _discard(part)
        have = 0
    if expected_size is not None and have > expected_size:
        _discard(part)
        have = 0
    if expected_size is not None and have == expected_size:
        return
    request = urllib.request.Request(
        url, headers={"User-Agent": f"cxr-studio/{__version__}", "Accept-Encoding": "identity"}
    )
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part is complete, or stale
            match = re.search(r"/(\d+)", exc.headers.get("Content-Range") or "")
            if match and int(match.group(1)) == have and (checked or (started or {}).get("length") == have):
                return
            _discard(part)
            raise _Interrupted("the server refused to resume; starting again") from None
        raise DownloadError(f"The server {_host(url)} answered {exc.code} {exc.reason} for {url}.") from None
    except urllib.error.URLError as exc:
        raise _offline(url, exc.reason) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
        raise _offline(url, exc) from None

    with response:
        mode = "wb"
        if response.status == 206:
            match = _CONTENT_RANGE.search(response.headers.get("Content-Range") or "")
            if not match or int(match.group(1)) != have:
                _discard(part)
                raise _Interrupted("the server sent a different range; starting again")
            if (
                not checked
                and _validators(response, int(match.group(3)) if match.group(3).isdigit() else None)
                != started
            ):
                _discard(part)
                raise _Interrupted(
                    "the file on the server changed since the download started; starting again"
                )
            mode = "ab"
        else:
            have = 0  # the server ignored the Range header: start from scratch
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else expected_size
        if mode == "wb":
            _write_validators(part, _validators(response, total))
        if expected_size is not None and total is not None and total != expected_size:
            _discard(part)
            raise DownloadError(
                f"The server {_host(url)} offers {total} bytes for {label}, but {expected_size} are expected; "
                "the file on the server is not the one in the catalogue."
            )
        done = have
        report(progress, done, total or 0, f"Downloading {label}")
        window_start, window_bytes = time.monotonic(), 0
        with part.open(mode) as fh:
            while True:
                check(cancel)
                try:
                    chunk = response.read1(CHUNK)
                except (http.client.IncompleteRead, TimeoutError, OSError) as exc:
                    raise _Interrupted(str(exc) or type(exc).__name__) from None
                if not chunk:
                    break
                fh.write(chunk)
                done += len(chunk)
                window_bytes += len(chunk)
                now = time.monotonic()
                if deadline is not None and now > deadline:
                    raise _too_slow(url, label, "it took longer than the time allowed")
                if now - window_start >= timeout:
                    if window_bytes < MIN_RATE * (now - window_start):
                        raise _too_slow(url, label, f"under {MIN_RATE} bytes/s for {timeout:g} s")
                    window_start, window_bytes = now, 0
                report(progress, done, total or 0, f"Downloading {label}")
        if total is not None and done < total:
            raise _Interrupted(f"received {done} of {total} bytes")


def download(
    url: str,
    dest: str | os.PathLike[str],
    expected_size: int | None = None,
    sha256: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    *,
    sha256_prefix: str | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    deadline: float | None = None,
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified, atomic); return ``dest``.

    ``timeout`` bounds each network wait, and a body slower than :data:`MIN_RATE` over a
    ``timeout`` window is stopped; ``deadline`` (seconds) bounds the whole call. Without a checksum
    a ``.part`` is only resumed when the server's ETag/Last-Modified and length are unchanged, and
    the result must pass ``verify`` (default: :func:`~ml.models.verify.check_weights_file`) before
    it takes the final name.

    Raises DownloadError (offline, HTTP error, interrupted more than ``retries`` times, too slow,
    size or checksum mismatch, not a weights file) or CancelledError (the ``.part`` file is kept so
    a later call resumes).
    """
    checked = bool(sha256 or sha256_prefix)
    if verify is None and not checked:
        verify = check_weights_file
    end = time.monotonic() + deadline if deadline is not None else None
    scheme = urlparse(url).scheme
    if scheme not in ("http", "https"):
        raise DownloadError(f"Only http and https downloads are supported, not '{url}'.")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    label = dest.name
    failures = 0
    while True:
        check(cancel)
        try:
            _fetch(url, part, expected_size, progress, cancel, timeout, label, checked, end)
            break
        except _Interrupted as exc:
            failures += 1
            if failures > retries:
                raise DownloadError(
                    f"The download from {_host(url)} was interrupted ({exc}); run it again to resume."
                ) from None
    if not part.exists():
        part.touch()
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        _discard(part)
        raise DownloadError(
            f"{label} has {size} bytes instead of {expected_size}; it was deleted, try again."
        )
    if sha256 or sha256_prefix:
        report(progress, size, size, f"Verifying {label}")
        digest = sha256_file(part, cancel)
        wanted = (sha256 or sha256_prefix or "").lower()
        if (sha256 and digest != wanted) or (not sha256 and not digest.startswith(wanted)):
            _discard(part)
            raise DownloadError(
                f"Checksum mismatch for {label}: the download is damaged or not the expected file; "
                "it was deleted, try again."
            )
    if verify is not None:
        try:
            verify(part)
        except ModelFileError as exc:
            _discard(part)
            raise DownloadError(
                f"What {_host(url)} sent for {label} is not a usable weights file ({exc}); it was deleted."
            ) from None
    os.replace(part, dest)
    _sidecar(part).unlink(missing_ok=True)
    return dest


def install_from_catalogue(
    name: str,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    *,
    overwrite: bool = False,
    catalogue_path: str | os.PathLike[str] | None = None,
) -> library.InstalledModel:
    """Download catalogue entry ``name``, convert it to a model file and add it to the library.

    Returns the already-installed model when there is one (unless ``overwrite``).
    """
    entry = catalogue.get_entry(name, catalogue_path)
    existing = library.find_model(entry.name)
    if existing is not None and existing.error is None and not overwrite:
        return existing
    cached = library.cache_dir() / entry.filename
    if not cached.exists():
        download(
            entry.url, cached, entry.size, entry.sha256, progress, cancel, sha256_prefix=entry.sha256_prefix
        )
    check(cancel)
    report(progress, 0, 0, f"Converting {entry.name}")
    try:
        state, manifest = catalogue.convert_download(entry, cached)
    except ModelFileError as exc:
        cached.unlink(missing_ok=True)
        raise type(exc)(
            f"The download of '{entry.name}' could not be converted and was deleted: {exc}"
        ) from None
    check(cancel)
    return library.install_state(state, manifest, overwrite=True)
