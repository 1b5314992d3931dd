"""DIMSE (classic DICOM networking) through pynetdicom: C-ECHO, C-FIND, C-GET, C-STORE.

Every failure a user can meet (unreachable host, refused association, timeout, a failure status)
becomes one :class:`PacsError` line. Retrieved instances are written by the caller's ``sink``.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmread
from pynetdicom import AE, evt
from pynetdicom import sop_class as _sop_class
from pynetdicom.presentation import build_role

from ml.pacs.nodes import Node, PacsError
from ml.progress import CancelToken, ProgressCallback, report

sc: Any = _sop_class  # its UIDs are module attributes made at import time (opaque to mypy)
log = logging.getLogger("cxr.pacs")
logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # its errors become our one line

# Storage classes we accept on C-GET. The PACS sends each instance in its stored syntax when we
# offered a presentation context for that (class, syntax) pair, so each pair is its own context
# (128 at most, the query context included): 14 classes x 8 syntax groups + 1.
GET_STORAGE_CLASSES = (
    sc.ComputedRadiographyImageStorage, sc.DigitalXRayImageStorageForPresentation,
    sc.DigitalXRayImageStorageForProcessing, sc.SecondaryCaptureImageStorage,
    sc.MultiFrameTrueColorSecondaryCaptureImageStorage, sc.CTImageStorage, sc.MRImageStorage,
    sc.EnhancedSRStorage, sc.ComprehensiveSRStorage, sc.Comprehensive3DSRStorage, sc.ParametricMapStorage,
    sc.GrayscaleSoftcopyPresentationStateStorage, sc.SegmentationStorage,
    sc.DigitalMammographyXRayImageStorageForPresentation,
)
UNCOMPRESSED = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]
GET_SYNTAXES = (
    UNCOMPRESSED,
    ["1.2.840.10008.1.2.4.50"],  # JPEG baseline
    ["1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.57"],  # JPEG lossless
    ["1.2.840.10008.1.2.4.90"],  # JPEG 2000 lossless
    ["1.2.840.10008.1.2.4.91"],  # JPEG 2000
    ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"],  # JPEG-LS
    ["1.2.840.10008.1.2.5"],  # RLE
    ["1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"],  # deflated, big endian
)


def _ae(calling_aet: str, node: Node) -> AE:
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = node.timeout_s
    ae.dimse_timeout = node.timeout_s
    ae.network_timeout = node.timeout_s
    ae.connection_timeout = min(node.timeout_s, 10.0)
    return ae


@contextmanager
def associate(node: Node, calling_aet: str, contexts: list[tuple[str, list[str]]],
              roles: list | None = None, handlers: list | None = None) -> Iterator:
    if not node.has_dimse:
        raise PacsError(f"PACS node '{node.name}' has no DICOM address (host and port).")
    ae = _ae(calling_aet, node)
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, syntaxes)
    tls_args = None
    if node.tls:
        context = ssl.create_default_context(cafile=node.tls_ca_file or None)
        tls_args = (context, node.host)
    started = time.monotonic()
    try:
        assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, ext_neg=roles or [],
                             evt_handlers=handlers or [], tls_args=tls_args)
    except (OSError, ValueError) as exc:
        raise PacsError(f"Cannot connect to the PACS node {node.address}: {exc}.") from None
    if assoc.is_rejected:
        raise PacsError(f"The PACS node {node.address} refused the association (called AE title "
                        f"'{node.ae_title}', calling AE title '{calling_aet}' not accepted).")
    if not assoc.is_established:
        if time.monotonic() - started < node.timeout_s * 0.9 and _port_open(node):
            # it took the connection but closed it before (or while) we read its answer: a rejection
            # whose A-ASSOCIATE-RJ was lost with the closed socket, as Orthanc does to a wrong AE title
            raise PacsError(f"The PACS node {node.address} refused the association (it closed the "
                            f"connection: check the called AE title '{node.ae_title}' and ours, "
                            f"'{calling_aet}').")
        raise PacsError(f"Cannot reach the PACS node {node.address} (connection refused, or no answer "
                        f"within {node.timeout_s:g} s).")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _port_open(node: Node) -> bool:
    try:
        with socket.create_connection((node.host, node.port), timeout=2.0):
            return True
    except OSError:
        return False


def _lost(assoc, node: Node, what: str) -> PacsError:  # noqa: ANN001 - pynetdicom Association
    if assoc.is_aborted:
        return PacsError(f"The PACS node {node.address} aborted the {what}.")
    return PacsError(f"The PACS node {node.address} did not answer the {what} within {node.timeout_s:g} s.")


def echo(node: Node, calling_aet: str) -> None:
    with associate(node, calling_aet, [(sc.Verification, UNCOMPRESSED)]) as assoc:
        status = assoc.send_c_echo()
        if not status or status.Status != 0x0000:
            raise _lost(assoc, node, "echo") if not status else PacsError(
                f"The PACS node {node.address} answered the echo with status 0x{status.Status:04X}.")


def find(node: Node, calling_aet: str, query: Dataset) -> list[Dataset]:
    """C-FIND (study root) with ``query`` (its QueryRetrieveLevel set); the matches."""
    model = sc.StudyRootQueryRetrieveInformationModelFind
    matches: list[Dataset] = []
    with associate(node, calling_aet, [(model, UNCOMPRESSED)]) as assoc:
        for status, identifier in assoc.send_c_find(query, model):
            if not status:
                raise _lost(assoc, node, "search")
            code = status.Status
            if code in (0xFF00, 0xFF01) and identifier is not None:
                matches.append(identifier)
            elif code != 0x0000:
                raise PacsError(f"The PACS node {node.address} rejected the search (status 0x{code:04X}).")
    return matches


def get_study(node: Node, calling_aet: str, study_uid: str, sink: Callable[[bytes, str], None],
              progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> int:
    """C-GET a whole study; ``sink(encoded_file_bytes, sop_instance_uid)`` per instance. Returns the count."""
    model = sc.StudyRootQueryRetrieveInformationModelGet
    received = [0]

    def on_store(event) -> int:  # noqa: ANN001 - pynetdicom Event
        if cancel is not None and cancel.cancelled:
            return 0xA700  # out of resources: the PACS stops sending
        sink(event.encoded_dataset(), str(event.request.AffectedSOPInstanceUID))
        received[0] += 1
        return 0x0000

    contexts = [(model, UNCOMPRESSED)]
    contexts += [(uid, syntaxes) for uid in GET_STORAGE_CLASSES for syntaxes in GET_SYNTAXES]
    roles = [build_role(uid, scp_role=True) for uid in GET_STORAGE_CLASSES]
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    with associate(node, calling_aet, contexts, roles, [(evt.EVT_C_STORE, on_store)]) as assoc:
        final = None
        for status, _identifier in assoc.send_c_get(query, model):
            if cancel is not None and cancel.cancelled:
                assoc.abort()
                cancel.check()
            if not status:
                raise _lost(assoc, node, "retrieve")
            final = status
            if status.Status in (0xFF00, 0xFF01):
                done = received[0]
                remaining = int(getattr(status, "NumberOfRemainingSuboperations", 0) or 0)
                report(progress, done, done + remaining, f"{done} instance(s) received")
        if cancel is not None:
            cancel.check()
        code = None if final is None else int(final.Status)
        failed = code is not None and code not in (0x0000, 0xB000)
    if failed and (received[0] or _study_exists(node, calling_aet, study_uid)):
        raise PacsError(f"The PACS node {node.address} failed the retrieve (status 0x{code:04X}).")
    if received[0] == 0:
        raise PacsError(f"The PACS node {node.address} has no study with UID {study_uid}.")
    return received[0]


def move_study(node: Node, calling_aet: str, study_uid: str, destination_aet: str,
               cancel: CancelToken | None = None, progress: ProgressCallback | None = None) -> int:
    """C-MOVE a study to ``destination_aet`` (known to the PACS, e.g. our :class:`StoreReceiver`);
    how many instances the PACS says it sent."""
    model = sc.StudyRootQueryRetrieveInformationModelMove
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    completed = 0
    with associate(node, calling_aet, [(model, UNCOMPRESSED)]) as assoc:
        code = None
        for status, _identifier in assoc.send_c_move(query, destination_aet, model):
            if cancel is not None and cancel.cancelled:
                assoc.abort()
                cancel.check()
            if not status:
                raise _lost(assoc, node, "move")
            code = int(status.Status)
            completed = int(getattr(status, "NumberOfCompletedSuboperations", completed) or completed)
            if code in (0xFF00, 0xFF01):
                remaining = int(getattr(status, "NumberOfRemainingSuboperations", 0) or 0)
                report(progress, completed, completed + remaining, f"{completed} instance(s) received")
    if code == 0xA801:
        raise PacsError(f"The PACS node {node.address} does not know the destination AE title '{destination_aet}'.")
    if code not in (0x0000, 0xB000) and not completed:
        if not _study_exists(node, calling_aet, study_uid):
            raise PacsError(f"The PACS node {node.address} has no study with UID {study_uid}.")
        raise PacsError(f"The PACS node {node.address} failed the move (status 0x{code or 0:04X}); does it "
                        f"know the destination AE title '{destination_aet}' (host and port)?")
    return completed


def _study_exists(node: Node, calling_aet: str, study_uid: str) -> bool:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    return bool(find(node, calling_aet, query))


def store(node: Node, calling_aet: str, paths: list[Path], progress: ProgressCallback | None = None,
          cancel: CancelToken | None = None) -> int:
    """C-STORE the files; returns how many were stored."""
    datasets = []
    for path in paths:
        try:
            datasets.append(dcmread(path))
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one line
            raise PacsError(f"{Path(path).name} is not a DICOM file that can be sent ({type(exc).__name__}).") from None
    # one context per (class, stored syntax): the PACS cannot pick uncompressed for a compressed file
    pairs = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets})
    contexts = [(uid, [syntax] if syntax not in UNCOMPRESSED else UNCOMPRESSED) for uid, syntax in pairs]
    if len(contexts) > 128:
        raise PacsError("Too many different kinds of DICOM object in one send; send them in parts.")
    with associate(node, calling_aet, contexts) as assoc:
        for i, ds in enumerate(datasets):
            if cancel is not None:
                cancel.check()
            try:
                status = assoc.send_c_store(ds)
            except ValueError as exc:  # no accepted presentation context for it
                raise PacsError(f"The PACS node {node.address} does not accept this kind of object ({exc}).") from None
            if not status:
                raise _lost(assoc, node, "send")
            if status.Status not in (0x0000, 0xB000, 0xB007, 0xB006):
                raise PacsError(f"The PACS node {node.address} refused {Path(paths[i]).name} "
                                f"(status 0x{status.Status:04X}).")
            report(progress, i + 1, len(datasets), f"sent {i + 1} of {len(datasets)}")
    return len(datasets)
