"""The training wizard: data -> split -> model and settings -> run -> evaluate and save.

The pages share one :class:`ml.training.config.TrainConfig` (``wizard.config``), the scanned data
(``wizard.data``, a LabelledSet), the split (``wizard.split``) and the run folder. Training runs as
a separate ``cxr train`` process (:mod:`app.training.process`); the wizard only writes its config
and follows its events. Not for diagnostic use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget, QWizard

from app.training.page_data import DataPage
from app.training.page_evaluate import EvaluatePage
from app.training.page_model import ModelPage
from app.training.page_run import RunPage
from app.training.page_split import SplitPage
from ml.training.config import TrainConfig

DATA, SPLIT, MODEL, RUN, EVALUATE = range(5)


class TrainingWizard(QWizard):
    def __init__(self, main_window: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingWizard")
        self.main_window = main_window
        self.setWindowTitle("Train a model — research use, not for diagnostic use")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, False)
        self.setOption(QWizard.WizardOption.HaveHelpButton, False)
        self.setWindowFlag(Qt.WindowType.WindowContextHelpButtonHint, False)
        self.config = TrainConfig()
        self.data: Any = None  # ml.training.sources.LabelledSet of the last scan
        self.split: Any = None  # ml.training.splits.Split
        self.run_dir: Path | None = None
        self.data_page = DataPage(self)
        self.split_page = SplitPage(self)
        self.model_page = ModelPage(self)
        self.run_page = RunPage(self)
        self.evaluate_page = EvaluatePage(self)
        for pid, page in ((DATA, self.data_page), (SPLIT, self.split_page), (MODEL, self.model_page),
                          (RUN, self.run_page), (EVALUATE, self.evaluate_page)):  # fmt: skip
            self.setPage(pid, page)
        self.setStartId(DATA)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Close")
        self.resize(1100, 800)

    def build_config(self) -> TrainConfig:
        """The TrainConfig of everything the pages show now (validated)."""
        config = TrainConfig()
        self.data_page.apply(config)
        self.split_page.apply(config)
        self.model_page.apply(config)
        self.config = config.validate()
        return self.config

    def data_changed(self) -> None:
        """The data source or its scan changed: later pages' results no longer apply."""
        self.split = None

    def reject(self) -> None:
        self.shutdown()
        super().reject()

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)

    def shutdown(self) -> None:
        """Stop a running training process (it saves a resumable checkpoint) and background scans."""
        self.data_page.cancel_scan()
        self.run_page.shutdown()
