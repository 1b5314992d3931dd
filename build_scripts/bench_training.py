"""Training speed: ``cxr train`` against a plain torchvision-reference loop, same work, same run.

On a 1,000-image subset of ``../shared/data/datasets/kermany-train`` (NORMAL/PNEUMONIA in the
set's proportions, chosen by a seeded shuffle) at 224 px, batch 32, AdamW lr 1e-3, the registry's
``cxr_resnet_small`` (1 channel), the same torch thread count for every run:

* ``reference``: ``torchvision.datasets.ImageFolder`` (PIL decode + grey + ToTensor + normalise
  every epoch), ``DataLoader(shuffle=True, num_workers=0)``, the textbook loop;
* ``cxr bare``: ``cxr train --config`` with augmentation off and precise-BN off: the project's loop
  on its decoded cache (the like-for-like comparison);
* ``cxr default``: the same with the project's extras on (augmentation, precise-BN 50 batches,
  per-epoch validation): what they cost per epoch.

Training images/s come from the trainer's own ``epoch_end`` events (training loop only); the
extras are the seconds between an epoch's last batch and its ``epoch_end`` (precise-BN +
validation + checkpoint); caching is the decode phase before the first epoch.

    python build_scripts/bench_training.py [--images 1000] [--epochs 2] [--size 224] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "datasets" / "kermany-train"
sys.path.insert(0, str(ROOT))

REFERENCE = r"""
import json, sys, time, torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms
from ml.models.registry import build_model
folder, size, batch, epochs, lr = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
torch.manual_seed(0)
tf = transforms.Compose([transforms.Grayscale(1), transforms.Resize((size, size)), transforms.ToTensor(),
                         transforms.Normalize([0.5], [0.5])])
ds = datasets.ImageFolder(folder, tf)
loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0)
model = build_model("cxr_resnet_small", len(ds.classes), 1)
opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
crit = torch.nn.CrossEntropyLoss()
out = []
for epoch in range(epochs):
    model.train(); t0 = time.perf_counter(); n = 0
    for x, y in loader:
        opt.zero_grad(set_to_none=True); loss = crit(model(x), y); loss.backward(); opt.step(); n += len(y)
    out.append(n / (time.perf_counter() - t0))
print(json.dumps({"images_per_s": out, "threads": torch.get_num_threads(), "images": len(ds)}))
"""


def subset(n: int, seed: int, dest: Path) -> dict[str, int]:
    """Symlink ``n`` images of kermany-train (class proportions kept) into ``dest/<class>/``."""
    files = {c: sorted((DATA / c).iterdir()) for c in ("NORMAL", "PNEUMONIA")}
    total = sum(len(v) for v in files.values())
    rng = random.Random(seed)
    counts = {}
    for c, paths in files.items():
        k = round(n * len(paths) / total)
        (dest / c).mkdir(parents=True, exist_ok=True)
        for p in rng.sample(paths, k):
            (dest / c / p.name).symlink_to(p)
        counts[c] = k
    return counts


def _python(code: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                          cwd=ROOT, env=env).stdout  # fmt: skip


def cxr_train(folder: Path, out: Path, size: int, epochs: int, extras: bool) -> dict:
    cfg = {
        "data": {"path": str(folder), "preset": "folder", "labels": ["NORMAL", "PNEUMONIA"]},
        "split": {"ratios": [0.9, 0.05, 0.05], "patient_id": "none"},
        "augment": {"enabled": extras},
        "arch": "cxr_resnet_small", "image_size": size, "batch_size": 32, "epochs": epochs,
        "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "scheduler": "none",
        "precise_bn_batches": 50 if extras else 0, "early_stopping": False, "bootstrap": 0, "seed": 0,
        "workers": 0,
    }  # fmt: skip
    cfg_path = out.with_suffix(".json")
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    t0 = time.perf_counter()
    _python("import sys; from ml.cli import main; sys.exit(main(sys.argv[1:]))", "train", "--config",
            str(cfg_path), "--out", str(out), "--quiet")  # fmt: skip
    wall = time.perf_counter() - t0
    events = [json.loads(line) for line in (out / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    cache = [e["elapsed"] for e in events if e.get("event") == "cache"]
    epochs_out, last_batch = [], None
    for e in events:
        if e.get("event") == "batch":
            last_batch = e["elapsed"]
        elif e.get("event") == "epoch_end":
            epochs_out.append({"images_per_s": e.get("images_per_s"),
                               "extras_s": round(e["elapsed"] - last_batch, 2) if last_batch else None})  # fmt: skip
    return {"epochs": epochs_out, "cache_s": round(cache[-1] - cache[0], 2) if cache else 0.0,
            "wall_s": round(wall, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--json", help="also write the figures to FILE")
    a = p.parse_args(argv)
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is missing (kermany-train)")
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        folder = Path(tmp) / "subset"
        counts = subset(a.images, 0, folder)
        ref = json.loads(_python(REFERENCE, str(folder), str(a.size), "32", str(a.epochs), "1e-3"))
        bare = cxr_train(folder, Path(tmp) / "bare", a.size, a.epochs, extras=False)
        full = cxr_train(folder, Path(tmp) / "default", a.size, a.epochs, extras=True)
    last = lambda r: r["epochs"][-1]["images_per_s"]  # noqa: E731 - steady state: the last epoch
    res = {"images": counts, "size": a.size, "epochs": a.epochs, "threads": ref["threads"],
           "reference_images_per_s": [round(x, 1) for x in ref["images_per_s"]],
           "cxr_bare": bare, "cxr_default": full,
           "speedup_bare_vs_reference": round(last(bare) / ref["images_per_s"][-1], 2),
           "speedup_default_vs_reference": round(last(full) / ref["images_per_s"][-1], 2)}  # fmt: skip
    print(f"{sum(counts.values())} images at {a.size} px, batch 32, AdamW, {ref['threads']} thread(s)")
    print(f"{'loop':<34} {'train img/s (last epoch)':>24} {'extras s/epoch':>15} {'cache s':>8}")
    print(f"{'torchvision reference (ImageFolder)':<34} {ref['images_per_s'][-1]:>24.1f} {'-':>15} {'-':>8}")
    for name, r in (("cxr train, bare", bare), ("cxr train, default extras", full)):
        print(f"{name:<34} {last(r):>24.1f} {r['epochs'][-1]['extras_s'] or 0:>15.1f} {r['cache_s']:>8.1f}")
    print(f"speed-up vs reference: bare {res['speedup_bare_vs_reference']}x, "
          f"default {res['speedup_default_vs_reference']}x")  # fmt: skip
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
