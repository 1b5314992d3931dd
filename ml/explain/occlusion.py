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
The log-probability is computed in float64 as ``-log1p(sum_j exp(z_j - z_k))`` (:func:`log_probs`):
float32 ``log_softmax`` rounds it to exactly 0 once the target leads by more than about 17 logits,
which a confident model does on most images, and every occluded copy then "changes nothing" (a
flat map). The unoccluded output, which Captum evaluates once per call, is computed once and reused.

Defaults: 32 px window, 16 px stride at a 224 px input (scaled with the input size), 16
perturbations per forward pass. What fills the patch (``baseline``) changes the map more than
anything else, and which fill works depends on the model, so it is chosen per architecture on the
phantom benchmark like a CAM layer (the registry's ``explain_fill``, taken by
:func:`ml.explain.make_explainer` when no baseline is given; README "Heatmaps"):

* ``"black"`` (the default where the registry names none): the value a black pixel has after the
  model's normalisation. In our derived images black means "no attenuation" (MONOCHROME1 is
  inverted first), so the patch removes whatever opacity was there — the question a reader asks
  ("what made the model say this?"). On the compact CNN trained on phantoms it finds the lesion on
  12 of 12 held-out images, where a mean-grey patch finds it on none (a grey square in a dark lung
  is itself a lesion to that model). But a black square on the bright mediastinum or spine is a
  strong, unnatural signal of its own, which misleads other networks.
