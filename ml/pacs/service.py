"""One entry point per PACS action, whichever protocol the node speaks (DIMSE first, else DICOMweb).

``retrieve`` writes into ``<user cache>/pacs/<StudyInstanceUID>/`` by default: the instances land
in a hidden temporary folder next to it and the folder is renamed into place only when the whole
study has arrived, so a cancelled or failed retrieve leaves nothing behind.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from pydicom import Dataset

from ml.pacs import dimse, web
from ml.pacs.nodes import DEFAULT_AET, Node, PacsError, retrieve_cache
from ml.pacs.receiver import StoreReceiver
from ml.progress import CancelToken, ProgressCallback

_UID_CHARS = set("0123456789.")


@dataclass(frozen=True)
class Query:
    patient_id: str = ""
    patient_name: str = ""
    accession_number: str = ""
    study_date: str = ""  # YYYYMMDD or a range YYYYMMDD-YYYYMMDD (either end may be open)
    modality: str = ""
    level: str = "STUDY"  # or SERIES (then study_uid names the study)
    study_uid: str = ""


@dataclass(frozen=True)
class Match:
    level: str
    study_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    accession_number: str
    description: str
    modalities: str
    series_uid: str = ""
    series_number: str = ""
    n_instances: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


_RETURN_KEYS = {
    "STUDY": ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "AccessionNumber",
              "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"),
    "SERIES": ("StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "Modality", "SeriesDescription",
               "NumberOfSeriesRelatedInstances"),
}


def _check_query(q: Query) -> None:
    if q.level not in _RETURN_KEYS:
        raise PacsError("The search level must be STUDY or SERIES.")
    if q.level == "SERIES" and not q.study_uid:
        raise PacsError("A series search needs the study's UID.")
    date = q.study_date.replace("-", "")
    if q.study_date and (not date.isdigit() or len(date) not in (8, 16) or q.study_date.count("-") > 1):
        raise PacsError(f"'{q.study_date}' is not a study date (YYYYMMDD or YYYYMMDD-YYYYMMDD).")
    if q.study_uid:
        check_uid(q.study_uid)


def check_uid(uid: str) -> None:
    if not uid or len(uid) > 64 or not set(uid) <= _UID_CHARS or uid.startswith(".") or ".." in uid:
        raise PacsError(f"'{uid}' is not a DICOM UID (digits and dots, at most 64 characters).")


def _filters(q: Query) -> dict[str, str]:
    pairs = {"PatientID": q.patient_id, "PatientName": q.patient_name, "AccessionNumber": q.accession_number,
             "StudyDate": q.study_date}
    if q.modality:
        pairs["ModalitiesInStudy" if q.level == "STUDY" else "Modality"] = q.modality
    return {k: v for k, v in pairs.items() if v}


def _dimse_query(q: Query) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = q.level
    for key in _RETURN_KEYS[q.level]:
        setattr(ds, key, "")
    if q.level == "SERIES":
        ds.StudyInstanceUID = q.study_uid
    for key, value in _filters(q).items():
        setattr(ds, key, value)
    return ds


def _match(level: str, ds: Dataset) -> Match:
    def get(key: str) -> str:
        value = ds.get(key, "")
        if key == "ModalitiesInStudy" and not isinstance(value, str):
            return "\\".join(str(v) for v in value)
        return "" if value is None else str(value)

    return Match(level=level, study_uid=get("StudyInstanceUID"), patient_id=get("PatientID"),
                 patient_name=get("PatientName"), study_date=get("StudyDate"),
                 accession_number=get("AccessionNumber"),
                 description=get("StudyDescription") or get("SeriesDescription"),
                 modalities=get("ModalitiesInStudy") or get("Modality"), series_uid=get("SeriesInstanceUID"),
                 series_number=get("SeriesNumber"),
                 n_instances=get("NumberOfStudyRelatedInstances") or get("NumberOfSeriesRelatedInstances"))


def echo(node: Node, calling_aet: str = DEFAULT_AET) -> str:
    """C-ECHO (DIMSE) or one QIDO-RS request (DICOMweb); the protocol used."""
    if node.has_dimse:
        dimse.echo(node, calling_aet)
        return "C-ECHO"
    web.echo(node)
    return "QIDO-RS"


def find(node: Node, query: Query, calling_aet: str = DEFAULT_AET) -> list[Match]:
    _check_query(query)
    if node.has_dimse:
        found = dimse.find(node, calling_aet, _dimse_query(query))
    else:
        found = web.find(node, _filters(query), query.level, query.study_uid)
    matches = [_match(query.level, ds) for ds in found]
    return sorted(matches, key=lambda m: (m.study_date, m.study_uid, m.series_number))


# retrieve protocols: what ``retrieve(protocol=...)`` accepts, with the label the GUI shows
METHOD_LABELS = {"dimse": "C-GET", "move": "C-MOVE to our receiver", "dicomweb": "WADO-RS"}


def retrieve_methods(node: Node, receiver_running: bool = False) -> list[str]:
    """The retrieve protocols a node offers (best first): C-GET, C-MOVE (when our C-STORE receiver
    runs, as the move's destination), WADO-RS."""
    methods = ["dimse"] if node.has_dimse else []
    if node.has_dimse and receiver_running:
        methods.append("move")
    if node.has_dicomweb:
        methods.append("dicomweb")
    return methods


def retrieve(node: Node, study_uid: str, dest_root: Path | None = None, calling_aet: str = DEFAULT_AET,
             progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
             protocol: str = "auto", receiver: StoreReceiver | None = None) -> Path:
    """C-GET (DIMSE), C-MOVE to ``receiver`` (our running C-STORE SCP, ``protocol="move"``) or WADO-RS
    (DICOMweb) a study into ``dest_root/<study_uid>/``; that folder."""
    check_uid(study_uid)
    if protocol == "move" and (receiver is None or not receiver.running):
        raise PacsError("A C-MOVE needs our C-STORE receiver running (turn it on in the PACS settings).")
    root = Path(dest_root) if dest_root is not None else retrieve_cache()
    final = root / study_uid
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{study_uid}.", suffix=".part", dir=root))
    except OSError as exc:
        raise PacsError(f"Cannot write into {root}: {exc.strerror or type(exc).__name__}.") from None

    def sink(data: bytes, sop_uid: str) -> None:
        name = sop_uid if set(sop_uid) <= _UID_CHARS and sop_uid else f"instance{len(list(staging.iterdir()))}"
        (staging / f"{name}.dcm").write_bytes(data)

    use_dimse = node.has_dimse if protocol == "auto" else protocol == "dimse"
    try:
        if protocol == "move":
            assert receiver is not None
            with receiver.capture(study_uid, staging):
                count = dimse.move_study(node, calling_aet, study_uid, receiver.ae_title, cancel, progress)
            if cancel is not None:
                cancel.check()
            if not count or not any(staging.iterdir()):
                raise PacsError(f"The PACS node {node.address} moved nothing of study {study_uid}.")
        elif use_dimse:
            dimse.get_study(node, calling_aet, study_uid, sink, progress, cancel)
        else:
            web.get_study(node, study_uid, sink, progress, cancel)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final


def send(node: Node, paths: list[Path], calling_aet: str = DEFAULT_AET, progress: ProgressCallback | None = None,
         cancel: CancelToken | None = None) -> int:
    """C-STORE (DIMSE) or STOW-RS (DICOMweb) the files; how many were stored."""
    if not paths:
        raise PacsError("Nothing to send.")
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise PacsError(f"{Path(missing[0]).name}: no such file.")
    if node.has_dimse:
        return dimse.store(node, calling_aet, [Path(p) for p in paths], progress, cancel)
    return web.store(node, [Path(p) for p in paths], progress, cancel)
