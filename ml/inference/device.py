"""Which device runs the models: automatic (CUDA, then Apple MPS, then CPU) or the user's choice."""

from __future__ import annotations

import torch

from ml.errors import CxrError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(CxrError):
    """The requested device is not available on this machine."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def choose_device(pref: str | torch.device | None = "auto") -> torch.device:
    """The device to run on. ``"auto"``: CUDA, then MPS, then CPU.

    ``"cuda"`` / ``"cuda:1"`` / ``"mps"`` raise :class:`DeviceError` with a readable message when the
    machine does not have that device (never a silent fallback to the CPU for an explicit choice).
    """
    if isinstance(pref, torch.device):
        pref = str(pref)
    choice = (pref or "auto").strip().lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                "CUDA was requested but no usable NVIDIA GPU was found (or this PyTorch build has no "
                "CUDA support); choose 'auto' or 'cpu'."
            )
        device = torch.device(choice)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"GPU {device.index} was requested but this machine has {torch.cuda.device_count()} GPU(s)."
            )
        return device
    if choice == "mps":
        if not _mps_available():
            raise DeviceError(
                "Apple MPS was requested but is not available on this machine; choose 'auto' or 'cpu'."
            )
        return torch.device("mps")
    raise DeviceError(f"Unknown device '{pref}'; choose one of: {', '.join(DEVICE_CHOICES)}.")


def device_label(device: torch.device | str) -> str:
    """A short human-readable name for the status bar, e.g. "GPU: NVIDIA H100 (CUDA)" or "CPU (2 threads)"."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            name = torch.cuda.get_device_name(device)
        except (RuntimeError, AssertionError):
            name = "NVIDIA GPU"
        return f"GPU: {name} (CUDA)"
    if device.type == "mps":
        return "GPU: Apple (MPS)"
    if device.type == "cpu":
        return f"CPU ({torch.get_num_threads()} threads)"
    return device.type.upper()


__all__ = ["DEVICE_CHOICES", "DeviceError", "choose_device", "device_label"]
