"""The first import of torch from several worker threads at once (a first start of the app).

Seen on a first start: the "listing installed models" job failed with ``'_OpNamespace' 'prims'
object has no attribute 'sum'`` while another worker imported torchvision: two threads ran
torch's first import at once. :func:`ml.lazy.ensure_torch` does that first import once, under one
lock, and every job that may be the first to need torch calls it. Each case runs in a fresh
interpreter (the first import is the whole point).

Without the guard, eight threads that each import a different part of torch at once
(``torch._refs``, ``torchvision``, ``torch.nn.functional``, ``safetensors.torch``, ...) failed in
every run on the development machine (``_DeadlockError`` / half-initialised modules); the first
test is that same start with the guard.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_SUBMODULES = """
import importlib, json, sys, threading, traceback
from ml.lazy import ensure_torch
mods = ["torch._refs", "torch", "torchvision", "torch.nn.functional", "safetensors.torch",
        "captum.attr", "torch._prims", "torchvision.models"]
barrier = threading.Barrier(len(mods))
errors = []
def run(name):
    barrier.wait()
    try:
        ensure_torch()
        importlib.import_module(name)
        import torch
        torch.ops.prims.sum  # what the app's job failed on
        float(torch.ones(3).sum())
    except BaseException:
        errors.append(name + ": " + traceback.format_exc()[-500:])
threads = [threading.Thread(target=run, args=(m,)) for m in mods]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({"errors": errors}))
"""

# The app's own jobs, as the panel's and the library dialog's pools start them on a first start
# (an empty library: the shipped default model gets installed, which imports torch). A finder on
# sys.meta_path records which thread looks up each torch/torchvision module while either is still
# half-imported: all of them must come from one thread.
_JOBS = """
import importlib, json, sys, threading, traceback
first = []
def complete(name):
    m = sys.modules.get(name)
    return m is not None and not getattr(getattr(m, "__spec__", None), "_initializing", False)
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision") and not (complete("torch") and complete("torchvision")):
            first.append((threading.current_thread().name, name))
        return None
sys.meta_path.insert(0, Watch())
from app.analysis import evidence_jobs, jobs
from ml.models.library import bundled_default_model
src = str(bundled_default_model())
fns = {"list-1": jobs.list_models, "list-2": jobs.list_models, "inspect": jobs.inspect_file(src),
       "load": jobs.load_model(src, "cpu"), "catalogue": jobs.load_catalogue}
barrier = threading.Barrier(len(fns))
errors, results = [], {}
def run(name, fn):
    barrier.wait()
    try:
        results[name] = fn(lambda *a: None, None)
    except BaseException:
        errors.append(name + ": " + traceback.format_exc()[-800:])
threads = [threading.Thread(target=run, args=kv, name=kv[0]) for kv in fns.items()]
[t.start() for t in threads]
[t.join() for t in threads]
import torch
torch.ops.prims.sum
print(json.dumps({"errors": errors, "threads": sorted({t for t, _ in first}),
                  "listed": [len(results.get(k) or []) for k in ("list-1", "list-2")]}))
"""


def _run(code: str, home: Path) -> dict:
    env = dict(os.environ, CXR_STUDIO_HOME=str(home), PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_eight_threads_importing_parts_of_torch_at_once_all_succeed_with_the_guard(tmp_path: Path) -> None:
    got = _run(_SUBMODULES, tmp_path)
    assert got["errors"] == []


def test_the_apps_jobs_started_at_once_on_a_first_start_import_torch_in_one_thread(tmp_path: Path) -> None:
    for attempt in range(2):  # a fresh interpreter and an empty library each time
        got = _run(_JOBS, tmp_path / str(attempt))
        assert got["errors"] == []
        assert got["listed"] == [1, 1]  # both listings see the installed default model
        assert len(got["threads"]) == 1, got["threads"]  # torch and torchvision: one thread's import


def test_ensure_torch_is_cheap_and_idempotent_once_done() -> None:
    from ml.lazy import ensure_torch, torch_ready

    torch = ensure_torch()
    assert torch_ready() and torch is sys.modules["torch"]
    assert ensure_torch() is torch
