"""Fuzz the file readers (issue 11): mutated DICOM files, ZIP archives and DICOMDIRs.

    python build_scripts/fuzz.py [--target dicom|containers|all] [--inputs 10000] [--seed N]

Inputs are structured mutations (byte flips, truncation, absurd length fields, wrong VRs,
absurd size attributes, deep sequences) of the shared files in ../shared/data/dicom, drawn by
Hypothesis from a seed. Each input runs through the code paths of ``cxr info`` (the header
reader), ``cxr render`` (decode + render of frame 1) and the indexer, in a worker process under an
address-space limit, with a timeout per input. An input fails on any exception outside the
ml.errors family (an indexer message "something went wrong"), a crash of the worker, a hang, or
a peak RSS over the budget. Failures are minimised (mutations dropped while it still fails) and
written to tests/fuzz_corpus/. The figures are printed as a Markdown table.

tests/test_fuzz_dicom.py runs the same engine with fewer inputs in the suite.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DECODE_BUDGET_MB = 256  # what one decoded image may take in the worker (sizes above: refused)
MEMORY_LIMIT = 3 << 30  # the worker's address space
RSS_BUDGET = 1536 << 20  # peak resident memory allowed
TIMEOUT_S = 5.0  # per input (issue 11: no hang over 5 s)
MAKE_TIMEOUT_S = 120.0  # making one mutated input (pydicom re-saving deep sequences is slow)
SEEDS = ("emri_small_RLE.dcm", "JLSL_16_15_1_1F.dcm", "SC_rgb.dcm", "liver_deflate.dcm",
         "emri_small_jpeg_2k_lossless.dcm", "rsna_cxr_pa.dcm", "emri_small_big_endian.dcm", "JPEG-LL.dcm",
         "bad_sequence.dcm", "explicit_VR-UN.dcm", "parametric_map_float.dcm", "SC_rgb_2frame.dcm")
_VRS = (b"PN", b"US", b"UL", b"SS", b"SL", b"FD", b"FL", b"DS", b"IS", b"LO", b"SH", b"CS", b"UI", b"SQ",
        b"OB", b"OW", b"DA", b"TM", b"UN", b"AT")
_SIZE_KEYWORDS = ("Rows", "Columns", "BitsAllocated", "BitsStored", "SamplesPerPixel", "NumberOfFrames",
                  "PixelRepresentation", "PlanarConfiguration", "HighBit")
TARGETS = ("dicom", "zip", "dicomdir")


def shared_dicom_dir() -> Path:
    from tests.shared_data import data_root

    return Path(data_root()) / "dicom"


# ------------------------------------------------------------------ inputs (Hypothesis)
def strategy(n_seeds: int, deep: bool = True) -> Any:
    """A mutation spec: (seed file index, [operations]); positions are fractions of the file.
    ``deep=False``: no deep sequences (for DICOMDIRs: see the README, Hardening, known limits)."""
    from hypothesis import strategies as st

    frac = st.floats(0.0, 1.0, allow_nan=False)
    header_frac = st.floats(0.0, 0.05, allow_nan=False)  # most parsing happens near the start
    op = st.one_of(
        st.tuples(st.just("flip"), st.one_of(header_frac, frac), st.integers(0, 255)),
        st.tuples(st.just("truncate"), frac),
        st.tuples(st.just("length"), header_frac, st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF])),
        st.tuples(st.just("vr"), frac, st.sampled_from(_VRS)),
        st.tuples(st.just("attr"), st.sampled_from(_SIZE_KEYWORDS),
                  st.sampled_from([0, 1, 3, 7, 17, 33, 255, 4097, 32767, 65535, -1])),
        *([st.tuples(st.just("deep"), st.integers(1, 150))] if deep else []),  # ~150: past the recursion limit
        st.tuples(st.just("wrongvr"), st.sampled_from(["PatientName", "PatientID", "StudyDate", "Rows", "WindowCenter"])),
    )
    return st.tuples(st.integers(0, n_seeds - 1), st.lists(op, min_size=1, max_size=4))


def generate(n: int, seed: int, n_seeds: int, deep: bool = True, each: Any = None) -> list[Any]:
    """``n`` specs drawn by Hypothesis from ``seed`` (generation only: no shrinking here); with
    ``each``, every spec is handed to it as it is drawn (and none are kept)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    specs: list[Any] = []

    @hseed(seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy(n_seeds, deep))
    def collect(spec: Any) -> None:
        if each is None:
            specs.append(spec)
        else:
            each(spec)

    collect()
    return specs[:n]


