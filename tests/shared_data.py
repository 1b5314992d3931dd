"""Where the real test data comes from: ../shared/data in place, else a verified download cache.

The tests read real files made by scanners, hospitals and toolkits (``../shared/data``, see its
README). A checkout that has that folder next to it reads it in place, as before. A clone without it
gets the same public files from their upstream sources (pydicom's test-data repository, the
torchxrayvision project's tests), downloaded once into the user's cache folder and checked against
the SHA-256 in ``tests/data_manifest.json``; a file whose hash differs is never used.

Order: ``$CXR_STUDIO_TEST_DATA`` (a folder laid out like ../shared/data) > ``../shared/data`` >
the cache (``$CXR_STUDIO_TEST_DATA_CACHE``, else ``<platform cache>/cxr-studio/test-data``).
Offline, with neither folder there, the first test that needs data fails with one message that
says what to do. A few files have no per-file download (``url`` is null in the manifest: the
Kermany paediatric set is one 1.2 GB archive on Mendeley Data); tests that need them fail naming
them, and the session header lists them.

Maintainers: ``python -m tests.shared_data --write-manifest`` recomputes sizes and hashes from
../shared/data (keeping the URLs).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MANIFEST = Path(__file__).with_name("data_manifest.json")
ENV_DATA = "CXR_STUDIO_TEST_DATA"
ENV_CACHE = "CXR_STUDIO_TEST_DATA_CACHE"
TIMEOUT_S = 30.0


class TestDataUnavailable(RuntimeError):
    """The data folder is not there and the files could not be downloaded (one readable line)."""

    __test__ = False  # not a test class, despite the name


@dataclass(frozen=True)
class DataFile:
    path: str  # relative to the data folder, "/"-separated
    sha256: str
    size: int
    url: str | None  # None: no per-file download (see ``source``)
    source: str = ""


def manifest(path: Path = MANIFEST) -> list[DataFile]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return [DataFile(f["path"], f["sha256"], f["size"], f.get("url"), f.get("source", "")) for f in raw["files"]]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    from ml.paths import platform_cache_dir

    return platform_cache_dir() / "test-data"


def in_place_folder() -> Path | None:
    """$CXR_STUDIO_TEST_DATA or ../shared/data, when it holds the data (read in place)."""
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    return SHARED_DATA if (SHARED_DATA / "dicom").is_dir() else None


def _download(entry: DataFile, target: Path, timeout: float) -> None:
    """Fetch one file to ``target``, atomically, only when its SHA-256 is the manifest's."""
    assert entry.url is not None
    request = urllib.request.Request(entry.url, headers={"User-Agent": "cxr-studio-tests"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read(entry.size + 1)
    got = hashlib.sha256(body).hexdigest()
    if got != entry.sha256:
        raise TestDataUnavailable(
            f"test data: {entry.url} is not the file the tests expect (SHA-256 {got[:12]}..., "
            f"tests/data_manifest.json says {entry.sha256[:12]}...): not used. Has it changed upstream?"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(body)
    os.replace(partial, target)


def fetch(entries: list[DataFile], cache: Path, timeout: float = TIMEOUT_S) -> list[str]:
    """Make ``cache`` hold every downloadable entry (verified); returns the paths downloaded.

    Files already there with the right hash are kept; a damaged one is fetched again.
    """
    fetched = []
    for entry in entries:
        target = cache / entry.path
        if target.is_file() and target.stat().st_size == entry.size and sha256_of(target) == entry.sha256:
            continue
        if entry.url is None:
            continue
        try:
            _download(entry, target, timeout)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise TestDataUnavailable(
                f"test data: {SHARED_DATA} is not there and {entry.url} could not be downloaded "
                f"({reason}). Offline? Put the shared data folder next to the repository, set "
                f"{ENV_DATA} to a copy of it, or run the tests once online (files are cached in {cache})."
            ) from None
        fetched.append(entry.path)
    return fetched


def missing(entries: list[DataFile], root: Path) -> list[DataFile]:
    return [e for e in entries if not (root / e.path).is_file()]


@functools.cache
def data_root() -> Path:
    """The folder to read test data from (downloading into the cache when needed)."""
    folder = in_place_folder()
    if folder is not None:
        return folder
    cache = cache_dir()
    done = fetch(manifest(), cache)
    if done:
        print(f"[tests] downloaded {len(done)} test data file(s) into {cache}", file=sys.stderr)
    return cache


def describe_source() -> str:
    """One line for the test session header: where the data comes from, what is not there."""
    folder = in_place_folder()
    if folder is not None:
        return f"test data: {folder} (read in place)"
    entries = manifest()
    cache = cache_dir()
    absent = [e.path for e in missing(entries, cache) if e.url is None]
    tops = sorted({p.rsplit("/", 1)[0] for p in absent})
    note = f"; not downloadable, tests that need them fail: {', '.join(tops)}" if tops else ""
    return f"test data: {SHARED_DATA} not found, using the verified download cache {cache}{note}"


def write_manifest(source: Path = SHARED_DATA, path: Path = MANIFEST) -> int:
    """Recompute size and SHA-256 of every listed file from ``source`` (URLs are kept)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    for f in raw["files"]:
        file = source / f["path"]
        f["size"], f["sha256"] = file.stat().st_size, sha256_of(file)
    path.write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    return len(raw["files"])


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-manifest"]:
        print(f"{write_manifest()} files hashed into {MANIFEST}")
    else:
        print(describe_source())
        print(data_root())
