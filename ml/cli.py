"""The `cxr` command: headless access to everything CXR Studio does. Not for diagnostic use.

Errors a user can cause end with exit status 2 and one readable line on stderr; unexpected
errors print one line too and the traceback goes to the log file (never to the terminal).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Callable, Sequence

from ml import DISCLAIMER, __version__
from ml.errors import CxrError

log = logging.getLogger("cxr")

Handler = Callable[[argparse.Namespace], int]
_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def subcommand(register: Callable[[argparse._SubParsersAction], None]) -> Callable:
    _SUBCOMMANDS.append(register)
    return register


# ---------------------------------------------------------------- info / render
@subcommand
def _register_imaging(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print an image's metadata")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("render", help="write what the viewer shows at 1:1 as an 8-bit PNG")
    p.add_argument("path")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--frame", type=int, default=1, help="frame number, from 1 (default 1)")
    p.add_argument("--window", type=float, nargs=2, metavar=("CENTER", "WIDTH"), help="VOI window")
    p.set_defaults(func=cmd_render)


def cmd_info(args: argparse.Namespace) -> int:
    from ml.imaging.header import read_header
    from ml.imaging.read import is_non_image

    meta = read_header(args.path)  # the one header reader: a truncated file is an error here too
    data = meta.to_dict()
    data["non_image_object"] = is_non_image(meta)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    spacing = meta.pixel_spacing
    rows = [
        ("File", meta.path),
        ("Kind", meta.kind),
        ("Patient", f"{meta.patient_name} ({meta.patient_id})" if meta.patient_id else meta.patient_name),
        ("Sex / birth date", f"{meta.patient_sex} / {meta.patient_birth_date}"),
        ("Study", f"{meta.study_date} {meta.study_description}".strip()),
        ("Series", f"{meta.series_number or ''} {meta.series_description}".strip()),
        ("SOP class", meta.sop_class_name or meta.sop_class_uid),
        ("Modality", meta.modality),
        ("View / laterality", f"{meta.view_position} / {meta.laterality}"),
        ("Size", f"{meta.columns} x {meta.rows}, {meta.n_frames} frame(s)"),
        ("Photometric", meta.photometric),
        ("Bits stored", f"{meta.bits_stored} ({'signed' if meta.pixel_representation else 'unsigned'})"),
        ("Transfer syntax", f"{meta.transfer_syntax_name} ({meta.transfer_syntax_uid})" if meta.transfer_syntax_uid else ""),
        ("Lossy", f"yes: {meta.lossy_reason}" if meta.lossy else "no"),
        ("Pixel spacing", f"{spacing.row_mm:g} x {spacing.col_mm:g} mm ({spacing.source})" if spacing else "uncalibrated"),
    ]
    if data["non_image_object"]:
        rows.append(("Note", "non-image object: listed, not displayed"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from ml.fileio import save_png_atomic
    from ml.imaging.display import manual_window, render
    from ml.imaging.read import read_image

    image = read_image(args.path)
    voi = manual_window(image, args.window[0], args.window[1], frame=args.frame - 1) if args.window else None
    if args.window and args.window[1] <= 0:
        raise CxrError("The window width must be positive.")
    out = render(image, frame=args.frame - 1, voi=voi)
    save_png_atomic(args.output, out)
    return 0


# ---------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxr", description=f"CXR Studio command-line tool. {DISCLAIMER}"
    )
    parser.add_argument("--version", action="version", version=f"cxr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _load_optional_subcommands()
    for register in _SUBCOMMANDS:
        register(sub)
    return parser


def _load_optional_subcommands() -> None:
    """Import the modules that register the model, prediction and training subcommands."""
    import importlib

    for name in ("ml.cli_models", "ml.cli_predict", "ml.cli_train", "ml.cli_calibrate", "ml.cli_pacs"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not args.verbose:  # pydicom warns about every non-conformant value; one line per error is ours
        from ml.imaging.pydicom_logs import quiet_pydicom

        warnings.filterwarnings("ignore", category=UserWarning)
        quiet_pydicom(logging.CRITICAL)  # without importing pydicom: `cxr models list` needs none
    try:
        return int(args.func(args) or 0)
    except CxrError as exc:
        print(f"cxr: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cxr: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("cxr: error: out of memory", file=sys.stderr)
        return 2
    except RecursionError:
        print("cxr: error: the input is damaged (nested too deeply to read)", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, traceback to the log
        return _unexpected(exc)
    except BaseException as exc:  # a Rust extension's panic (pyo3_runtime.PanicException)
        if type(exc).__name__ != "PanicException":
            raise
        return _unexpected(exc)


def _unexpected(exc: BaseException) -> int:
    from ml.logfile import log_unexpected

    where = log_unexpected(exc)
    print(f"cxr: something went wrong ({type(exc).__name__}); details in {where}", file=sys.stderr)
    return 1
