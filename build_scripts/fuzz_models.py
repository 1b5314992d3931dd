"""Fuzz target for model files (issue 11): only ml.errors failures, whatever the bytes.

Four kinds of input, drawn in turn: a mutated CXR Studio ``.safetensors`` (flips mostly in its
JSON header), a mutated PyTorch zip state dict, a mutated pre-1.6 legacy (pickle) file, and a
manifest with fields replaced by JSON-shaped values. Each goes through the readers of ``cxr models
import/info`` and the library: ``bundle.read_manifest`` + ``bundle.load_model``,
``importing.safe_torch_load`` + ``extract_state_dict``, ``ModelManifest.from_json``. Run by
:mod:`fuzz_harness` in its worker: the address space is bounded to what is mapped after torch's
import plus ``HEADROOM`` (a 432-byte file that allocates gigabytes is a failure, not an OOM kill).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

# one thread: torch's and OpenBLAS's thread pools reserve address space (and the fuzz needs none)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

KINDS = ("safetensors", "zip", "legacy", "manifest")
FIELDS = ("name", "architecture", "labels", "task", "input_size", "channels", "normalisation", "input_derivation",
          "thresholds", "calibration", "hidden_labels", "provenance", "temperature", "scope", "format_version")


def _byte_ops() -> Any:
    from hypothesis import strategies as st

    frac = st.floats(0.0, 1.0, allow_nan=False, exclude_max=True)
    op = st.one_of(
        st.tuples(st.just("flip"), st.booleans(), frac, st.integers(0, 255)),  # (..., in the header?, ...)
        st.tuples(st.just("insert"), frac, st.binary(max_size=16)),
        st.tuples(st.just("truncate"), frac),
        st.tuples(st.just("length"), st.booleans(), frac,
                  st.sampled_from([0, 1, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 40, (1 << 63) - 1])),
    )
    return st.lists(op, min_size=1, max_size=6)


def manifest_changes() -> Any:
    """Fields of a valid manifest replaced by JSON-shaped values (NaN and Infinity included)."""
    from hypothesis import strategies as st

    value = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    )
    return st.dictionaries(st.sampled_from(FIELDS), value, min_size=1, max_size=4)


def mutate(data: bytes, ops: list[Any], focus: int) -> bytes:
    """Byte operations; a flip or length field "in the header" lands in the first ``focus`` bytes."""
    out = bytearray(data)
    for op in ops:
        if op[0] in ("flip", "length"):
            span = min(focus, len(out)) if op[1] else len(out)
            if span <= 0:
                continue
            pos = min(span - 1, int(op[2] * span))
            if op[0] == "flip":
                out[pos] = op[3]
            else:
                out[pos: pos + 8] = int(op[3]).to_bytes(8, "little")
        elif op[0] == "insert":
            pos = int(op[1] * (len(out) + 1))
            out[pos:pos] = op[2]
        elif op[0] == "truncate":
            del out[int(op[1] * len(out)):]
    return bytes(out)


class ModelsTarget:
    name, SUFFIX = "models", ".model"
    HEADROOM = 2 << 30  # address space the readers may add after torch's import

    def strategy(self, n_seeds: int) -> Any:
        from hypothesis import strategies as st

        files = st.tuples(st.sampled_from([0, 1, 2]), _byte_ops())
        return st.one_of(files, st.tuples(st.just(3), manifest_changes()))

    def seeds(self, dicom_dir: Path, work: Path) -> list[bytes]:
        import torch

        from ml.models import bundle, registry
        from ml.models.manifest import ModelManifest

        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = registry.build_model("cxr_resnet_small", 2)
        manifest = ModelManifest(name="fuzz", architecture="cxr_resnet_small", labels=["a", "b"], input_size=64)
        st_path = bundle.save_model(work / "seed.safetensors", model, manifest)
        zipped, legacy = io.BytesIO(), io.BytesIO()
        torch.save({"w": torch.randn(4, 4), "b": torch.zeros(4)}, zipped)
        torch.save(torch.nn.Linear(4, 2), legacy, _use_new_zipfile_serialization=False)
        base = ModelManifest(name="m", architecture="cxr_resnet_small", labels=["a", "b"]).to_dict()
        return [st_path.read_bytes(), zipped.getvalue(), legacy.getvalue(), json.dumps(base).encode()]

    def make(self, seeds: list[bytes], spec: Any, work: Path, case: Path) -> Path:
        kind, ops = spec
        case.mkdir(parents=True, exist_ok=True)
        if KINDS[kind] == "manifest":
            data = json.loads(seeds[3])
            data.update(ops)
            path = case / "manifest.json"
            path.write_text(json.dumps(data), encoding="utf-8")  # NaN/Infinity as a hostile file could
            return path
        raw = seeds[kind]
        focus = 8 + int.from_bytes(raw[:8], "little") if KINDS[kind] == "safetensors" else len(raw)
        path = case / ("f.safetensors" if KINDS[kind] == "safetensors" else "f.pt")
        path.write_bytes(mutate(raw, ops, focus))
        return path

    def read(self, path: Path, work: Path) -> tuple[str, str]:
        from ml.errors import CxrError
        from ml.models import bundle, importing
        from ml.models.manifest import ModelManifest

        if path.suffix == ".json":
            readers: list[Any] = [lambda: ModelManifest.from_json(path.read_text(encoding="utf-8"))]
        elif path.suffix == ".safetensors":
            readers = [lambda: bundle.read_manifest(path), lambda: bundle.load_model(path)]
        else:
            readers = [lambda: importing.extract_state_dict(importing.safe_torch_load(path))]
        outcome = "ok"
        for reader in readers:
            try:
                reader()
            except CxrError:
                outcome = "handled"
        return outcome, ""


TARGET = ModelsTarget()
