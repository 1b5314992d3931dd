"""Index files, folders, ZIP archives and DICOMDIRs into a patient -> study -> series tree.

Only headers are read, by the one header reader :func:`ml.imaging.header.read_header` (the same
one ``cxr info``, the training scan and the full reader use); no pixel is ever decoded, so
thousands of files index in seconds. Work happens in two steps: :func:`iter_files`
(:mod:`ml.imaging.listing`) lists what to read (cheap: folder walk, ZIP central directory,
DICOMDIR records through pydicom's FileSet), then :func:`build_index` reads one header per file,
reporting progress, honouring a cancel token and handing entries to the caller in batches so a
GUI can fill its tree as it goes.

Files that cannot be indexed (not DICOM, damaged, truncated, a pipe, ...) end up in
``StudyIndex.errors`` with a readable message; indexing never stops on a bad file. ZIP members are
sniffed from the member stream and, when they are images, extracted one by one into a cache
folder (never next to the user's files; the archive itself is only read; extraction is capped).
Patient names and IDs are never logged.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ml.errors import CxrError, NotAnImageError
from ml.imaging.decoding import is_panic
from ml.imaging.header import MEDIA_STORAGE_DIRECTORY, read_header
from ml.imaging.image import ImageMeta
from ml.imaging.listing import ArchiveCache, ListedFile, iter_files
from ml.imaging.listing import default_cache_dir as default_cache_dir  # re-exported
from ml.imaging.sniff import ZIP_MAGIC as ZIP_MAGIC  # re-exported
from ml.imaging.sniff import kind_of
from ml.progress import CancelToken, ProgressCallback

__all__ = [
    "NO_PATIENT", "InstanceEntry", "PatientEntry", "SeriesEntry", "StudyEntry", "StudyIndex", "build_index",
    "iter_files", "read_header",
]

log = logging.getLogger(__name__)

NO_PATIENT = "(no patient)"


# --------------------------------------------------------------------------- data model


@dataclass
class InstanceEntry:
    """One indexed file. ``path`` is readable on disk (for ZIP members: the extracted copy);
    ``source`` is what the user knows: the original path or ``'archive.zip:member'``."""

    path: str
    meta: ImageMeta
    is_image: bool
    source: str


@dataclass
class SeriesEntry:
    uid: str  # SeriesInstanceUID, or "file:<source>" for a PNG/JPEG (one file = one series)
    number: int | None
    description: str
    modality: str
    instances: list[InstanceEntry] = field(default_factory=list)


@dataclass
class StudyEntry:
    uid: str  # StudyInstanceUID, or "folder:<folder>" for PNG/JPEG files of one folder
    date: str
    description: str
    accession: str
    series: list[SeriesEntry] = field(default_factory=list)
    time: str = ""


@dataclass
class PatientEntry:
    key: str  # identity used for grouping (ID and name); never log it
    name: str
    patient_id: str
    sex: str
    birth_date: str
    studies: list[StudyEntry] = field(default_factory=list)


def _patient_order(p: PatientEntry) -> tuple:
    return (p.key == NO_PATIENT, p.name.casefold(), p.patient_id, p.key)


def _study_order(s: StudyEntry) -> tuple:
    return (s.date == "", s.date, s.time, s.description.casefold(), s.uid)


def _series_order(s: SeriesEntry) -> tuple:
    return (s.number is None, s.number or 0, s.description.casefold(), s.uid)


def _instance_order(i: InstanceEntry) -> tuple:
    n = i.meta.instance_number
    return (n is None, n or 0, i.source)


def _parent_of(source: str) -> str:
    """The folder part of a path or of an 'archive.zip:member' source."""
    if ":" in source and not os.path.exists(source):  # archive member
        archive, _, member = source.rpartition(":")
        if archive and os.path.exists(archive):
            parent = PurePosixPath(member).parent
            return archive if str(parent) == "." else f"{archive}:{parent}"
    return os.path.dirname(source)


def _base_name(source: str) -> str:
    """Last component of a path or of an 'archive.zip:member' source."""
    return re.split(r"[/\\:]", source)[-1]


def _tree_keys(entry: InstanceEntry) -> tuple[str, str, str]:
    m = entry.meta
    if m.kind != "dicom":
        folder = _parent_of(entry.source)
        return NO_PATIENT, f"folder:{folder}", f"file:{entry.source}"
    pkey = f"{m.patient_id}\x1f{m.patient_name}" if (m.patient_id or m.patient_name) else NO_PATIENT
    skey = m.study_uid or f"(no study):{_parent_of(entry.source)}"
    sekey = m.series_uid or f"(no series):{skey}"
    return pkey, skey, sekey


@dataclass
class StudyIndex:
    """The patient -> study -> series -> instance tree, always kept in display order:
    patients by name ("(no patient)" last), studies by date, series by number, instances by
    instance number. ``errors`` lists ``(source, message)`` for files that could not be indexed;
    ``duplicates`` lists ``(source, kept source)`` for files skipped because an instance with the
    same SOP Instance UID was already indexed. Fill it with :meth:`add` (or :func:`build_index`);
    not thread-safe: one thread fills it."""

    patients: list[PatientEntry] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    #: sources among ``errors`` that are simply not images (a README, a CSV, an unknown format)
    not_images: set[str] = field(default_factory=set)
    _patient_map: dict[str, PatientEntry] = field(default_factory=dict, init=False, repr=False, compare=False)
    _study_map: dict[tuple[str, str], StudyEntry] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _series_map: dict[tuple[str, str, str], SeriesEntry] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _seen: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self._seen)

    @staticmethod
    def _identity(entry: InstanceEntry) -> str:
        """Copies of one instance share UID, size and photometric interpretation. Two different
        files that (wrongly) share a UID, e.g. the same pixels re-labelled MONOCHROME1, are both kept."""
        m = entry.meta
        if not m.sop_instance_uid:
            return f"path:{os.path.realpath(entry.path)}"
        try:
            size = os.path.getsize(entry.path)
        except OSError:
            size = -1
        return f"uid:{m.sop_instance_uid}:{size}:{m.photometric}"

    def add(self, entry: InstanceEntry) -> bool:
        """Place ``entry`` in the tree. Returns False for a copy of an instance already indexed (same
        SOP Instance UID, size and photometric interpretation; without a UID, the same file): the
        tree is unchanged and the file goes to ``duplicates``."""
        ident = self._identity(entry)
        kept = self._seen.get(ident)
        if kept is not None:
            if kept != entry.source:
                self.duplicates.append((entry.source, kept))
            return False
        self._seen[ident] = entry.source
        m = entry.meta
        pkey, skey, sekey = _tree_keys(entry)
        patient = self._patient_map.get(pkey)
        if patient is None:
            name = NO_PATIENT if pkey == NO_PATIENT else m.patient_name
            patient = PatientEntry(pkey, name, m.patient_id, m.patient_sex, m.patient_birth_date)
            self._patient_map[pkey] = patient
            bisect.insort(self.patients, patient, key=_patient_order)
        study = self._study_map.get((pkey, skey))
        if study is None:
            desc = m.study_description
            if m.kind != "dicom":  # the folder's own name ("ward" for "/x/ward" or "a.zip:ward")
                folder = skey[len("folder:"):]
                desc = _base_name(folder.rstrip("/\\")) or folder
            study = StudyEntry(skey, m.study_date, desc, m.accession_number, time=m.study_time)
            self._study_map[(pkey, skey)] = study
            bisect.insort(patient.studies, study, key=_study_order)
        series = self._series_map.get((pkey, skey, sekey))
        if series is None:
            series = SeriesEntry(sekey, m.series_number, m.series_description, m.modality)
            self._series_map[(pkey, skey, sekey)] = series
            bisect.insort(study.series, series, key=_series_order)
        bisect.insort(series.instances, entry, key=_instance_order)
        return True

    def locate(self, entry: InstanceEntry) -> tuple[PatientEntry, StudyEntry, SeriesEntry] | None:
        """Where an added entry sits in the tree (None when it was never added)."""
        pkey, skey, sekey = _tree_keys(entry)
        series = self._series_map.get((pkey, skey, sekey))
        if series is None:
            return None
        return self._patient_map[pkey], self._study_map[(pkey, skey)], series

    def merge(self, other: StudyIndex) -> int:
        """Add every instance, error and duplicate of ``other``; returns how many instances
        were new."""
        added = sum(self.add(entry) for entry in other.instances())
        known = set(self.errors)
        self.errors.extend(e for e in other.errors if e not in known)
        seen_dups = set(self.duplicates)
        self.duplicates.extend(d for d in other.duplicates if d not in seen_dups)
        self.not_images |= other.not_images
        return added

    def instances(self) -> Iterator[InstanceEntry]:
        """All instances in tree order."""
        for patient in self.patients:
            for study in patient.studies:
                for series in study.series:
                    yield from series.instances


# --------------------------------------------------------------------------- reading


class _Excluded(Exception):
    """A valid file that is not indexed on purpose (the DICOMDIR itself)."""


def _index_one(item: ListedFile, archives: ArchiveCache) -> InstanceEntry:
    if item.member is not None:
        # sniffed from the member stream: only images are ever extracted into the cache
        kind = kind_of(archives.head(item.path, item.member))
        name = _base_name(item.source)
        if kind == "empty":
            raise NotAnImageError(f"{name} is empty.")
        if kind not in ("dicom", "png", "jpeg"):
            raise NotAnImageError(f"{name} is not a DICOM or image file.")
    path = archives.extract(item.path, item.member) if item.member is not None else item.path
    meta = read_header(path)
    if meta.sop_class_uid == MEDIA_STORAGE_DIRECTORY:
        raise _Excluded
    if meta.kind != "dicom":
        meta.series_description = meta.series_description or _base_name(item.source)
    return InstanceEntry(path=path, meta=meta, is_image=meta.has_pixels, source=item.source)


def build_index(
    paths: Iterable[str | os.PathLike[str]],
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    on_batch: Callable[[list[InstanceEntry]], None] | None = None,
    batch_size: int = 50,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> StudyIndex:
    """Index ``paths`` (files, folders, ZIPs, DICOMDIRs) into a :class:`StudyIndex`.

    ``progress(done, total, message)`` is called while listing (total 0), then as headers are
    read (at least every ``batch_size`` files and at the end). ``cancel`` is checked once per file
    and raises :class:`ml.errors.CancelledError`. ``on_batch`` receives each new (non-duplicate)
    entry exactly once, in lists of ``batch_size``. ``cache_dir`` overrides where ZIP members are
    extracted (default: :func:`default_cache_dir`).
    """
    started = time.perf_counter()
    index = StudyIndex()
    listed: list[ListedFile] = []
    for item in iter_files(paths):
        if cancel is not None:
            cancel.check()
        listed.append(item)
        if progress is not None and len(listed) % 500 == 0:
            progress(0, 0, f"Listing files… {len(listed)} found")
    total = len(listed)
    if progress is not None:
        progress(0, total, "Reading headers")
    archives = ArchiveCache(Path(cache_dir) if cache_dir is not None else None)
    batch: list[InstanceEntry] = []
    last_report = time.monotonic()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about odd values; they are not errors here
            for done, item in enumerate(listed, 1):
                if cancel is not None:
                    cancel.check()
                entry = _read_listed(item, archives, index)
                if entry is not None and index.add(entry):
                    batch.append(entry)
                if len(batch) >= batch_size:
                    if on_batch is not None:
                        on_batch(batch)
                    batch = []
                now = time.monotonic()
                if progress is not None and (done % batch_size == 0 or now - last_report > 0.1):
                    progress(done, total, "Reading headers")
                    last_report = now
    finally:
        archives.close()
    if batch and on_batch is not None:
        on_batch(batch)
    if progress is not None:
        progress(total, total, "Done")
    log.info(
        "indexed %d instances from %d files (%d not indexable) in %.2f s",
        len(index), total, len(index.errors), time.perf_counter() - started,
    )
    return index


def _read_listed(item: ListedFile, archives: ArchiveCache, index: StudyIndex) -> InstanceEntry | None:
    errors = index.errors
    if item.error is not None:
        errors.append((item.source, item.error))
        return None
    name = _base_name(item.source)
    try:
        return _index_one(item, archives)
    except _Excluded:
        return None
    except NotAnImageError as exc:
        errors.append((item.source, str(exc)))
        index.not_images.add(item.source)
    except CxrError as exc:
        errors.append((item.source, str(exc)))
    except PermissionError:
        errors.append((item.source, f"{name} cannot be read: permission denied."))
    except OSError as exc:
        errors.append((item.source, f"{name} cannot be read ({exc.strerror or type(exc).__name__})."))
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        errors.append((item.source, f"{name} cannot be extracted from its archive ({exc})."))
    except RecursionError:
        errors.append((item.source, f"{name} is damaged: its sequences are nested too deeply."))
    except NotImplementedError as exc:  # zipfile: a member's (damaged) compression method is unknown
        what = ("cannot be extracted from its archive (unsupported compression method)" if "compression" in str(exc)
                else "uses a feature this reader does not support")
        errors.append((item.source, f"{name} {what}."))
    except Exception as exc:  # noqa: BLE001 - one odd file must not stop the indexing
        log.error("unexpected error while indexing a file (%s)", type(exc).__name__)
        errors.append((item.source, f"{name}: something went wrong while reading it ({type(exc).__name__})."))
    except BaseException as exc:
        if not is_panic(exc):
            raise
        errors.append((item.source, f"{name} is damaged and cannot be read."))
    return None
