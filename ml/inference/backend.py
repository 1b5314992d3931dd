"""The fast forward back-end: ONNX Runtime for forward-only work (prediction, batch CSV, occlusion).

``auto`` (the default of :func:`ml.inference.predictor.load_predictor` and ``cxr predict``) exports
the model to ONNX once (the legacy TorchScript exporter, opset 17, a dynamic batch axis), caches
the ``.onnx`` next to the model file (``<model file>.<key>.onnx``; the key changes with the model
file, torch, ONNX Runtime and the exported outputs; written atomically; the user cache folder
when the model's folder cannot be written), and **verifies** it before use: on a seeded random
probe batch, the logits and the head's input features must equal torch's within 1e-4 (relative to
the largest logit when that exceeds 1). Any failure (ONNX Runtime not installed, export error,
mismatch) keeps torch, with the reason logged and kept in :attr:`Choice.reason`. ``torch`` never
tries ONNX; ``onnx`` insists (an error instead of a fall-back).

Execution providers: CUDA for a CUDA device when ONNX Runtime has it, DirectML / CoreML where
present for ``auto``, else the CPU. Grad-CAM and the other gradient methods keep torch.

The session also returns the classification layer's input (the penultimate features), so the
out-of-scope guard's feature tap (:mod:`ml.inference.scope`) sees the same features as with torch:
:meth:`OnnxForward.run` calls the head's forward pre-hooks with them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.errors import CxrError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
TOLERANCE = 1e-4
OPSET = 17
_PROVIDERS = {"cuda": ["CUDAExecutionProvider"], "mps": ["CoreMLExecutionProvider"], "cpu": []}
_AUTO_EXTRA = ["DmlExecutionProvider", "CoreMLExecutionProvider"]


class BackendError(CxrError):
    """The ONNX back-end was asked for explicitly and cannot be used."""


def onnxruntime_available() -> bool:
    return (
        importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
    )


def providers_for(device: torch.device, available: list[str] | None = None) -> list[str]:
    """ONNX Runtime execution providers for ``device``, best first, CPU last."""
    if available is None:
        import onnxruntime as ort

        available = list(ort.get_available_providers())
    wanted = list(_PROVIDERS.get(device.type, []))
    if device.type == "cpu":
        wanted = []
    elif device.type != "cuda":
        wanted += _AUTO_EXTRA
    return [p for p in dict.fromkeys(wanted) if p in available] + ["CPUExecutionProvider"]


class _WithFeatures(nn.Module):
    """``model(x)`` -> (logits, the head's flattened input) for the export."""

    def __init__(self, model: nn.Module, head: nn.Module | None) -> None:
        super().__init__()
        self.model, self.head = model, head

    def forward(self, x: torch.Tensor) -> Any:
        if self.head is None:
            return self.model(x)
        seen: list[torch.Tensor] = []
        handle = self.head.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        try:
            logits = self.model(x)
        finally:
            handle.remove()
        return logits, seen[-1].reshape(seen[-1].shape[0], -1)


def export_onnx(model: nn.Module, head: nn.Module | None, channels: int, size: int) -> bytes:
    """The ONNX bytes of ``model`` (eval mode, fp32, CPU), dynamic batch axis."""
    wrapper = _WithFeatures(model, head).eval()
    names = ["logits", "features"] if head is not None else ["logits"]
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (torch.zeros(1, channels, size, size),), buf, dynamo=False, opset_version=OPSET,
            input_names=["input"], output_names=names,
            dynamic_axes={"input": {0: "batch"}, **{n: {0: "batch"} for n in names}},
        )  # fmt: skip
    return buf.getvalue()


def cache_path(model_path: str | os.PathLike[str], features: bool) -> Path:
    """Where the exported model of ``model_path`` is cached (next to it)."""
    import onnxruntime as ort

    path = Path(model_path)
    st = path.stat()
    key = f"{st.st_size}:{st.st_mtime_ns}:{torch.__version__}:{ort.__version__}:{OPSET}:{features}"
    return path.with_name(f"{path.name}.{hashlib.sha256(key.encode()).hexdigest()[:12]}.onnx")


def _write_cache(dest: Path, data: bytes) -> Path | None:
    from ml.fileio import atomic_path
    from ml.paths import user_cache_dir

    for target in (dest, user_cache_dir() / "onnx" / dest.name):
        try:
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)
        except (CxrError, OSError) as exc:
            log.info("Cannot cache the ONNX model at %s: %s", target, exc)
            continue
        for old in target.parent.glob(dest.name.rsplit(".", 2)[0] + ".*.onnx"):
            if old != target:
                old.unlink(missing_ok=True)  # an export of an older model file or version
        return target
    return None


def _cached(dest: Path) -> bytes | None:
    from ml.paths import user_cache_dir

    for target in (dest, user_cache_dir() / "onnx" / dest.name):
        if target.is_file():
            return target.read_bytes()
    return None


