"""Fit the out-of-scope guard's feature statistics for a model and measure it on ../shared/data.

    python build_scripts/measure_scope.py [MODEL] [--out figures.json] [--save NEW_MODEL_FILE]

Patient-level, disjoint parts of kermany-train (the default model's training source): ``fit``
(statistics), ``threshold`` (99th percentile of their distances), ``check`` (false alarms on
held-out in-distribution images). Then every file of ``dicom/`` (non-chest ones must all be
flagged), the other real chest radiographs (cxr/*, RSNA DICOMs; false alarms) and the content check
alone on the non-chest DICOMs' pixels (header checks ignored).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
CHEST_DICOM = ("rsna_cxr_pa.dcm", "rsna_cxr_pa_monochrome1.dcm")
PATIENT = re.compile(r"(person\d+|(?:NORMAL2-)?IM-\d+)")


def _kermany_parts(n_fit: int, n_thr: int, n_check: int, seed: int = 0) -> tuple[list[str], ...]:
    files = sorted(str(p) for p in (DATA / "datasets" / "kermany-train").rglob("*.jpeg"))
    by_patient: dict[str, list[str]] = {}
    for f in files:
        m = PATIENT.search(Path(f).name)
        by_patient.setdefault(m.group(1) if m else f, []).append(f)
    pids = sorted(by_patient)
    random.Random(seed).shuffle(pids)
    parts: list[list[str]] = [[], [], []]
    want = [n_fit, n_thr, n_check]
    i = 0
    for pid in pids:
        while i < 3 and len(parts[i]) >= want[i]:
            i += 1
        if i == 3:
            break
        parts[i].extend(by_patient[pid])
    return tuple(parts)


def _read(paths: list[str]) -> list[tuple[object, int]]:
    from ml.imaging.read import read_image

    out = []
    for p in paths:
        try:
            out.append((read_image(p), 0))
        except Exception as exc:  # noqa: BLE001 - an unreadable file is reported, not measured
            print(f"  unreadable: {Path(p).name}: {exc}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    from ml.inference.predictor import Predictor
    from ml.inference.scope import ScopeGuard, features_of, fit_feature_statistics, set_threshold
    from ml.models.bundle import load_model, load_state_dict, save_model
    from ml.models.library import bundled_default_model

    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=str(bundled_default_model()))
    ap.add_argument("--fit", type=int, default=600)
    ap.add_argument("--threshold-n", type=int, default=300)
    ap.add_argument("--check", type=int, default=600)
    ap.add_argument("--out", default="")
    ap.add_argument("--save", default="", help="write the model with its statistics to this new file")
    ap.add_argument("--stored", action="store_true",
                    help="measure the statistics stored in the model file (no refit); the kermany 'held-out' "
                         "part may then overlap the images they were fitted on")
    ap.add_argument("--views", default="", help="views the model was trained on, e.g. AP (a note for others)")
    args = ap.parse_args(argv)
    net, manifest = load_model(args.model)
    pred = Predictor(net, manifest, device="cpu", batch_size=32)
    fit, thr, check = _kermany_parts(args.fit, args.threshold_n, args.check)
    if args.stored:
        if not manifest.scope:
            raise SystemExit(f"{args.model} has no out-of-scope statistics")
        stats = manifest.scope
    else:
        stats = fit_feature_statistics(features_of(pred, _read(fit)))
        stats = set_threshold(stats, features_of(pred, _read(thr)), 99.0)
        stats["fitted_on"] = f"kermany-train, {len(fit)} images (threshold on {len(thr)} other patients' images)"
    if args.views:
        stats["views"] = [v.strip().upper() for v in args.views.split(",") if v.strip()]
    manifest.scope = stats
    pred = Predictor(net, manifest, device="cpu", batch_size=16)
    figures: dict[str, object] = {"model": manifest.name, "threshold": stats["threshold"]}

    def flagged(paths: list[str]) -> list[tuple[str, bool, str]]:
        items = _read(paths)
        return [(Path(p.path).name, not p.in_scope, p.scope_note) for p in pred.predict(items)] if items else []

    held = flagged(check)
    figures["kermany_heldout"] = {"n": len(held), "flagged": sum(f for _, f, _ in held)}
    other = [str(p) for p in sorted((DATA / "cxr").rglob("*")) if p.suffix.lower() in (".png", ".jpg", ".jpeg")]
    other += [str(DATA / "dicom" / n) for n in CHEST_DICOM]
    rows = flagged(other)
    figures["other_chest"] = {"n": len(rows), "flagged": sum(f for _, f, _ in rows),
                              "flagged_files": [(n, why) for n, f, why in rows if f]}  # fmt: skip
    non_chest = [str(p) for p in sorted((DATA / "dicom").glob("*.dcm")) if p.name not in CHEST_DICOM]
    nrows = flagged(non_chest)
    figures["non_chest_dicom"] = {"n_readable": len(nrows), "n_files": len(non_chest),
                                  "flagged": sum(f for _, f, _ in nrows),
                                  "missed": [n for n, f, _ in nrows if not f]}  # fmt: skip
    guard = ScopeGuard(manifest, pred.model)
    items = [it for it in _read(non_chest) if not it[0].is_color and it[0].n_frames >= 1]
    content_only = 0
    for image, frame in items:  # the content check alone (header ignored): distance over threshold
        guard.start()
        pred.predict([(image, frame)])
        v = guard.assess([(image, frame)])[0]
        content_only += int(v.score is not None and v.score > stats["threshold"])
    figures["non_chest_content_only"] = {"n": len(items), "flagged": content_only}
    print(json.dumps(figures, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1))
    if args.save:
        save_model(args.save, load_state_dict(args.model), manifest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
