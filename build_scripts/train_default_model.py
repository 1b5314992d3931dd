"""Reproducible recipe for CXR Studio's default model (paediatric pneumonia vs normal).

Two steps, both on the CPU, no network, no pretrained weights:

1. ``train``: the project's own ``cxr train --config build_scripts/default_model.json`` on
   ``../shared/data/datasets/kermany-train`` (Kermany et al., Cell 2018; CC BY 4.0). Everything
   the run does (seed, architecture, input size, augmentation, epochs, patient-level split) is in
   that committed config; the data path is resolved relative to the repository root.
2. ``ship``: from the finished run folder, fit a temperature on the *validation* split, choose the
   operating point on the *validation* split (Youden's J on the calibrated PNEUMONIA probability),
   score the *internal test* split once with patient-level bootstrap 95% CIs, fold the temperature
   into the final linear layer, write fp16 weights with the full model card to
   ``resources/models/cxr-default-pneumonia.safetensors`` (+ ``.card.json`` with the figures).

    python build_scripts/train_default_model.py train --out RUN_DIR
    python build_scripts/train_default_model.py ship --run RUN_DIR
    python build_scripts/train_default_model.py all --out RUN_DIR
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "build_scripts" / "default_model.json"
sys.path.insert(0, str(ROOT))


def resolved_config(data: str | None = None) -> dict:
    cfg = json.loads(CONFIG.read_text(encoding="utf-8"))
    path = Path(data) if data else (ROOT / cfg["data"]["path"])
    if not path.is_dir():
        raise SystemExit(f"The training data folder {path} does not exist (kermany-train).")
    cfg["data"]["path"] = str(path.resolve())
    return cfg


def train(out: Path, data: str | None = None) -> float:
    """Run ``cxr train`` with the committed config; returns the wall time in seconds."""
    cfg = resolved_config(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(cfg, fh)
        cfg_path = fh.name
    cmd = [
        sys.executable,
        "-c",
        "import sys; from ml.cli import main; sys.exit(main(sys.argv[1:]))",
        "train",
        "--config",
        cfg_path,
        "--out",
        str(out),
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    (out / "wall_time_s.txt").write_text(f"{wall:.1f}\n", encoding="utf-8")
    print(f"training wall time {wall / 60:.1f} min")
    return wall


# --------------------------------------------------------------------------- ship

MODEL_NAME = "cxr-default-pneumonia"
CITATION = (
    "Kermany DS, Goldbaum M, Cai W, et al. Identifying Medical Diagnoses and Treatable Diseases by "
    "Image-Based Deep Learning. Cell 172(5):1122-1131, 2018. Data: Kermany D, Zhang K, Goldbaum M. "
    "Labeled Optical Coherence Tomography (OCT) and Chest X-Ray Images for Classification, Mendeley "
    "Data, v2, doi:10.17632/rscbjbr9sj.2"
)
LIMITS = [
    "Adult chest radiographs are out of scope: trained on paediatric films (ages 1-5) only.",
    "Lateral views, CT, other body parts and non-radiograph images are out of scope.",
    "Other findings (tuberculosis, effusion, masses, devices, COVID-19, ...) are out of scope: "
    "the model only separates NORMAL from PNEUMONIA and says nothing about anything else.",
    "Single source (Guangzhou Women and Children's Medical Center): performance on other hospitals, "
    "scanners and populations is unknown; internal-test figures are optimistic for new sites.",
    "Bacterial and viral pneumonia are one class.",
]


def _split_rows(run: Path) -> list[dict[str, str]]:
    import csv

    with (run / "split.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _logits(model, manifest, paths: list[str], batch: int = 64):  # noqa: ANN001
    """Raw logits [N, 2] of ``model`` for image files, with the inference preprocessing."""
    import numpy as np
    import torch

    from ml.imaging.read import read_image
    from ml.inference.preprocess import prepare

    out = []
    for i in range(0, len(paths), batch):
        x = np.stack([prepare(read_image(p), 0, manifest)[0] for p in paths[i : i + batch]])
        with torch.no_grad():
            out.append(model(torch.from_numpy(x)).double().numpy())
    return np.concatenate(out)


def ship(run: Path, dest: Path) -> Path:
    """Calibrate + choose the operating point on validation, score internal test, write the model file."""
    import math

    import numpy as np
    import torch

    from ml.models.bundle import load_model, save_model
    from ml.training.metrics import operating_point_ci

    model, manifest = load_model(run / "model.safetensors")
    labels = list(manifest.labels)
    if labels != ["NORMAL", "PNEUMONIA"]:
        raise SystemExit(f"expected labels NORMAL, PNEUMONIA; the run has {labels}")
    # the temperature and the operating point are cxr train's own, fitted on the validation split
    # at the end of training (ml.training.posthoc: NLL temperature, Youden's J); metrics.json holds
    # their validation/test figures
    temp, thr = manifest.temperature, (manifest.thresholds or {}).get("PNEUMONIA")
    if temp is None or thr is None:
        raise SystemExit("the run has no fitted temperature / operating point (validation split too small?)")
    rows = _split_rows(run)
    part = {name: [r for r in rows if r["split"] == name] for name in ("train", "val", "test")}
    cfg = json.loads((run / "config.json").read_text(encoding="utf-8"))
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    test_rows = part["test"]
    z = _logits(model, manifest, [r["path"] for r in test_rows])
    y = np.array([r["labels"] == "PNEUMONIA" for r in test_rows])
    pt = 1.0 / (1.0 + np.exp(-(z[:, 1] - z[:, 0]) / temp))
    scored = operating_point_ci(pt, y, thr, [r["patient"] for r in test_rows], n_boot=2000)
    test, ci = scored["metrics"], scored["ci95"]
    cal, op = metrics["calibration"], metrics["operating_point"]
    calib = {
        "method": cal["method"],
        "temperature": round(temp, 4),
        "val_nll_before": round(cal["nll_before"], 4),
        "val_nll_after": round(cal["nll_after"], 4),
        "val_ece_before": round(cal["ece_before"], 4),
        "val_ece_after": round(cal["ece_after"], 4),
        "test_ece_after": round(cal["test"]["ece_after"], 4),
    }
    val_at = {k: round(op["validation"][k], 4) for k in ("sensitivity", "specificity")}
    shift = math.log(thr / (1 - thr))
    # fold calibration and operating point into the last layer: softmax(W'x + b') then gives
    # sigmoid(d / T - logit(thr)) for PNEUMONIA, so argmax (what the app shows) is the operating point
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["fc.weight"] /= temp
    state["fc.bias"] /= temp
    state["fc.bias"] += torch.tensor([shift / 2, -shift / 2], dtype=state["fc.bias"].dtype)
    split = metrics["split"]["splits"]
    card = {
        "intended_use": "Research use only, NOT for diagnostic use. Paediatric frontal (AP/PA) chest "
        "radiographs of children aged 1-5: pneumonia (bacterial or viral) vs normal.",
        "not_for_diagnostic_use": True,
        "training_data": {
            "name": "Paediatric pneumonia chest X-ray set (Kermany et al. 2018), official training split",
            "images": "NORMAL 1,341 / PNEUMONIA 3,875 JPEG (224 x 224); byte-identical duplicates "
            "dropped before the split (one copy kept)",
            "citation": CITATION,
            "doi": "10.17632/rscbjbr9sj.2",
            "licence": "CC BY 4.0",
        },
        "split": {
            "level": "patient",
            "patient_key": "file name: personN_..., IM-NNNN-..., NORMAL2-IM-NNNN-...",
            "ratios": cfg["split"]["ratios"],
            "seed": cfg["seed"],
            "counts": split,
        },
        "architecture": f"{cfg['arch']} (from scratch, no pretrained weights), 1 channel, "
        f"{cfg['image_size']} x {cfg['image_size']} px",
        "input": f"the image's default window, {cfg['resize']} to {cfg['image_size']} px, histogram "
        f"equalisation: {cfg.get('equalize', 'none')} (the same at training and inference)",
        "training": {
            "recipe": "build_scripts/train_default_model.py + build_scripts/default_model.json (cxr train)",
            "epochs": cfg["epochs"],
            "best_epoch": metrics.get("best_epoch"),
            "augmentation": cfg["augment"],
            "optimiser": f"{cfg['optimizer']} lr {cfg['lr']} wd {cfg['weight_decay']}, {cfg['scheduler']}, "
            f"batch {cfg['batch_size']}",
            "wall_time_min": _wall_min(run),
            "notes": _notes(run),
        },
        "internal_test": {
            "split": "internal test (patient-level hold-out of kermany-train; NOT the official test split)",
            "n_images": scored["n_images"],
            "n_patients": scored["n_patients"],
            "metrics": test,
            "ci95": ci,
            "ci_method": scored["ci_method"],
        },
        "operating_point": {
            "threshold_calibrated_probability": round(thr, 4),
            "how_chosen": "Youden's J (sensitivity + specificity - 1) on the validation split only",
            "validation_at_threshold": val_at,
            "shipped_as": "folded into the last layer: the shown PNEUMONIA probability is 0.5 at the "
            "operating point (probability = sigmoid(logit / T - logit(threshold)))",
        },
        "calibration": calib,
        "known_limits": LIMITS,
        "official_test": "not evaluated by the team (held elsewhere for independent evaluation)",
    }
    card["out_of_scope_guard"] = _fit_scope(model, manifest, part)
    manifest.name = MODEL_NAME
    manifest.version = "1.0"
    manifest.calibration = "temperature"
    # the temperature and operating point are folded into fc above: drop the ones cxr train stored
    # (ml.training.posthoc), else the predictor would scale the folded logits a second time
    manifest.temperature, manifest.thresholds = None, None
    manifest.description = (
        "CXR Studio default model: paediatric pneumonia vs normal on frontal chest radiographs "
        f"(ages 1-5). Research use only, not for diagnostic use. Internal test ({scored['n_images']} images): "
        f"accuracy {test['accuracy']:.3f} [{ci['accuracy'][0]:.3f}, {ci['accuracy'][1]:.3f}], "
        f"AUROC {test['auroc']:.3f} [{ci['auroc'][0]:.3f}, {ci['auroc'][1]:.3f}]. Trained on Kermany "
        "et al., Cell 2018 (doi:10.17632/rscbjbr9sj.2, CC BY 4.0)."
    )
    manifest.provenance.source_url = "https://doi.org/10.17632/rscbjbr9sj.2"
    manifest.provenance.extra = {"model_card": card, "config": cfg, "run": run.name}
    out = save_model(dest / f"{MODEL_NAME}.safetensors", state, manifest)  # fp32: ~0.4 MB
    shipped, _ = load_model(out)  # the shipped file's argmax must be the operating point
    zs = _logits(shipped, manifest, [r["path"] for r in part["test"]])
    agree = float(np.mean((zs[:, 1] > zs[:, 0]) == (pt >= thr)))
    if agree < 0.995:
        raise SystemExit(f"the shipped model disagrees with the operating point on {1 - agree:.1%} of test")
    (run / "ship_report.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"internal_test": card["internal_test"], "operating_point": card["operating_point"],
                      "calibration": calib}, indent=2))  # fmt: skip
    return out


def _fit_scope(model, manifest, part: dict[str, list[dict[str, str]]], n_fit: int = 1000) -> str:  # noqa: ANN001
    """Out-of-scope guard statistics (ml.inference.scope): penultimate features of ``n_fit`` training
    images (seeded choice), threshold = 99th percentile of the validation images' distances."""
    import random

    try:
        from ml.inference.predictor import Predictor
        from ml.inference.scope import features_of, fit_feature_statistics, set_threshold
    except ImportError:
        return "not fitted (this checkout has no ml.inference.scope)"
    from ml.imaging.read import read_image

    train = random.Random(0).sample(part["train"], min(n_fit, len(part["train"])))
    pred = Predictor(model, manifest, device="cpu", batch_size=32)

    def feats(rows):  # noqa: ANN001, ANN202
        return features_of(pred, [(read_image(r["path"]), 0) for r in rows])

    stats = set_threshold(fit_feature_statistics(feats(train)), feats(part["val"]), 99.0)
    stats["views"] = ["AP"]
    manifest.scope = stats
    return (f"Mahalanobis (PCA) distance of the penultimate features to {len(train)} training images; "
            f"threshold {stats['threshold']:.3f} = 99th percentile over the {len(part['val'])} validation "
            "images; trained view AP")  # fmt: skip


