"""Every training setting in one JSON-serialisable dataclass (what the wizard writes, `cxr train` reads).

``TrainConfig.to_json()`` / ``TrainConfig.from_json()`` round-trip exactly; unknown keys are an
error (a typo in a hand-written config must not be ignored silently). Nested sections:
:class:`DataConfig` (where the images are and which to keep), :class:`SplitConfig` (patient-level
split) and :class:`AugmentConfig` (train-time augmentation in the [0, 1] input space).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ml.errors import CxrError


class ConfigError(CxrError):
    """A training configuration is invalid (bad value, unknown key, unreadable file)."""


@dataclass
class DataConfig:
    #: a folder (one sub-folder per class, or a known dataset layout) or a CSV file
    path: str = ""
    #: "auto" (detect), "folder", "csv", or a preset name (see ml.training.presets.PRESETS)
    preset: str = "auto"
    #: CSV options (auto-detected when empty)
    path_column: str = ""
    label_column: str = ""
    label_columns: list[str] = field(default_factory=list)
    label_separator: str = "|"
    image_root: str = ""
    #: when set, only these labels (in this order); any other label in the data is an error
    labels: list[str] = field(default_factory=list)
    #: filters
    frontal_only: bool = True
    single_image_studies: bool = False
    min_size: int = 0
    #: preset options
    chexpert_uncertain: str = "ignore"  # ignore | zeros | ones
    siim_task: str = "binary"  # binary | 4class


@dataclass
class SplitConfig:
    ratios: list[float] = field(default_factory=lambda: [0.70, 0.15, 0.15])
    #: auto | dicom | none | regex:PATTERN | column:NAME
    patient_id: str = "auto"
    #: use a split the dataset defines (paediatric pneumonia folders, NIH lists) when present
    use_predefined: bool = True
    balanced: bool = False
    max_images: int = 0


@dataclass
class AugmentConfig:
    enabled: bool = True
    rotation: float = 10.0  # degrees, +-
    translate: float = 0.05  # fraction of the size, +-
    scale: float = 0.10  # +- fraction
    shear: float = 5.0  # degrees, +-
    brightness: float = 0.10
    contrast: float = 0.10
    hflip: bool = False  # off by default: flips swap left and right anatomy
    vflip: bool = False
    #: multiplies every amplitude above (Optuna tunes this)
    strength: float = 1.0


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    name: str = ""
    # model
    arch: str = "cxr_resnet_small"
    #: none | imagenet | xrv | path to a CXR Studio model file (continue fine-tuning)
    weights: str = "none"
    image_size: int = 0  # 0: the architecture's default
    channels: int = 0  # 0: the architecture's default (1 or 3)
    #: auto (the architecture's default) | imagenet | unit | xrv | {"mean": [...], "std": [...]}
    normalisation: Any = "auto"
    resize: str = "squash"  # squash | letterbox | center_crop
    voi: str = "default"  # default | auto | none
    freeze_backbone_epochs: int = 0
    head_only: bool = False
    precise_bn_batches: int = 50  # recompute BatchNorm statistics after each epoch (0 = off)
    # optimisation
    optimizer: str = "adamw"  # adam | adamw | sgd
    amsgrad: bool = False
    momentum: float = 0.9
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    epochs: int = 10
    scheduler: str = "cosine"  # cosine | step | plateau | none
    warmup_epochs: float = 0.0
    step_size: int = 5
    gamma: float = 0.1
    plateau_patience: int = 2
    early_stopping: bool = True
    monitor: str = "auto"  # auto | val_loss | val_accuracy | val_auroc | val_f1
    patience: int = 5
    label_smoothing: float = 0.0
    imbalance: str = "none"  # none | class_weights | sampler | pos_weight
    grad_clip: float = 0.0
    # execution
    amp: bool = True  # mixed precision, on CUDA only
    device: str = "auto"
    seed: int = 0
    workers: int = 0
    deterministic: bool = True
    checkpoint_every_batches: int = 0
    bootstrap: int = 200
    install: bool = False  # copy the final model into the user's model library
    # auto-tune
    tune_trials: int = 0
    tune_epochs: int = 0  # 0: same as epochs

    # ------------------------------------------------------------------ validation

    def validate(self) -> TrainConfig:
        def bad(msg: str) -> ConfigError:
            return ConfigError(f"Invalid training setting: {msg}.")

        if not self.data.path:
            raise bad("no data source (a folder or a CSV file) was given")
        r = self.split.ratios
        if len(r) != 3 or any(x < 0 for x in r) or r[0] <= 0 or sum(r) <= 0:
            raise bad(f"split ratios must be three non-negative numbers with train > 0, not {r}")
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch size must be at least 1"),
            (self.lr > 0, "the learning rate must be positive"),
            (self.weight_decay >= 0, "weight decay must not be negative"),
            (self.optimizer in ("adam", "adamw", "sgd"), f"unknown optimiser '{self.optimizer}'"),
            (self.scheduler in ("cosine", "step", "plateau", "none"), f"unknown scheduler '{self.scheduler}'"),
            (self.imbalance in ("none", "class_weights", "sampler", "pos_weight"),
             f"unknown imbalance handling '{self.imbalance}'"),
            (self.monitor in ("auto", "val_loss", "val_accuracy", "val_auroc", "val_f1"),
             f"unknown monitored metric '{self.monitor}'"),
            (self.resize in ("squash", "letterbox", "center_crop"), f"unknown resize mode '{self.resize}'"),
            (self.voi in ("default", "auto", "none"), f"unknown windowing '{self.voi}'"),
            (self.channels in (0, 1, 3), "channels must be 1 or 3"),
            (self.image_size == 0 or 16 <= self.image_size <= 2048, "image size must be between 16 and 2048"),
            (0.0 <= self.label_smoothing < 1.0, "label smoothing must be in [0, 1)"),
            (self.workers >= 0, "workers must not be negative"),
            (self.data.chexpert_uncertain in ("ignore", "zeros", "ones"),
             "the CheXpert uncertainty policy must be ignore, zeros or ones"),
            (self.data.siim_task in ("binary", "4class"), "the SIIM task must be binary or 4class"),
        ]  # fmt: skip
        for ok, msg in checks:
            if not ok:
                raise bad(msg)
        return self

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError("A training configuration must be a JSON object.")
        sections = {"data": DataConfig, "split": SplitConfig, "augment": AugmentConfig}
        kwargs: dict[str, Any] = {}
        known = {f.name for f in fields(cls)}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(f"Unknown training setting '{key}'.")
            if key in sections:
                kwargs[key] = _section(sections[key], value, key)
            else:
                kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"The training configuration is not valid JSON ({exc}).") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainConfig:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"Cannot read the training configuration {path}: {exc.strerror or exc}."
            ) from None
        return cls.from_json(text)

    def save(self, path: str | os.PathLike[str]) -> None:
        from ml.fileio import write_text_atomic

        write_text_atomic(path, self.to_json() + "\n")


def _section(kind: type, value: Any, name: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"The training setting '{name}' must be a JSON object.")
    known = {f.name for f in fields(kind)}
    unknown = [k for k in value if k not in known]
    if unknown:
        raise ConfigError(f"Unknown training setting '{name}.{unknown[0]}'.")
    return kind(**value)


def parse_ratios(text: str) -> list[float]:
    """ "70,15,15" or "0.7,0.15,0.15" -> fractions summing to 1."""
    try:
        parts = [float(x) for x in text.replace("/", ",").split(",")]
    except ValueError:
        raise ConfigError(f"The split '{text}' must be three numbers like 70,15,15.") from None
    if len(parts) != 3 or any(p < 0 for p in parts) or sum(parts) <= 0 or parts[0] <= 0:
        raise ConfigError(f"The split '{text}' must be three non-negative numbers like 70,15,15.")
    total = sum(parts)
    return [p / total for p in parts]
