"""`cxr models list | import FILE | download NAME | info FILE | remove NAME`."""

from __future__ import annotations

import argparse
import json
import sys

from ml.cli import subcommand


@subcommand
def _register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="the model library: list, import, download, info, remove")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    q = msub.add_parser("list", help="installed models (and the downloadable catalogue with --catalogue)")
    q.add_argument("--catalogue", action="store_true", help="list the known pretrained weights too")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_list)

    q = msub.add_parser("import", help="add a .safetensors/.pth/.pt file to the library")
    q.add_argument("file")
    q.add_argument("--arch", help="architecture, for files that are not CXR Studio models")
    q.add_argument("--labels", help="comma-separated label names, in output order")
    q.add_argument("--task", choices=["multiclass", "multilabel"], help="default multiclass")
    q.add_argument("--name", help="name in the library (default: from the file)")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_import)

    q = msub.add_parser("download", help="download known pretrained weights into the library")
    q.add_argument("name")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_download)

    q = msub.add_parser("info", help="a model file's card (manifest)")
    q.add_argument("model", help="a model file or an installed model's name")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_info)

    q = msub.add_parser("remove", help="remove an installed model")
    q.add_argument("name")
    q.set_defaults(func=cmd_remove)


def cmd_list(args: argparse.Namespace) -> int:
    from ml.models import library

    library.ensure_default_model()  # the shipped default model, installed on first use (no network)
    models = library.list_models()
    if args.json:
        rows = [{"name": m.name, "path": str(m.path), "error": m.error, "default": m.default,
                 "manifest": m.manifest.to_dict() if m.manifest else None} for m in models]
        out: dict = {"installed": rows}
        if args.catalogue:
            from ml.models.catalogue import load_catalogue

            out["catalogue"] = [{"name": e.name, "url": e.url, "architecture": e.architecture}
                                for e in load_catalogue()]
        print(json.dumps(out, indent=2, default=str))
        return 0
    if not models:
        print("No models installed. Use `cxr models download NAME` (see --catalogue) or `cxr models import FILE`.")
    for m in models:
        if m.manifest is None:
            print(f"{m.name:<28} UNUSABLE: {m.error}")
            continue
        man = m.manifest
        name = f"{m.name} (default)" if m.default else m.name
        print(f"{name:<28} {man.architecture:<18} {man.task:<10} {len(man.labels)} labels  {m.path}")
    if args.catalogue:
        from ml.models.catalogue import load_catalogue

        print("\nDownloadable (cxr models download NAME):")
        for e in load_catalogue():
            print(f"  {e.name:<30} {e.architecture:<18} {e.url}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ml.models import library

    labels = [s.strip() for s in args.labels.split(",") if s.strip()] if args.labels else None
    installed = library.import_model(args.file, architecture=args.arch, labels=labels, task=args.task,
                                     name=args.name, overwrite=args.overwrite)
    print(installed.path)
    if installed.manifest is not None:
        from ml.models.catalogue import calibration_note

        recognised = installed.manifest.provenance.extra.get("recognised_as")
        if recognised:
            print(f"Recognised as the catalogue's '{recognised}': its labels and operating points are used.",
                  file=sys.stderr)
        note = calibration_note(installed.manifest)
        if note:
            print(f"Note: {note}", file=sys.stderr)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from ml.models.download import install_from_catalogue

    def progress(done: int, total: int, message: str) -> None:
        if sys.stderr.isatty() and total:
            print(f"\r{message} {100 * done // total:3d}%", end="", file=sys.stderr, flush=True)

    installed = install_from_catalogue(args.name, progress=progress, overwrite=args.overwrite)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(installed.path)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ml.models import bundle, library

    manifest = bundle.read_manifest(library.resolve_model(args.model))
    data = manifest.to_dict()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    for key in ("name", "version", "architecture", "task", "input_size", "channels", "description"):
        print(f"{key:<14} {data.get(key, '')}")
    print(f"{'labels':<14} {', '.join(manifest.labels)}")
    prov = data.get("provenance") or {}
    for key, value in prov.items():
        if value:
            print(f"{key:<14} {json.dumps(value, default=str) if isinstance(value, dict | list) else value}")
    print(manifest.disclaimer)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from ml.models import library

    print(f"removed {library.remove_model(args.name)}")
    return 0
