"""Downloads against a real HTTP server on 127.0.0.1: resume, corruption, offline, cancel, install."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import threading

import pytest
import torch

from ml.errors import CancelledError, DownloadError
from ml.models import bundle, download, library, registry
from ml.progress import CancelToken

pytestmark = pytest.mark.usefixtures("single_torch_thread")


PAYLOAD = bytes((i * 7919 + (i >> 8)) % 256 for i in range(600_000))
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; ``server.cut_once`` paths drop the connection half-way once."""

    protocol_version = "HTTP/1.0"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server API)
        server = self.server
        path = self.path.split("?")[0]
        range_header = self.headers.get("Range")
        server.requests.append((path, range_header))
        if path not in server.files:
            self.send_error(404, "Not Found")
            return
        data = server.files[path]
        start = 0
        if range_header and path not in server.ignore_range:
            start = int(range_header.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if path in server.cut_once:
            server.cut_once.discard(path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            server.bytes_sent += len(body) // 2
            return
        self.wfile.write(body)
        server.bytes_sent += len(body)


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # cut or cancelled connections are expected here
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.files = {"/weights.bin": PAYLOAD}
    httpd.cut_once = set()
    httpd.ignore_range = set()
    httpd.requests = []
    httpd.bytes_sent = 0
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_and_renames_into_place(server, tmp_path):
    seen = []
    dest = download.download(
        server.url + "/weights.bin",
        tmp_path / "w.bin",
        len(PAYLOAD),
        SHA,
        progress=lambda d, t, m: seen.append((d, t)),
    )
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "w.bin.part").exists()
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and seen[0][1] == len(PAYLOAD)


def test_connection_cut_half_way_resumes_with_a_range_request(server, tmp_path):
    server.cut_once.add("/weights.bin")
    dest = tmp_path / "w.bin"
    with pytest.raises(DownloadError, match="interrupted.*run it again to resume"):
        download.download(server.url + "/weights.bin", dest, sha256=SHA, retries=0)
    part = tmp_path / "w.bin.part"
    assert not dest.exists() and part.stat().st_size == len(PAYLOAD) // 2

    sent_before = server.bytes_sent
    download.download(server.url + "/weights.bin", dest, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/weights.bin", f"bytes={len(PAYLOAD) // 2}-")
    assert server.bytes_sent - sent_before == len(PAYLOAD) - len(PAYLOAD) // 2  # only the rest was sent


def test_one_call_retries_after_a_cut_by_itself(server, tmp_path):
    server.cut_once.add("/weights.bin")
    dest = download.download(server.url + "/weights.bin", tmp_path / "w.bin", len(PAYLOAD), SHA)
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [None, f"bytes={len(PAYLOAD) // 2}-"]


def test_server_that_ignores_range_restarts_from_scratch(server, tmp_path):
    server.ignore_range.add("/weights.bin")
    (tmp_path / "w.bin.part").write_bytes(PAYLOAD[:1000])
    dest = download.download(server.url + "/weights.bin", tmp_path / "w.bin", sha256=SHA)
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_file_is_not_downloaded_again(server, tmp_path):
    (tmp_path / "w.bin.part").write_bytes(PAYLOAD)
    dest = download.download(server.url + "/weights.bin", tmp_path / "w.bin", sha256=SHA)
    assert dest.read_bytes() == PAYLOAD  # the server answered 416 to the range request


def test_corrupted_file_fails_the_checksum_and_is_deleted(server, tmp_path):
    corrupted = bytearray(PAYLOAD)
    corrupted[123_456] ^= 0xFF
    server.files["/weights.bin"] = bytes(corrupted)
    with pytest.raises(DownloadError, match="Checksum mismatch.*deleted"):
        download.download(server.url + "/weights.bin", tmp_path / "w.bin", len(PAYLOAD), SHA)
    assert list(tmp_path.iterdir()) == []


def test_torchvision_hash_prefix_is_checked(server, tmp_path):
    ok = download.download(server.url + "/weights.bin", tmp_path / "a.bin", sha256_prefix=SHA[:8])
    assert ok.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="Checksum mismatch"):
        download.download(server.url + "/weights.bin", tmp_path / "b.bin", sha256_prefix="00000000")
    assert not (tmp_path / "b.bin").exists() and not (tmp_path / "b.bin.part").exists()


def test_wrong_size_is_refused(server, tmp_path):
    with pytest.raises(DownloadError, match="offers 600000 bytes.*1000 are expected"):
        download.download(server.url + "/weights.bin", tmp_path / "w.bin", expected_size=1000)
    assert list(tmp_path.iterdir()) == []


def test_offline_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.delenv("http_proxy", raising=False)
    with socket.socket() as s:  # a port that nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="Cannot reach 127.0.0.1: check the network connection"):
        download.download(f"http://127.0.0.1:{port}/w.bin", tmp_path / "w.bin")
    assert not (tmp_path / "w.bin").exists()


def test_http_errors_and_bad_urls(server, tmp_path):
    with pytest.raises(DownloadError, match="answered 404"):
        download.download(server.url + "/missing.bin", tmp_path / "w.bin")
    with pytest.raises(DownloadError, match="Only http and https"):
        download.download("file:///etc/passwd", tmp_path / "w.bin")


def test_cancel_stops_keeps_the_part_and_a_later_call_resumes(server, tmp_path):
    token = CancelToken()

    def progress(done, total, message):
        if done >= 200_000:
            token.cancel()

    dest = tmp_path / "w.bin"
    with pytest.raises(CancelledError):
        download.download(server.url + "/weights.bin", dest, sha256=SHA, progress=progress, cancel=token)
    assert not dest.exists()
    kept = (tmp_path / "w.bin.part").stat().st_size
    assert 0 < kept < len(PAYLOAD)
    download.download(server.url + "/weights.bin", dest, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD and server.requests[-1][1] == f"bytes={kept}-"


# ---------------------------------------------------------------------- catalogue install


def _xrv_weights() -> bytes:
    torch.manual_seed(0)
    state = dict(registry.build_model("xrv_densenet121", 18).state_dict())
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def test_install_from_catalogue_downloads_converts_and_adds_to_the_library(server, tmp_path, monkeypatch):
    monkeypatch.setenv("CXR_STUDIO_HOME", str(tmp_path / "home"))
    weights = _xrv_weights()
    server.files["/v1/kaggle-densenet121.pt"] = weights
    server.cut_once.add("/v1/kaggle-densenet121.pt")
    labels = [""] * 18
    labels[8], labels[16] = "Pneumonia", "Lung Opacity"
    op = [None] * 18
    op[8], op[16] = 0.13486601, 0.13511065
    catalogue_file = tmp_path / "catalogue.json"
    entry = {
        "name": "densenet121-res224-rsna", "kind": "xrv", "architecture": "xrv_densenet121",
        "url": server.url + "/v1/kaggle-densenet121.pt", "size": len(weights),
        "sha256": hashlib.sha256(weights).hexdigest(), "input_size": 224, "labels": labels, "op_threshs": op,
        "training_data": "RSNA Pneumonia", "description": "test entry",
    }  # fmt: skip
    catalogue_file.write_text(json.dumps({"format_version": 1, "entries": [entry]}))
    messages = []
    installed = download.install_from_catalogue(
        "densenet121-res224-rsna", progress=lambda d, t, m: messages.append(m), catalogue_path=catalogue_file
    )
    assert installed.path.parent == tmp_path / "home" / "models"
    assert (tmp_path / "home" / "cache" / "kaggle-densenet121.pt").read_bytes() == weights
    assert any(m.startswith("Downloading") for m in messages) and any(
        m.startswith("Converting") for m in messages
    )
    model, manifest = bundle.load_model(installed.path)
    assert manifest.name == "densenet121-res224-rsna"
    assert manifest.visible_labels == ["Pneumonia", "Lung Opacity"]
    assert manifest.thresholds == pytest.approx({"Pneumonia": 0.13486601, "Lung Opacity": 0.13511065})
    assert (
        manifest.provenance.source_url == entry["url"]
        and manifest.provenance.training_data == "RSNA Pneumonia"
    )
    assert [m.name for m in library.list_models()] == ["densenet121-res224-rsna"]
    # asking again does not download again
    requests = len(server.requests)
    again = download.install_from_catalogue("densenet121-res224-rsna", catalogue_path=catalogue_file)
    assert again.path == installed.path and len(server.requests) == requests


def test_install_imagenet_backbone_checks_the_torchvision_hash_prefix(server, tmp_path, monkeypatch):
    monkeypatch.setenv("CXR_STUDIO_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(registry.build_model("mobilenet_v3_large", 1000, in_channels=3).state_dict(), buffer)
    weights = buffer.getvalue()
    prefix = hashlib.sha256(weights).hexdigest()[:8]
    server.files[f"/models/mobilenet_v3_large-{prefix}.pth"] = weights
    entry = {
        "name": "mobilenet_v3_large-imagenet", "kind": "torchvision", "architecture": "mobilenet_v3_large",
        "url": f"{server.url}/models/mobilenet_v3_large-{prefix}.pth", "sha256_prefix": prefix,
        "input_size": 224, "labels": "imagenet",
    }  # fmt: skip
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(json.dumps({"format_version": 1, "entries": [entry]}))
    installed = download.install_from_catalogue("mobilenet_v3_large-imagenet", catalogue_path=catalogue_file)
    manifest = installed.manifest
    assert manifest is not None and len(manifest.labels) == 1000 and manifest.labels[0] == "tench"
    assert manifest.channels == 3 and manifest.normalisation["mean"] == [0.485, 0.456, 0.406]
    # a pretrained backbone for a 1-channel, 2-label chest model
    state = bundle.load_state_dict(installed.path)
    model = registry.build_model("mobilenet_v3_large", 2, in_channels=1, pretrained=state)
    assert model.features[0][0].in_channels == 1