def _structured(data: bytes, ops: list[Any]) -> bytes:
    """The pydicom-level operations (attributes, deep sequences, wrong VRs) applied by re-saving."""
    import io

    import pydicom
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    for op in ops:
        if op[0] == "attr":
            ds.add(DataElement(pydicom.datadict.tag_for_keyword(op[1]), "IS" if op[1] == "NumberOfFrames" else "US",
                               op[2] if op[2] >= 0 or op[1] == "NumberOfFrames" else 65535))
        elif op[0] == "deep":
            inner = Dataset()
            for _ in range(op[1]):
                outer = Dataset()
                outer.ReferencedSOPSequence = Sequence([inner])
                inner = outer
            ds.ReferencedImageSequence = Sequence([inner])
        elif op[0] == "wrongvr":
            ds.add(DataElement(pydicom.datadict.tag_for_keyword(op[1]), "UL", b"Fuzz^Name^x"))
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def mutate(data: bytes, ops: list[Any]) -> bytes:
    structured = [op for op in ops if op[0] in ("attr", "deep", "wrongvr")]
    if structured:
        try:
            data = _structured(data, structured)
        except Exception:  # noqa: BLE001 - a seed pydicom cannot re-save: byte operations only
            pass
    buf = bytearray(data)
    for op in ops:
        if not buf:
            break
        at = min(len(buf) - 1, int(op[1] * len(buf))) if isinstance(op[1], float) else 0
        if op[0] == "flip":
            buf[at] = op[2]
        elif op[0] == "truncate":
            del buf[max(1, at):]
        elif op[0] == "length":
            buf[at: at + 4] = int(op[2]).to_bytes(4, "little")
        elif op[0] == "vr":
            hit = buf.find(b"\x00", at)  # the next element-ish boundary: overwrite 2 bytes after a tag
            pos = at if hit < 0 else min(len(buf) - 2, hit + 3)
            buf[pos: pos + 2] = op[2]
    return bytes(buf)


# ------------------------------------------------------------------ the worker
def _limit(limit: int) -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass


def _run_dicom(path: Path, out_png: Path) -> str:
    """The code paths of ``cxr info``, ``cxr render`` and the indexer; the first error wins."""
    import argparse as ap

    from ml.cli import cmd_info, cmd_render
    from ml.errors import CxrError
    from ml.imaging.index import build_index

    outcome = "ok"
    devnull = open(os.devnull, "w")  # noqa: SIM115
    old, sys.stdout = sys.stdout, devnull
    try:
        for fn, args in ((cmd_info, ap.Namespace(path=str(path), json=False)),
                         (cmd_render, ap.Namespace(path=str(path), output=str(out_png), frame=1, window=None))):
            try:
                fn(args)
            except CxrError:
                outcome = "handled"
    finally:
        sys.stdout = old
        devnull.close()
    index = build_index([path.parent], cache_dir=path.parent / ".cache")
    for _source, message in index.errors:
        if "something went wrong" in message:
            raise RuntimeError(f"indexer: {message}")
    return "handled" if index.errors else outcome


def _seed_bytes(target: str, dicom_dir: Path, work: Path) -> list[bytes]:
    if target == "dicom":
        return [(dicom_dir / name).read_bytes() for name in SEEDS if (dicom_dir / name).exists()]
    if target == "zip":
        import io
        import zipfile

        out = []
        for pair in (SEEDS[0:2], SEEDS[2:4], SEEDS[4:6]):
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for name in pair:
                    zf.writestr(f"study/{name}", (dicom_dir / name).read_bytes())
            out.append(buf.getvalue())
        return out
    from pydicom import dcmread
    from pydicom.fileset import FileSet

    fs_dir = work / "fileset"
    fs = FileSet()
    for i, name in enumerate(("rsna_cxr_pa.dcm", "SC_rgb.dcm", "emri_small_RLE.dcm")):
        ds = dcmread(dicom_dir / name)
        for keyword, value in (("PatientID", f"P{i}"), ("StudyID", "1"), ("SeriesNumber", 1), ("InstanceNumber", 1)):
            if not ds.get(keyword):  # what a DICOMDIR record needs
                setattr(ds, keyword, value)
        fs.add(ds)
    fs.write(fs_dir)
    return [(fs_dir / "DICOMDIR").read_bytes()]


