"""Wizard page 3's rules, Qt-free: architectures and their weights, validation, preview and export.

The choice lists come from :mod:`ml.training.config` (its ``Literal`` constants, the one source of
the allowed values); this module only gives each value its words (:data:`CHOICE_TEXT`). The
architecture registry and the model library import torch, so they are reached through the
``catalogue`` object (:class:`ModelCatalogue` in the application, a fake in tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from app.training.run_presenter import weights_phrase
from app.training.session import TrainingSession, choices
from ml.training import config as cfg

DEFAULT_ARCH = "cxr_resnet_small"

#: the words shown for each allowed value (a value without words is shown as itself)
CHOICE_TEXT: dict[str, dict[str, str]] = {
    "normalisation": {"auto": "architecture default", "imagenet": "ImageNet mean/std", "unit": "[0, 1] (none)",
                      "xrv": "TorchXRayVision"},
    "resize": {"squash": "squash to a square", "letterbox": "letterbox (keep aspect)", "center_crop": "centre crop"},
    "voi": {"default": "the file's window", "auto": "automatic window", "none": "full range"},
    "equalize": {"none": "none", "histogram": "histogram equalisation"},
    "optimizer": {"adamw": "AdamW", "adam": "Adam", "sgd": "SGD with momentum"},
    "scheduler": {"cosine": "cosine", "step": "step", "plateau": "on plateau", "none": "constant"},
    "monitor": {"auto": "automatic (validation loss)", "val_loss": "validation loss",
                "val_accuracy": "validation accuracy", "val_auroc": "validation AUROC", "val_f1": "validation F1"},
    "imbalance": {"none": "none", "class_weights": "class weights in the loss", "sampler": "weighted sampler",
                  "pos_weight": "BCE pos_weight (multi-label)"},
    "device": {"auto": "automatic (GPU when available)", "cpu": "CPU", "cuda": "CUDA GPU"},
}  # fmt: skip
DEVICES = ("auto", "cpu", "cuda")


def choice_lists() -> dict[str, list[tuple[str, str]]]:
    """Every combo box of the page, built from the config's choice constants."""
    values = {"normalisation": cfg.NORMALISATIONS, "resize": cfg.RESIZE_MODES, "voi": cfg.VOI_MODES,
              "equalize": cfg.EQUALIZE_MODES,
              "optimizer": cfg.OPTIMIZERS, "scheduler": cfg.SCHEDULERS, "monitor": cfg.MONITORS,
              "imbalance": cfg.IMBALANCE_MODES, "device": DEVICES}  # fmt: skip
    return {key: choices(v, CHOICE_TEXT.get(key, {})) for key, v in values.items()}


def gpu_suffix(n: int) -> str:
    """The spin box suffix: "1 GPU", "4 GPUs"."""
    return " GPU" if n == 1 else " GPUs"


@dataclass(frozen=True)
class ArchInfo:
    info: str  # one line under the architecture
    default_size: str  # the input size's "default" text
    weights: list[tuple[str, str]]  # (text, weights value) it can start from


class ModelCatalogue(Protocol):
    def architectures(self) -> list[str]: ...
    def describe(self, arch: str) -> tuple[str, int, int]: ...  # description, input size, channels
    def weight_choices(self, arch: str) -> list[tuple[str, str]]: ...


class ModelView(Protocol):
    def read_settings(self, config: Any) -> None: ...
    def show_architectures(self, names: list[str], current: str) -> None: ...
    def current_architecture(self) -> str: ...
    def show_architecture(self, info: ArchInfo) -> None: ...
    def show_gpu_suffix(self, suffix: str) -> None: ...
    def show_message(self, text: str, error: bool = False) -> None: ...


