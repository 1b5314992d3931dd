"""Training speed: ``cxr train`` against a plain torchvision-reference loop, same work, same run.

On a 1,000-image subset of ``../shared/data/datasets/kermany-train`` (NORMAL/PNEUMONIA in the
set's proportions, chosen by a seeded shuffle) at 224 px, batch 32, AdamW lr 1e-3, the registry's
``cxr_resnet_small`` (1 channel; ``--arch resnet18`` for the issue-13 row), the same torch thread count
for every run:

* ``reference``: ``torchvision.datasets.ImageFolder`` (PIL decode + grey + ToTensor + normalise
  every epoch), ``DataLoader(shuffle=True, num_workers=0)``, the textbook loop;
* ``cxr bare``: ``cxr train --config`` with augmentation off and precise-BN off: the project's loop
  on its decoded cache (the like-for-like comparison);
* ``cxr default``: the same with the project's extras on (augmentation, precise-BN 20 batches - the default -,
  per-epoch validation): what they cost per epoch.

Two more figures, each against its baseline in the same run:

* ``cache``: the same images as JPEG 2000 lossless DICOM (written with pydicom's encoder), epoch
  wall time of ``cxr train`` (decoded once into its cache, then read from it) against a loop that
  decodes every file every epoch through the same reader and preprocessing (``read_image`` +
  ``prepare``), same model, batch, optimiser and threads;
* ``head-only``: wall time of ``cxr train --config`` with ``head_only`` from the shipped default
  model on the subset at ``--size`` (decode + epochs + evaluation), against training the whole
  network for the same epochs.

Training images/s come from the trainer's own ``epoch_end`` events (training loop only); the
extras are the seconds between an epoch's last batch and its ``epoch_end`` (precise-BN +
validation + checkpoint); caching is the decode phase before the first epoch.

    python build_scripts/bench_training.py [--images 1000] [--epochs 2] [--size 224] [--json FILE]
        [--only loop,cache,head]
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
folder, size, batch, epochs, lr, arch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
torch.manual_seed(0)
tf = transforms.Compose([transforms.Grayscale(1), transforms.Resize((size, size)), transforms.ToTensor(),
                         transforms.Normalize([0.5], [0.5])])
ds = datasets.ImageFolder(folder, tf)
loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0)
model = build_model(arch, len(ds.classes), 1)
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

DECODE_EVERY_EPOCH = r"""
import json, sys, time, torch
from pathlib import Path
from torch.utils.data import DataLoader, Dataset
from ml.imaging.read import read_image
from ml.inference.preprocess import prepare
from ml.models.bundle import load_model
from ml.models.registry import build_model
folder, manifest_from, batch, epochs, lr, arch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
_, manifest = load_model(manifest_from)  # the cxr run's own preprocessing (size, window, normalisation)
files = sorted((p, i) for i, c in enumerate(("NORMAL", "PNEUMONIA")) for p in (Path(folder) / c).iterdir())
class Decoding(Dataset):
    def __len__(self): return len(files)
    def __getitem__(self, k):
        path, y = files[k]
        return torch.from_numpy(prepare(read_image(path), 0, manifest)[0]), y
torch.manual_seed(0)
loader = DataLoader(Decoding(), batch_size=batch, shuffle=True, num_workers=0)
model = build_model(arch, 2, 1)
opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
crit = torch.nn.CrossEntropyLoss()
out = []
for epoch in range(epochs):
    model.train(); t0 = time.perf_counter()
    for x, y in loader:
        opt.zero_grad(set_to_none=True); loss = crit(model(x), y); loss.backward(); opt.step()
    out.append(time.perf_counter() - t0)