def _serve(conn: Any, target: str, dicom_dir: str, budget_mb: int, limit: int) -> None:
    os.environ["CXR_STUDIO_DECODE_BUDGET_MB"] = str(budget_mb)
    _limit(limit)
    import logging
    import warnings

    warnings.simplefilter("ignore")  # pydicom warns about every non-conformant value
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    import shutil
    import traceback

    work = Path(tempfile.mkdtemp(prefix="cxr-fuzz-"))
    seeds = _seed_bytes(target, Path(dicom_dir), work)
    conn.send(len(seeds))
    while True:
        spec = conn.recv()
        if spec is None:
            break
        case = work / "case"
        shutil.rmtree(case, ignore_errors=True)
        if target == "dicomdir":
            shutil.copytree(work / "fileset", case)
            path = case / "DICOMDIR"
        else:
            case.mkdir()
            path = case / ("input.zip" if target == "zip" else "input.dcm")
        path.write_bytes(mutate(seeds[spec[0] % len(seeds)], spec[1]))
        conn.send("ready")  # the timeout counts from here: making the input is not the reader's time
        try:
            if target == "dicom":
                result = (_run_dicom(path, work / "out.png"), "")
            else:
                from ml.imaging.index import build_index

                index = build_index([path], cache_dir=work / "cache")
                bad = [m for _, m in index.errors if "something went wrong" in m]
                result = ("uncaught", bad[0]) if bad else ("handled" if index.errors else "ok", "")
        except BaseException as exc:  # noqa: BLE001 - what we are looking for
            from ml.errors import CxrError

            if isinstance(exc, CxrError):
                result = ("handled", "")
            else:
                tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
                result = ("uncaught", f"{type(exc).__name__}: {tail[-600:]}")
        conn.send((*result, _peak_rss()))
    shutil.rmtree(work, ignore_errors=True)


