"""Every training setting in one typed, JSON-serialisable model (what the wizard writes, `cxr train` reads).

The schema is a pydantic model in strict mode: ``{"epochs": "10"}`` or ``{"amp": "false"}`` is a
:class:`ConfigError` with one readable line, never a ``TypeError`` and never a string taken as true.
Unknown keys are an error too (a typo in a hand-written config must not be ignored silently).
``TrainConfig.to_json()`` / ``TrainConfig.from_json()`` round-trip exactly. Nested sections:
:class:`DataConfig` (where the images are and which to keep), :class:`SplitConfig` (patient-level
split) and :class:`AugmentConfig` (train-time augmentation in the [0, 1] input space).

The choice lists below (``OPTIMIZERS``, ``SCHEDULERS``, ...) are the one source of truth for the
allowed values: the wizard builds its combo boxes from them. Architectures come from the model
registry (:func:`architecture_choices`, imported lazily because the registry imports torch).

The objects stay mutable (the wizard and the CLI fill them in field by field); :meth:`TrainConfig.validate`
checks the whole thing again, so a wrong value assigned later is caught there.
"""

from __future__ import annotations

import json
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ml.errors import CxrError
from ml.models.manifest import EQUALIZE_MODES, RESIZE_MODES, VOI_MODES, Equalize, ResizeMode, VoiMode

__all__ = [
    "CHEXPERT_POLICIES", "IMBALANCE_MODES", "MONITORS", "NORMALISATIONS", "OPTIMIZERS", "PATIENT_ID_MODES",
    "EQUALIZE_MODES", "PRESETS", "PRESET_CHOICES", "RESIZE_MODES", "SCHEDULERS", "SIIM_TASKS", "VOI_MODES", "WEIGHTS_CHOICES",
    "AugmentConfig", "ConfigError", "DataConfig", "SplitConfig", "TrainConfig", "architecture_choices",
    "parse_ratios",
]  # fmt: skip


class ConfigError(CxrError):
    """A training configuration is invalid (bad value, unknown key, unreadable file)."""


# --------------------------------------------------------------------------- choices

Preset = Literal["folder", "csv", "covid19_radiography", "pediatric_pneumonia", "nih_chestxray14", "chexpert",
                 "siim_covid19"]  # fmt: skip
PresetChoice = Literal["auto", Preset]
ChexpertPolicy = Literal["ignore", "zeros", "ones"]
SiimTask = Literal["binary", "4class"]
NormalisationKind = Literal["auto", "imagenet", "unit", "xrv"]
Optimizer = Literal["adamw", "adam", "sgd"]
Scheduler = Literal["cosine", "step", "plateau", "none"]
Monitor = Literal["auto", "val_loss", "val_accuracy", "val_auroc", "val_f1"]
Imbalance = Literal["none", "class_weights", "sampler", "pos_weight"]

#: dataset layouts ml.training.presets can read ("auto" in a config: detect one of these)
PRESETS: tuple[str, ...] = get_args(Preset)
PRESET_CHOICES: tuple[str, ...] = ("auto", *PRESETS)
CHEXPERT_POLICIES: tuple[str, ...] = get_args(ChexpertPolicy)
SIIM_TASKS: tuple[str, ...] = get_args(SiimTask)
#: "auto": the architecture's default; a config may also give {"mean": [...], "std": [...]}
NORMALISATIONS: tuple[str, ...] = get_args(NormalisationKind)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
SCHEDULERS: tuple[str, ...] = get_args(Scheduler)
MONITORS: tuple[str, ...] = get_args(Monitor)
IMBALANCE_MODES: tuple[str, ...] = get_args(Imbalance)
#: named starting weights; ``weights`` may also be a model file or an installed model's name
WEIGHTS_CHOICES: tuple[str, ...] = ("none", "imagenet", "xrv")
#: patient ID sources; "regex" (file name), "path-regex" (relative path) and "column" take an argument
PATIENT_ID_MODES: tuple[str, ...] = ("auto", "dicom", "none", "regex", "path-regex", "column")


def architecture_choices() -> list[str]:
    """Every registered architecture (imports the registry, hence torch)."""
    from ml.models.registry import architectures

    return architectures()


# --------------------------------------------------------------------------- errors as one line

