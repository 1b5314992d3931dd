"""DICOMweb through dicomweb-client: a QIDO-RS echo, QIDO-RS search, WADO-RS retrieve, STOW-RS send.

HTTP errors, refused connections and timeouts become one :class:`PacsError` line (no credentials
in it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

import requests
from pydicom import Dataset, dcmread

from ml.pacs.nodes import Node, PacsError
from ml.progress import CancelToken, ProgressCallback, report


def client(node: Node):  # noqa: ANN201 - dicomweb_client.DICOMwebClient
    from dicomweb_client.api import DICOMwebClient

    if not node.has_dicomweb:
        raise PacsError(f"PACS node '{node.name}' has no DICOMweb URL.")
    session = requests.Session()
    if node.auth == "basic":
        session.auth = (node.username, node.password)
    elif node.auth == "bearer":
        session.headers["Authorization"] = f"Bearer {node.password}"
    elif node.auth != "none":
        raise PacsError(f"PACS node '{node.name}': auth must be none, basic or bearer (not '{node.auth}').")
    if node.tls_ca_file:
        session.verify = node.tls_ca_file
    web = DICOMwebClient(node.dicomweb_url, session=session, timeout=node.timeout_s)
    web.set_http_retry_params(retry=False)  # interactive: one clear error now, not 30 s of back-off
    return web


@contextmanager
def _errors(node: Node, what: str, study_uid: str = "") -> Iterator[None]:
    try:
        yield
    except requests.exceptions.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else 0
        if code == 404 and study_uid:
            raise PacsError(f"The DICOMweb server {node.address} has no study with UID {study_uid}.") from None
        if code in (401, 403):
            raise PacsError(f"The DICOMweb server {node.address} refused the {what}: not authorised "
                            f"(HTTP {code}).") from None
        raise PacsError(f"The DICOMweb server {node.address} failed the {what} (HTTP {code}).") from None
    except requests.exceptions.Timeout:
        raise PacsError(f"The DICOMweb server {node.address} did not answer the {what} within "
                        f"{node.timeout_s:g} s.") from None
    except requests.exceptions.RequestException as exc:
        why = "connection refused or no answer" if isinstance(exc, requests.exceptions.ConnectionError) \
            else type(exc).__name__
        raise PacsError(f"Cannot reach the DICOMweb server {node.address} ({why}).") from None


def echo(node: Node) -> None:
    with _errors(node, "test request"):
        client(node).search_for_studies(limit=1)


def find(node: Node, filters: dict[str, str], level: str = "STUDY", study_uid: str = "") -> list[Dataset]:
    web = client(node)
    with _errors(node, "search", study_uid if level == "SERIES" else ""):
        if level == "SERIES":
            found = web.search_for_series(study_instance_uid=study_uid or None, search_filters=filters,
                                          get_remaining=True)
        else:
            found = web.search_for_studies(search_filters=filters, get_remaining=True)
    return [Dataset.from_json(item) for item in found]


def get_study(node: Node, study_uid: str, sink: Callable[[bytes, str], None],
              progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> int:
    """WADO-RS a study instance by instance (QIDO-RS lists them first, for progress)."""
    web = client(node)
    with _errors(node, "retrieve", study_uid):
        instances = web.search_for_instances(study_instance_uid=study_uid, get_remaining=True)
    if not instances:
        raise PacsError(f"The DICOMweb server {node.address} has no study with UID {study_uid}.")
    total = len(instances)
    for i, item in enumerate(instances):
        if cancel is not None:
            cancel.check()
        ds = Dataset.from_json(item)
        with _errors(node, "retrieve", study_uid):
            instance = web.retrieve_instance(study_uid, str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID),
                                             media_types=(("application/dicom", "*"),))
        buffer = BytesIO()
        instance.save_as(buffer, enforce_file_format=True)
        sink(buffer.getvalue(), str(ds.SOPInstanceUID))
        report(progress, i + 1, total, f"{i + 1} of {total} instance(s) received")
    return total


def store(node: Node, paths: list[Path], progress: ProgressCallback | None = None,
          cancel: CancelToken | None = None) -> int:
    web = client(node)
    for i, path in enumerate(paths):
        if cancel is not None:
            cancel.check()
        try:
            ds = dcmread(path)
        except Exception as exc:  # noqa: BLE001
            raise PacsError(f"{Path(path).name} is not a DICOM file that can be sent ({type(exc).__name__}).") from None
        with _errors(node, "send"):
            web.store_instances([ds])
        report(progress, i + 1, len(paths), f"sent {i + 1} of {len(paths)}")
    return len(paths)