def _notes(run: Path) -> str:
    f = run / "NOTES.txt"  # anything unusual about the run (written by hand)
    return f.read_text(encoding="utf-8").strip() if f.is_file() else ""


def _wall_min(run: Path) -> float | None:
    f = run / "wall_time_s.txt"
    return round(float(f.read_text()) / 60, 1) if f.is_file() else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["train", "ship", "gradcam", "all"])
    p.add_argument("--out", help="run folder for the training step")
    p.add_argument("--run", help="finished run folder for the ship step")
    p.add_argument("--data", help="kermany-train folder (default ../shared/data/datasets/kermany-train)")
    p.add_argument("--dest", default=str(ROOT / "resources" / "models"), help="where the model file goes")
    p.add_argument("--limit", type=int, default=0, help="Grad-CAM check: at most N images (0: all)")
    a = p.parse_args(argv)
    if a.step in ("train", "all"):
        if not a.out:
            p.error("--out RUN_DIR is required for training")
        train(Path(a.out), a.data)
    if a.step in ("ship", "all"):
        ship(Path(a.run or a.out), Path(a.dest))
    if a.step in ("gradcam", "all"):
        run = Path(a.run or a.out)
        gallery = ROOT / "resources" / "screenshots" / "default_model_gradcam.png"
        from build_scripts.gradcam_lung_check import gradcam_check  # noqa: PLC0415

        test = [r for r in _split_rows(run) if r["split"] == "test" and r["labels"] == "PNEUMONIA"]
        res = gradcam_check(test, Path(a.dest) / f"{MODEL_NAME}.safetensors", gallery, a.limit)
        (run / "gradcam_check.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
