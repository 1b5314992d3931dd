"""`cxr predict PATH... --model MODEL`: classify images headless, optionally with heatmaps."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ml import DISCLAIMER
from ml.cli import subcommand
from ml.errors import CxrError

log = logging.getLogger("cxr.predict")


@subcommand
def _register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify images with a model (not for diagnostic use)")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image files, folders (recursive), ZIP archives or DICOMDIRs")
    p.add_argument("--model", help="a model file or an installed model's name (default: the default model)")
    p.add_argument("-o", "--output", help="write results as CSV")
    p.add_argument("--explain", choices=["default", "gradcam", "hirescam", "gradcampp", "layercam", "occlusion"],
                   help="heatmap method ('default': the architecture's benchmarked default)")
    p.add_argument("--explain-layer", help="layer(s) for the CAM methods, dotted, comma-separated (e.g. layer3)")
    p.add_argument("--explain-faithfulness", action="store_true",
                   help="print each heatmap's deletion score (probability drop when its top 10%% is removed); "
                        "computes the heatmaps (--explain, default gradcam) without --explain-dir too")
    p.add_argument("--explain-dir", help="folder for <stem>.<method>.npy and .png heatmaps")
    p.add_argument("--occlusion-mode", default="full", choices=["full", "coarse-to-fine"],
                   help="occlusion grid: every window position (full), or a coarse grid first and the fine "
                        "grid only where the coarse map is in its top 25%% (coarse-to-fine: fewer passes)")
    p.add_argument("--occlusion-window", type=int, metavar="PX",
                   help="occlusion patch size on the model input (default: 32 px at 224, scaled)")
    p.add_argument("--occlusion-stride", type=int, metavar="PX",
                   help="step between occlusion patches (default: half the default window)")
    p.add_argument("--occlusion-fill", choices=["mean", "blur", "black"],
                   help="what fills the occlusion patch (default: the architecture's benchmarked fill, else black)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"],
                   help="forward passes on ONNX Runtime when installed and verified (auto), or torch")  # fmt: skip
    p.add_argument("--frame", type=int, help="only this frame (from 1) of multi-frame images")
    from ml.dicom_out.predict_export import add_arguments as add_dicom_out_arguments

    add_dicom_out_arguments(p)  # --dicom-out DIR, --send NODE, --aet
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise CxrError("--batch-size must be at least 1.")
    if args.frame is not None and args.frame < 1:
        raise CxrError("--frame counts from 1.")
    if (args.explain_dir or args.explain_faithfulness) and not args.explain:
        args.explain = "gradcam"
    from ml.inference.batch import classify_paths
    from ml.inference.predictor import load_predictor
    from ml.models import library

    model = library.resolve_model(args.model) if args.model else library.resolve_default_model()
    predictor = load_predictor(model, device=args.device, batch_size=args.batch_size, backend=args.backend)
    print(f"Model {predictor.manifest.name} on {predictor.status_label}. {DISCLAIMER}", file=sys.stderr)

    explain_dir = Path(args.explain_dir) if args.explain_dir else None
    explainer = None
    on_file = None
    if args.explain and (explain_dir is not None or args.explain_faithfulness):
        from ml.explain import METHOD_LABELS, make_explainer

        if explain_dir is not None:
            explain_dir.mkdir(parents=True, exist_ok=True)
        options = {"layer": args.explain_layer} if args.explain_layer else {}
        # occlusion's settings and the fast forward-only back-end; make_explainer drops them for the
        # other methods (after "default" has resolved to one)
        options.update(mode=args.occlusion_mode, baseline=args.occlusion_fill, window=args.occlusion_window,
                       stride=args.occlusion_stride, forward=predictor.fast_forward)  # fmt: skip
        explainer = make_explainer(args.explain, predictor.model, predictor.manifest, predictor.device, **options)
        explainer.open()
        layer = getattr(explainer, "layer_path", "") or ""
        method = METHOD_LABELS.get(explainer.method, explainer.method) + (f" at {layer}" if layer else "")

        def on_file(result, image) -> None:  # noqa: ANN001 - FileResult, XRayImage | None
            for pred in result.predictions if image is not None else []:
                if explain_dir is not None:
                    heatmap = _write_heatmap(image, pred, explainer, explain_dir, explainer.method)
                else:
                    heatmap = explainer.explain(image, pred.frame, target=pred.top_label)
                if args.explain_faithfulness:
                    from ml.explain.faithfulness import deletion_score

                    score = deletion_score(predictor.model, predictor.manifest, image, heatmap, pred.frame,
                                           device=predictor.device)
                    print(f"{pred.path}\tframe {pred.frame + 1}\t{method}\t{score.text()}")

    try:
        outcome = classify_paths(predictor, list(args.paths), frame=None if args.frame is None else args.frame - 1,
                                 on_file=on_file)
    finally:
        if explainer is not None:
            explainer.close()

    predictions, errors = outcome.predictions, outcome.errors
    if args.output:
        from ml.inference.export import write_csv

        write_csv(args.output, predictions, predictor.labels, errors)
    for p in predictions:
        top = ", ".join(f"{label} {prob:.1%}" for label, prob in p.ranked()[:3])
        scope = "" if p.in_scope else f"\tOUT OF SCOPE: {p.scope_note}"
        print(f"{p.path}\tframe {p.frame + 1}\t{top}{scope}")
    out_of_scope = sum(1 for p in predictions if not p.in_scope)
    if out_of_scope:
        print(f"cxr: {out_of_scope} image(s) do not look like frontal chest radiographs (in_scope = no): "
              "their results are for research use only", file=sys.stderr)
    if outcome.skipped:
        print(f"cxr: skipped {len(outcome.skipped)} file(s) that are not images", file=sys.stderr)
    if args.dicom_out or args.send:
        from ml.dicom_out.predict_export import export

        export(args, predictions, predictor, model)
    for _source, message in errors:
        print(f"cxr: error: {message}", file=sys.stderr)
    if not predictions and not errors:
        raise CxrError("No images found in the given paths.")
    if errors:
        classified = len(outcome.results) - len(errors)
        print(f"cxr: {len(errors)} of {len(outcome.results)} file(s) failed; {classified} classified",
              file=sys.stderr)
        return 2
    return 0


def _write_heatmap(image, prediction, explainer, folder: Path, method: str):  # noqa: ANN001, ANN201
    import numpy as np

    from ml.fileio import atomic_path, save_png_atomic
    from ml.imaging.display import render
    from ml.imaging.overlay import blend

    heatmap = explainer.explain(image, prediction.frame, target=prediction.top_label)
    stem = Path(prediction.path).stem + (f"_frame{prediction.frame + 1}" if image.n_frames > 1 else "")
    with atomic_path(folder / f"{stem}.{method}.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, heatmap.values.astype(np.float32))
    save_png_atomic(folder / f"{stem}.{method}.png", blend(render(image, prediction.frame), heatmap.values))
    return heatmap
