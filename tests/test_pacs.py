"""PACS echo / find / get / send against a real Orthanc (DIMSE and DICOMweb), through `cxr pacs`."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pydicom
import pytest

from ml.cli import main
from ml.errors import CancelledError
from ml.pacs import Node, PacsError, Query, echo, find, parse_url, resolve_node, retrieve, retrieve_cache
from ml.pacs.nodes import save_nodes
from ml.progress import CancelToken
from tests.helpers.orthanc import orthanc  # noqa: F401 - the fixture

CR_STUDY = "1.2.276.0.7230010.3.1.2.8323329.6904.1517875201.850818"  # rsna_cxr_pa.dcm
CR_PATIENT = "16d7f894-55d7-4d95-8957-d18987f0e981"
RG3_STUDY = "1.3.6.1.4.1.5962.1.2.11.20040826185059.5457"  # RG3_J2KR.dcm, 20040826


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_parse_addresses_and_node_file(tmp_path):
    node = parse_url("dicom://PACS1@10.0.0.5:11112")
    assert (node.ae_title, node.host, node.port, node.has_dicomweb) == ("PACS1", "10.0.0.5", 11112, False)
    web = parse_url("https://pacs.example.org/dicom-web/")
    assert web.dicomweb_url == "https://pacs.example.org/dicom-web" and not web.has_dimse
    assert parse_url("https://me:secret@pacs.example.org/dicom-web").address == "https://pacs.example.org/dicom-web"
    for bad in ("dicom://host:104", "dicom://AET@host", "ftp://x", "dicom://WAY_TOO_LONG_AE_TITLE@h:1"):
        with pytest.raises(PacsError):
            parse_url(bad)
    path = tmp_path / "nodes.json"
    save_nodes({"main": Node("main", "MAIN", "127.0.0.1", 104, dicomweb_url="http://h/dicom-web",
                             auth="bearer", password="tok")}, path)
    node = resolve_node("main", path)
    assert node.port == 104 and node.auth == "bearer" and node.has_dimse and node.has_dicomweb
    with pytest.raises(PacsError, match="No PACS node named 'other'"):
        resolve_node("other", path)


def test_echo_dimse_and_dicomweb(orthanc, capsys):  # noqa: F811
    assert echo(parse_url(orthanc.dicom_url)) == "C-ECHO"
    assert echo(parse_url(orthanc.dicomweb_url)) == "QIDO-RS"
    assert main(["pacs", "echo", orthanc.dicom_url]) == 0
    assert "C-ECHO OK" in capsys.readouterr().out


def test_find_by_patient_id_and_date(orthanc, capsys):  # noqa: F811
    node = parse_url(orthanc.dicom_url)
    by_id = find(node, Query(patient_id=CR_PATIENT))
    assert [m.study_uid for m in by_id] == [CR_STUDY]
    assert "CR" in by_id[0].modalities
    by_date = find(node, Query(study_date="20040101-20041231"))
    assert [m.study_uid for m in by_date] == [RG3_STUDY]
    assert find(node, Query(study_date="20300101")) == []
    series = find(node, Query(level="SERIES", study_uid=CR_STUDY))
    assert len(series) == 1 and series[0].modalities == "CR"
    assert main(["pacs", "find", orthanc.dicom_url, "--study-date", "20040826", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["study_uid"] for r in rows] == [RG3_STUDY]
    # the same search over QIDO-RS gives the same study
    web = find(parse_url(orthanc.dicomweb_url), Query(patient_id=CR_PATIENT))
    assert [m.study_uid for m in web] == [CR_STUDY]


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_get_study_into_the_cache_pixel_identical(orthanc, dicom_dir, protocol):  # noqa: F811
    node = Node("both", orthanc.aet, "127.0.0.1", orthanc.dicom_port, dicomweb_url=orthanc.dicomweb_url)
    seen: list[tuple[int, int]] = []
    folder = retrieve(node, RG3_STUDY, progress=lambda d, t, m: seen.append((d, t)), protocol=protocol)
    assert folder.parent == retrieve_cache() and folder.name == RG3_STUDY
    files = list(folder.glob("*.dcm"))
    assert len(files) == 1
    got, src = pydicom.dcmread(files[0]), pydicom.dcmread(dicom_dir / "RG3_J2KR.dcm")
    assert got.SOPInstanceUID == src.SOPInstanceUID
    assert (got.pixel_array == src.pixel_array).all()
    assert not [p for p in retrieve_cache().iterdir() if p.name.startswith(".")]  # no staging left


def test_cli_get_to_folder(orthanc, tmp_path, capsys):  # noqa: F811
    assert main(["pacs", "get", orthanc.dicom_url, "--study", CR_STUDY, "-o", str(tmp_path)]) == 0
    assert len(list((tmp_path / CR_STUDY).glob("*.dcm"))) == 1


def test_cancelled_retrieve_leaves_no_partial_files(orthanc, tmp_path):  # noqa: F811
    token = CancelToken()
    token.cancel()
    for protocol in ("dimse", "dicomweb"):
        node = Node("both", orthanc.aet, "127.0.0.1", orthanc.dicom_port, dicomweb_url=orthanc.dicomweb_url)
        with pytest.raises(CancelledError):
            retrieve(node, CR_STUDY, tmp_path, cancel=token, protocol=protocol)
        assert list(tmp_path.iterdir()) == []


def test_unknown_study_is_one_line(orthanc, capsys):  # noqa: F811
    for url in (orthanc.dicom_url, orthanc.dicomweb_url):
        assert main(["pacs", "get", url, "--study", "1.2.3.4.5.6"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "no study with UID 1.2.3.4.5.6" in err
    assert not retrieve_cache().exists() or not any(retrieve_cache().iterdir())


def test_refused_association_and_unreachable_node(orthanc, capsys):  # noqa: F811
    wrong_aet = f"dicom://NOTTHEPACS@127.0.0.1:{orthanc.dicom_port}"
    assert main(["pacs", "echo", wrong_aet]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cxr: error:") and "refused the association" in err and "\n" not in err
    nobody = _free_port()
    for url in (f"dicom://X@127.0.0.1:{nobody}", f"http://127.0.0.1:{nobody}/dicom-web"):
        assert main(["pacs", "find", url, "--patient-id", "x"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("cxr: error:") and "reach" in err and "\n" not in err


def test_send_dimse_and_stow(orthanc, dicom_dir, capsys):  # noqa: F811
    before = orthanc.instance_count()
    assert main(["pacs", "send", orthanc.dicom_url, str(dicom_dir / "JPEG-LL.dcm")]) == 0
    assert main(["pacs", "send", orthanc.dicomweb_url, str(dicom_dir / "vlut_04.dcm")]) == 0
    assert orthanc.instance_count() == before + 2
    assert main(["pacs", "send", orthanc.dicom_url, str(Path(__file__))]) == 2
    assert "not a DICOM file" in capsys.readouterr().err


def test_move_study_to_our_store_receiver(orthanc, dicom_dir, tmp_path):  # noqa: F811
    from ml.pacs.dimse import move_study
    from ml.pacs.receiver import StoreReceiver
    from tests.helpers.orthanc import APP_AET

    node = parse_url(orthanc.dicom_url)
    arrived: list[Path] = []
    with StoreReceiver(orthanc.app_port, APP_AET, tmp_path, on_instance=arrived.append):
        assert move_study(node, APP_AET, RG3_STUDY, APP_AET) == 1
    files = list((tmp_path / RG3_STUDY).glob("*.dcm"))
    assert files == arrived and len(files) == 1
    got, src = pydicom.dcmread(files[0]), pydicom.dcmread(dicom_dir / "RG3_J2KR.dcm")
    assert got.SOPInstanceUID == src.SOPInstanceUID and (got.pixel_array == src.pixel_array).all()
    with pytest.raises(PacsError, match="destination AE title 'NOBODY'"):
        move_study(node, APP_AET, RG3_STUDY, "NOBODY")