def _peak_rss() -> int:
    """This worker's own peak resident memory in bytes. Linux's ``ru_maxrss`` keeps the high-water mark
    of the process image before ``exec``: a spawned worker would report its parent's size (a test
    process with torch loaded: GBs). ``VmHWM`` belongs to the worker's own address space."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Figures:
    target: str
    inputs: int = 0
    ok: int = 0
    handled: int = 0
    failures: list[tuple[Any, str, str]] = field(default_factory=list)  # spec, kind, detail
    crashes: int = 0
    hangs: int = 0
    peak_rss: int = 0
    seconds: float = 0.0

    @property
    def uncaught(self) -> int:
        return sum(1 for _, kind, _ in self.failures if kind == "uncaught")

    @property
    def over_budget(self) -> bool:
        return self.peak_rss > RSS_BUDGET

    def row(self) -> str:
        return (f"| {self.target} | {self.inputs:,} | {self.ok + self.handled:,} ({self.handled:,} refused) | "
                f"{self.uncaught} | {self.crashes} | {self.hangs} | {self.peak_rss / (1 << 20):.0f} MiB | "
                f"{self.seconds:.0f} s |")


HEADER = ("| target | inputs | handled (readable error) | uncaught | crashes | hangs over 5 s | peak RSS | time |\n"
          "|---|---|---|---|---|---|---|---|")


class Runner:
    """One worker process at a time; a crash or hang ends it and the next input starts a new one."""

    def __init__(self, target: str, dicom_dir: Path, timeout_s: float = TIMEOUT_S,
                 budget_mb: int = DECODE_BUDGET_MB, limit: int = MEMORY_LIMIT) -> None:
        self.target, self.dicom_dir, self.timeout_s = target, dicom_dir, timeout_s
        self.budget_mb, self.limit = budget_mb, limit
        self.process: Any = None
        self.conn: Any = None
        self.n_seeds = 0

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, daemon=True,
                                   args=(child, self.target, str(self.dicom_dir), self.budget_mb, self.limit))
        self.process.start()
        child.close()
        if not self.conn.poll(120):
            raise RuntimeError("the fuzz worker did not start")
        self.n_seeds = self.conn.recv()

    def seeds(self) -> int:
        if self.process is None:
            self._start()
        return self.n_seeds

    def run(self, spec: Any) -> tuple[str, str, int]:
        if self.process is None or not self.process.is_alive():
            self._start()
        self.conn.send(spec)
        if self.conn.poll(MAKE_TIMEOUT_S):
            try:
                self.conn.recv()  # "ready": the mutated input is written
            except EOFError:
                self.process.join(5)
                return "crash", f"worker died making the input (exit {self.process.exitcode})", 0
        if self.conn.poll(self.timeout_s):
            try:
                return self.conn.recv()
            except EOFError:
                pass
            self.process.join(5)
            return "crash", f"worker died (exit {self.process.exitcode})", 0
        if not self.process.is_alive():
            return "crash", f"worker died (exit {self.process.exitcode})", 0
        self.process.kill()
        self.process.join(5)
        self.process = None
        return "hang", f"no answer within {self.timeout_s:.0f} s", 0

    def close(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.conn.send(None)
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()
        self.process = None


class _OutOfTime(Exception):
    pass


def fuzz(target: str, n: int, seed: int, dicom_dir: Path | None = None, timeout_s: float = TIMEOUT_S,
         max_seconds: float = float("inf")) -> Figures:
    dicom_dir = dicom_dir or shared_dicom_dir()
    runner = Runner(target, dicom_dir, timeout_s)
    figures = Figures(target)
    started = time.monotonic()
    try:
        def one(spec: Any) -> None:
            if time.monotonic() - started > max_seconds:
                raise _OutOfTime
            kind, detail, rss = runner.run(spec)
            figures.inputs += 1
            figures.peak_rss = max(figures.peak_rss, rss)
            if kind == "ok":
                figures.ok += 1
            elif kind == "handled":
                figures.handled += 1
            else:
                figures.crashes += kind == "crash"
                figures.hangs += kind == "hang"
                figures.failures.append((spec, kind, detail))

        try:
            generate(n, seed, runner.seeds(), deep=target != "dicomdir", each=one)
        except _OutOfTime:
            pass
    finally:
        runner.close()
    figures.seconds = time.monotonic() - started
    return figures


def minimise(target: str, spec: Any, kind: str, dicom_dir: Path) -> Any:
    """Drop operations one by one while the input still fails the same way."""
    runner = Runner(target, dicom_dir)
    try:
        ops = list(spec[1])
        changed = True
        while changed and len(ops) > 1:
            changed = False
            for i in range(len(ops)):
                trial = (spec[0], ops[:i] + ops[i + 1:])
                if runner.run(trial)[0] == kind:
                    ops, changed = trial[1], True
                    break
        return (spec[0], ops)
    finally:
        runner.close()


def save_failure(target: str, spec: Any, dicom_dir: Path, corpus: Path) -> Path:
    import shutil

    work = Path(tempfile.mkdtemp())
    seeds = _seed_bytes(target, dicom_dir, work)
    data = mutate(seeds[spec[0] % len(seeds)], spec[1])
    shutil.rmtree(work, ignore_errors=True)
    corpus.mkdir(parents=True, exist_ok=True)
    suffix = {"dicom": ".dcm", "zip": ".zip", "dicomdir": ".DICOMDIR"}[target]
    path = corpus / f"{target}-{hashlib.sha256(data).hexdigest()[:12]}{suffix}"
    path.write_bytes(data)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    parser.add_argument("--inputs", type=int, default=10_000, help="inputs per target (default 10000)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="Hypothesis seed (default: the time)")
    parser.add_argument("--max-seconds", type=float, default=float("inf"), help="stop each target after this long")
    args = parser.parse_args(argv)
    dicom_dir = shared_dicom_dir()
    targets = TARGETS if args.target == "all" else (args.target,)
    print(f"seed {args.seed}, {args.inputs} inputs per target, decode budget {DECODE_BUDGET_MB} MiB, "
          f"address space {MEMORY_LIMIT >> 20} MiB, RSS budget {RSS_BUDGET >> 20} MiB, timeout {TIMEOUT_S:.0f} s",
          flush=True)
    rows, failed = [], False
    for target in targets:
        figures = fuzz(target, args.inputs, args.seed, dicom_dir, max_seconds=args.max_seconds)
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