print(json.dumps({"epoch_s": out, "images": len(files)}))
"""


def j2k_copy(folder: Path, dest: Path) -> int:
    """Write every image of ``folder/<class>/`` as an 8-bit JPEG 2000 lossless DICOM (pydicom's encoder)."""
    import numpy as np
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        JPEG2000Lossless,
        SecondaryCaptureImageStorage,
        generate_uid,
    )

    n = 0
    for c in ("NORMAL", "PNEUMONIA"):
        (dest / c).mkdir(parents=True, exist_ok=True)
        for src in sorted((folder / c).iterdir()):
            a = np.asarray(Image.open(src).convert("L"))
            ds = Dataset()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.Modality, ds.PatientID = "CR", src.stem
            ds.Rows, ds.Columns = a.shape
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
            ds.PixelData = a.tobytes()
            ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
            ds.save_as(dest / c / f"{src.stem}.dcm", enforce_file_format=True)
            n += 1
    return n


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


def cxr_train(folder: Path, out: Path, size: int, epochs: int, extras: bool, arch: str = "cxr_resnet_small",
              **over: object) -> dict:
    cfg: dict = {
        "data": {"path": str(folder), "preset": "folder", "labels": ["NORMAL", "PNEUMONIA"]},
        "split": {"ratios": [0.9, 0.05, 0.05], "patient_id": "none"},
        "augment": {"enabled": extras},
        "arch": arch, "image_size": size, "batch_size": 32, "epochs": epochs,
        "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "scheduler": "none",
        "precise_bn_batches": 20 if extras else 0, "early_stopping": False, "bootstrap": 0, "seed": 0,
        "workers": 0, "channels": 1,  # grey, as the reference loop (ResNet-18 defaults to 3 channels)
    }  # fmt: skip
    cfg.update(over)
    cfg_path = out.with_suffix(".json")
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    t0 = time.perf_counter()
    _python("import sys; from ml.cli import main; sys.exit(main(sys.argv[1:]))", "train", "--config",
            str(cfg_path), "--out", str(out), "--quiet")  # fmt: skip
    wall = time.perf_counter() - t0
    events = [json.loads(line) for line in (out / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    cache = [e["elapsed"] for e in events if e.get("event") == "cache"]
    epochs_out, last_batch, start = [], None, None
    for e in events:
        if e.get("event") == "batch":
            start = e["elapsed"] if start is None else start
            last_batch = e["elapsed"]
        elif e.get("event") == "epoch_end":
            epochs_out.append({"images_per_s": e.get("images_per_s"),
                               "extras_s": round(e["elapsed"] - last_batch, 2) if last_batch else None,
                               "epoch_s": round(e["elapsed"] - start, 2) if start is not None else None})  # fmt: skip
            start = None
    return {"epochs": epochs_out, "cache_s": round(cache[-1] - cache[0], 2) if cache else 0.0,
            "wall_s": round(wall, 1)}  # fmt: skip


def _loop(folder: Path, tmp: Path, a: argparse.Namespace, counts: dict) -> dict:
    ref = json.loads(_python(REFERENCE, str(folder), str(a.size), "32", str(a.epochs), "1e-3", a.arch))
    bare = cxr_train(folder, tmp / "bare", a.size, a.epochs, extras=False, arch=a.arch)
    full = cxr_train(folder, tmp / "default", a.size, a.epochs, extras=True, arch=a.arch)
    last = lambda r: r["epochs"][-1]["images_per_s"]  # noqa: E731 - steady state: the last epoch
    res = {"threads": ref["threads"], "reference_images_per_s": [round(x, 1) for x in ref["images_per_s"]],
           "cxr_bare": bare, "cxr_default": full,
           "speedup_bare_vs_reference": round(last(bare) / ref["images_per_s"][-1], 2),
           "speedup_default_vs_reference": round(last(full) / ref["images_per_s"][-1], 2)}  # fmt: skip
    print(f"{a.arch}, {sum(counts.values())} images at {a.size} px, batch 32, AdamW, {ref['threads']} thread(s)")
    print(f"{'loop':<34} {'train img/s (last epoch)':>24} {'extras s/epoch':>15} {'cache s':>8}")
    print(f"{'torchvision reference (ImageFolder)':<34} {ref['images_per_s'][-1]:>24.1f} {'-':>15} {'-':>8}")
    for name, r in (("cxr train, bare", bare), ("cxr train, default extras", full)):
        print(f"{name:<34} {last(r):>24.1f} {r['epochs'][-1]['extras_s'] or 0:>15.1f} {r['cache_s']:>8.1f}")
    print(f"speed-up vs reference: bare {res['speedup_bare_vs_reference']}x, "
          f"default {res['speedup_default_vs_reference']}x")  # fmt: skip
    return res


def _cache(folder: Path, tmp: Path, a: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    n = j2k_copy(folder, tmp / "j2k")
    made = time.perf_counter() - t0
    cached = cxr_train(tmp / "j2k", tmp / "j2k_run", a.size, a.epochs, extras=False, arch=a.arch)
    decoding = json.loads(_python(DECODE_EVERY_EPOCH, str(tmp / "j2k"), str(tmp / "j2k_run" / "model.safetensors"),
                                  "32", str(a.epochs), "1e-3", a.arch))  # fmt: skip
    # training-loop images/s on both sides (the cxr run trains on its 90% split, the loop on all)
    cached_ips = cached["epochs"][-1]["images_per_s"]
    decoding_ips = decoding["images"] / decoding["epoch_s"][-1]
    res = {"images": n, "j2k_write_s": round(made, 1), "cache_warm_s": cached["cache_s"],
           "cached_images_per_s": cached_ips, "decoding_images_per_s": round(decoding_ips, 1),
           "speedup_cached_vs_decoding": round(cached_ips / decoding_ips, 2)}  # fmt: skip
    print(f"JPEG 2000 DICOM, {n} images at {a.size} px: {cached_ips:.1f} training images/s from the cache "
          f"(warm-up {cached['cache_s']:.1f} s once) vs {decoding_ips:.1f} decoding every epoch: "
          f"{res['speedup_cached_vs_decoding']}x; a {n}-image epoch {n / cached_ips:.1f} s vs {n / decoding_ips:.1f} s")  # fmt: skip
    return res


def _head(folder: Path, tmp: Path, a: argparse.Namespace) -> dict:
    base = ROOT / "resources" / "models" / "cxr-default-pneumonia.safetensors"
    common = {"augment": {"enabled": False}, "precise_bn_batches": 0}
    head = cxr_train(folder, tmp / "head", a.size, a.epochs, extras=False, weights=str(base), head_only=True,
                     **common)  # fmt: skip
    whole = cxr_train(folder, tmp / "whole", a.size, a.epochs, extras=False, weights=str(base), **common)
    res = {"head_only_wall_s": head["wall_s"], "whole_network_wall_s": whole["wall_s"],
           "ratio": round(whole["wall_s"] / head["wall_s"], 2)}  # fmt: skip
    print(f"fine-tune from the default model, {a.epochs} epoch(s) at {a.size} px: head only {head['wall_s']:.1f} s "
          f"wall vs whole network {whole['wall_s']:.1f} s ({res['ratio']}x)")  # fmt: skip
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--arch", default="cxr_resnet_small",
                   help="registry architecture for the loop and cache parts (1 input channel; e.g. resnet18)")
    p.add_argument("--only", default="loop,cache,head", help="comma list of: loop, cache, head")
    p.add_argument("--json", help="also write the figures to FILE")
    a = p.parse_args(argv)
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is missing (kermany-train)")
    parts = {x.strip() for x in a.only.split(",") if x.strip()}
    res: dict = {"arch": a.arch, "size": a.size, "epochs": a.epochs}
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        folder = Path(tmp) / "subset"
        res["images"] = counts = subset(a.images, 0, folder)
        if "loop" in parts:
            res["loop"] = _loop(folder, Path(tmp), a, counts)
        if "cache" in parts:
            res["cache"] = _cache(folder, Path(tmp), a)
        if "head" in parts:
            res["head_only"] = _head(folder, Path(tmp), a)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
