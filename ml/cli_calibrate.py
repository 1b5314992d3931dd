"""`cxr calibrate --model M --data PATH [--target-sensitivity 0.9]`: check and calibrate a model on site data.

Fits a temperature and per-label operating points on a patient-level calibration half of the
site's labelled folder/CSV, reports before/after on the other (check) half with patient-level
bootstrap CIs, installs the result as a NEW model version (the source file is never changed) and
writes a PNG report of before vs after. See :mod:`ml.training.site_calibration`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ml import DISCLAIMER
from ml.cli import subcommand
from ml.errors import CxrError


@subcommand
def _register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="check and calibrate a model on your site's labelled data")
    p.add_argument("--model", help="a model file or an installed model's name (default: the default model)")
    p.add_argument("--data", required=True, help="a labelled folder (one sub-folder per class) or CSV")
    p.add_argument("--target-sensitivity", type=float, help="operating points at this sensitivity (else Youden)")
    p.add_argument("--name", help="name of the new model version (default: <model>-site)")
    p.add_argument("--report", help="PNG report to write (default: next to the new model in the library)")
    p.add_argument("--patient-id", default="auto", help="auto | dicom | none | regex:PATTERN | column:NAME")
    p.add_argument("--preset", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the CIs")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_calibrate)


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.3f}"


def _lines(summary: dict[str, Any]) -> list[str]:
    site = summary["site_data"]
    t = summary["temperature"]
    out = [f"Site data: {site['n_images']} images, {site['n_patients']} patients "
           f"(calibration half {site['calibration_half']['images']} / check half {site['check_half']['images']}); "
           f"{site['out_of_scope']} out of scope, {site['unreadable']} unreadable",
           f"Temperature {t['before']:g} -> {t['after']:g}; operating points: {summary['operating_points']['rule']}",
           "Check half (not used for fitting)    before     after"]  # fmt: skip
    sc = summary.get("scope_statistics") or {}
    if sc.get("fitted"):
        fa = sc["check_false_alarms"]
        out.append(f"Out-of-scope statistics fitted on the calibration half; check half: {fa['flagged']} of "
                   f"{fa['n']} site images flagged")  # fmt: skip
    elif sc.get("why"):
        out.append(f"Out-of-scope statistics: not fitted ({sc['why']})")
    b, a = summary["check_before"], summary["check_after"]
    out.append(f"  expected calibration error     {_fmt(b['ece']):>9} {_fmt(a['ece']):>9}")
    out.append(f"  macro AUROC                    {_fmt(b['macro_auroc']):>9} {_fmt(a['macro_auroc']):>9}")
    for label, after in a["per_label"].items():
        before = b["per_label"].get(label, {})
        ci = after.get("auroc_ci95")
        ci_text = f", 95% CI [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f", 95% CI {after.get('auroc_ci95_note') or 'n/a'}"
        auroc = _fmt(after.get("auroc")) if after.get("auroc") is not None else after.get("auroc_note") or "n/a"
        out.append(f"  {label}: AUROC after {auroc}{ci_text if after.get('auroc') is not None else ''}")
        for key in ("sensitivity", "specificity"):
            if after.get(key) is not None or before.get(key) is not None:
                out.append(f"    {key:12s}                 {_fmt(before.get(key)):>9} {_fmt(after.get(key)):>9}")
    return out


def write_report(path: Path, summary: dict[str, Any], title: str) -> Path:
    """PNG: reliability diagram (check half) before vs after, and the headline figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ml.fileio import atomic_path

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.6))
    ax1.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    for key, style in (("check_before", "o-"), ("check_after", "s-")):
        rel = summary[key]["reliability"]
        ece = summary[key]["ece"]
        ax1.plot(rel["mean_predicted"], rel["fraction_positive"], style,
                 label=f"{key.split('_')[1]} (ECE {_fmt(ece)})")  # fmt: skip
    ax1.set(xlabel="mean predicted probability", ylabel="fraction positive", xlim=(0, 1), ylim=(0, 1),
            title="Reliability (check half)")  # fmt: skip
    ax1.legend(loc="upper left", fontsize=8)
    names, before, after = [], [], []
    for label, a in summary["check_after"]["per_label"].items():
        b = summary["check_before"]["per_label"].get(label, {})
        for key in ("auroc", "sensitivity", "specificity"):
            if a.get(key) is not None or b.get(key) is not None:
                names.append(f"{label}\n{key}")
                before.append(b.get(key) or 0.0)
                after.append(a.get(key) or 0.0)
    xs = range(len(names))
    ax2.bar([x - 0.2 for x in xs], before, 0.4, label="before")
    ax2.bar([x + 0.2 for x in xs], after, 0.4, label="after")
    ax2.set_xticks(list(xs), names, fontsize=7)
    ax2.set(ylim=(0, 1.05), title="Check half: before vs after")
    ax2.legend(fontsize=8)
    site = summary["site_data"]
    fig.suptitle(f"{title} - {site['n_images']} site images, {site['n_patients']} patients, "
                 f"{summary['date'][:10]}. {DISCLAIMER}", fontsize=9)  # fmt: skip
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ml.models import library
    from ml.training.site_calibration import calibrate_on_site, install_site_version

    if args.target_sensitivity is not None and not 0.0 < args.target_sensitivity < 1.0:
        raise CxrError("--target-sensitivity must be between 0 and 1 (e.g. 0.9).")
    model = library.resolve_model(args.model) if args.model else library.resolve_default_model()
    result = calibrate_on_site(model, args.data, target_sensitivity=args.target_sensitivity, preset=args.preset,
                               patient_id=args.patient_id, seed=args.seed, n_boot=args.bootstrap,
                               device=args.device)  # fmt: skip
    installed = install_site_version(result, args.name)
    report = Path(args.report) if args.report else installed.path.with_suffix(".calibration.png")
    write_report(report, result.summary, installed.name)
    if args.json:
        print(json.dumps({"model": installed.name, "path": str(installed.path), "report": str(report),
                          **result.summary}, indent=1, default=str))  # fmt: skip
    else:
        print("\n".join(_lines(result.summary)))
        print(f"New model version '{installed.name}' ({installed.manifest.version}) installed at {installed.path}; "
              f"the original {Path(model).name} is unchanged. Report: {report}")  # fmt: skip
    print(DISCLAIMER, file=sys.stderr)
    return 0