* ``"mean"``: the image's mean; ``"blur"``: a Gaussian-blurred copy of the image (sigma half the
  window), which removes small structure and keeps the local brightness; a number: a constant in
  normalised space (Captum's own default, 0, is a mid-grey).

``mode="coarse-to-fine"`` (issue 13) runs a coarse grid first (window and stride ``coarse_factor``
times larger: 64/32 at 224 px, 36 passes instead of 169), emits it as the first partial map, then
runs the fine grid only where it matters: the fine ``stride x stride`` cells whose coarse value is
in the top ``refine_fraction`` (25%) are selected, and every fine window that overlaps a selected
cell is run (:func:`refine_windows`), so every pixel those windows cover completely (the selected
cells and usually some neighbours: ``refined``) has exactly the full grid's value. Elsewhere the
coarse map stays, mapped onto the fine map's scale by a least-squares line fitted on the refined
pixels. ``build_scripts/bench_occlusion.py`` measures it against the full grid (time, time to the
first partial map, forward passes, Pearson/Spearman correlation of the final maps).
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
from ml.explain.perturb import BASELINES, default_window, log_probs, patch_fill
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
        mode: str = "full",
        coarse_factor: int = 2,
        refine_fraction: float = 0.25,
    ) -> None:
        super().__init__(model, manifest, device)
        size = int(manifest.input_size)
        self.window = int(window or default_window(size))
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
        if not (isinstance(baseline, (int, float)) or baseline in BASELINES):
            raise CxrError(f"Unknown occlusion baseline '{baseline}': use {', '.join(BASELINES)} or a number.")
        self.baseline = baseline
        self.rows_per_chunk = rows_per_chunk
        #: a faster forward for the occluded batches (the verified ONNX Runtime session of
        #: ml.inference.backend, ``Predictor.fast_forward``); None: the torch model
        self.forward = forward
        if mode not in MODES:
            raise CxrError(f"Unknown occlusion mode '{mode}': use {' or '.join(MODES)}.")
        if int(coarse_factor) < 2 or not 0.0 < float(refine_fraction) <= 1.0:
            raise CxrError("Coarse-to-fine occlusion needs a coarse factor >= 2 and a fraction in (0, 1].")
        self.mode, self.coarse_factor, self.refine_fraction = mode, int(coarse_factor), float(refine_fraction)
        #: after a run: occluded images evaluated, and (coarse-to-fine) the pixels with full-grid values
        self.passes = 0
        self.refined: np.ndarray | None = None
        self.last_raw: np.ndarray | None = None

    def _baseline_values(self, x: torch.Tensor) -> torch.Tensor:
        """What goes under the patch, per pixel (1, C, H, W), in the model's normalised input space."""
        return patch_fill(x, self.manifest, self.baseline, self.window).expand_as(x).contiguous()

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
        self._require_open()
        if self.mode == "coarse-to-fine":
            raw, self.refined, self.passes = coarse_to_fine(self, x, target, emit, progress, cancel)
            self.last_raw = raw
            return raw
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
        score = self.score_fn()
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
                baselines=fill[:, :, r0:r1, :].contiguous(), perturbations_per_eval=self.perturbations_per_eval,
            )  # fmt: skip
            strip_cov = np.outer(coverage(r1 - r0, win, st), col_cov)
            mean = np.nan_to_num(attr[0].float().mean(0).cpu().numpy().astype(np.float64))
            sums[r0:r1] += mean * strip_cov
            counts[r0:r1] += strip_cov
            done += (i1 - i0) * n_cols
            report(progress, done, total, f"Occlusion: {done} of {total} positions")
            if emit is not None and done < total:
                emit(self._ratio(sums, counts), done / total)
        self.passes, self.refined = total, None
        self.last_raw = self._ratio(sums, counts)
        return self.last_raw

    def score_fn(self, multiclass: bool | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """The score whose drop is measured, on a batch (see the module docstring)."""
        model = self._require_open()
        if multiclass is None:
            multiclass = getattr(self.manifest, "task", "multiclass") == "multiclass"

        def score(batch: torch.Tensor) -> torch.Tensor:
            out = self.forward(batch) if self.forward is not None else model(batch)
            return log_probs(out) if multiclass else out.double()

        return score

    @staticmethod
    def _ratio(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
        out = np.zeros_like(sums, dtype=np.float32)
        np.divide(sums, counts, out=out, where=counts > 0, casting="unsafe")
        return out


# ---------------------------------------------------------------------------- coarse-to-fine


def grid(length: int, window: int, stride: int) -> list[int]:
    """Window starts along one axis (Captum's grid: ``i * stride``)."""
    return [i * stride for i in range(positions(length, window, stride))]


def refine_windows(cells: np.ndarray, stride: int, window: int, shape: tuple[int, int]) -> list[tuple[int, int]]:
    """Fine window origins (row, col) that overlap a selected ``stride x stride`` cell (``cells``:
    bool, one per cell), row-major: the windows a full-grid value of those cells needs."""
    height, width = shape
    out = []
    for r in grid(height, window, stride):
        a0, a1 = r // stride, -(-min(height, r + window) // stride)
        for c in grid(width, window, stride):
            b0, b1 = c // stride, -(-min(width, c + window) // stride)
            if cells[a0:a1, b0:b1].any():
                out.append((r, c))
    return out


def top_cells(values: np.ndarray, stride: int, fraction: float) -> np.ndarray:
    """The ``stride x stride`` cells whose mean of ``values`` is in the top ``fraction`` (bool grid)."""
    height, width = values.shape
    rows, cols = -(-height // stride), -(-width // stride)
    padded = np.full((rows * stride, cols * stride), np.nan, np.float64)
    padded[:height, :width] = values
    means = np.nanmean(padded.reshape(rows, stride, cols, stride), axis=(1, 3))
    keep = max(1, int(math.ceil(fraction * means.size)))
    order = np.argsort(-means, axis=None, kind="stable")[:keep]
    cells = np.zeros(means.size, bool)
    cells[order] = True
    return cells.reshape(rows, cols)


def run_windows(
    x: torch.Tensor, score: Callable[[torch.Tensor], torch.Tensor], base: torch.Tensor, fill: torch.Tensor,
    target: int, window: int, origins: list[tuple[int, int]], batch: int,
    after: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Occlude ``window x window`` at each origin (``batch`` images per forward pass): per-pixel
    sums of the target's score drop and window counts, as Captum accumulates them."""
    height, width = x.shape[2:]
    sums = np.zeros((height, width), np.float64)
    counts = np.zeros((height, width), np.float64)
    for k in range(0, len(origins), batch):
        part = origins[k : k + batch]
        occluded = x.expand(len(part), -1, -1, -1).clone()
        for n, (r, c) in enumerate(part):
            occluded[n, :, r : r + window, c : c + window] = fill[0, :, r : r + window, c : c + window]
        if x.device.type == "cpu":
            occluded = occluded.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            drops = (base - score(occluded)[:, target]).double().cpu().numpy()
        for (r, c), d in zip(part, drops, strict=True):
            sums[r : r + window, c : c + window] += d
            counts[r : r + window, c : c + window] += 1
        if after is not None:
            after(k + len(part), sums, counts)
    return sums, counts


def blend(fine: np.ndarray, refined: np.ndarray, coarse: np.ndarray, area_ratio: float) -> np.ndarray:
    """Fine values where refined; elsewhere the coarse map on the fine map's scale (a least-squares
    line fitted on the refined pixels; the windows' area ratio while too few are refined)."""
    scale, offset = area_ratio, 0.0
    if refined.sum() >= 16 and float(coarse[refined].std()) > 1e-12:
        scale, offset = np.polyfit(coarse[refined].astype(np.float64), fine[refined].astype(np.float64), 1)
        if scale <= 0:
            scale, offset = area_ratio, 0.0
    return np.where(refined, fine, scale * coarse + offset).astype(np.float32)


def coarse_to_fine(
    occ: OcclusionExplainer, x: torch.Tensor, target: int, emit: Callable[[np.ndarray, float], None] | None,
    progress: ProgressCallback | None, cancel: CancelToken | None,
) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """The coarse-to-fine map, the refined-pixel mask and the number of occluded passes."""
    height, width = x.shape[2:]
    win, st, batch = occ.window, occ.stride, occ.perturbations_per_eval
    cwin, cst = min(win * occ.coarse_factor, height, width), st * occ.coarse_factor
    score, fill = occ.score_fn(), occ._baseline_values(x)
    with torch.no_grad():
        base = score(x)[0, target]
    coarse_origins = [(r, c) for r in grid(height, cwin, cst) for c in grid(width, cwin, cst)]
    n_fine = positions(height, win, st) * positions(width, win, st)
    estimate = len(coarse_origins) + int(math.ceil(n_fine * occ.refine_fraction))
    report(progress, 0, estimate, "Occlusion: coarse grid")

    def coarse_step(done: int, _s: np.ndarray, _c: np.ndarray) -> None:
        check(cancel)
        report(progress, done, estimate, f"Occlusion: coarse grid, {done} of {len(coarse_origins)} positions")

    check(cancel)
    sums, counts = run_windows(x, score, base, fill, target, cwin, coarse_origins, batch, coarse_step)
    coarse = OcclusionExplainer._ratio(sums, counts)
    fine_origins = refine_windows(top_cells(coarse, st, occ.refine_fraction), st, win, (height, width))
    total = len(coarse_origins) + len(fine_origins)
    if emit is not None:
        emit(coarse, len(coarse_origins) / total)
    expected = np.outer(coverage(height, win, st), coverage(width, win, st))
    area_ratio = (win * win) / float(cwin * cwin)

    # a partial map costs a resize to the source grid (about 0.1 s on a 2000 px radiograph): the
    # coarse one, then at most two more while refining
    marks = {len(fine_origins) // 3, 2 * len(fine_origins) // 3}
    step = {"last": 0}

    def fine_step(done: int, fsums: np.ndarray, fcounts: np.ndarray) -> None:
        check(cancel)
        passes = len(coarse_origins) + done
        report(progress, passes, total, f"Occlusion: refining, {passes} of {total} passes")
        crossed = any(step["last"] < mark <= done for mark in marks if mark > 0)
        step["last"] = done
        if emit is not None and crossed and done < len(fine_origins):
            complete = fcounts >= expected
            emit(blend(OcclusionExplainer._ratio(fsums, fcounts), complete, coarse, area_ratio), passes / total)

    fsums, fcounts = run_windows(x, score, base, fill, target, win, fine_origins, batch, fine_step)
    refined = fcounts >= expected
    return blend(OcclusionExplainer._ratio(fsums, fcounts), refined, coarse, area_ratio), refined, total


MODES = ("full", "coarse-to-fine")

__all__ = ["BASELINES", "MODES", "OcclusionExplainer", "default_window", "log_probs", "patch_fill", "chunk_rows", "coarse_to_fine", "coverage", "positions", "refine_windows"]
