"""Wizard page 2's rules, Qt-free: the split settings, when to (re)compute, and what each part holds.

The view (:class:`app.training.page_split.SplitPage`) implements :class:`SplitView`: it reads its
widgets into a :class:`SplitSettings`, debounces changes (``schedule``) and runs the split on a
worker (``start_split``), whose outcome comes back through ``split_ready`` / ``split_failed`` /
``split_done``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from app.training.session import TrainingSession, choices
from ml.training.config import PATIENT_ID_MODES, SplitConfig, TrainConfig

#: words for ml.training.config.PATIENT_ID_MODES
PATIENT_TEXT = {
    "auto": "Automatic (DICOM PatientID, CSV column or known file names)",
    "dicom": "DICOM PatientID",
    "regex": "File-name pattern (regular expression)",
    "path-regex": "Relative-path pattern (regular expression, e.g. folder/file)",
    "column": "CSV column",
    "none": "None: each image is its own patient",
}
PATIENT_SOURCES = choices(PATIENT_ID_MODES, PATIENT_TEXT)
SPLIT_NAMES = {"train": "Training", "val": "Validation", "test": "Test"}
NEEDS_ARGUMENT = ("regex", "path-regex", "column")


@dataclass
class SplitSettings:
    """What the split page's widgets say (percentages as shown)."""

    percent: list[int] = field(default_factory=lambda: [70, 15, 15])
    patient_mode: str = "auto"
    patient_arg: str = ""
    seed: int = 0
    predefined: bool = True
    balanced: bool = False
    max_images: int = 0

    def patient_id(self) -> str:
        if self.patient_mode in NEEDS_ARGUMENT:
            return f"{self.patient_mode}:{self.patient_arg.strip()}"
        return self.patient_mode

    def split_config(self) -> SplitConfig:
        total = sum(self.percent) or 1
        return SplitConfig(
            ratios=[p / total for p in self.percent],
            patient_id=self.patient_id(),
            use_predefined=self.predefined,
            balanced=self.balanced,
            max_images=self.max_images,
        )


@dataclass(frozen=True)
class SplitTable:
    columns: list[str]
    rows: list[list[str]]
    level: str  # one sentence on how patients were found
    message: str
    error: bool
    usable: bool  # the split can be trained on (a non-empty test part)


class SplitView(Protocol):
    def read_settings(self) -> SplitSettings: ...
    def show_patient_argument(self, enabled: bool, placeholder: str) -> None: ...
    def show_message(self, text: str, error: bool = False) -> None: ...
    def show_table(self, table: SplitTable | None) -> None: ...
    def schedule(self) -> None: ...
    def pending(self) -> bool: ...
    def start_split(self, data: Any, config: SplitConfig, seed: int) -> None: ...
    def complete_changed(self) -> None: ...


def split_table(split: Any) -> SplitTable:
    """Rows of patients/images/classes per part, and what the user should know about it."""
    s = split.summary()
    labels = list(split.labels)
    rows = []
    for name in ("train", "val", "test"):
        d = s["splits"][name]
        rows.append([SPLIT_NAMES[name], str(d["patients"]), str(d["images"]),
                     *[str(d["per_class"].get(x, 0)) for x in labels]])  # fmt: skip
    if split.level == "patient":
        level = f"Patient-level split; patient IDs from {split.source}. No patient is in two parts."
    else:
        level = ("Image-level split: no patient IDs were found, so each image counts as its own patient. If "
                 "a patient has several images, choose where the patient ID comes from.")  # fmt: skip
    error, usable = False, True
    if not s["splits"]["test"]["images"]:
        message = ("The test part is empty, so the model could not be evaluated: raise the test ratio or add "
                   "images.")  # fmt: skip
        error, usable = True, False
    elif not s["splits"]["val"]["images"]:
        message = "The validation part is empty: the best epoch is chosen on the training loss."
    else:
        message = "Press Next to choose the model and its settings."
    return SplitTable(["Part", "Patients", "Images", *labels], rows, level, message, error, usable)


class SplitPresenter:
    def __init__(self, view: SplitView, session: TrainingSession) -> None:
        self.view = view
        self.session = session
        self.busy = False
        self.again = False  # settings changed while a split was being computed
        session.add_config_part(self.apply)

    def apply(self, config: TrainConfig) -> None:
        s = self.view.read_settings()
        config.split = s.split_config()
        config.seed = s.seed

    # ------------------------------------------------------------------ intent
    def patient_mode_changed(self) -> None:
        mode = self.view.read_settings().patient_mode
        placeholder = r"e.g. (\d+)_\d+\.png" if mode in ("regex", "path-regex") else "column name" if mode == "column" else ""
        self.view.show_patient_argument(mode in NEEDS_ARGUMENT, placeholder)
        self.settings_changed()

    def settings_changed(self) -> None:
        self.session.set_split(None)
        self.view.complete_changed()
        self.view.schedule()

    def page_shown(self) -> None:
        if self.session.split is None:
            self.compute()

    def compute(self) -> None:
        if self.busy:
            self.again = True
            return
        data = self.session.data
        if data is None:
            return
        s = self.view.read_settings()
        self.session.set_split(None)
        if s.patient_mode in NEEDS_ARGUMENT and not s.patient_arg.strip():
            self.view.show_message("Enter the file-name pattern or the column that holds the patient ID.",
                                   error=True)  # fmt: skip
            self.view.complete_changed()
            return
        self.view.show_message("Splitting…")
        self.busy = True
        self.view.start_split(data, s.split_config(), s.seed)

    # ------------------------------------------------------------------ the split's outcome
    def split_ready(self, split: Any) -> None:
        if self.again:
            return  # settings changed while this split was computed
        table = split_table(split)
        self.view.show_table(table)
        self.view.show_message(table.message, error=table.error)
        self.session.set_split(split if table.usable else None)
        self.view.complete_changed()

    def split_failed(self, message: str) -> None:
        self.view.show_table(None)
        self.view.show_message(message, error=True)

    def split_done(self) -> None:
        self.busy = False
        if self.again:
            self.again = False
            self.compute()
        self.view.complete_changed()

    def is_complete(self) -> bool:
        return self.session.split is not None and not self.busy and not self.view.pending()
