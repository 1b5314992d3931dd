"""Fuzzing model files (issue 11): only ml.errors failures, whatever the bytes.

Hypothesis mutates small model files made in the worker (a CXR Studio .safetensors, mostly in its
JSON header; a PyTorch zip state dict; a pre-1.6 legacy file) and draws manifests with fields
replaced by JSON-shaped values; each input goes through the readers of ``cxr models import/info``
and the library (build_scripts/fuzz_models.py), in the fuzz engine's worker process
(build_scripts/fuzz_harness.py): its address space bounded to torch's mapping plus 2 GiB, a timeout
per input, its peak RSS measured. Any exception outside the CxrError family, a crash, a hang or a
peak RSS over the budget fails. A fixed seed plus one that changes every day (printed with the
command that replays it). ``CXR_FUZZ_MODEL_INPUTS`` sets the inputs (default 600, all four kinds
drawn in turn); the long run is ``build_scripts/fuzz.py --target models``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

BUILD_SCRIPTS = Path(__file__).resolve().parents[1] / "build_scripts"
if str(BUILD_SCRIPTS) not in sys.path:
    sys.path.insert(0, str(BUILD_SCRIPTS))  # spawn workers inherit sys.path: they import it too

import fuzz as engine  # noqa: E402
import fuzz_models  # noqa: E402

FIXED_SEED = 20261103
ROTATING_SEED = int(time.time()) // 86400  # a new one every day
INPUTS = int(os.environ.get("CXR_FUZZ_MODEL_INPUTS", "600"))
TIMEOUT_S = 20.0  # a hang; generous because the suite shares two cores with everything else


def test_mutated_model_files_and_manifests_only_ever_give_readable_errors(dicom_dir: Path) -> None:
    for seed, count in ((FIXED_SEED, INPUTS - INPUTS // 3), (ROTATING_SEED, INPUTS // 3)):
        figures = engine.fuzz("models", count, seed, dicom_dir, timeout_s=TIMEOUT_S)
        replay = f"python build_scripts/fuzz.py --target models --seed {seed} --inputs {count}"
        shown = "\n".join(f"  {kind}: {spec}\n    {detail.strip()[-300:]}" for spec, kind, detail in figures.failures[:5])
        assert not figures.failures, f"seed {seed}: {len(figures.failures)} failing input(s) ({replay}):\n{shown}"
        assert figures.inputs >= 0.9 * count  # Hypothesis may draw a few duplicates fewer
        assert figures.ok > 0  # some mutations leave a loadable file: the readers really ran
        assert 0 < figures.peak_rss < engine.RSS_BUDGET, f"seed {seed}: peak RSS {figures.peak_rss >> 20} MiB"


def test_the_model_seeds_load_and_a_damaged_header_is_refused(dicom_dir: Path) -> None:
    """The fuzz is not vacuous: each unchanged seed reads without error in the limited worker (so the
    readers run past the header), and a header length claiming 2^63 bytes or a manifest naming no
    architecture is refused with a readable error. (Crash and restart handling is the engine's,
    tested in test_fuzz_dicom.py.)"""
    runner = engine.Runner("models", dicom_dir, timeout_s=TIMEOUT_S)
    try:
        assert runner.seeds() == 4
        for kind in range(3):
            assert runner.run((kind, []))[0] == "ok", fuzz_models.KINDS[kind]
        assert runner.run((3, {}))[0] == "ok"
        assert runner.run((0, [("length", True, 0.0, (1 << 63) - 1)]))[0] == "handled"
        assert runner.run((3, {"architecture": ["not", "a", "name"]}))[0] == "handled"
        assert runner.run((1, [("truncate", 0.5)]))[0] == "handled"
    finally:
        runner.close()


def test_a_bytearray8_with_a_bogus_length_is_refused_without_a_system_error(tmp_path: Path, monkeypatch) -> None:
    """Found by the long model fuzz: a truncated torch zip whose first byte became 0x96 (BYTEARRAY8) is read as a
    legacy pickle claiming a 2 PB bytearray; CPython 3.11's unpickler then frees a bytearray that still
    has an exported buffer and prints "SystemError: deallocated bytearray object has exported buffers"
    (through sys.excepthook, outside any try). The restricted reader refuses protocol-5 buffer opcodes."""
    import torch

    from ml.errors import ModelFileError
    from ml.models import importing

    printed: list[BaseException] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: printed.append(value))
    path = tmp_path / "bad.pt"
    with path.open("wb") as fh:
        torch.save({"w": torch.zeros(4)}, fh)
    data = bytearray(path.read_bytes())[: path.stat().st_size // 2]  # truncated, as the fuzz had it
    data[0] = 0x96  # "PK\x03\x04...": BYTEARRAY8 with the next 8 bytes as its length
    path.write_bytes(bytes(data))
    for _ in range(3):  # the SystemError appeared from the second read in one process
        try:
            importing.extract_state_dict(importing.safe_torch_load(path))
        except ModelFileError:
            pass
    assert printed == []
