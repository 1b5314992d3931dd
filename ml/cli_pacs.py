"""`cxr pacs echo|find|get|send NODE ...`: the PACS from the command line; `cxr anonymise PATH... -o DIR`.
Not for diagnostic use.

NODE is a name from the node file (``<user data>/pacs/nodes.json``) or an address:
``dicom://AET@host:port`` or ``http(s)://host/dicom-web``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ml.cli import subcommand

# ml.pacs.DEFAULT_AET (tests/test_backend_imports.py checks they agree): importing ml.pacs to
# register the subcommand would import pydicom and pynetdicom for every `cxr` command.
DEFAULT_AET = "CXRSTUDIO"


@subcommand
def _register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pacs", help="echo, search, retrieve from and send to a PACS node")
    actions = p.add_subparsers(dest="pacs_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=help_text)
        a.add_argument("node", metavar="NODE", help="node name, dicom://AET@host:port or http(s)://host/dicom-web")
        a.add_argument("--aet", default=DEFAULT_AET, help=f"our own AE title (default {DEFAULT_AET})")
        return a

    a = action("echo", "check that a node answers (C-ECHO, or a QIDO-RS request)")
    a.set_defaults(func=cmd_echo)
    a = action("find", "search a node for studies (C-FIND / QIDO-RS)")
    a.add_argument("--patient-id", default="")
    a.add_argument("--patient-name", default="")
    a.add_argument("--accession", default="")
    a.add_argument("--study-date", default="", help="YYYYMMDD or YYYYMMDD-YYYYMMDD")
    a.add_argument("--modality", default="")
    a.add_argument("--series-of", metavar="STUDY_UID", default="", help="list this study's series instead")
    a.add_argument("--json", action="store_true", help="machine-readable output")
    a.set_defaults(func=cmd_find)
    a = action("get", "retrieve a study (C-GET / WADO-RS) into the cache or -o DIR")
    a.add_argument("--study", required=True, metavar="UID", help="StudyInstanceUID")
    a.add_argument("-o", "--output", help="folder to retrieve into (default: the user's cache)")
    a.add_argument("--protocol", choices=["auto", "dimse", "dicomweb"], default="auto")
    a.set_defaults(func=cmd_get)
    a = action("send", "send DICOM files to a node (C-STORE / STOW-RS)")
    a.add_argument("files", nargs="+", metavar="FILE")
    a.set_defaults(func=cmd_send)

    p = sub.add_parser("anonymise", aliases=["anonymize"],
                       help="export DICOM files de-identified (new names, IDs, UIDs; dates shifted)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files or folders (recursive)")
    p.add_argument("-o", "--output", required=True, help="folder to write <study>/<series>/<instance>.dcm into")
    from ml.dicom_out.anonymise import add_cli_arguments  # --dicomdir, --zip (no pydicom at import)

    add_cli_arguments(p)
    p.set_defaults(func=cmd_anonymise)


def _node(args: argparse.Namespace):  # noqa: ANN202 - ml.pacs.Node
    from ml.pacs import resolve_node
    from ml.pacs.nodes import _check_aet

    _check_aet(args.aet)
    return resolve_node(args.node)


def cmd_echo(args: argparse.Namespace) -> int:
    from ml.pacs import echo

    node = _node(args)
    protocol = echo(node, args.aet)
    print(f"{node.address}: {protocol} OK")
    return 0


def cmd_find(args: argparse.Namespace) -> int:
    from ml.pacs import Query, find

    node = _node(args)
    query = Query(patient_id=args.patient_id, patient_name=args.patient_name, accession_number=args.accession,
                  study_date=args.study_date, modality=args.modality,
                  level="SERIES" if args.series_of else "STUDY", study_uid=args.series_of)
    matches = find(node, query, args.aet)
    if args.json:
        print(json.dumps([m.to_dict() for m in matches], indent=2))
        return 0
    for m in matches:
        if m.level == "SERIES":
            print(f"{m.series_uid}\t{m.series_number}\t{m.modalities}\t{m.n_instances}\t{m.description}")
        else:
            print(f"{m.study_uid}\t{m.study_date}\t{m.patient_id}\t{m.modalities}\t{m.n_instances}\t{m.description}")
    print(f"{len(matches)} match(es)", file=sys.stderr)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from ml.pacs import retrieve

    node = _node(args)

    def progress(done: int, total: int, message: str) -> None:
        if args.verbose:
            print(f"{done}/{total or '?'} {message}", file=sys.stderr)

    folder = retrieve(node, args.study, Path(args.output) if args.output else None, args.aet, progress,
                      protocol=args.protocol)
    print(f"{folder}\t{sum(1 for _ in folder.iterdir())} instance(s)")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from ml.pacs import send

    node = _node(args)
    count = send(node, [Path(f) for f in args.files], args.aet)
    print(f"{count} file(s) sent to {node.address}")
    return 0


def cmd_anonymise(args: argparse.Namespace) -> int:
    from ml.dicom_out.anonymise import run_cli

    return run_cli(args)
