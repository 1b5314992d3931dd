"""Coarse-to-fine occlusion against the full grid, measured in one run (printed figures, no timed tests).

    .venv/bin/python build_scripts/bench_occlusion.py [--images N] [--resnet18] [--backend auto|torch]

Issue 13 asks for coarse-to-fine occlusion "as an option that is measured against the full grid
(correlation with the full map, reported)". For each image both modes run on the same model, same
back-end, same target (the model's top label), one after the other with the order alternating
between images (a neighbour's load on a shared machine hits both alike):

* wall time of the whole map, and time to the first partial map (``on_partial``);
* occluded forward passes (images through the model);
* Pearson and Spearman correlation of the final maps (the raw attribution on the model-input grid,
  and the normalised heatmap on the source grid that the viewer shows), and the overlap (IoU) of
  their top-10% regions (what a reader looks at);
* ratios coarse-to-fine / full, medians over the images; and the full grid once more through the
  batched loop coarse-to-fine itself uses (no Captum: ``loop s``), so the part of the speed-up due to
  fewer passes is visible apart from the part due to the loop.

Section 1 uses real radiographs (``/work/shared/data/cxr/kermany-val/*/*.jpeg``, alternating
NORMAL / PNEUMONIA) and the shipped default model (``resources/models/cxr-default-pneumonia
.safetensors``); section 2 how agreement and passes trade off against ``refine_fraction`` (the
share of cells refined); section 3 (``--resnet18``) a ResNet-18 from the registry with random
weights at 224 px (32 px window, 16 px stride: 169 passes for the full grid), on the same images.
The ``bench_inference.py`` occlusion section compares the full grid with Captum itself.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

DATA = Path("/work/shared/data/cxr/kermany-val")
DEFAULT_MODEL = REPO / "resources" / "models" / "cxr-default-pneumonia.safetensors"


def images(n: int) -> list[Path]:
    normal, pneumonia = sorted((DATA / "NORMAL").glob("*.jpeg")), sorted((DATA / "PNEUMONIA").glob("*.jpeg"))
    out = [p for pair in zip(normal, pneumonia, strict=False) for p in pair]
    return out[:n]


def top_iou(a: np.ndarray, b: np.ndarray, fraction: float = 0.10) -> float:
    ta, tb = a >= np.quantile(a, 1 - fraction), b >= np.quantile(b, 1 - fraction)
    return float((ta & tb).sum() / max(1, (ta | tb).sum()))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):  # nan for a constant (all-zero) heatmap
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def run_one(model, manifest, device, forward, image, mode: str, **kw) -> dict:
    from ml.explain import OcclusionExplainer

    with OcclusionExplainer(model, manifest, device, forward=forward, mode=mode, **kw) as occ:
        first: list[float] = []
        t0 = time.perf_counter()
        heatmap = occ.explain(image, on_partial=lambda _h: first.append(time.perf_counter() - t0))
        wall = time.perf_counter() - t0
        return {"wall": wall, "first": first[0] if first else wall, "passes": occ.passes, "raw": occ.last_raw,
                "values": heatmap.values, "refined": None if occ.refined is None else float(occ.refined.mean())}  # fmt: skip


def direct_full(model, manifest, device, forward, image, **kw) -> tuple[float, np.ndarray]:
    """The full grid through the same batched loop coarse-to-fine uses (no Captum): how much of the
    speed-up is fewer passes and how much the loop; returns (seconds, raw map)."""
    import torch

    from ml.explain import OcclusionExplainer
    from ml.explain.occlusion import grid, run_windows

    with OcclusionExplainer(model, manifest, device, forward=forward, **kw) as occ:
        t0 = time.perf_counter()
        x, _ = occ.input_tensor(image)
        target, score, fill = occ.target_index(None, x), occ.score_fn(), occ._baseline_values(x)
        with torch.no_grad():
            base = score(x)[0, target]
        h, w = x.shape[2:]
        origins = [(r, c) for r in grid(h, occ.window, occ.stride) for c in grid(w, occ.window, occ.stride)]
        sums, counts = run_windows(x, score, base, fill, target, occ.window, origins, occ.perturbations_per_eval)
        raw = OcclusionExplainer._ratio(sums, counts)
        return time.perf_counter() - t0, raw


def section(title: str, model, manifest, device, forward, paths: list[Path], **kw) -> None:
    from ml.explain.sanity import spearman
    from ml.imaging.read import read_image

    print(f"\n{title}")
    print(f"   {'image':<28} {'full s':>7} {'c2f s':>7} {'ratio':>6} {'1st full':>8} {'1st c2f':>8} "
          f"{'passes':>9} {'pearson':>7} {'spearm':>7} {'heat r':>7} {'IoU10':>6} {'refined':>7} {'loop s':>7}")  # fmt: skip
    rows = []
    run_one(model, manifest, device, forward, read_image(paths[0]), "full", **kw)  # warm-up
    for i, path in enumerate(paths):
        image = read_image(path)
        order = ("full", "coarse-to-fine") if i % 2 == 0 else ("coarse-to-fine", "full")
        got = {mode: run_one(model, manifest, device, forward, image, mode, **kw) for mode in order}
        f, c = got["full"], got["coarse-to-fine"]
        t_direct, raw_direct = direct_full(model, manifest, device, forward, image, **kw)
        row = {
            "full": f["wall"], "c2f": c["wall"], "ratio": c["wall"] / f["wall"], "first_full": f["first"],
            "first_c2f": c["first"], "passes_full": f["passes"], "passes_c2f": c["passes"],
            "pearson": pearson(c["raw"], f["raw"]), "spearman": spearman(c["raw"].ravel(), f["raw"].ravel()),
            "heat": pearson(c["values"], f["values"]), "iou": top_iou(c["raw"], f["raw"]), "refined": c["refined"],
            "direct": t_direct, "direct_diff": float(np.abs(raw_direct - f["raw"]).max() / max(1e-12, np.abs(f["raw"]).max())),
        }  # fmt: skip
        rows.append(row)
        print(f"   {path.parent.name[:1]}/{path.name[:26]:<26} {row['full']:7.2f} {row['c2f']:7.2f} {row['ratio']:6.2f} "
              f"{row['first_full']:8.2f} {row['first_c2f']:8.2f} {row['passes_c2f']:>4}/{row['passes_full']:<4} "
              f"{row['pearson']:7.3f} {row['spearman']:7.3f} {row['heat']:7.3f} {row['iou']:6.2f} "
              f"{row['refined']:7.0%} {row['direct']:7.2f}")  # fmt: skip
    med = {k: float(np.nanmedian([r[k] for r in rows])) for k in rows[0]}  # heatmap r: nan when a map is all 0
    print(f"   median over {len(rows)} images: full {med['full']:.2f} s, coarse-to-fine {med['c2f']:.2f} s "
          f"({med['ratio']:.2f}x the full grid's time; {med['passes_c2f'] / med['passes_full']:.2f}x its passes), "
          f"first partial map {med['first_c2f']:.2f} s (a whole-image coarse map) vs {med['first_full']:.2f} s "
          f"(the full grid's first strip)")  # fmt: skip
    print(f"   the full grid through coarse-to-fine's own batched loop (column 'loop s', no Captum): "
          f"{med['direct']:.2f} s; coarse-to-fine / that: {med['c2f'] / med['direct']:.2f}x (the part due to fewer "
          f"passes); its map equals the Captum full grid within {max(r['direct_diff'] for r in rows):.1e} (relative)")  # fmt: skip
    print(f"   correlation with the full map: Pearson {med['pearson']:.3f} (min {min(r['pearson'] for r in rows):.3f}), "
          f"Spearman {med['spearman']:.3f} (min {min(r['spearman'] for r in rows):.3f}), heatmap Pearson "
          f"{med['heat']:.3f}, top-10% IoU {med['iou']:.2f}; pixels with exact full-grid values {med['refined']:.0%}")  # fmt: skip


def tradeoff(model, manifest, device, forward, paths: list[Path], fractions: list[float]) -> None:
    """How much of the fine grid to refine: correlation and passes for a few ``refine_fraction``s."""
    from ml.imaging.read import read_image

    print(f"\n2. Refined fraction against agreement with the full grid (section 1's model, {len(paths)} images, medians)")
    loaded = [read_image(p) for p in paths]
    fulls = [run_one(model, manifest, device, forward, im, "full") for im in loaded]
    for fraction in fractions:
        got = [run_one(model, manifest, device, forward, im, "coarse-to-fine", refine_fraction=fraction) for im in loaded]
        r = [pearson(g["raw"], f["raw"]) for g, f in zip(got, fulls, strict=True)]
        iou = [top_iou(g["raw"], f["raw"]) for g, f in zip(got, fulls, strict=True)]
        passes = statistics.median(g["passes"] / f["passes"] for g, f in zip(got, fulls, strict=True))
        print(f"   top {fraction:4.0%} of the cells refined: {passes:.2f}x the passes, Pearson {statistics.median(r):.3f} "
              f"(min {min(r):.3f}), top-10% IoU {statistics.median(iou):.2f} (min {min(iou):.2f})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--resnet18", action="store_true", help="also ResNet-18, random weights, 224 px")
    ap.add_argument("--resnet18-images", type=int, default=2)
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    ap.add_argument("--fractions", default="0.25,0.4,0.5", help="refine fractions for section 3 ('' skips it)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()

    import torch

    from ml.inference.predictor import Predictor, load_predictor
    from ml.models.manifest import IMAGENET_NORMALISATION, ModelManifest
    from ml.models.registry import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    paths = images(args.images)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; {len(paths)} kermany-val images")
    predictor = load_predictor(DEFAULT_MODEL, device="cpu", backend=args.backend)
    m = predictor.manifest
    print(f"default model: {m.architecture}, {m.input_size} px, {predictor.status_label}")
    section(f"1. Shipped default model ({m.architecture}, {m.input_size} px), occlusion 32/16 at 224 scaled",
            predictor.model, m, predictor.device, predictor.fast_forward, paths)  # fmt: skip

    fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
    if fractions:
        tradeoff(predictor.model, m, predictor.device, predictor.fast_forward, paths, fractions)

    if args.resnet18:
        torch.manual_seed(0)
        rm = ModelManifest(name="bench-resnet18", architecture="resnet18", labels=["normal", "pneumonia"],
                           task="multiclass", input_size=224, channels=3,
                           normalisation=dict(IMAGENET_NORMALISATION)).validate()  # fmt: skip
        net = build_model("resnet18", 2, 3).eval()
        fast = Predictor(net, rm, "cpu", backend="torch" if args.backend == "torch" else "onnx")
        section(f"3. ResNet-18, random weights, 224 px, 32 px window / 16 px stride ({fast.status_label})",
                fast.model, rm, fast.device, fast.fast_forward, paths[: args.resnet18_images])  # fmt: skip


if __name__ == "__main__":
    main()
