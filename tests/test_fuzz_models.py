"""Fuzzing model files (issue 11): only ml.errors failures, whatever the bytes.

Hypothesis mutates small model files made here (a CXR Studio .safetensors, a PyTorch zip state
dict, a pre-1.6 legacy file) and draws manifests from JSON-shaped data; each input goes through the
same readers as ``cxr models import/info`` and the library. Any exception outside the CxrError
family fails the test. Fixed seed, about 600 inputs, a few seconds.
"""

from __future__ import annotations

import functools
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from ml.errors import CxrError
from ml.models import bundle, importing, registry
from ml.models.manifest import ModelManifest

pytestmark = pytest.mark.usefixtures("single_torch_thread")

EXAMPLES = int(os.environ.get("CXR_FUZZ_MODEL_INPUTS", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _seed_files(folder: Path) -> dict[str, bytes]:
    torch.manual_seed(0)
    model = registry.build_model("cxr_resnet_small", 2)
    manifest = ModelManifest(name="fuzz", architecture="cxr_resnet_small", labels=["a", "b"], input_size=64)
    st_path = bundle.save_model(folder / "m.safetensors", model, manifest)
    small = {"w": torch.randn(4, 4), "b": torch.zeros(4)}
    zipped, legacy = io.BytesIO(), io.BytesIO()
    torch.save(small, zipped)
    torch.save(torch.nn.Linear(4, 2), legacy, _use_new_zipfile_serialization=False)
    return {"safetensors": st_path.read_bytes(), "zip": zipped.getvalue(), "legacy": legacy.getvalue()}


@functools.cache
def _seeds() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        return _seed_files(Path(folder))


@st.composite
def mutated(draw: st.DrawFn, data: bytes, focus: int) -> bytes:
    """Byte flips (mostly in the first ``focus`` bytes: headers), an inserted run, a truncation."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 6))):
        limit = focus if draw(st.booleans()) else len(out)
        pos = draw(st.integers(0, max(0, min(limit, len(out)) - 1)))
        out[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        pos = draw(st.integers(0, len(out)))
        out[pos:pos] = draw(st.binary(max_size=16))
    if draw(st.integers(0, 3)) == 0:
        out = out[: draw(st.integers(0, len(out)))]
    return bytes(out)


def _only_project_errors(fn, *args) -> None:
    try:
        fn(*args)
    except CxrError:
        pass


def _read_torch(path: Path) -> None:
    importing.extract_state_dict(importing.safe_torch_load(path))


@seed(1101)
@FUZZ
@given(data=st.data())
def test_fuzz_safetensors(data: st.DataObject, tmp_path: Path) -> None:
    seeds = _seeds()
    raw = seeds["safetensors"]
    header_end = 8 + int.from_bytes(raw[:8], "little")
    path = tmp_path / "f.safetensors"
    path.write_bytes(data.draw(mutated(raw, header_end)))
    _only_project_errors(bundle.read_manifest, path)
    _only_project_errors(bundle.load_model, path)


@seed(1102)
@FUZZ
@given(data=st.data())
def test_fuzz_pytorch_zip(data: st.DataObject, tmp_path: Path) -> None:
    seeds = _seeds()
    path = tmp_path / "f.pt"
    path.write_bytes(data.draw(mutated(seeds["zip"], len(seeds["zip"]))))
    _only_project_errors(_read_torch, path)


@seed(1103)
@FUZZ
@given(data=st.data())
def test_fuzz_legacy_pickle(data: st.DataObject, tmp_path: Path) -> None:
    seeds = _seeds()
    path = tmp_path / "f.pt"
    path.write_bytes(data.draw(mutated(seeds["legacy"], len(seeds["legacy"]))))
    _only_project_errors(_read_torch, path)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["name", "architecture", "labels", "task", "input_size", "channels", "normalisation", "input_derivation",
     "thresholds", "calibration", "hidden_labels", "provenance", "temperature", "scope", "format_version"]
)  # fmt: skip


@seed(1104)
@FUZZ
@given(changes=st.dictionaries(FIELDS, JSON, min_size=1, max_size=4))
def test_fuzz_manifest(changes: dict) -> None:
    data = ModelManifest(name="m", architecture="cxr_resnet_small", labels=["a", "b"]).to_dict()
    data.update(changes)
    text = json.dumps(data)  # NaN/Infinity are written as JSON extensions, as a hostile file could
    _only_project_errors(ModelManifest.from_json, text)
