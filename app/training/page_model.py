"""Wizard page 3: architecture, starting weights, input, augmentation, optimisation and auto-tune."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from app.training.common import MessageLabel, combo, dspin, set_data, spin
from app.training.model_presenter import (
    DEFAULT_ARCH,
    ArchInfo,
    ModelCatalogue,
    ModelPresenter,
    choice_lists,
    gpu_suffix,
)
from app.training.preview import AugmentPreview
from app.training.session import TrainingSession
from ml.training.config import AugmentConfig, TrainConfig


def _form(tabs: QTabWidget, title: str) -> QFormLayout:
    page = QWidget()
    form = QFormLayout(page)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
    tabs.addTab(page, title)
    return form


class ModelPage(QWizardPage):
    """The view of :class:`ModelPresenter`."""

    def __init__(self, session: TrainingSession, catalogue: ModelCatalogue | None = None) -> None:
        super().__init__()
        self.setTitle("3. Model and settings")
        self.setSubTitle("The defaults suit a first run on a CPU. Hover over a setting for an explanation.")
        self.preview: AugmentPreview | None = None
        self.presenter = ModelPresenter(self, session, catalogue)
        self._build()

    def _build(self) -> None:
        lists = choice_lists()
        tabs = QTabWidget()
        self.tabs = tabs
        # ---- model
        f = _form(tabs, "Model")
        self.arch = combo([(DEFAULT_ARCH, DEFAULT_ARCH)], DEFAULT_ARCH, "Network architecture")
        self.arch_info = QLabel("")
        self.arch_info.setStyleSheet("color: #555;")
        self.weights = combo([("None: train from scratch", "none")], "none",
                             "Pretrained weights to start from (download them in the model library)")  # fmt: skip
        self.freeze = spin(0, 1000, 0, " epochs", "never", "Train only the classifier for the first epochs")
        self.head_only = QCheckBox("Head only: train only the classifier on cached features (quick on a CPU)")
        f.addRow("Architecture", self.arch)
        f.addRow("", self.arch_info)
        f.addRow("Start from", self.weights)
        f.addRow("Freeze the backbone for", self.freeze)
        f.addRow("", self.head_only)
        # ---- input and augmentation
        f = _form(tabs, "Input and augmentation")
        self.image_size = spin(0, 2048, 0, " px", "architecture default", "Input size (square)")
        c, a = TrainConfig(), AugmentConfig()
        self.normalisation = combo(lists["normalisation"], c.normalisation)
        self.resize_mode = combo(lists["resize"], c.resize)
        self.voi = combo(lists["voi"], c.voi)
        self.equalize = combo(lists["equalize"], c.equalize)
        self.aug_enabled = QCheckBox("Augment training images")
        self.aug_enabled.setChecked(a.enabled)
        self.rotation = dspin(0, 45, a.rotation, 1, 1, "°")
        self.translate = dspin(0, 0.5, a.translate, 2, 0.01, tip="Fraction of the image size")
        self.scale = dspin(0, 0.9, a.scale, 2, 0.01, tip="± fraction")
        self.shear = dspin(0, 45, a.shear, 1, 1, "°")
        self.brightness = dspin(0, 0.9, a.brightness, 2, 0.01)
        self.contrast = dspin(0, 0.9, a.contrast, 2, 0.01)
        self.hflip = QCheckBox(
            "Horizontal flips (swap left and right anatomy: usually wrong for chest X-rays)"
        )
        self.vflip = QCheckBox("Vertical flips")
        self.strength = dspin(0, 3, a.strength, 2, 0.1, tip="Multiplies every amplitude above")
        self.preview_button = QPushButton("Preview…")
        self.preview_button.setObjectName("previewButton")
        amp = QHBoxLayout()
        for text, w in (("rotation ±", self.rotation), ("shift ±", self.translate), ("scale ±", self.scale),
                        ("shear ±", self.shear)):  # fmt: skip
            amp.addWidget(QLabel(text))
            amp.addWidget(w)
        photo = QHBoxLayout()
        for text, w in (
            ("brightness ±", self.brightness),
            ("contrast ±", self.contrast),
            ("strength ×", self.strength),
        ):
            photo.addWidget(QLabel(text))
            photo.addWidget(w)
        photo.addWidget(self.preview_button)
        amp.addStretch(1)
        photo.addStretch(1)
        f.addRow("Input size", self.image_size)
        f.addRow("Normalisation", self.normalisation)
        f.addRow("Resize", self.resize_mode)
        f.addRow("Windowing", self.voi)
        f.addRow("Equalisation", self.equalize)
        f.addRow("", self.aug_enabled)
        f.addRow("Geometry", amp)
        f.addRow("Intensity", photo)
        f.addRow("", self.hflip)
        f.addRow("", self.vflip)
        # ---- optimisation
        f = _form(tabs, "Optimisation")
        self.optimizer = combo(lists["optimizer"], c.optimizer)
        self.amsgrad = QCheckBox("AMSGrad")
        self.lr = dspin(1e-6, 1.0, 1e-3, 6, 1e-4)
        self.weight_decay = dspin(0, 1.0, 1e-4, 6, 1e-4)
        self.batch_size = spin(1, 4096, 32)
        self.epochs = spin(1, 10_000, 10)
        self.scheduler = combo(lists["scheduler"], c.scheduler)
        self.warmup = dspin(0, 100, 0, 1, 0.5, " epochs")
        self.early = QCheckBox("Early stopping")
        self.early.setChecked(True)
        self.monitor = combo(lists["monitor"], c.monitor, "The metric that picks the best epoch and stops early")
        self.patience = spin(1, 1000, 5, " epochs")
        self.smoothing = dspin(0, 0.5, 0.0, 2, 0.05)
        self.imbalance = combo(lists["imbalance"], c.imbalance)
        opt = QHBoxLayout()
        opt.addWidget(self.optimizer)
        opt.addWidget(self.amsgrad)
        opt.addStretch(1)
        early = QHBoxLayout()
        for w in (self.early, QLabel("monitor"), self.monitor, QLabel("patience"), self.patience):
            early.addWidget(w)
        early.addStretch(1)
        f.addRow("Optimiser", opt)
        f.addRow("Learning rate", self.lr)
        f.addRow("Weight decay", self.weight_decay)
        f.addRow("Batch size", self.batch_size)
        f.addRow("Epochs", self.epochs)
        f.addRow("Schedule", self.scheduler)
        f.addRow("Warm-up", self.warmup)
        f.addRow("", early)
        f.addRow("Label smoothing", self.smoothing)
        f.addRow("Class imbalance", self.imbalance)
        # ---- execution
        f = _form(tabs, "Execution and auto-tune")
        self.device = combo(lists["device"], c.device)
        self.amp = QCheckBox("Mixed precision (GPU only)")
        self.amp.setChecked(True)
        self.seed_label = QLabel("The seed is set on the split page.")
        self.workers = spin(0, 64, 0, tip="Data-loading worker processes (0: in the training process)")
        self.trials = spin(0, 1000, 0, " trials", "off", "Optuna search over learning rate, weight decay and "
                           "augmentation strength; the best is then trained")  # fmt: skip
        self.tune_epochs = spin(0, 1000, 0, " epochs", "same as training")
        self.nproc = spin(1, 64, 1, gpu_suffix(1), tip="Processes per node in the exported torchrun command")
        self.export_button = QPushButton("Export config and command…")
        f.addRow("Device", self.device)
        f.addRow("", self.amp)
        f.addRow("Seed", self.seed_label)
        f.addRow("Workers", self.workers)
        f.addRow("Auto-tune", self.trials)
        f.addRow("Epochs per trial", self.tune_epochs)
        f.addRow("GPU server", self.nproc)
        f.addRow("", self.export_button)

        self.message = MessageLabel()
        layout = QVBoxLayout(self)
        layout.addWidget(tabs, 1)
        layout.addWidget(self.message)
        p = self.presenter
        self.arch.currentIndexChanged.connect(p.architecture_changed)
        self.nproc.valueChanged.connect(p.gpus_changed)
        self.preview_button.clicked.connect(self.show_preview)
        self.export_button.clicked.connect(self._export_dialog)

    def initializePage(self) -> None:  # noqa: N802 - Qt override
        self.presenter.page_shown()

    def validatePage(self) -> bool:  # noqa: N802 - Qt override
        return self.presenter.validate()

    # ------------------------------------------------------------------ ModelView
    def show_architectures(self, names: list[str], current: str) -> None:
        self.arch.blockSignals(True)
        self.arch.clear()
        for name in names:
            self.arch.addItem(name, name)
        set_data(self.arch, current)
        self.arch.blockSignals(False)

    def current_architecture(self) -> str:
        return str(self.arch.currentData() or "")

    def show_architecture(self, info: ArchInfo) -> None:
        self.arch_info.setText(info.info)
        self.image_size.setSpecialValueText(info.default_size)
        current = self.weights.currentData()
        self.weights.clear()
        for text, value in info.weights:
            self.weights.addItem(text, value)
        set_data(self.weights, current)

    def show_gpu_suffix(self, suffix: str) -> None:
        self.nproc.setSuffix(suffix)

    def show_message(self, text: str, error: bool = False) -> None:
        (self.message.error if error else self.message.info)(text)

    def read_settings(self, config: TrainConfig) -> None:
        config.arch = str(self.arch.currentData() or DEFAULT_ARCH)
        config.weights = str(self.weights.currentData() or "none")
        config.freeze_backbone_epochs = self.freeze.value()
        config.head_only = self.head_only.isChecked()
        config.image_size = self.image_size.value()
        config.normalisation = self.normalisation.currentData()
        config.resize = str(self.resize_mode.currentData())
        config.voi = str(self.voi.currentData())
        config.equalize = str(self.equalize.currentData())
        config.augment = AugmentConfig(
            enabled=self.aug_enabled.isChecked(), rotation=self.rotation.value(), translate=self.translate.value(),
            scale=self.scale.value(), shear=self.shear.value(), brightness=self.brightness.value(),
            contrast=self.contrast.value(), hflip=self.hflip.isChecked(), vflip=self.vflip.isChecked(),
            strength=self.strength.value(),
        )  # fmt: skip
        config.optimizer = str(self.optimizer.currentData())
        config.amsgrad = self.amsgrad.isChecked()
        config.lr = self.lr.value()
        config.weight_decay = self.weight_decay.value()
        config.batch_size = self.batch_size.value()
        config.epochs = self.epochs.value()
        config.scheduler = str(self.scheduler.currentData())
        config.warmup_epochs = self.warmup.value()
        config.early_stopping = self.early.isChecked()
        config.monitor = str(self.monitor.currentData())
        config.patience = self.patience.value()
        config.label_smoothing = self.smoothing.value()
        config.imbalance = str(self.imbalance.currentData())
        config.device = str(self.device.currentData())
        config.amp = self.amp.isChecked()
        config.workers = self.workers.value()
        config.tune_trials = self.trials.value()
        config.tune_epochs = self.tune_epochs.value()

    # ------------------------------------------------------------------ actions
    def show_preview(self) -> AugmentPreview | None:
        request = self.presenter.preview_request()
        if request is None:
            return None
        config, path, labels, task = request
        self.preview = AugmentPreview(self)
        self.preview.show()
        self.preview.start(config, path, labels, task)
        return self.preview

    def _export_dialog(self) -> None:
        if not self.presenter.validate():
            return
        folder = QFileDialog.getExistingDirectory(self, "Folder for config.json")
        if folder:
            self.export_to(folder)

    def export_to(self, folder: str) -> tuple[str, str]:
        """Write ``folder/config.json`` and show the torchrun command; ("", "") when the settings are invalid."""
        result = self.presenter.export(folder, self.nproc.value())
        if result is None:
            return "", ""
        path, command, text = result
        dialog = QDialog(self)
        dialog.setWindowTitle("Train on a GPU server")
        box = QPlainTextEdit(text)
        box.setReadOnly(True)
        copy = QPushButton("Copy command")
        copy.clicked.connect(lambda: QApplication.clipboard().setText(command))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dialog.close)
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        lay = QVBoxLayout(dialog)
        lay.addWidget(box)
        lay.addWidget(buttons)
        dialog.resize(720, 240)
        dialog.show()
        self.export_dialog = dialog
        return str(path), command
