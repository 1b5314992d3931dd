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
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (recursive)")
    p.add_argument("--model", required=True, help="a model file or an installed model's name")
    p.add_argument("-o", "--output", help="write results as CSV")
    p.add_argument("--explain", choices=["gradcam", "occlusion"], help="heatmap method")
    p.add_argument("--explain-dir", help="folder for <stem>.<method>.npy and .png heatmaps")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--frame", type=int, help="only this frame (from 1) of multi-frame images")
    p.set_defaults(func=cmd_predict)


def _image_files(paths: list[str], problems: list[str]) -> tuple[list[str], int]:
    """Image files under ``paths`` (folders recursive), and how many non-image files were skipped.

    Files named explicitly are always tried (a bad one is an error); a folder's non-image files
    (README, CSV...) are counted and reported as skipped, never silently dropped.
    """
    from ml.imaging.index import iter_files
    from ml.imaging.read import read_meta, sniff_kind

    files, skipped = [], 0
    for listed in iter_files(paths):
        if listed.error:
            problems.append(listed.error)
            continue
        if listed.member is not None:
            problems.append(f"{listed.source}: files inside ZIP archives are not classified by cxr predict; unzip first.")
            continue
        try:
            kind = sniff_kind(listed.path)
            if kind == "unknown" and listed.path not in paths:
                read_meta(listed.path)  # DICOM without preamble still counts as an image
        except CxrError:
            log.info("skipping %s: not an image", Path(listed.path).name)
            skipped += 1
            continue
        files.append(listed.path)
    return files, skipped


def cmd_predict(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise CxrError("--batch-size must be at least 1.")
    if args.explain_dir and not args.explain:
        args.explain = "gradcam"
    from ml.inference.predictor import load_predictor
    from ml.models import library

    predictor = load_predictor(library.resolve_model(args.model), device=args.device, batch_size=args.batch_size)
    print(f"Model {predictor.manifest.name} on {predictor.device_label}. {DISCLAIMER}", file=sys.stderr)

    problems: list[str] = []
    predictions = []
    explain_dir = Path(args.explain_dir) if args.explain_dir else None
    explainer = None
    if args.explain and explain_dir is not None:
        from ml.explain import make_explainer

        explain_dir.mkdir(parents=True, exist_ok=True)
        explainer = make_explainer(args.explain, predictor.model, predictor.manifest, predictor.device)
        explainer.open()
    try:
        files, skipped = _image_files(list(args.paths), problems)
        for path in files:
            predictions += _predict_file(path, args, predictor, explainer, explain_dir, problems)
    finally:
        if explainer is not None:
            explainer.close()

    if args.output:
        from ml.inference.export import write_csv

        write_csv(args.output, predictions, predictor.labels)
    for p in predictions:
        top = ", ".join(f"{label} {prob:.1%}" for label, prob in p.ranked()[:3])
        print(f"{p.path}\tframe {p.frame + 1}\t{top}")
    if skipped:
        print(f"cxr: skipped {skipped} file(s) that are not images", file=sys.stderr)
    for problem in problems:
        print(f"cxr: error: {problem}", file=sys.stderr)
    if not predictions and not problems:
        raise CxrError("No images found in the given paths.")
    return 2 if problems else 0


def _predict_file(path, args, predictor, explainer, explain_dir, problems) -> list:  # noqa: ANN001
    from ml.imaging.read import read_image

    try:
        image = read_image(path)
    except CxrError as exc:
        problems.append(str(exc))
        return []
    if args.frame is not None and not 1 <= args.frame <= image.n_frames:
        problems.append(f"{Path(path).name}: frame {args.frame} does not exist ({image.n_frames} frame(s)).")
        return []
    frames = [args.frame - 1] if args.frame else list(range(image.n_frames))
    results = predictor.predict([(image, f) for f in frames])
    if explainer is not None:
        for pred in results:
            _write_heatmap(image, pred, explainer, explain_dir, args.explain)
    return results


def _write_heatmap(image, prediction, explainer, folder: Path, method: str) -> None:  # noqa: ANN001
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
