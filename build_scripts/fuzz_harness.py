"""The fuzz engine (issue 11): Hypothesis draws inputs, a memory-limited worker process reads them.

A *target* (``fuzz_dicom``: dicom, zip, dicomdir; ``fuzz_models``: models) says how to make its
seed files, which mutation specs to draw, how to turn a spec into a file, and which project code
reads it. This module runs the inputs one at a time in a worker process (spawned, so nothing of the
parent's memory is inherited) under an address-space limit and with a timeout per input. An input
fails on any exception outside the ml.errors family, a crash of the worker, a hang, or a peak RSS
over the budget; the worker is restarted after a crash or hang and the next input runs.
"""

from __future__ import annotations

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
for _path in (REPO, REPO / "build_scripts"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

DECODE_BUDGET_MB = 256  # what one decoded image may take in the worker (sizes above: refused)
MEMORY_LIMIT = 3 << 30  # the worker's address space (targets that import torch: headroom instead)
RSS_BUDGET = 1536 << 20  # peak resident memory allowed
TIMEOUT_S = 5.0  # per input (issue 11: no hang over 5 s)
MAKE_TIMEOUT_S = 120.0  # making one mutated input (pydicom re-saving deep sequences is slow)


def get_target(name: str) -> Any:
    """The target object called ``name`` (imported on demand: the worker imports only its own)."""
    if name == "models":
        import fuzz_models

        return fuzz_models.TARGET
    import fuzz_dicom

    return fuzz_dicom.TARGETS[name]


def shared_dicom_dir() -> Path:
    from tests.shared_data import data_root

    return Path(data_root()) / "dicom"


def generate(n: int, seed: int, strategy: Any, each: Any = None) -> list[Any]:
    """``n`` specs drawn by Hypothesis from ``seed`` (generation only: no shrinking here); with
    ``each``, every spec is handed to it as it is drawn (and none are kept)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    specs: list[Any] = []

    @hseed(seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(spec: Any) -> None:
        if each is None:
            specs.append(spec)
        else:
            each(spec)

    collect()
    return specs[:n]


# ------------------------------------------------------------------ the worker
def vm_size() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def limit_address_space(limit: int) -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass


def peak_rss() -> int:
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


def _serve(conn: Any, name: str, dicom_dir: str, budget_mb: int, limit: int) -> None:
    os.environ["CXR_STUDIO_DECODE_BUDGET_MB"] = str(budget_mb)
    target = get_target(name)
    headroom = getattr(target, "HEADROOM", 0)
    if not headroom:
        limit_address_space(limit)  # before anything is imported: the whole process is bounded
    import logging
    import shutil
    import traceback
    import warnings

    warnings.simplefilter("ignore")  # pydicom warns about every non-conformant value
    logging.getLogger().addHandler(logging.NullHandler())  # records are made, nothing is printed
    work = Path(tempfile.mkdtemp(prefix="cxr-fuzz-"))
    seeds = target.seeds(Path(dicom_dir), work)
    if headroom:
        # torch reserves gigabytes of address space on import (a limit set before it makes the
        # import fail): bound what the readers may add to what is mapped once everything is loaded
        limit_address_space(vm_size() + headroom)
    conn.send(len(seeds))
    from ml.errors import CxrError

    # errors Python can only print (in a destructor, a finaliser: PyErr_Print goes to excepthook) fail too
    unraisable: list[str] = []
    sys.unraisablehook = lambda u: unraisable.append(f"{u.exc_type.__name__}: {u.exc_value} ({u.err_msg})")
    sys.excepthook = lambda kind, value, tb: unraisable.append(f"{kind.__name__}: {value}")

    while True:
        spec = conn.recv()
        if spec is None:
            break
        case = work / "case"
        shutil.rmtree(case, ignore_errors=True)
        path = target.make(seeds, spec, work, case)  # outside the try: a bad spec ends the worker
        conn.send("ready")  # the timeout counts from here: making the input is not the reader's time
        try:
            result = target.read(path, work)
        except BaseException as exc:  # noqa: BLE001 - what we are looking for
            if isinstance(exc, CxrError):
                result = ("handled", "")
            else:
                tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
                result = ("uncaught", f"{type(exc).__name__}: {tail[-600:]}")
        if unraisable and result[0] != "uncaught":
            result = ("uncaught", f"unraisable {unraisable[0]}")
        unraisable.clear()
        conn.send((*result, peak_rss()))
    shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------ the parent
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
        if not self.conn.poll(180):
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
            generate(n, seed, get_target(target).strategy(runner.seeds()), each=one)
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
        ops = list(spec[1]) if isinstance(spec[1], list) else None
        changed = True
        while ops is not None and changed and len(ops) > 1:
            changed = False
            for i in range(len(ops)):
                trial = (spec[0], ops[:i] + ops[i + 1:])
                if runner.run(trial)[0] == kind:
                    ops, changed = trial[1], True
                    break
        return spec if ops is None else (spec[0], ops)
    finally:
        runner.close()


def save_failure(target: str, spec: Any, dicom_dir: Path, corpus: Path) -> Path:
    """The failing input itself, as a file in ``corpus`` (named by its hash)."""
    import shutil

    work = Path(tempfile.mkdtemp())
    try:
        impl = get_target(target)
        path = impl.make(impl.seeds(dicom_dir, work), spec, work, work / "case")
        data = path.read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    corpus.mkdir(parents=True, exist_ok=True)
    out = corpus / f"{target}-{hashlib.sha256(data).hexdigest()[:12]}{impl.SUFFIX}"
    out.write_bytes(data)
    return out
