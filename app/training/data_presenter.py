"""Wizard page 1's rules, Qt-free: which options apply to the source, the scan, and its summary.

The view (:class:`app.training.page_data.DataPage`) renders and forwards intent; it implements
:class:`DataView`. The scan itself runs on the view's worker (``view.start_scan``, its progress shown
by the one :class:`app.progress.ProgressPanel` bound to the job) and its outcome comes back
through ``scan_finished`` / ``scan_failed`` / ``scan_cancelled`` / ``scan_done``.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from app.training.session import TrainingSession, choices
from ml.training import config as cfg
from ml.training.config import DataConfig, TrainConfig

#: words for the config's choice lists (ml.training.config: PRESET_CHOICES, CHEXPERT_POLICIES, SIIM_TASKS)
PRESET_TEXT = {
    "auto": "Detect automatically",
    "folder": "Folder with one sub-folder per class",
    "csv": "CSV file of paths and labels",
    "covid19_radiography": "COVID-19 Radiography Database",
    "pediatric_pneumonia": "Paediatric pneumonia (chest_xray/train, val, test)",
    "nih_chestxray14": "NIH ChestX-ray14",
    "chexpert": "CheXpert",
    "siim_covid19": "SIIM-FISABIO-RSNA COVID-19",
}
CHEXPERT_TEXT = {"ignore": "ignore (left out of the loss)", "zeros": "treat as negative", "ones": "treat as positive"}
SIIM_TEXT = {"binary": "negative vs. the rest (binary)", "4class": "four classes"}
PRESET_NAMES = choices(cfg.PRESET_CHOICES, PRESET_TEXT)
CHEXPERT_NAMES = choices(cfg.CHEXPERT_POLICIES, CHEXPERT_TEXT)
SIIM_NAMES = choices(cfg.SIIM_TASKS, SIIM_TEXT)
SAMPLES_PER_CLASS = 4
STALE = "The settings changed: press Scan again."


@dataclass(frozen=True)
class SourceOptions:
    """What the page shows for the chosen source: which groups apply, the detected layout."""

    csv_columns: bool  # the CSV column group is shown
    csv_header: tuple[str, ...] | None  # column names to offer (None: not a CSV file)
    detected: str  # "detected: ..." or ""
    dataset_options: bool  # the dataset options group is shown
    chexpert: bool  # the CheXpert policy applies
    siim: bool  # the SIIM task applies


@dataclass(frozen=True)
class ScanSummary:
    class_rows: list[tuple[str, int]]  # (class, images) then ("Total images", n)
    message: str
    problems: list[str]  # one line per skipped file
    samples: list[tuple[str, str, str]]  # (path, caption, tooltip) for the gallery


class DataView(Protocol):
    def read_settings(self, config: DataConfig) -> None: ...
    def show_source_options(self, options: SourceOptions) -> None: ...
    def show_message(self, text: str, error: bool = False) -> None: ...
    def show_scanning(self, scanning: bool) -> None: ...
    def show_summary(self, summary: ScanSummary | None) -> None: ...
    def start_scan(self, config: DataConfig) -> None: ...
    def stop_scan(self) -> None: ...
    def complete_changed(self) -> None: ...


def detect_preset(path: Path) -> str:
    """The preset name the files look like ("" when unknown); a hint only, Scan reports problems."""
    try:
        from ml.training.presets import detect_preset as detect

        return str(detect(path))
    except Exception:  # noqa: BLE001 - detection is a hint only; Scan reports real problems
        return ""


def csv_header(path: Path) -> tuple[str, ...]:
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            return tuple(next(csv.reader(fh), []))
    except OSError:
        return ()


def summarise(data: Any) -> ScanSummary:
    """The class table, one-paragraph summary, skipped files and gallery samples of a scan."""
    rep = data.report
    counts = data.label_counts()
    rows = [(label, int(counts.get(label, 0))) for label in data.labels]
    rows.append(("Total images", len(data.samples)))
    task = "one label per image" if data.task == "multiclass" else "several labels per image (multi-label)"
    kind = PRESET_TEXT.get(rep.kind, rep.kind)
    lines = [f"{len(data.samples)} images in {len(data.labels)} classes ({task}); {kind}."]
    if rep.n_duplicates:
        lines.append(f"{rep.n_duplicates} duplicate file(s) skipped (same content as another file).")
    else:
        lines.append("No duplicates found.")
    if rep.n_unreadable:
        lines.append(f"{rep.n_unreadable} unreadable file(s) skipped (listed below).")
    lines += [f"{n} image(s) left out: {reason}." for reason, n in rep.filtered.items()]
    lines += [f"Note: {n}." for n in rep.notes]
    problems = [f"{Path(path).name}: {reason}" for path, reason in rep.unreadable]
    problems += [f"{Path(dup).name}: duplicate of {Path(first).name}" for dup, first in rep.duplicates[:50]]
    rng = random.Random(0)
    samples = []
    for label in data.labels:
        paths = [s.path for s in data.samples if label in s.labels]
        for p in sorted(rng.sample(paths, min(SAMPLES_PER_CLASS, len(paths)))):
            samples.append((p, label, p))
    return ScanSummary(rows, " ".join(lines), problems, samples)


class DataPresenter:
    def __init__(
        self, view: DataView, session: TrainingSession, detect: Callable[[Path], str] = detect_preset
    ) -> None:
        self.view = view
        self.session = session
        self.detect = detect
        self.scanning = False
        session.add_config_part(self.apply)

    def settings(self) -> DataConfig:
        config = DataConfig()
        self.view.read_settings(config)
        return config

    def apply(self, config: TrainConfig) -> None:
        config.data = self.settings()

    # ------------------------------------------------------------------ intent
    def source_changed(self) -> None:
        """The path or the dataset type changed: which options apply, what the files look like."""
        d = self.settings()
        path = Path(d.path).expanduser()
        is_csv = bool(d.path) and path.is_file()
        detected = self.detect(path) if d.path and path.exists() else ""
        effective = detected if d.preset == "auto" else d.preset
        self.view.show_source_options(SourceOptions(
            csv_columns=is_csv and d.preset in ("auto", "csv"),
            csv_header=csv_header(path) if is_csv else None,
            detected=f"detected: {PRESET_TEXT.get(detected, detected)}" if detected else "",
            dataset_options=effective in ("chexpert", "siim_covid19"),
            chexpert=effective == "chexpert",
            siim=effective == "siim_covid19",
        ))  # fmt: skip
        self.settings_changed()

    def settings_changed(self) -> None:
        """Any setting changed: a scan made with the old settings no longer applies."""
        if self.session.data is not None:
            self.session.set_data(None)
            self.view.show_message(STALE)
        self.view.complete_changed()

    def scan(self) -> None:
        if self.scanning:
            return
        d = self.settings()
        self.session.set_data(None)
        self.view.show_summary(None)
        if not d.path:
            self.view.show_message("Choose a folder or a CSV file first.", error=True)
            self.view.complete_changed()
            return
        self.view.show_message("Scanning…")
        self.scanning = True
        self.view.show_scanning(True)
        self.view.start_scan(d)
        self.view.complete_changed()

    def cancel(self) -> None:
        if self.scanning:
            self.view.stop_scan()

    # ------------------------------------------------------------------ the scan's outcome
    def scan_finished(self, data: Any) -> None:
        self.session.set_data(data)
        summary = summarise(data)
        self.view.show_message(summary.message)
        self.view.show_summary(summary)

    def scan_failed(self, message: str) -> None:
        self.view.show_message(message, error=True)

    def scan_cancelled(self) -> None:
        self.view.show_message("Scan cancelled.")

    def scan_done(self) -> None:
        self.scanning = False
        self.view.show_scanning(False)
        self.view.complete_changed()

    def is_complete(self) -> bool:
        data = self.session.data
        return data is not None and not self.scanning and len(data.labels) >= 2
