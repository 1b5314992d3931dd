"""Occlusion with Captum's ``Occlusion``, in chunks, so the viewer can show the map as it grows.

Captum slides a ``window x window`` patch (all channels, set to ``baseline``) over the input with
``stride``, runs the model on ``perturbations_per_eval`` occluded copies per forward pass, and gives
each pixel the drop of the target output averaged over the windows that covered it. Captum has no
progress hook and cannot stop half-way, so we run it on horizontal *strips* of the input, one strip
per chunk:

* a strip holds ``rows_per_chunk`` rows of window positions on the same global grid (``i * stride``)
  as a single whole-image run;
* Captum's forward function sees only the strip; our wrapper pastes each occluded strip back into
  the full image before calling the model, so the model always sees the whole image with one
  window occluded, exactly as in one big run;
* Captum's per-strip average times the per-strip window counts gives the per-strip sums; sums and
  counts are accumulated over strips, and their ratio is identical to one whole-image Captum run
  (tested), while after each strip a partial map (covered rows filled in) is emitted, the progress
  callback is called and the cancel token is checked.

The score whose drop is measured is the target's log-probability for multi-class models (log-softmax:
a logit alone means little when the other classes' logits move too, and unlike the probability it
does not saturate for a confident model) and the target's logit (log-odds) for multi-label models.
The unoccluded output, which Captum evaluates once per call, is computed once and reused.
Defaults: 32 px window, 16 px stride at a 224 px input (scaled with the input size), 16
perturbations per forward pass, and a *black* patch as the occluder (``baseline="black"``: the value
a black pixel has after the model's normalisation). In our derived images black always means "no
attenuation" (MONOCHROME1 is inverted first), so the patch removes whatever opacity was there —
nodules, consolidation, effusion, devices — which is the question a reader asks ("what made the
model say this?"). Captum's own default, 0 in normalised space, is a mid-grey that itself looks
like an opacity inside a dark lung; it is available as ``baseline=0.0``, and ``"mean"`` uses the
image's mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from captum.attr import Occlusion
from torch import nn

from ml.errors import CxrError
from ml.explain.base import Explainer
from ml.inference.preprocess import normalise
from ml.progress import CancelToken, ProgressCallback, check, report


def positions(length: int, window: int, stride: int) -> int:
    """Number of window positions along one axis (Captum's rule: the last window may be cut)."""
    return int(math.ceil((length - window) / stride)) + 1


def coverage(length: int, window: int, stride: int) -> np.ndarray:
    """How many windows cover each pixel along one axis."""
    out = np.zeros(length, np.float32)
    for i in range(positions(length, window, stride)):
        out[i * stride : i * stride + window] += 1
    return out


def chunk_rows(n_rows: int, rows_per_chunk: int, tail_needs_two: bool) -> list[tuple[int, int]]:
    """Split row positions [0, n_rows) into chunks; a cut-off last row never stands alone."""
    chunks = [(i, min(i + rows_per_chunk, n_rows)) for i in range(0, n_rows, rows_per_chunk)]
    if tail_needs_two and len(chunks) > 1 and chunks[-1][1] - chunks[-1][0] == 1:
        (a, _), (_, d) = chunks[-2], chunks[-1]
        chunks[-2:] = [(a, d)]
    return chunks


class OcclusionExplainer(Explainer):
    """Captum Occlusion, batched, chunked into strips with partial maps, progress and cancel."""

    method = "occlusion"

    def __init__(
        self,
        model: nn.Module,
        manifest: Any,
        device: str | torch.device = "cpu",
        window: int | None = None,
        stride: int | None = None,
        perturbations_per_eval: int = 16,
        baseline: float | str = "black",
        rows_per_chunk: int | None = None,
        forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__(model, manifest, device)
        size = int(manifest.input_size)
        self.window = int(window or max(1, round(32 * size / 224)))
        self.stride = int(stride or max(1, round(16 * size / 224)))
        if self.window < 1 or self.stride < 1 or self.stride > self.window:
            raise CxrError(
                "Occlusion needs a window of at least 1 pixel and a stride no larger than the window."
            )
        if self.window > size:
            raise CxrError(
                f"The occlusion window ({self.window} px) is larger than the model input ({size} px)."
            )
        self.perturbations_per_eval = max(1, int(perturbations_per_eval))
        if not (isinstance(baseline, (int, float)) or baseline in ("black", "mean")):
            raise CxrError(f"Unknown occlusion baseline '{baseline}': use 'black', 'mean' or a number.")
        self.baseline = baseline
        self.rows_per_chunk = rows_per_chunk
        #: a faster forward for the occluded batches (the verified ONNX Runtime session of
        #: ml.inference.backend, ``Predictor.fast_forward``); None: the torch model
        self.forward = forward

    def _baseline_values(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel occlusion value (1, C, 1, 1) in the model's normalised input space."""
        channels = x.shape[1]
        if self.baseline == "black":
            zero = np.zeros((channels, 1, 1), np.float32)
            return torch.from_numpy(normalise(zero, self.manifest)).to(x).view(1, channels, 1, 1)
        if self.baseline == "mean":
            return x.mean(dim=(2, 3), keepdim=True)
        return torch.full((1, channels, 1, 1), float(self.baseline), dtype=x.dtype, device=x.device)

    def _setup(self) -> None:
        self._captum = True  # Occlusion objects are made per strip (they wrap a strip-specific forward)

    def _attribute(
        self,
        x: torch.Tensor,
        target: int,
        emit: Callable[[np.ndarray, float], None] | None,
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
    ) -> np.ndarray:
        model = self._require_open()
        _, channels, height, width = x.shape
        win, st = self.window, self.stride
        n_rows, n_cols = positions(height, win, st), positions(width, win, st)
        per_chunk = self.rows_per_chunk or max(1, self.perturbations_per_eval // n_cols)
        chunks = chunk_rows(n_rows, per_chunk, tail_needs_two=(height - win) % st != 0)
        col_cov = coverage(width, win, st)
        total = n_rows * n_cols
        sums = np.zeros((height, width), np.float64)
        counts = np.zeros((height, width), np.float64)
        fill = self._baseline_values(x)
        multiclass = getattr(self.manifest, "task", "multiclass") == "multiclass"

        def score(batch: torch.Tensor) -> torch.Tensor:
            out = self.forward(batch) if self.forward is not None else model(batch)
            return torch.log_softmax(out.float(), dim=1) if multiclass else out

        with torch.no_grad():
            full_out = score(x)
        done = 0
        report(progress, 0, total, "Occlusion")
        for i0, i1 in chunks:
            check(cancel)
            r0, r1 = i0 * st, min(height, (i1 - 1) * st + win)
            strip = x[:, :, r0:r1, :].clone()

            def forward(
                s: torch.Tensor, r0: int = r0, r1: int = r1, strip: torch.Tensor = strip
            ) -> torch.Tensor:
                if s.shape[0] == 1 and torch.equal(s, strip):
                    return full_out  # the unoccluded image: already computed
                batch = x.expand(s.shape[0], -1, -1, -1).clone()
                batch[:, :, r0:r1, :] = s
                if self.device.type == "cpu":
                    batch = batch.contiguous(memory_format=torch.channels_last)
                return score(batch)

            attr = Occlusion(forward).attribute(
                strip, sliding_window_shapes=(channels, win, win), strides=(channels, st, st), target=target,
                baselines=(fill * torch.ones_like(strip)).contiguous(), perturbations_per_eval=self.perturbations_per_eval,
            )  # fmt: skip
            strip_cov = np.outer(coverage(r1 - r0, win, st), col_cov)
            mean = np.nan_to_num(attr[0].float().mean(0).cpu().numpy().astype(np.float64))
            sums[r0:r1] += mean * strip_cov
            counts[r0:r1] += strip_cov
            done += (i1 - i0) * n_cols
            report(progress, done, total, f"Occlusion: {done} of {total} positions")
            if emit is not None and done < total:
                emit(self._ratio(sums, counts), done / total)
        return self._ratio(sums, counts)

    @staticmethod
    def _ratio(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
        out = np.zeros_like(sums, dtype=np.float32)
        np.divide(sums, counts, out=out, where=counts > 0, casting="unsafe")
        return out


__all__ = ["OcclusionExplainer", "chunk_rows", "coverage", "positions"]
