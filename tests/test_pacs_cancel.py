"""A retrieve cancelled in the middle (C-GET, C-MOVE to our receiver, WADO-RS) against a real
Orthanc leaves nothing in the cache; node and receiver settings rules of ml.pacs."""

from __future__ import annotations

import os
import stat
import time

import pytest

from ml.errors import CancelledError
from ml.pacs import (
    Node,
    PacsError,
    ReceiverSettings,
    node_problems,
    retrieve,
    retrieve_cache,
    retrieve_methods,
)
from ml.pacs.nodes import load_nodes, load_receiver, nodes_file, save_nodes, save_receiver
from ml.pacs.receiver import StoreReceiver
from ml.progress import CancelToken
from tests.helpers.orthanc import APP_AET
from tests.helpers.pacs_big import big_pacs  # noqa: F401 - the fixture

CANCEL_AT = 5


def _node(pacs) -> Node:  # noqa: ANN001 - BigPacs
    s = pacs.server
    return Node("both", s.aet, "127.0.0.1", s.dicom_port, dicomweb_url=s.dicomweb_url, timeout_s=30)


@pytest.mark.parametrize("protocol", ["dimse", "move", "dicomweb"])
def test_cancel_mid_retrieve_leaves_nothing(big_pacs, protocol):  # noqa: F811
    token = CancelToken()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int, _message: str) -> None:
        seen.append((done, total))
        if done >= CANCEL_AT:
            token.cancel()

    receiver = StoreReceiver(big_pacs.server.app_port, APP_AET).start() if protocol == "move" else None
    try:
        with pytest.raises(CancelledError):
            retrieve(_node(big_pacs), big_pacs.big_study, progress=progress, cancel=token, protocol=protocol,
                     receiver=receiver)
        time.sleep(1.0)  # anything the PACS still sends after the abort must be refused, not stored
    finally:
        if receiver is not None:
            receiver.stop()
    # the cancel landed mid-way: some instances had arrived, far from all
    assert seen and CANCEL_AT <= max(d for d, _ in seen) < big_pacs.big_instances
    assert max(t for _, t in seen) == big_pacs.big_instances
    cache = retrieve_cache()
    assert not cache.exists() or list(cache.iterdir()) == []  # no study folder, no staging folder
    if receiver is not None:
        assert receiver.received == []


def test_move_retrieve_lands_in_the_cache(big_pacs):  # noqa: F811
    from tests.test_pacs import RG3_STUDY

    with StoreReceiver(big_pacs.server.app_port, APP_AET) as receiver:
        assert "move" in retrieve_methods(_node(big_pacs), receiver_running=receiver.running)
        folder = retrieve(_node(big_pacs), RG3_STUDY, protocol="move", receiver=receiver)
    assert folder == retrieve_cache() / RG3_STUDY and len(list(folder.glob("*.dcm"))) == 1
    assert receiver.received == []  # captured by the retrieve, not reported as a pushed study
    with pytest.raises(PacsError, match="receiver running"):
        retrieve(_node(big_pacs), RG3_STUDY, protocol="move", receiver=None)


def test_retrieve_methods_per_node():
    dimse = Node("d", "PACS", "h", 104)
    web = Node("w", dicomweb_url="http://h/dicom-web")
    assert retrieve_methods(dimse) == ["dimse"]
    assert retrieve_methods(dimse, receiver_running=True) == ["dimse", "move"]
    assert retrieve_methods(web, receiver_running=True) == ["dicomweb"]


def test_node_problems_name_each_mistake(tmp_path):
    assert node_problems(Node("ok", "PACS", "10.0.0.1", 104, dicomweb_url="https://h/dicom-web")) == []
    assert node_problems(Node("")) == ["Give the node a name.",
                                       "Give a DICOM address (AE title, host, port) or a DICOMweb URL, or both."]
    bad = node_problems(Node("x", "WAY_TOO_LONG_AE_TITLE", "my host", 70000))
    assert any("AE title" in p for p in bad) and any("no spaces" in p for p in bad) and any("65535" in p for p in bad)
    assert any("CA file" in p for p in node_problems(Node("x", "A", "h", 1, tls=True, tls_ca_file=str(tmp_path / "no"))))
    assert any("in the authentication fields" in p for p in node_problems(Node("x", dicomweb_url="https://u:p@h/x")))
    assert node_problems(Node("x", dicomweb_url="https://h/x", auth="basic", username="u")) == [
        "Basic authentication needs a user name and a password."]
    assert node_problems(Node("x", dicomweb_url="https://h/x", auth="bearer")) == ["Bearer authentication needs a token."]
    assert node_problems(Node("x", dicomweb_url="ftp://h/x")) == [
        "The DICOMweb URL must look like http(s)://host[:port]/dicom-web."]


def test_node_and_receiver_files_round_trip():
    nodes = {"main": Node("main", "MAIN", "127.0.0.1", 104, dicomweb_url="https://h/dicom-web", auth="bearer",
                          password="secret-token")}
    path = save_nodes(nodes)
    assert path == nodes_file() and load_nodes() == nodes
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # it holds a token
    assert load_receiver() == ReceiverSettings(enabled=False)  # off by default
    save_receiver(ReceiverSettings(True, 11113, "MYAPP"))
    assert load_receiver() == ReceiverSettings(True, 11113, "MYAPP")
    assert ReceiverSettings(True, 0, "BAD\\AET").problems() == [
        "Receiver: 'BAD\\AET' is not a valid AE title (1 to 16 printable characters, no backslash).",
        "Receiver: the listening port must be a number from 1 to 65535."]
