"""Test data for a clone without ../shared: the manifest is right, downloads are verified, offline
gives one clear message. Downloads here come from a local HTTP server, never the internet."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests import shared_data as sd


@pytest.fixture(scope="module")
def entries() -> list[sd.DataFile]:
    return sd.manifest()


def test_manifest_hashes_are_those_of_the_shared_files(entries, shared_data: Path):
    if shared_data != sd.SHARED_DATA:
        pytest.skip("needs ../shared/data itself to compare with")
    wrong = [e.path for e in entries if sd.sha256_of(shared_data / e.path) != e.sha256]
    assert not wrong, f"tests/data_manifest.json is stale for {wrong} (python -m tests.shared_data --write-manifest)"
    listed = {e.path for e in entries}
    on_disk = {str(p.relative_to(shared_data)) for d in ("dicom", "cxr") for p in (shared_data / d).rglob("*")
               if p.is_file()}
    assert on_disk == listed  # every file the tests can read in place can also be fetched or is named


def test_every_dicom_file_has_an_upstream_url(entries):
    no_url = [e.path for e in entries if e.url is None]
    assert all(p.startswith("cxr/kermany-val/") for p in no_url)  # only the 1.2 GB archive set
    assert all(e.url.startswith("https://") for e in entries if e.url)


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def server(shared_data: Path):
    """An HTTP server on 127.0.0.1 that serves the data folder (as upstream would)."""
    handler = functools.partial(_Files, directory=str(shared_data))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_fills_the_cache_once_and_verifies(entries, server, tmp_path):
    local = [replace(e, url=f"{server}/{e.path}") for e in entries if e.path.startswith("dicom/")][:5]
    cache = tmp_path / "cache"
    assert sd.fetch(local, cache) == [e.path for e in local]
    assert all(sd.sha256_of(cache / e.path) == e.sha256 for e in local)
    assert sd.fetch(local, cache) == []  # already there and intact: nothing downloaded
    (cache / local[0].path).write_bytes(b"damaged")
    assert sd.fetch(local, cache) == [local[0].path]  # a damaged copy is fetched again
    assert not list(cache.rglob("*.part"))


def test_a_changed_upstream_file_is_refused_and_not_kept(entries, server, tmp_path):
    entry = next(e for e in entries if e.path.endswith("SC_rgb.dcm"))
    other = next(e for e in entries if e.path.endswith("vlut_04.dcm"))
    swapped = replace(entry, url=f"{server}/{other.path}", size=other.size)  # upstream now serves other bytes
    with pytest.raises(sd.TestDataUnavailable, match="is not the file the tests expect"):
        sd.fetch([swapped], tmp_path)
    assert not (tmp_path / entry.path).exists()


def test_offline_gives_one_clear_message_quickly(entries, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    offline = [replace(e, url=f"http://127.0.0.1:{closed}/{e.path}") for e in entries if e.url][:3]
    start = time.monotonic()
    with pytest.raises(sd.TestDataUnavailable) as caught:
        sd.fetch(offline, tmp_path, timeout=2)
    message = str(caught.value)
    assert time.monotonic() - start < 10
    assert "\n" not in message and "Offline?" in message and str(sd.SHARED_DATA) in message
    assert sd.ENV_DATA in message and str(tmp_path) in message  # what to do, and where files go


def test_without_shared_folder_the_cache_is_used_and_reported(entries, server, tmp_path, monkeypatch):
    monkeypatch.setattr(sd, "SHARED_DATA", tmp_path / "no-shared")
    monkeypatch.delenv(sd.ENV_DATA, raising=False)
    monkeypatch.setenv(sd.ENV_CACHE, str(tmp_path / "cache"))
    assert sd.in_place_folder() is None
    header = sd.describe_source()
    assert "not found" in header and str(tmp_path / "cache") in header and "cxr/kermany-val" in header
    monkeypatch.setenv(sd.ENV_DATA, str(tmp_path / "mine"))
    assert sd.in_place_folder() == tmp_path / "mine"  # an explicit copy is read in place
