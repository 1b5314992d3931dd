"""Known public chest X-ray datasets, detected from their layout, and :func:`load_source`.

=======================  =====================================================================
preset                   layout
=======================  =====================================================================
covid19_radiography      COVID-19 Radiography Database: ``<class>/images/*.png`` (+ ``masks/``)
pediatric_pneumonia      ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}`` (Kermany et al.)
nih_chestxray14          ``Data_Entry_2017.csv`` + ``images_*/images/*.png`` (+ split lists)
chexpert                 ``train.csv`` (+ ``valid.csv``) with ``Path`` and 14 observation columns
siim_covid19             ``train_study_level.csv`` + ``train/<study>/<series>/<image>.dcm``
=======================  =====================================================================

Any other folder is read as one sub-folder per class; a ``.csv`` file as a generic CSV source.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ml.errors import DataSourceError
from ml.progress import CancelToken, ProgressCallback
from ml.training.config import PRESETS, DataConfig
from ml.training.csvsource import CsvSpec, load_csv, read_csv_rows
from ml.training.sources import (
    LabelledSet,
    Sample,
    SourceFilters,
    SourceReport,
    class_folders,
    finish,
    inspect_samples,
    load_folder,
    walk_images,
)

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
NIH_LABELS = [
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
]  # fmt: skip
CHEXPERT_LABELS = [
    "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
    "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices",
]  # fmt: skip
SIIM_CLASSES = [
    "Negative for Pneumonia",
    "Typical Appearance",
    "Indeterminate Appearance",
    "Atypical Appearance",
]
SIIM_SHORT = {
    "Negative for Pneumonia": "negative",
    "Typical Appearance": "typical",
    "Indeterminate Appearance": "indeterminate",
    "Atypical Appearance": "atypical",
}
NIH_CSV_NAMES = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")


def filters_of(config: DataConfig) -> SourceFilters:
    return SourceFilters(config.frontal_only, config.single_image_studies, config.min_size)


def _unwrap(root: Path) -> Path:
    """Descend through single wrapper folders (``chest_xray/chest_xray/...`` from the Kaggle zip)."""
    for _ in range(3):
        subs = [
            p
            for p in root.iterdir()
            if p.is_dir() and p.name.lower() != "__macosx" and not p.name.startswith(".")
        ]
        files = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
        if len(subs) == 1 and not files:
            root = subs[0]
        else:
            break
    return root


def _split_folders(root: Path) -> dict[str, Path]:
    subs = {p.name.lower(): p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    found = {SPLIT_NAMES[k]: v for k, v in subs.items() if k in SPLIT_NAMES}
    other = [k for k in subs if k not in SPLIT_NAMES and k != "__macosx"]
    return found if found and not other and all(class_folders(p) for p in found.values()) else {}


def detect_preset(path: str | os.PathLike[str]) -> str:
    """The preset a folder or CSV file looks like ("folder" or "csv" when none matches)."""
    p = Path(path)
    if p.is_file():
        if p.name in NIH_CSV_NAMES:
            return "nih_chestxray14"
        if p.name == "train_study_level.csv":
            return "siim_covid19"
        return "csv"
    if not p.is_dir():
        raise DataSourceError(f"The data source {p} does not exist.")
    if any((p / n).is_file() for n in NIH_CSV_NAMES):
        return "nih_chestxray14"
    if (p / "train_study_level.csv").is_file():
        return "siim_covid19"
    if (p / "train.csv").is_file():
        header = (p / "train.csv").open(encoding="utf-8", errors="replace").readline()
        if "Frontal/Lateral" in header or "No Finding" in header:
            return "chexpert"
    inner = _unwrap(p)
    if _split_folders(inner):
        return "pediatric_pneumonia"
    groups = class_folders(inner)
    if groups and any((f / "images").is_dir() for _, folders in groups for f in folders):
        return "covid19_radiography"
    return "folder"


def load_source(
    config: DataConfig, progress: ProgressCallback | None = None, cancel: CancelToken | None = None
) -> LabelledSet:
    """Read the data source a DataConfig describes (detecting the preset when it says "auto")."""
    if not config.path:
        raise DataSourceError("No data source was given: choose a folder or a CSV file.")
    path = Path(config.path).expanduser()
    if not path.exists():
        raise DataSourceError(f"The data source {path} does not exist.")
    preset = config.preset if config.preset not in ("auto", "") else detect_preset(path)
    if preset not in PRESETS:
        raise DataSourceError(f"Unknown dataset preset '{preset}'; known presets: {', '.join(PRESETS)}.")
    filters = filters_of(config)
    labels = list(config.labels) or None
    if preset == "csv":
        if not path.is_file():
            raise DataSourceError(f"{path} is a folder; the csv preset needs a CSV file.")
        spec = CsvSpec(
            config.path_column,
            config.label_column,
            list(config.label_columns),
            config.label_separator,
            config.image_root,
            config.chexpert_uncertain,
        )
        return load_csv(path, spec, filters, labels, progress, cancel)
    if path.is_file():
        path = path.parent
    if preset == "folder":
        return load_folder(path, filters, labels, progress, cancel)
    if preset == "covid19_radiography":
        return load_folder(_unwrap(path), filters, labels, progress, cancel, kind=preset)
    if preset == "pediatric_pneumonia":
        return load_pediatric(path, filters, labels, progress, cancel)
    if preset == "nih_chestxray14":
        return load_nih(path, filters, progress, cancel)
    if preset == "chexpert":
        return load_chexpert(path, filters, config.chexpert_uncertain, progress, cancel)
    return load_siim(path, filters, config.siim_task, progress, cancel)


# --------------------------------------------------------------------------- paediatric pneumonia


def load_pediatric(
    path: Path,
    filters: SourceFilters,
    labels: list[str] | None,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> LabelledSet:
    root = _unwrap(path)
    splits = _split_folders(root)
    if not splits:
        raise DataSourceError(
            f"{root} does not look like chest_xray/{{train,val,test}}/{{NORMAL,PNEUMONIA}}."
        )
    names = sorted({n for p in splits.values() for n, _ in class_folders(p)}, key=str.casefold)
    names = labels or list(dict.fromkeys(n.upper() for n in names))
    rep = SourceReport(source=str(root), kind="pediatric_pneumonia")
    samples: list[Sample] = []
    for split_name, folder in sorted(splits.items()):
        part = load_folder(folder, filters, names, progress, cancel, kind="pediatric_pneumonia")
        for s in part.samples:
            s.predefined_split = split_name
        samples += part.samples
        _merge(rep, part.report)
    return finish(samples, names, "multiclass", rep)


def _merge(into: SourceReport, part: SourceReport) -> None:
    into.n_found += part.n_found
    into.n_unreadable += part.n_unreadable
    into.unreadable += part.unreadable
    into.n_duplicates += part.n_duplicates
    into.duplicates += part.duplicates
    for k, v in part.filtered.items():
        into.add_filtered(k, v)
    into.notes += part.notes


# --------------------------------------------------------------------------- NIH ChestX-ray14


def _index_files(root: Path, pattern: str = "") -> dict[str, str]:
    rx = re.compile(pattern) if pattern else None
    out: dict[str, str] = {}
    for full in walk_images(root):
        if rx is None or rx.search(full):
            out.setdefault(os.path.basename(full), full)
    return out


def _read_list(path: Path) -> set[str]:
    try:
        return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    except OSError:
        return set()


def load_nih(
    path: Path, filters: SourceFilters, progress: ProgressCallback | None, cancel: CancelToken | None
) -> LabelledSet:
    csv_path = next((path / n for n in NIH_CSV_NAMES if (path / n).is_file()), None)
    if csv_path is None:
        raise DataSourceError(f"{path} has no Data_Entry_2017.csv (NIH ChestX-ray14).")
    header, rows = read_csv_rows(csv_path)
    for col in ("Image Index", "Finding Labels"):
        if col not in header:
            raise DataSourceError(f"{csv_path.name} has no '{col}' column; is it the NIH ChestX-ray14 CSV?")
    files = _index_files(path)
    test = _read_list(path / "test_list.txt")
    trainval = _read_list(path / "train_val_list.txt")
    spec = CsvSpec(
        path_column="Image Index",
        label_column="Finding Labels",
        separator="|",
        patient_column="Patient ID",
        view_column="View Position",
    )
    missing_root = path / "images"

    def resolve(name: str) -> str:
        return files.get(name, str(missing_root / name))

    data = load_csv(
        csv_path,
        spec,
        filters,
        list(NIH_LABELS),
        progress,
        cancel,
        kind="nih_chestxray14",
        rows=rows,
        header=header,
        resolve=resolve,
    )
    if test or trainval:
        for s in data.samples:
            name = os.path.basename(s.path)
            s.predefined_split = "test" if name in test else "train" if name in trainval else ""
    data.task = data.report.task = "multilabel"
    return data


# --------------------------------------------------------------------------- CheXpert


def load_chexpert(
    path: Path,
    filters: SourceFilters,
    uncertain: str,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> LabelledSet:
    samples: list[Sample] = []
    columns: set[str] = set()
    rep = SourceReport(source=str(path), kind="chexpert")
    for csv_name, split_name in (("train.csv", "train"), ("valid.csv", "val")):
        csv_path = path / csv_name
        if not csv_path.is_file():
            continue
        header, rows = read_csv_rows(csv_path)
        if "Path" not in header:
            raise DataSourceError(f"{csv_name} has no 'Path' column; is it the CheXpert CSV?")
        cols = [c for c in CHEXPERT_LABELS if c in header]
        columns.update(cols)
        if not cols:
            raise DataSourceError(f"{csv_name} has none of the CheXpert observation columns.")

        def resolve(p: str) -> str:
            parts = Path(p).parts
            for cand in (
                path.parent / p,
                path / p,
                path.joinpath(*parts[1:]) if len(parts) > 1 else path / p,
            ):
                if cand.exists():
                    return str(cand)
            return str(path.joinpath(*parts[1:]) if len(parts) > 1 else path / p)

        spec = CsvSpec(
            path_column="Path", label_columns=cols, uncertain=uncertain, view_column="Frontal/Lateral"
        )
        part = load_csv(
            csv_path,
            spec,
            filters,
            None,
            progress,
            cancel,
            kind="chexpert",
            rows=rows,
            header=header,
            resolve=resolve,
        )
        for s in part.samples:
            s.predefined_split = split_name
            m = re.search(r"(patient\d+)", s.path)
            s.patient_id = m.group(1) if m else ""
        samples += part.samples
        _merge(rep, part.report)
    if not samples and rep.n_found == 0:
        raise DataSourceError(f"{path} has no CheXpert train.csv.")
    labels = [c for c in CHEXPERT_LABELS if c in columns]
    return finish(samples, labels, "multilabel", rep)


# --------------------------------------------------------------------------- SIIM-FISABIO-RSNA


def load_siim(
    path: Path,
    filters: SourceFilters,
    task: str,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> LabelledSet:
    csv_path = path / "train_study_level.csv"
    header, rows = read_csv_rows(csv_path)
    if "id" not in header or any(c not in header for c in SIIM_CLASSES):
        raise DataSourceError(
            f"{csv_path.name} lacks the 'id' and the four appearance columns of SIIM-FISABIO-RSNA."
        )
    image_root = path / "train" if (path / "train").is_dir() else path
    rep = SourceReport(source=str(path), kind="siim_covid19")
    candidates: list[Sample] = []
    for n, row in enumerate(rows, start=2):
        study = row["id"].replace("_study", "")
        positive = [c for c in SIIM_CLASSES if (row.get(c) or "").strip() in ("1", "1.0")]
        if len(positive) != 1:
            raise DataSourceError(f"Row {n} of {csv_path.name} does not have exactly one appearance class.")
        cls = SIIM_SHORT[positive[0]]
        if task == "binary":
            cls = "negative" if cls == "negative" else "positive"
        folder = image_root / study
        files = walk_images(folder) if folder.is_dir() else []
        if not files:
            rep.add_unreadable(str(folder), "no images found for this study")
            continue
        candidates += [Sample(f, [cls], study_id=study) for f in files]
    rep.n_found = len(candidates)
    kept = inspect_samples(candidates, rep, filters, progress, cancel)
    labels = ["negative", "positive"] if task == "binary" else [SIIM_SHORT[c] for c in SIIM_CLASSES]
    return finish(kept, labels, "multiclass", rep)
