"""Downloads without a checksum: no stale resume, only loadable weights kept, an overall time limit.

Against a real http.server on 127.0.0.1 (the fixture of tests/test_models_download.py, extended
with ETag/Last-Modified headers, a slow-drip path and an HTML error page).
"""

from __future__ import annotations

import http.server
import io
import json
import threading
import time
from pathlib import Path

import pytest
import torch

from ml.errors import DownloadError
from ml.models import download

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _weights(seed: int) -> bytes:
    torch.manual_seed(seed)
    buffer = io.BytesIO()
    torch.save({"w": torch.randn(64, 64)}, buffer)
    return buffer.getvalue()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (http.server API)
        server = self.server
        path = self.path
        server.requests.append((path, self.headers.get("Range")))
        if path == "/error.html":
            body = b"<!DOCTYPE html><html><body>Service unavailable</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)
            return
        data = server.files[path]
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        if server.etag:
            self.send_header("ETag", server.etag)
        body = data[start:]
        if path != "/nolength.pt":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if path == "/drip.pt":
            for byte in body[:100]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
            return
        if path == "/nolength.pt":
            body = body[: len(body) // 2]  # connection closes early: looks complete without a length
        self.wfile.write(body)


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.files = {"/w.pt": _weights(1), "/drip.pt": _weights(1), "/nolength.pt": _weights(1)}
    httpd.etag = None
    httpd.requests = []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_a_stale_part_without_validators_is_not_resumed(server, tmp_path: Path) -> None:
    new = server.files["/w.pt"]
    old = _weights(2)  # same length, other tensor values: what the issue saw installed
    assert len(old) == len(new) and old != new
    (tmp_path / "w.pt.part").write_bytes(old[: len(old) // 2])
    dest = download.download(server.url + "/w.pt", tmp_path / "w.pt")
    assert dest.read_bytes() == new
    assert server.requests[-1] == ("/w.pt", None)  # started over, no Range


def test_a_part_is_resumed_when_the_validators_match_and_restarted_when_they_change(
    server, tmp_path: Path
) -> None:
    data = server.files["/w.pt"]
    server.etag = '"v1"'
    part = tmp_path / "w.pt.part"
    part.write_bytes(data[:1000])
    part.with_name(part.name + ".json").write_text(
        json.dumps({"etag": '"v1"', "last_modified": None, "length": len(data)})
    )
    dest = download.download(server.url + "/w.pt", tmp_path / "w.pt")
    assert dest.read_bytes() == data and server.requests[-1] == ("/w.pt", "bytes=1000-")
    assert not part.with_name(part.name + ".json").exists()

    server.requests.clear()
    dest.unlink()
    part.write_bytes(_weights(2)[:1000])
    part.with_name(part.name + ".json").write_text(
        json.dumps({"etag": '"v0"', "last_modified": None, "length": len(data)})
    )
    dest = download.download(server.url + "/w.pt", tmp_path / "w.pt")
    assert dest.read_bytes() == data
    assert [r for _, r in server.requests] == ["bytes=1000-", None]  # validators differ: start over


def test_an_html_error_page_is_not_kept_as_weights(server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTML page"):
        download.download(server.url + "/error.html", tmp_path / "w.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_body_without_a_length_is_refused(server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="not a usable weights file"):
        download.download(server.url + "/nolength.pt", tmp_path / "w.pt")
    assert not (tmp_path / "w.pt").exists()


def test_a_server_dripping_bytes_is_stopped_by_the_rate_limit_and_the_deadline(
    server, tmp_path: Path
) -> None:
    start = time.monotonic()
    with pytest.raises(DownloadError, match="stopped"):
        download.download(server.url + "/drip.pt", tmp_path / "a.pt", timeout=2, retries=0)
    assert time.monotonic() - start < 6
    start = time.monotonic()
    with pytest.raises(DownloadError, match="longer than the time allowed"):
        download.download(server.url + "/drip.pt", tmp_path / "b.pt", timeout=30, deadline=1.5)
    assert time.monotonic() - start < 4
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()
