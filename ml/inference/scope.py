"""Is this image what the model was made for? The out-of-scope guard, checked before results are shown.

Two checks, both plain rules a user can read in ``scope_note``:

1. **Header** (DICOM only): Modality CR/DX/DR (anything else, or none, is out of scope), Body Part
   Examined CHEST when present, View Position not lateral, grey (MONOCHROME1/2) pixels, one frame.
   An AP/PA view other than the one(s) the model's manifest names (``scope["views"]``) is a note,
   not a refusal.
2. **Content**: with feature statistics in the manifest (``manifest.scope``, written by
   :func:`fit_feature_statistics`, e.g. by ``cxr calibrate``), the Mahalanobis distance of the
   model's penultimate features (the input of its classification layer) to the training
   features, in a PCA basis (probabilistic-PCA form: top ``k`` components + an isotropic residual),
   against a threshold set on data (a percentile of held-out in-distribution distances). Without
   statistics a simple image-statistics check (colour, size, aspect ratio, a blank image) and the
   note says so.

Out-of-scope results keep their probabilities (for "show anyway", research use); the GUI, the
report and ``cxr predict`` hide or flag them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

EXPECTED_MODALITIES = ("CR", "DX", "DR")
LATERAL_VIEWS = ("LL", "RL", "LAT", "LATERAL", "LLD", "RLD", "XTABLE")
FALLBACK_NOTE = "no feature statistics in this model: header and image-statistics checks only"
SCOPE_METHOD = "mahalanobis_pca"
BANNER = "This does not look like a frontal chest radiograph: results hidden"


@dataclass(frozen=True)
class ScopeVerdict:
    in_scope: bool
    note: str = ""  # why out of scope, or a remark ("AP view; the model was trained on PA")
    score: float | None = None  # the content check's distance (None without statistics)


# ---------------------------------------------------------------------------- header checks


def header_reasons(image: Any, expected_views: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """(reasons the image is out of scope, notes) from the DICOM header; PNG/JPEG have none."""
    meta = image.meta
    reasons: list[str] = []
    notes: list[str] = []
    if meta.kind == "dicom":
        modality = (meta.modality or "").upper()
        if not modality:
            reasons.append("the DICOM file names no modality (CR/DX/DR expected)")
        elif modality not in EXPECTED_MODALITIES:
            reasons.append(f"modality {modality}, not a radiograph (CR/DX/DR expected)")
        body = str(getattr(image.dataset, "BodyPartExamined", "") or "").strip().upper()
        if body and body != "CHEST":
            reasons.append(f"body part {body} (CHEST expected)")
        view = (meta.view_position or "").strip().upper()
        if view in LATERAL_VIEWS:
            reasons.append(f"lateral view ({view}); the model reads frontal views")
        elif view and expected_views and view not in expected_views:
            notes.append(f"{view} view; the model was trained on {'/'.join(expected_views)}")
        if meta.n_frames > 1:
            reasons.append(f"{meta.n_frames} frames (a radiograph has one)")
    if image.is_color or str(meta.photometric).upper().startswith(("RGB", "YBR", "PALETTE")):
        if _colourful(image):
            reasons.append(f"colour image ({meta.photometric}); radiographs are grey")
    return reasons, notes


def _colourful(image: Any) -> bool:
    frame = np.asarray(image.frames[0])
    if frame.ndim != 3 or frame.shape[-1] < 3:
        return bool(image.is_color)
    f = frame[..., :3].astype(np.float32)
    spread = np.abs(f[..., 0] - f[..., 1]).mean() + np.abs(f[..., 1] - f[..., 2]).mean()
    return bool(spread > 0.01 * max(float(f.max()), 1.0))


def statistics_reasons(image: Any, frame: int = 0) -> list[str]:
    """The fallback content check: shapes and grey levels no chest radiograph has."""
    rows, cols = int(image.meta.rows or image.frames.shape[1]), int(image.meta.columns or image.frames.shape[2])
    reasons = []
    if min(rows, cols) < 128:
        reasons.append(f"image only {cols} x {rows} pixels (a radiograph is larger)")
    if rows and cols and max(rows, cols) / max(min(rows, cols), 1) > 2.0:
        reasons.append(f"aspect ratio {max(rows, cols) / min(rows, cols):.1f}:1 (a chest radiograph is near square)")
    f = np.asarray(image.frames[min(frame, image.n_frames - 1)], dtype=np.float32)
    if f.size and float(f.max() - f.min()) == 0.0:
        reasons.append("a blank image (one grey level)")
    return reasons


# ---------------------------------------------------------------------------- feature statistics


def head_module(model: Any, manifest: Any) -> Any:
    """The classification layer whose input is the penultimate feature vector."""
    from torch import nn

    try:
        from ml.models.registry import get_spec

        name = get_spec(manifest.architecture).head_linear
        module = model.get_submodule(name)
        if isinstance(module, nn.Linear):
            return module
    except Exception:  # noqa: BLE001 - unknown architecture: the last Linear layer
        pass
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


class FeatureTap:
    """Records the penultimate features of the forward passes made while :attr:`recording`."""

    def __init__(self, model: Any, manifest: Any) -> None:
        self.recording = False
        self.batches: list[np.ndarray] = []
        head = head_module(model, manifest)
        self._handle = head.register_forward_pre_hook(self._hook) if head is not None else None

    def _hook(self, _module: Any, args: tuple[Any, ...]) -> None:
        if self.recording and args:
            x = args[0].detach().float()
            self.batches.append(x.reshape(x.shape[0], -1).cpu().numpy())

    def start(self) -> None:
        self.batches, self.recording = [], True

    def stop(self) -> np.ndarray | None:
        self.recording = False
        out = np.concatenate(self.batches) if self.batches else None
        self.batches = []
        return out

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def _pack(a: np.ndarray) -> list[Any]:
    return np.round(np.asarray(a, dtype=np.float64), 6).tolist()


def fit_feature_statistics(features: np.ndarray, k: int = 16) -> dict[str, Any]:
    """PCA-Mahalanobis statistics of in-distribution ``features`` [N, D] (JSON-ready)."""
    x = np.asarray(features, dtype=np.float64)
    n, d = x.shape
    if n < 8:
        raise ValueError("at least 8 images are needed to fit feature statistics")
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = s**2 / max(n - 1, 1)
    k = int(min(k, len(var) - 1, n - 2))
    residual = float(var[k:].sum() / max(d - k, 1)) if d > k else 1e-6
    return {"method": SCOPE_METHOD, "mean": _pack(mean), "components": _pack(vt[:k]),
            "variances": _pack(np.maximum(var[:k], 1e-12)), "residual_variance": max(residual, 1e-12),
            "n_fit": n, "dim": d}  # fmt: skip


def distances(features: np.ndarray, stats: dict[str, Any]) -> np.ndarray:
    """The Mahalanobis distance (sqrt, per feature dimension) of each row of ``features``."""
    x = np.asarray(features, dtype=np.float64) - np.asarray(stats["mean"], dtype=np.float64)
    comps = np.asarray(stats["components"], dtype=np.float64)
    proj = x @ comps.T
    resid = (x**2).sum(1) - (proj**2).sum(1)
    m2 = (proj**2 / np.asarray(stats["variances"], dtype=np.float64)).sum(1)
    m2 += np.maximum(resid, 0.0) / float(stats["residual_variance"])
    dim = int(stats["dim"]) if "dim" in stats else int(x.shape[1])
    return np.sqrt(m2 / max(dim, 1))


def set_threshold(stats: dict[str, Any], held_out: np.ndarray, percentile: float = 99.0) -> dict[str, Any]:
    """Threshold = ``percentile`` of the held-out in-distribution distances (kept with the figures)."""
    d = distances(held_out, stats)
    out = dict(stats)
    out.update(threshold=float(np.percentile(d, percentile)), percentile=percentile, n_threshold=len(d))
    return out


def features_of(predictor: Any, items: Sequence[tuple[Any, int]], batch_size: int = 32) -> np.ndarray:
    """The penultimate features [N, D] of ``(image, frame)`` items through ``predictor``'s model."""
    tap = FeatureTap(predictor.model, predictor.manifest)
    try:
        out = []
        for start in range(0, len(items), batch_size):
            tap.start()
            predictor.predict(list(items[start : start + batch_size]))
            got = tap.stop()
            if got is not None:
                out.append(got)
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
    finally:
        tap.close()