class RegistryCatalogue:
    """The registry and the model library (imports torch on first use)."""

    def architectures(self) -> list[str]:
        return cfg.architecture_choices()

    def describe(self, arch: str) -> tuple[str, int, int]:
        from ml.lazy import ensure_torch

        ensure_torch()  # the GUI thread: never alongside a worker's first torch import
        from ml.models.registry import get_spec

        spec = get_spec(arch)
        return spec.description, spec.default_input_size, spec.default_channels

    def weight_choices(self, arch: str) -> list[tuple[str, str]]:
        from ml.models import catalogue, library

        out = [("None: train from scratch", "none")]
        installed = {m.name: m for m in library.list_models() if m.error is None}
        for kind, value, what in (("torchvision", "imagenet", "ImageNet"), ("xrv", "xrv", "TorchXRayVision")):
            for entry in catalogue.load_catalogue():
                if entry.kind == kind and entry.architecture == arch and entry.name in installed:
                    out.append((f"{what} weights ({entry.name})", value))
                    break
        for m in installed.values():
            if m.manifest is not None and m.manifest.architecture == arch:
                out.append((f"Continue from library model: {m.name}", str(m.path)))
        return out


class ModelPresenter:
    def __init__(self, view: ModelView, session: TrainingSession, catalogue: ModelCatalogue | None = None) -> None:
        self.view = view
        self.session = session
        self.catalogue = catalogue or RegistryCatalogue()
        self.archs_loaded = False
        session.add_config_part(self.apply)

    def apply(self, config: Any) -> None:
        self.view.read_settings(config)

    def page_shown(self) -> None:
        if not self.archs_loaded:
            self.view.show_architectures(self.catalogue.architectures(),
                                         self.view.current_architecture() or DEFAULT_ARCH)  # fmt: skip
            self.archs_loaded = True
        self.architecture_changed()

    def architecture_changed(self) -> None:
        name = self.view.current_architecture()
        if not name or not self.archs_loaded:
            return
        description, size, channels = self.catalogue.describe(name)
        self.view.show_architecture(ArchInfo(
            info=f"{description} · default input {size} px, {channels} channel(s)",
            default_size=f"default ({size} px)",
            weights=self.catalogue.weight_choices(name),
        ))  # fmt: skip

    def gpus_changed(self, n: int) -> None:
        self.view.show_gpu_suffix(gpu_suffix(n))

    def summary(self) -> str:
        """What the settings train, in words ("... trained from scratch" or "... fine-tuned from ...")."""
        config = self.session.draft_config()
        return f"{config.arch} {weights_phrase(config.weights)}"

    def validate(self) -> bool:
        """Next: the settings must make a valid config (one readable line when not)."""
        try:
            self.session.build_config()
        except Exception as exc:  # noqa: BLE001 - ConfigError: a readable message on the page
            self.view.show_message(str(exc), error=True)
            return False
        self.view.show_message("")
        return True

    def preview_request(self) -> tuple[Any, str, list[str], str] | None:
        """(config, image path, labels, task) for the augmentation preview, or None (and why)."""
        data = self.session.data
        if data is None or not data.samples:
            self.view.show_message("Scan the data first: the preview shows one of your images.", error=True)
            return None
        split = self.session.split
        samples = (split.subset("train") if split is not None else None) or data.samples
        return self.session.draft_config(), samples[0].path, list(data.labels), data.task

    def export(self, folder: str | Path, nproc: int) -> tuple[Path, str, str] | None:
        """Write config.json into ``folder``: (path, torchrun command, the text to show), or None."""
        from app.training.commands import export_config

        try:
            config = self.session.build_config()
            path, command = export_config(config, folder, nproc)
        except Exception as exc:  # noqa: BLE001 - ConfigError/OSError: readable on the page
            self.view.show_message(str(exc), error=True)
            return None
        text = (f"Wrote {path}.\n\nOn the GPU server, in the folder that holds config.json (change data.path in "
                f"it if the images live elsewhere there):\n\n{command}\n")  # fmt: skip
        self.view.show_message(f"Config written to {path}.")
        return path, command, text
