"""The text of each browser row (Qt-free): patient, study, series and instance lines."""

from __future__ import annotations

from ml.imaging.index import InstanceEntry, PatientEntry, SeriesEntry, StudyEntry, StudyIndex


def _date(value: str) -> str:
    v = value.strip()
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if len(v) == 8 and v.isdigit() else v


def patient_text(p: PatientEntry) -> str:
    parts = [p.name or p.patient_id or "(no name)"]
    if p.patient_id and p.patient_id != p.name:
        parts.append(p.patient_id)
    details = ", ".join(x for x in (p.sex, f"born {_date(p.birth_date)}" if p.birth_date else "") if x)
    return "  ·  ".join(parts) + (f"   ({details})" if details else "")


def study_text(s: StudyEntry) -> str:
    if s.uid.startswith("folder:"):
        return f"Folder {s.description}" if s.description else "Image files"
    date = _date(s.date) or "(no date)"
    return f"{date}  ·  {s.description}" if s.description else date


def study_tooltip(s: StudyEntry) -> str:
    tip = [x for x in (s.description, f"Accession {s.accession}" if s.accession else "") if x]
    return "\n".join(tip) or "Study"


def series_text(s: SeriesEntry) -> str:
    first = s.instances[0] if s.instances else None
    if first is not None and first.meta.kind != "dicom":
        return f"{s.description}\n{first.meta.kind.upper()} · {first.meta.columns}×{first.meta.rows}"
    n = len(s.instances)
    head = " · ".join(x for x in (s.modality, f"#{s.number}" if s.number is not None else "") if x)
    frames = first.meta.n_frames if first is not None and n == 1 else 1
    count = f"{n} images" if n > 1 else (f"{frames} frames" if frames > 1 else "1 image")
    if first is not None and all(not i.is_image for i in s.instances):
        count = first.meta.sop_class_name or "no image"
    line1 = f"{head}  {s.description}".strip() or "Series"
    return f"{line1}\n{count}"


def instance_text(i: InstanceEntry) -> str:
    name = i.source.replace("\\", "/").rsplit("/", 1)[-1]
    number = f"#{i.meta.instance_number}  " if i.meta.instance_number is not None else ""
    if not i.is_image:
        return f"{number}{i.meta.sop_class_name or 'Non-image object'} (no image)"
    return f"{number}{name}"


def caption_text(index: StudyIndex) -> str:
    """"13 patients, 14 studies, 20 files" (and how many files could not be opened)."""
    n = len(index)
    if n == 0 and not index.errors:
        return "Drop DICOM files, folders or ZIPs here"
    patients = len(index.patients)
    studies = sum(len(p.studies) for p in index.patients)
    text = (
        f"{patients} patient{'s' * (patients != 1)}, "
        f"{studies} stud{'ies' if studies != 1 else 'y'}, {n} file{'s' * (n != 1)}"
    )
    if index.errors:
        text += f" · {len(index.errors)} not opened"
    return text


def opened_message(index: StudyIndex) -> str:
    """The status line after an open: files indexed and duplicate copies not listed again."""
    n, copies = len(index), len(index.duplicates)
    extra = (
        f" ({copies} duplicate cop{'ies' if copies != 1 else 'y'} of open images not listed again)"
        if copies
        else ""
    )
    return f"Opened {n} file{'s' * (n != 1)}{extra}."