# ---------------------------------------------------------------------------- the guard


class ScopeGuard:
    """Header + content checks for a :class:`ml.inference.predictor.Predictor`'s model."""

    def __init__(self, manifest: Any, model: Any = None) -> None:
        stats = getattr(manifest, "scope", None)
        self.stats = stats if isinstance(stats, dict) and "threshold" in stats else None
        self.views = tuple(str(v).upper() for v in (stats or {}).get("views", ()) or ())
        self.tap = FeatureTap(model, manifest) if model is not None and self.stats is not None else None

    @property
    def uses_features(self) -> bool:
        return self.tap is not None

    def start(self) -> None:
        if self.tap is not None:
            self.tap.start()

    def assess(self, items: Sequence[tuple[Any, int]]) -> list[ScopeVerdict]:
        """One verdict per ``(image, frame)`` of the forward pass since :meth:`start`."""
        features = self.tap.stop() if self.tap is not None else None
        scores: list[float | None] = [None] * len(items)
        if features is not None and self.stats is not None and len(features) == len(items):
            scores = [float(v) for v in distances(features, self.stats)]
        return [self._verdict(image, frame, score) for (image, frame), score in zip(items, scores, strict=True)]

    def _verdict(self, image: Any, frame: int, score: float | None) -> ScopeVerdict:
        reasons, notes = header_reasons(image, self.views)
        if score is not None and self.stats is not None:
            limit = float(self.stats["threshold"])
            if not math.isfinite(score) or score > limit:
                reasons.append(f"the image is unlike the model's training radiographs (distance {score:.2f} "
                               f"> {limit:.2f}, the {self.stats.get('percentile', 99):g}th percentile)")  # fmt: skip
        else:
            reasons += statistics_reasons(image, frame)
            notes.append(FALLBACK_NOTE)
        if reasons:
            return ScopeVerdict(False, "; ".join(reasons), score)
        return ScopeVerdict(True, "; ".join(notes), score)

    def close(self) -> None:
        if self.tap is not None:
            self.tap.close()


__all__ = [
    "BANNER",
    "EXPECTED_MODALITIES",
    "FALLBACK_NOTE",
    "FeatureTap",
    "ScopeGuard",
    "ScopeVerdict",
    "distances",
    "features_of",
    "fit_feature_statistics",
    "head_module",
    "header_reasons",
    "set_threshold",
    "statistics_reasons",
]
