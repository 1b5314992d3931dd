"""The training wizard: data -> split -> model and settings -> run -> evaluate and save.

The pages share one :class:`app.training.session.TrainingSession` (the scanned data, the split, the
run, its evaluation); each page is a view over a Qt-free presenter that owns its rules. Training runs
as a separate ``cxr train`` process (:mod:`app.training.process`); the wizard only writes its config
and follows its events. The rest of the window is reached through one
:class:`app.training.evaluate_presenter.AnalysisLink`. Not for diagnostic use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget, QWizard

from app.training.evaluate_presenter import AnalysisLink
from app.training.page_data import DataPage
from app.training.page_evaluate import EvaluatePage
from app.training.page_model import ModelPage
from app.training.page_run import RunPage
from app.training.page_split import SplitPage
from app.training.session import TrainingSession
from ml.training.config import TrainConfig

DATA, SPLIT, MODEL, RUN, EVALUATE = range(5)


class TrainingWizard(QWizard):
    def __init__(self, link: AnalysisLink | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingWizard")
        self.setWindowTitle("Train a model — research use, not for diagnostic use")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, False)
        self.setOption(QWizard.WizardOption.HaveHelpButton, False)
        self.setWindowFlag(Qt.WindowType.WindowContextHelpButtonHint, False)
        self.session = TrainingSession()
        self.data_page = DataPage(self.session)
        self.split_page = SplitPage(self.session)
        self.model_page = ModelPage(self.session)
        self.run_page = RunPage(self.session)
        self.evaluate_page = EvaluatePage(self.session, link)
        for pid, page in ((DATA, self.data_page), (SPLIT, self.split_page), (MODEL, self.model_page),
                          (RUN, self.run_page), (EVALUATE, self.evaluate_page)):  # fmt: skip
            self.setPage(pid, page)
        self.setStartId(DATA)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Close")
        self.resize(1100, 800)

    # the session, read-only, for callers that knew the wizard's attributes
    @property
    def config(self) -> TrainConfig:
        return self.session.config

    @property
    def data(self) -> Any:
        return self.session.data

    @property
    def split(self) -> Any:
        return self.session.split

    @property
    def run_dir(self) -> Path | None:
        return self.session.run.run_dir

    def build_config(self) -> TrainConfig:
        """The TrainConfig of everything the pages show now (validated)."""
        return self.session.build_config()

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
