"""Fuzz the file readers (issue 11): mutated DICOM files, ZIP archives, DICOMDIRs and model files.

    python build_scripts/fuzz.py [--target dicom|zip|dicomdir|models|containers|all] [--inputs 10000]
                                 [--seed N] [--max-seconds S]

Inputs are drawn by Hypothesis from a seed (``fuzz_dicom``: structured mutations of the shared
files in ../shared/data/dicom and of ZIPs/DICOMDIRs made from them; ``fuzz_models``: mutated
.safetensors, PyTorch zip and legacy files, malformed manifests). Each input runs through the
project's readers in a worker process under an address-space limit, with a timeout per input
(``fuzz_harness``). An input fails on any exception outside the ml.errors family, a crash of the
worker, a hang, or a peak RSS over the budget. Failures are minimised (operations dropped while it
still fails) and written to tests/fuzz_corpus/. The figures are printed as a Markdown table.

tests/test_fuzz_dicom.py and tests/test_fuzz_models.py run the same engine with fewer inputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_dicom import mutate as mutate  # noqa: E402 - re-exported
from fuzz_dicom import strategy as strategy  # noqa: E402 - re-exported
from fuzz_harness import (  # noqa: E402 - re-exported: the engine's public names
    DECODE_BUDGET_MB,
    HEADER,
    MEMORY_LIMIT,
    REPO,
    RSS_BUDGET,
    TIMEOUT_S,
    Figures,
    Runner,
    fuzz,
    generate,
    minimise,
    save_failure,
    shared_dicom_dir,
)

TARGETS = ("dicom", "zip", "dicomdir", "models")
GROUPS = {"containers": ("zip", "dicomdir"), "all": TARGETS}

__all__ = ["DECODE_BUDGET_MB", "HEADER", "MEMORY_LIMIT", "RSS_BUDGET", "TARGETS", "TIMEOUT_S", "Figures", "Runner",
           "fuzz", "generate", "main", "minimise", "mutate", "save_failure", "shared_dicom_dir", "strategy"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=(*TARGETS, *GROUPS), default="all",
                        help="one target, 'containers' (zip + dicomdir) or 'all' (default)")
    parser.add_argument("--inputs", type=int, default=10_000, help="inputs per target (default 10000)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="Hypothesis seed (default: the time)")
    parser.add_argument("--max-seconds", type=float, default=float("inf"), help="stop each target after this long")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help=f"seconds per input (default {TIMEOUT_S:g})")
    args = parser.parse_args(argv)
    dicom_dir = shared_dicom_dir()
    targets = GROUPS.get(args.target, (args.target,))
    print(f"seed {args.seed}, {args.inputs} inputs per target, decode budget {DECODE_BUDGET_MB} MiB, "
          f"address space {MEMORY_LIMIT >> 20} MiB (models: torch's mapping + 2048 MiB), "
          f"RSS budget {RSS_BUDGET >> 20} MiB, timeout {args.timeout:g} s", flush=True)
    rows, failed = [], False
    for target in targets:
        figures = fuzz(target, args.inputs, args.seed, dicom_dir, timeout_s=args.timeout, max_seconds=args.max_seconds)
        rows.append(figures.row())
        for spec, kind, detail in figures.failures[:20]:
            small = minimise(target, spec, kind, dicom_dir)
            saved = save_failure(target, small, dicom_dir, REPO / "tests" / "fuzz_corpus")
            print(f"{target} {kind}: {small} -> {saved.name}\n    {detail.strip()[-400:]}", flush=True)
        failed = failed or bool(figures.failures) or figures.over_budget
        print(figures.row(), flush=True)
    print("\n" + HEADER)
    print("\n".join(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