_TYPE_WORDS = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "bool_parsing": "true or false", "string_type": "text", "list_type": "a list",
    "dict_type": "a JSON object", "model_type": "a JSON object", "model_attributes_type": "a JSON object",
}  # fmt: skip


def _shown(value: Any) -> str:
    text = f"'{value}'" if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_validation_error(exc: ValidationError) -> str:
    """The first problem of a pydantic error as one sentence (and how many more there are)."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    where = ".".join(str(p) for p in err["loc"])
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        text = f"Unknown training setting '{where}'."
    else:
        if kind in _TYPE_WORDS:
            what = f"must be {_TYPE_WORDS[kind]}, got {_shown(value)}"
        elif kind == "literal_error":
            what = f"must be one of {ctx.get('expected', '')}, got {_shown(value)}"
        elif kind == "greater_than_equal":
            what = f"must be at least {ctx['ge']}, got {_shown(value)}"
        elif kind == "greater_than":
            what = f"must be more than {ctx['gt']}, got {_shown(value)}"
        elif kind == "less_than_equal":
            what = f"must be at most {ctx['le']}, got {_shown(value)}"
        elif kind == "less_than":
            what = f"must be less than {ctx['lt']}, got {_shown(value)}"
        elif kind == "value_error":
            what = str(ctx.get("error", err["msg"]))
        else:
            what = f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {_shown(value)}"
        text = f"Invalid training setting: {where} {what}." if where else f"Invalid training setting: {what}."
    if len(errors) > 1:
        text += f" ({len(errors) - 1} more problem(s) in the same configuration.)"
    return text


#: set while a whole TrainConfig validates: its sections then leave the error (with its location) to it
_NESTED: ContextVar[bool] = ContextVar("_NESTED", default=False)


class _Section(BaseModel):
    """Strict, closed (no unknown keys) and readable when wrong."""

    model_config = ConfigDict(strict=True, extra="forbid", validate_default=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            if _NESTED.get():  # validated as part of a TrainConfig: it names the section
                raise
            raise ConfigError(describe_validation_error(exc)) from None

    @classmethod
    def from_dict(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ConfigError("A training configuration must be a JSON object.")
        token = _NESTED.set(True)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from None
        finally:
            _NESTED.reset(token)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="python", warnings=False)


# --------------------------------------------------------------------------- sections


class DataConfig(_Section):
    #: a folder (one sub-folder per class, or a known dataset layout) or a CSV file
    path: str = ""
    #: "auto" (detect), "folder", "csv", or a preset name (PRESETS)
    preset: PresetChoice = "auto"
    #: CSV options (auto-detected when empty)
    path_column: str = ""
    label_column: str = ""
    label_columns: list[str] = Field(default_factory=list)
    label_separator: str = "|"
    image_root: str = ""
    #: when set, only these labels (in this order); any other label in the data is an error
    labels: list[str] = Field(default_factory=list)
    #: filters
    frontal_only: bool = True
    single_image_studies: bool = False
    min_size: int = Field(0, ge=0)
    #: preset options
    chexpert_uncertain: ChexpertPolicy = "ignore"
    siim_task: SiimTask = "binary"


class SplitConfig(_Section):
    ratios: list[float] = Field(default_factory=lambda: [0.70, 0.15, 0.15])
    #: auto | dicom | none | regex:PATTERN (file name) | path-regex:PATTERN (relative path) | column:NAME
    patient_id: str = "auto"
    #: use a split the dataset defines (paediatric pneumonia folders, NIH lists) when present
    use_predefined: bool = True
    balanced: bool = False
    max_images: int = Field(0, ge=0)

    @field_validator("ratios")
    @classmethod
    def _three_ratios(cls, r: list[float]) -> list[float]:
        if len(r) != 3 or any(x < 0 for x in r) or r[0] <= 0 or sum(r) <= 0:
            raise ValueError(f"must be three non-negative numbers with train > 0, not {r}")
        return r

    @field_validator("patient_id")
    @classmethod
    def _patient_source(cls, value: str) -> str:
        mode = value.strip().split(":", 1)[0] or "auto"
        if mode not in PATIENT_ID_MODES:
            raise ValueError(f"must be auto, dicom, none, regex:PATTERN, path-regex:PATTERN or column:NAME, not '{value}'")
        return value


class AugmentConfig(_Section):
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
    strength: float = Field(1.0, ge=0)


class TrainConfig(_Section):
    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    name: str = ""
    # model
    #: a registered architecture (architecture_choices())
    arch: str = "cxr_resnet_small"
    #: none | imagenet | xrv | path to a CXR Studio model file (continue fine-tuning)
    weights: str = "none"
    image_size: int = 0  # 0: the architecture's default
    channels: Literal[0, 1, 3] = 0  # 0: the architecture's default (1 or 3)
    #: auto (the architecture's default) | imagenet | unit | xrv | {"mean": [...], "std": [...]}
    normalisation: NormalisationKind | dict[Literal["mean", "std"], list[float]] = "auto"
    resize: ResizeMode = "squash"
    voi: VoiMode = "default"
    #: "histogram": equalise each input's histogram after resizing (stored in the model, applied at
    #: inference too); "none": the windowed grey levels as they are
    equalize: Equalize = "none"
    freeze_backbone_epochs: int = Field(0, ge=0)
    head_only: bool = False
    #: recompute BatchNorm statistics after each epoch over at most this many training batches (0 = off);
    #: 20 batches (640 images at batch 32) bound its cost (bench_training: the extras were 13.7 s per
    #: 1,000-image epoch at 224 px with 50)
    precise_bn_batches: int = Field(20, ge=0)
    # optimisation
    optimizer: Optimizer = "adamw"
    amsgrad: bool = False
    momentum: float = 0.9
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(32, ge=1)
    epochs: int = Field(10, ge=1)
    scheduler: Scheduler = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    step_size: int = 5
    gamma: float = 0.1
    plateau_patience: int = Field(2, ge=0)
    early_stopping: bool = True
    monitor: Monitor = "auto"
    patience: int = Field(5, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    imbalance: Imbalance = "none"
    grad_clip: float = Field(0.0, ge=0)
    # execution
    amp: bool = True  # mixed precision, on CUDA only
    device: str = "auto"
    seed: int = 0
    workers: int = Field(0, ge=0)
    deterministic: bool = True
    checkpoint_every_batches: int = Field(0, ge=0)
    bootstrap: int = Field(200, ge=0)
    #: operating point of a two-class / multi-label model, chosen on validation: None = Youden (two
    #: classes) / F1-optimal (multi-label); a number = the highest threshold reaching this sensitivity
    target_sensitivity: float | None = Field(None, gt=0, le=1)
    install: bool = False  # copy the final model into the user's model library
    # auto-tune
    tune_trials: int = Field(0, ge=0)
    tune_epochs: int = Field(0, ge=0)  # 0: same as epochs

    @field_validator("image_size")
    @classmethod
    def _size(cls, value: int) -> int:
        if value != 0 and not 16 <= value <= 2048:
            raise ValueError(f"must be between 16 and 2048 (or 0: the architecture's default), not {value}")
        return value

    @field_validator("normalisation")
    @classmethod
    def _stats(cls, value: Any) -> Any:
        if isinstance(value, dict) and set(value) != {"mean", "std"}:
            raise ValueError('must be auto, imagenet, unit, xrv or {"mean": [...], "std": [...]}')
        return value

    def __init__(self, **data: Any) -> None:
        token = _NESTED.set(True)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from None
        finally:
            _NESTED.reset(token)

    # ------------------------------------------------------------------ validation

    def validate(self) -> TrainConfig:  # type: ignore[override]
        """Check every field again (values may have been assigned since construction) and the
        rules across fields; raises one readable :class:`ConfigError`."""
        checked = TrainConfig.from_dict(self.to_dict())
        if not checked.data.path:
            raise ConfigError("Invalid training setting: no data source (a folder or a CSV file) was given.")
        if checked.weights in (*WEIGHTS_CHOICES, ""):  # else the architecture is the model file's
            known = architecture_choices()
            if checked.arch not in known:
                raise ConfigError(
                    f"Invalid training setting: arch must be one of {', '.join(known)}, got '{checked.arch}'."
                )
        return self

    # ------------------------------------------------------------------ (de)serialisation

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"The training configuration is not valid JSON ({exc}).") from None
        return cls.from_dict(data)

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
