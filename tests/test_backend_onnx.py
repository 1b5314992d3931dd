"""The fast forward back-end (issue 13): ONNX Runtime equals torch within 1e-4, cached, or torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ml.inference import backend as backends
from ml.inference.backend import BackendError
from ml.inference.predictor import Predictor, load_predictor
from ml.inference.scope import features_of
from ml.models.bundle import save_model
from ml.models.manifest import ModelManifest
from ml.models.registry import architectures, build_model
from tests.helpers.phantoms import make_phantom

pytest.importorskip("onnxruntime")
SIZE = 32  # the smallest input every registry architecture takes: keeps the export fast


def _saved(tmp_path: Path, arch: str, channels: int = 1, task: str = "multiclass") -> Path:
    torch.manual_seed(0)
    labels = ["normal", "lesion", "other"]
    model = build_model(arch, len(labels), channels).eval()
    manifest = ModelManifest(name=f"t-{arch}", architecture=arch, labels=labels, input_size=SIZE,
                             channels=channels, task=task).validate()  # fmt: skip
    return save_model(tmp_path / f"{arch}.safetensors", model, manifest)


def _marked(arch: str):  # noqa: ANN202 - a pytest param
    heavy = arch.startswith(("densenet", "efficientnet", "resnet50", "xrv_"))  # 20-50 s each under load
    return pytest.param(arch, marks=pytest.mark.slow) if heavy else arch


@pytest.mark.parametrize("arch", [_marked(a) for a in architectures()])
def test_onnx_runtime_equals_torch_on_every_architecture(arch: str) -> None:
    torch.manual_seed(0)
    labels = ["normal", "lesion", "other"]
    manifest = ModelManifest(name=f"t-{arch}", architecture=arch, labels=labels, input_size=SIZE,
                             channels=1).validate()  # fmt: skip
    fast = Predictor(build_model(arch, len(labels), 1), manifest, device="cpu", backend="onnx")
    assert fast.backend.name == "onnx" and fast.fast_forward is not None
    assert fast.fast_forward.max_difference <= backends.TOLERANCE
    x = np.random.default_rng(7).standard_normal((3, 1, SIZE, SIZE)).astype(np.float32)
    with torch.inference_mode():
        ref = fast.model(torch.from_numpy(x)).float().numpy()
    got = fast.fast_forward.run(x)
    assert np.abs(got - ref).max() <= backends.TOLERANCE * max(1.0, float(np.abs(ref).max()))
    # and the probabilities a user sees are the same as torch's
    image = make_phantom(rows=48, cols=40).image
    slow = Predictor(fast.model, fast.manifest, device="cpu", backend="torch")
    a, b = fast.predict_one(image), slow.predict_one(image)
    assert np.allclose(a.probabilities, b.probabilities, atol=1e-4) and a.top_label == b.top_label


def test_export_is_cached_next_to_the_model_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _saved(tmp_path, "cxr_resnet_small", task="multilabel")
    first = load_predictor(path, device="cpu")
    cache = first.fast_forward.cache
    assert cache is not None and cache.parent == tmp_path and cache.suffix == ".onnx"
    assert first.status_label.endswith("ONNX Runtime")

    def no_export(*_a, **_k):
        raise AssertionError("exported again")

    monkeypatch.setattr(backends, "export_onnx", no_export)
    again = load_predictor(path, device="cpu")
    assert again.backend.name == "onnx" and again.fast_forward.cache == cache
    assert [p.name for p in tmp_path.glob("*.onnx")] == [cache.name]


def test_a_mismatch_keeps_torch_with_the_reason_or_fails_when_onnx_is_insisted_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _saved(tmp_path, "cxr_resnet_small")
    real = backends.OnnxForward.raw
    monkeypatch.setattr(backends.OnnxForward, "raw", lambda self, x: [o + 1e-2 for o in real(self, x)])
    auto = load_predictor(path, device="cpu", backend="auto")
    assert auto.backend.name == "torch" and "differs from torch" in auto.backend.reason
    assert auto.status_label.endswith("PyTorch")
    assert len(auto.predict_one(make_phantom(rows=48, cols=40).image).probabilities) == 3
    with pytest.raises(BackendError, match="differs from torch"):
        load_predictor(path, device="cpu", backend="onnx")


def test_without_onnxruntime_auto_is_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "onnxruntime_available", lambda: False)
    p = load_predictor(_saved(tmp_path, "cxr_resnet_small"), device="cpu")
    assert p.backend.name == "torch" and "not installed" in p.backend.reason


def test_the_scope_guard_sees_the_same_features_on_onnx_runtime(tmp_path: Path) -> None:
    path = _saved(tmp_path, "cxr_resnet_small")
    fast = load_predictor(path, device="cpu", backend="onnx")
    slow = Predictor(fast.model, fast.manifest, device="cpu", backend="torch")
    items = [(make_phantom(rows=48, cols=40, seed=s).image, 0) for s in range(3)]
    a, b = features_of(fast, items), features_of(slow, items)
    assert a.shape == b.shape and a.shape[0] == 3 and np.allclose(a, b, atol=1e-4)


def test_providers_put_the_gpu_first_and_the_cpu_last() -> None:
    avail = ["CUDAExecutionProvider", "DmlExecutionProvider", "CPUExecutionProvider"]
    assert backends.providers_for(torch.device("cuda"), avail) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert backends.providers_for(torch.device("cpu"), avail) == ["CPUExecutionProvider"]


def test_occlusion_on_onnx_runtime_gives_torch_s_map(tmp_path: Path) -> None:
    from ml.explain.occlusion import OcclusionExplainer

    fast = load_predictor(_saved(tmp_path, "cxr_resnet_small"), device="cpu", backend="onnx")
    image = make_phantom(rows=48, cols=40).image
    maps, drops = [], []
    for forward in (None, fast.fast_forward):
        with OcclusionExplainer(fast.model, fast.manifest, window=8, stride=4, forward=forward) as ex:
            maps.append(ex.explain(image, 0, "lesion").values)
            drops.append(ex.last_raw)
    assert maps[0].shape == (48, 40) and np.abs(maps[0]).max() > 0
    # the score drops themselves (log-probability units) agree within the back-end's tolerance; the
    # shown map is rescaled to [0, 1], which magnifies the untrained model's tiny drops (max ~3e-3)
    # about 300-fold, so it is compared at 1e-3
    assert np.abs(drops[0]).max() > 0 and np.allclose(drops[0], drops[1], atol=1e-4)
    assert np.allclose(maps[0], maps[1], atol=1e-3)
