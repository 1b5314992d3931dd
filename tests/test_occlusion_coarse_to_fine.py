"""Coarse-to-fine occlusion (issue 13): a coarse grid first, the fine grid only where the coarse map
is high. The rules: the refined pixels have exactly the full grid's values, the map agrees with the
full grid where the answer is known, and it costs fewer forward passes. (Timings are not tested:
build_scripts/bench_occlusion.py measures them against the full grid.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ml.errors import CancelledError, CxrError
from ml.explain import Heatmap, OcclusionExplainer, make_explainer
from ml.explain.occlusion import positions, refine_windows, top_cells
from ml.models.manifest import ModelManifest
from ml.models.registry import build_model
from ml.progress import CancelToken
from tests.helpers.phantoms import make_phantom


def manifest(**kw) -> ModelManifest:
    base = dict(
        name="test", architecture="cxr_resnet_small", labels=["normal", "lesion"], input_size=64, channels=1
    )
    base.update(kw)
    return ModelManifest(**base).validate()


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("cxr_resnet_small", 2, 1).eval()


def both(model: nn.Module, m: ModelManifest, image, target: int = 1, **kw):
    """(full map, coarse-to-fine map, refined mask, full passes, coarse-to-fine passes); ``image``:
    an XRayImage, or the model input itself."""
    with OcclusionExplainer(model, m, **kw) as occ:
        x = image if isinstance(image, torch.Tensor) else occ.input_tensor(image)[0]
        full = occ._attribute(x, target, None, None, None)
        full_passes = occ.passes
    with OcclusionExplainer(model, m, mode="coarse-to-fine", **kw) as occ:
        ours = occ._attribute(x, target, None, None, None)
        return full, ours, occ.refined, full_passes, occ.passes


@pytest.mark.parametrize("size,window,stride", [(64, 16, 8), (50, 12, 8)])
def test_refined_pixels_have_the_full_grids_values_for_fewer_passes(size: int, window: int, stride: int) -> None:
    image = make_phantom(160, 200, seed=3).image
    full, ours, refined, full_passes, passes = both(
        small_model(seed=3), manifest(input_size=size), image, window=window, stride=stride,
        perturbations_per_eval=5, baseline=0.0,
    )  # fmt: skip
    assert full_passes == positions(size, window, stride) ** 2
    assert passes < full_passes
    assert refined.mean() >= 0.25  # at least the top quarter of the cells
    assert not refined.all()  # ... and not everything (else it saved nothing)
    assert np.allclose(ours[refined], full[refined], atol=1e-5)


class TwoBumps(nn.Module):
    """A model whose evidence is known: its "lesion" logit is a weighted sum of the pixels, the
    weights two Gaussian bumps (a strong one at (40, 20), a weaker one at (16, 48)) on 64 x 64."""

    def __init__(self) -> None:
        super().__init__()
        yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
        bump = lambda r, c, s: np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * s * s))  # noqa: E731
        weights = 1.0 * bump(40, 20, 6) + 0.5 * bump(16, 48, 5)
        self.weights = nn.Parameter(torch.from_numpy(weights / weights.sum())[None, None], requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lesion = 20.0 * (x * self.weights).sum(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(lesion), lesion], dim=1)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_on_a_known_answer_the_map_correlates_with_the_full_grid_and_finds_the_bump() -> None:
    m = manifest(task="multilabel", input_size=64)
    x = torch.ones(1, 1, 64, 64)  # a uniformly bright input: a window's drop is the weights' mass in it
    full, ours, refined, full_passes, passes = both(TwoBumps(), m, x, window=8, stride=4, baseline=0.0)
    assert passes < 0.75 * full_passes
    assert pearson(ours, full) >= 0.95
    peak = np.unravel_index(np.argmax(ours), ours.shape)
    assert np.hypot(peak[0] - 40, peak[1] - 20) <= 4  # within one stride of the strong bump
    assert refined[40, 20] and np.isclose(ours[40, 20], full[40, 20], atol=1e-6)


def test_refine_windows_are_exactly_those_overlapping_a_selected_cell() -> None:
    cells = np.zeros((8, 8), bool)
    cells[3, 5] = True  # stride 8: rows 24..31, cols 40..47 on a 64 x 64 input
    origins = refine_windows(cells, stride=8, window=16, shape=(64, 64))
    assert origins == [(16, 32), (16, 40), (24, 32), (24, 40)]
    values = np.zeros((64, 64))
    values[24:32, 40:48] = 1.0
    assert top_cells(values, 8, 1 / 64).sum() == 1 and top_cells(values, 8, 1 / 64)[3, 5]


def test_coarse_map_comes_first_as_a_whole_image_partial_and_cancel_stops_it() -> None:
    image = make_phantom(120, 100, seed=4).image
    partials: list[Heatmap] = []
    with make_explainer("occlusion", small_model(), manifest(), mode="coarse-to-fine",
                        perturbations_per_eval=4) as occ:  # fmt: skip
        result = occ.explain(image, on_partial=partials.append)
        token = CancelToken()
        with pytest.raises(CancelledError):
            occ.explain(image, on_partial=lambda _h: token.cancel(), cancel=token)
    assert result.complete and result.shape == (120, 100)
    assert partials and not partials[0].complete and 0 < partials[0].fraction_done < 0.5
    assert [p.fraction_done for p in partials] == sorted(p.fraction_done for p in partials)


def test_an_unknown_mode_is_a_readable_error() -> None:
    with pytest.raises(CxrError, match="coarse-to-fine"):
        OcclusionExplainer(small_model(), manifest(), mode="fast")


def test_cxr_predict_explains_with_coarse_to_fine_occlusion(tmp_path, monkeypatch, capsys) -> None:
    from ml.cli import main as cxr
    from ml.models import bundle
    from tests.helpers.phantoms import write_phantom_folder

    monkeypatch.setenv("CXR_STUDIO_HOME", str(tmp_path / "home"))
    path = bundle.save_model(tmp_path / "small.safetensors", small_model(), manifest(input_size=48))
    write_phantom_folder(tmp_path / "images", n_per_class=1, fmt="png")
    heat = {mode: tmp_path / mode for mode in ("full", "coarse-to-fine")}
    for mode, folder in heat.items():
        code = cxr(["predict", str(tmp_path / "images"), "--model", str(path), "--backend", "torch",
                    "--explain", "occlusion", "--occlusion-mode", mode, "--explain-dir", str(folder)])  # fmt: skip
        assert code == 0, capsys.readouterr().err
    maps = {mode: sorted(folder.glob("*.occlusion.npy")) for mode, folder in heat.items()}
    assert len(maps["full"]) == len(maps["coarse-to-fine"]) == 2
    for full, ours in zip(maps["full"], maps["coarse-to-fine"], strict=True):
        a, b = np.load(full), np.load(ours)
        assert a.shape == b.shape and not np.array_equal(a, b)  # the option reached the explainer
    with pytest.raises(SystemExit) as exit_:  # argparse: a usage line, not a traceback
        cxr(["predict", str(tmp_path / "images"), "--model", str(path), "--explain", "occlusion",
             "--occlusion-mode", "fast", "--explain-dir", str(tmp_path / "x")])  # fmt: skip
    assert exit_.value.code == 2 and "invalid choice: 'fast'" in capsys.readouterr().err