class OnnxForward:
    """A verified ONNX Runtime session: ``run(x)`` -> logits (N, K) float32, features fed to hooks."""

    def __init__(self, session: Any, head: nn.Module | None, cache: Path | None) -> None:
        self.session, self.head, self.cache = session, head, cache
        self.providers = list(session.get_providers())
        self.max_difference = 0.0

    @property
    def label(self) -> str:
        main = self.providers[0].removesuffix("ExecutionProvider")
        return "ONNX Runtime" + ("" if main == "CPU" else f" ({main})")

    def raw(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {"input": np.ascontiguousarray(x, dtype=np.float32)})

    def run(self, x: np.ndarray) -> np.ndarray:
        out = self.raw(x)
        if self.head is not None and len(out) > 1 and self.head._forward_pre_hooks:
            features = torch.from_numpy(out[1])
            for hook in list(self.head._forward_pre_hooks.values()):
                hook(self.head, (features,))  # the scope guard's feature tap sees ORT's features
        return out[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits as a torch tensor (for the occlusion explainer's forward passes)."""
        return torch.from_numpy(self.run(x.detach().float().cpu().numpy())).to(x.device)


def verify(fast: OnnxForward, model: nn.Module, head: nn.Module | None, channels: int, size: int) -> float:
    """The largest scaled difference between ORT and torch on a seeded probe (raises above TOLERANCE)."""
    probe = torch.from_numpy(
        np.random.default_rng(1234).standard_normal((2, channels, size, size), np.float32)
    )
    with torch.inference_mode():
        reference = _WithFeatures(model, head).eval()(probe)
    reference = reference if isinstance(reference, tuple) else (reference,)
    got = fast.raw(probe.numpy())
    worst = 0.0
    for ref, out in zip(reference, got, strict=False):
        ref_np = ref.float().cpu().numpy()
        if ref_np.shape != out.shape or not np.isfinite(out).all():
            raise BackendError(f"ONNX Runtime's output has shape {out.shape}, torch's {ref_np.shape}.")
        scale = max(1.0, float(np.abs(ref_np).max()))
        worst = max(worst, float(np.abs(out - ref_np).max()) / scale)
    if worst > TOLERANCE:
        raise BackendError(f"ONNX Runtime differs from torch by {worst:.2e} (> {TOLERANCE:g}) on the probe.")
    return worst


@dataclass
class Choice:
    """The back-end in use: ``fast`` is None for torch; ``reason`` says why torch when ONNX failed."""

    fast: OnnxForward | None
    reason: str = ""

    @property
    def name(self) -> str:
        return "onnx" if self.fast is not None else "torch"

    @property
    def label(self) -> str:
        return self.fast.label if self.fast is not None else "PyTorch"


def choose(
    model: nn.Module,
    manifest: Any,
    device: torch.device,
    backend: str = "auto",
    model_path: str | os.PathLike[str] | None = None,
    head: nn.Module | None = None,
) -> Choice:
    """The forward back-end for ``model`` (see the module docstring for the rules)."""
    if backend not in BACKENDS:
        raise CxrError(f"Unknown back-end '{backend}'; choose one of: {', '.join(BACKENDS)}.")
    if backend == "torch":
        return Choice(None, "PyTorch was chosen")
    try:
        return Choice(_onnx(model, manifest, device, model_path, head))
    except Exception as exc:  # noqa: BLE001 - any failure of the optional back-end keeps torch
        reason = str(exc) if isinstance(exc, CxrError) else f"{type(exc).__name__}: {exc}"
        if backend == "onnx":
            raise BackendError(f"The ONNX Runtime back-end cannot be used: {reason}") from None
        log.info("Using PyTorch for '%s': %s", getattr(manifest, "name", "model"), reason)
        return Choice(None, reason)


def _onnx(
    model: nn.Module, manifest: Any, device: torch.device, model_path: Any, head: nn.Module | None
) -> OnnxForward:
    if not onnxruntime_available():
        raise BackendError("ONNX Runtime is not installed (pip install onnxruntime onnx)")
    import onnxruntime as ort

    channels, size = int(manifest.channels), int(manifest.input_size)
    dest = cache_path(model_path, head is not None) if model_path is not None else None
    data = _cached(dest) if dest is not None else None
    param = next(model.parameters(), None)
    original = param.device if param is not None else torch.device("cpu")
    cpu_model = model.to("cpu")
    try:
        fresh = data is None
        if fresh:
            data = export_onnx(cpu_model, head, channels, size)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        session = ort.InferenceSession(data, options, providers=providers_for(device))
        fast = OnnxForward(session, head, None)
        fast.max_difference = verify(fast, cpu_model, head, channels, size)
    finally:
        model.to(original)
    if fresh and dest is not None and data is not None:
        fast.cache = _write_cache(dest, data)
    elif dest is not None:
        fast.cache = dest
    return fast


__all__ = ["BACKENDS", "TOLERANCE", "BackendError", "Choice", "OnnxForward", "choose", "export_onnx",
           "onnxruntime_available", "providers_for", "verify"]  # fmt: skip
