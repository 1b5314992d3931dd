"""`cxr predict ... --dicom-out DIR [--send NODE]`: each analysed DICOM image's results as a TID 1500
SR (and, with --explain, the heatmap as a Parametric Map), saved and optionally sent to a PACS node.
Not for diagnostic use."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ml.fileio import sha256_file


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dicom-out", metavar="DIR",
                   help="write each DICOM image's results as a DICOM SR (+ a Parametric Map with --explain)")
    p.add_argument("--dicom-capture", action="store_true",
                   help="with --dicom-out and --explain: also a Secondary Capture with the heatmap burned in")
    p.add_argument("--send", metavar="NODE", help="send the DICOM results to this PACS node (needs --dicom-out)")
    p.add_argument("--aet", default="CXRSTUDIO", help="our AE title for --send (default CXRSTUDIO)")


def export(args: argparse.Namespace, predictions: list, predictor, model_path: Path) -> list[Path]:  # noqa: ANN001
    """Write (and send) the DICOM results of ``predictions``; the files written."""
    from ml.dicom_out.results import Algorithm, measurement_report, parametric_map, read_source, write
    from ml.errors import CxrError
    from ml.imaging.sniff import sniff_kind

    if args.send and not args.dicom_out:
        raise CxrError("--send needs --dicom-out DIR (the results are saved before they are sent).")
    capture = bool(getattr(args, "dicom_capture", False))
    if capture and not (args.dicom_out and args.explain):
        raise CxrError("--dicom-capture needs --dicom-out DIR and --explain METHOD (it burns the heatmap in).")
    node = None
    if args.send:
        from ml.pacs import resolve_node

        node = resolve_node(args.send)  # a bad address fails before anything is written
    folder = Path(args.dicom_out)
    manifest = predictor.manifest
    algorithm = Algorithm(manifest.name, str(manifest.version), sha256_file(model_path))
    explainer = None
    if args.explain:
        from ml.explain import make_explainer

        options = {"layer": args.explain_layer} if args.explain_layer else {}
        explainer = make_explainer(args.explain, predictor.model, manifest, predictor.device, **options)
        explainer.open()
    written: list[Path] = []
    skipped = 0
    try:
        for pred in predictions:
            if not Path(pred.path).is_file() or sniff_kind(pred.path) != "dicom":
                skipped += 1
                continue
            source = read_source(pred.path)
            stem = f"{source.SOPInstanceUID}_f{pred.frame + 1}"
            sr = measurement_report(source, pred, algorithm)
            written.append(write(sr, folder, f"{stem}.sr"))
            if explainer is not None:
                from ml.imaging.read import read_image

                image = read_image(pred.path)
                heatmap = explainer.explain(image, pred.frame, target=pred.top_label)
                written.append(write(parametric_map(source, heatmap, algorithm, pred.frame), folder,
                                     f"{stem}.pm"))
                if capture:
                    from ml.dicom_out.capture import secondary_capture
                    from ml.imaging.display import render
                    from ml.imaging.overlay import blend

                    rgb = blend(render(image, pred.frame), heatmap.values)
                    written.append(write(secondary_capture(source, rgb, pred.frame, description=heatmap.method),
                                         folder, f"{stem}.sc"))
    finally:
        if explainer is not None:
            explainer.close()
    if skipped:
        print(f"cxr: {skipped} non-DICOM image(s) have no DICOM results (no study to add them to)",
              file=sys.stderr)
    print(f"{len(written)} DICOM result object(s) in {folder}", file=sys.stderr)
    if node is not None and written:
        from ml.pacs import send

        count = send(node, written, args.aet)
        print(f"{count} DICOM result object(s) sent to {node.address}", file=sys.stderr)
    return written
