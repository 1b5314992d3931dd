"""Inference: the input derivation and its geometry, probabilities, thresholds, batching, OOM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ml.errors import CxrError, ImagingError
from ml.inference.device import DeviceError, choose_device, device_label
from ml.inference.predictor import OutOfMemoryError, Predictor, load_predictor
from ml.inference.preprocess import derive, prepare
from ml.models.bundle import save_model
from ml.models.manifest import InputDerivation, ModelManifest
from ml.models.registry import build_model
from tests.helpers.phantoms import as_rgb, image_from_pixels, make_phantom, multiframe

SIZES = [(160, 200), (240, 180), (200, 256)]


def manifest(**kw) -> ModelManifest:
    base = dict(
        name="test", architecture="cxr_resnet_small", labels=["normal", "lesion"], input_size=64, channels=1
    )
    base.update(kw)
    return ModelManifest(**base).validate()


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("mode", ["squash", "letterbox", "center_crop"])
@pytest.mark.parametrize("rows,cols", SIZES)
def test_geometry_roundtrip_finds_the_same_source_pixel(mode: str, rows: int, cols: int) -> None:
    # a bright 12x12 square centred on a known source point, on a dark background
    r, c = int(rows * 0.4), int(cols * 0.55)
    px = np.full((1, rows, cols), 100, np.uint16)
    px[0, r - 6 : r + 6, c - 6 : c + 6] = 4000
    m = manifest(input_size=96, input_derivation=InputDerivation(resize=mode))
    unit, g = derive(image_from_pixels(px), 0, m)
    assert unit.shape == (1, 96, 96) and (g.source_rows, g.source_cols) == (rows, cols)

    # the square lands in the input where the geometry says it does
    ys, xs = np.nonzero(unit[0] > 0.5)
    y, x = g.source_to_input(r, c)
    assert abs(ys.mean() + 0.5 - y) < 0.6 and abs(xs.mean() + 0.5 - x) < 0.6
    assert g.input_to_source(y, x) == pytest.approx((r, c))

    # and a map on the input grid goes back onto the source grid at the square
    back = g.to_source_grid(unit[0])
    assert back.shape == (rows, cols) and back.dtype == np.float32
    w = np.where(back > 0.5 * back.max(), back, 0)
    yy, xx = np.mgrid[0:rows, 0:cols]
    assert (w * yy).sum() / w.sum() + 0.5 == pytest.approx(r, abs=0.5)
    assert (w * xx).sum() / w.sum() + 0.5 == pytest.approx(c, abs=0.5)


def test_letterbox_keeps_aspect_and_pads_with_black() -> None:
    img = image_from_pixels(np.full((1, 100, 200), 3000, np.uint16))
    img.frames[0, 0, 0] = 0  # give the automatic window a range
    unit, g = derive(img, 0, manifest(input_derivation=InputDerivation(resize="letterbox")))
    assert (g.content_rows, g.content_cols) == (32, 64) and g.padding == (16, 16, 0, 0)
    assert unit[0, :16].max() == 0 and unit[0, 48:].max() == 0 and unit[0, 20:44].min() > 0.9
    assert g.scale_x == g.scale_y == pytest.approx(0.32)


def test_normalisation_imagenet_and_xrv() -> None:
    ph = make_phantom(160, 200, seed=1)
    unit, _ = derive(ph.image, 0, manifest(channels=3))
    x, _ = prepare(
        ph.image,
        0,
        manifest(channels=3, normalisation={"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}),
    )
    assert x.shape == (3, 64, 64) and np.allclose(x[1], (unit[1] - 0.456) / 0.224, atol=1e-5)
    xrv, _ = prepare(ph.image, 0, manifest(normalisation="xrv"))
    assert np.allclose(xrv[0], unit[0] * 2048 - 1024, atol=1e-3)
    assert -1024 <= xrv.min() and xrv.max() <= 1024


def test_monochrome1_is_inverted_before_the_model() -> None:
    ph = make_phantom(160, 200, seed=2)
    inv = image_from_pixels(ph.image.frames, photometric="MONOCHROME1")
    a, _ = derive(ph.image, 0, manifest())
    b, _ = derive(inv, 0, manifest())
    assert np.allclose(a, 1.0 - b, atol=1e-5)


def test_missing_frame_is_a_readable_error() -> None:
    with pytest.raises(ImagingError, match="Frame 3 does not exist"):
        prepare(make_phantom(seed=0).image, 2, manifest())


# --------------------------------------------------------------------------- device


def test_device_choice() -> None:
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device("auto").type in ("cpu", "cuda", "mps")
    assert device_label("cpu").startswith("CPU")
    with pytest.raises(DeviceError, match="Unknown device"):
        choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA was requested"):
            choose_device("cuda")


# --------------------------------------------------------------------------- outputs


class MeanBrightness(nn.Module):
    """A tiny real model: logits = a * mean brightness + b, one row per label."""

    def __init__(self, a: list[float], b: list[float]) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))[:, None] * self.a + self.b


def test_multiclass_softmax() -> None:
    p = Predictor(MeanBrightness([0.0, 1.0, 2.0], [1.0, 0.0, -1.0]), manifest(labels=["a", "b", "c"]), "cpu")
    (pred,) = p.predict([(make_phantom(seed=3).image, 0)])
    assert pred.labels == ["a", "b", "c"] and sum(pred.probabilities) == pytest.approx(1.0, abs=1e-6)
    assert pred.top_label == max(pred.scores, key=pred.scores.get) and pred.positives == [pred.top_label]
    assert pred.disclaimer == "Not for diagnostic use." and pred.device == "cpu" and pred.model_name == "test"


def test_multilabel_sigmoid_thresholds_and_hidden_labels() -> None:
    labels = ["Effusion", "Nodule", "Hernia", "Mass"]
    m = manifest(
        labels=labels, task="multilabel", thresholds={"Effusion": 0.6, "Nodule": 0.2, "Mass": 0.9},
        hidden_labels=["Hernia"], calibration="xrv_op_norm",
    )  # fmt: skip
    model = MeanBrightness([0.0, 0.0, 0.0, 0.0], [0.0, -1.0, 5.0, 1.0])  # sigmoid: .5, .27, .99, .73
    (pred,) = Predictor(model, m, "cpu").predict([(make_phantom(seed=4).image, 0)])
    assert pred.labels == ["Effusion", "Nodule", "Mass"]  # Hernia was never trained: hidden
    assert pred.probabilities == pytest.approx([0.5, 0.2689, 0.7311], abs=1e-4)  # raw, independent
    assert pred.thresholds == [0.6, 0.2, 0.9]
    assert pred.positives == ["Nodule"]  # 0.27 >= 0.2; 0.5 < 0.6; 0.73 < 0.9
    # calibrated (TorchXRayVision op_norm): threshold -> 0.5, so only Nodule is above 0.5
    assert [c > 0.5 for c in pred.calibrated] == [False, True, False]
    assert pred.top_label == "Nodule"


def test_label_without_operating_point_is_flagged_and_never_positive() -> None:
    labels = ["Effusion", "Lung Lesion", "Mass"]
    m = manifest(
        labels=labels, task="multilabel", thresholds={"Effusion": 0.3, "Mass": 0.9}, calibration="xrv_op_norm"
    )
    model = MeanBrightness([0.0] * 3, [0.0, 6.0, -1.0])  # sigmoid: .5, .998, .27
    (pred,) = Predictor(model, m, "cpu").predict([(make_phantom(seed=4).image, 0)])
    assert pred.labels == labels and pred.uncalibrated == [False, True, False]
    assert pred.thresholds == [0.3, None, 0.9]
    assert pred.positives == ["Effusion"]  # 0.998 without an operating point is not a finding
    assert pred.calibrated[1] == 0.5 and pred.shown[1] is None  # xrv's constant 0.5 is not shown
    assert pred.top_label == "Effusion" and pred.ranked()[-1][0] == "Lung Lesion"
    # the CSV's label columns hold what the panel shows; the raw sigmoid in named extra columns
    import csv
    import io

    from ml.inference.export import csv_text

    (row,) = list(csv.DictReader(io.StringIO(csv_text([pred]))))
    assert float(row["Effusion"]) == pytest.approx(pred.calibrated[0], abs=1e-6) and pred.calibrated[0] > 0.5
    assert row["Lung Lesion"] == "" and row["uncalibrated_labels"] == "Lung Lesion"
    assert float(row["Effusion raw probability"]) == pytest.approx(0.5, abs=1e-6)
    assert float(row["Lung Lesion raw probability"]) == pytest.approx(0.9975, abs=1e-4)
    assert row["prediction"] == "Effusion"
    # a model without any operating point: raw values, every label flagged, nothing positive
    bare = manifest(labels=labels, task="multilabel")
    (raw,) = Predictor(model, bare, "cpu").predict([(make_phantom(seed=4).image, 0)])
    assert all(raw.uncalibrated) and raw.positives == [] and raw.shown == raw.probabilities


def test_nan_threshold_and_empty_label_are_hidden() -> None:
    class Raw:  # a manifest-like object as converted TorchXRayVision weights may carry
        name, architecture, task, input_size, channels = "xrv", "xrv_densenet121", "multilabel", 64, 1
        labels = ["Atelectasis", "", "Effusion"]
        thresholds = {"Atelectasis": 0.3, "Effusion": float("nan")}
        normalisation = "xrv"
        input_derivation = InputDerivation()

        def threshold(self, label: str) -> float:
            return self.thresholds.get(label, 0.5)

    (pred,) = Predictor(MeanBrightness([0.0] * 3, [0.0] * 3), Raw(), "cpu").predict(
        [(make_phantom(seed=5).image, 0)]
    )
    assert pred.labels == ["Atelectasis"]


# --------------------------------------------------------------------------- batching, images


def small_model(seed: int = 0, channels: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("cxr_resnet_small", 2, channels).eval()


def test_batching_gives_the_same_results_as_one_by_one() -> None:
    images = [(make_phantom(r, c, lesion=bool(i % 2), seed=i).image, 0) for i, (r, c) in enumerate(SIZES * 2)]
    model, m = small_model(), manifest()
    batched = Predictor(model, m, "cpu", batch_size=4).predict(images)
    single = [Predictor(model, m, "cpu", batch_size=1).predict([im])[0] for im in images]
    for a, b in zip(batched, single, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
    progress: list[tuple[int, int]] = []
    Predictor(model, m, "cpu", batch_size=4).predict(images, progress=lambda d, t, _: progress.append((d, t)))
    assert progress[-1] == (6, 6) and len(progress) == 3


def test_grey_colour_and_multiframe_images() -> None:
    model, m = small_model(channels=3), manifest(channels=3)
    p = Predictor(model, m, "cpu")
    a, b = make_phantom(200, 256, lesion=True, seed=6), make_phantom(200, 256, lesion=False, seed=7)
    grey, colour = p.predict([(a.image, 0), (as_rgb(a).image, 0)])
    # the 8-bit colour rendering of the same radiograph gives (almost) the same answer
    assert grey.probabilities == pytest.approx(colour.probabilities, abs=0.02)
    stack = multiframe([a, b])
    f0, f1 = p.predict([(stack, 0), (stack, 1)])
    ref_a, ref_b = p.predict([(a.image, 0), (b.image, 0)])
    assert f0.frame == 0 and f1.frame == 1
    assert f0.probabilities == pytest.approx(ref_a.probabilities, abs=1e-5)
    assert f1.probabilities == pytest.approx(ref_b.probabilities, abs=1e-5)
    assert f0.probabilities != pytest.approx(f1.probabilities, abs=1e-6)


def test_bf16_precision_is_close_to_fp32() -> None:
    images = [(make_phantom(r, c, seed=i).image, 0) for i, (r, c) in enumerate(SIZES)]
    model, m = small_model(seed=2), manifest()
    exact = Predictor(model, m, "cpu").predict(images)
    mixed = Predictor(model, m, "cpu", precision="bf16").predict(images)
    assert np.allclose([p.probabilities for p in exact], [p.probabilities for p in mixed], atol=0.02)
    with pytest.raises(CxrError, match="Unknown precision"):
        Predictor(model, m, "cpu", precision="int4")


# --------------------------------------------------------------------------- out of memory


class OomAbove(nn.Module):
    """Raises CUDA's OutOfMemoryError for batches larger than ``limit`` or off the CPU."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit or x.device.type != "cpu":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        v = x.mean(dim=(1, 2, 3))
        return torch.stack([v, -v], dim=1)


def test_oom_halves_the_batch_and_retries() -> None:
    images = [(make_phantom(seed=i).image, 0) for i in range(5)]
    model = OomAbove(limit=2)
    p = Predictor(model, manifest(), "cpu", batch_size=8)
    preds = p.predict(images)
    assert len(preds) == 5 and p.batch_size == 2
    assert model.sizes[:3] == [5, 2, 2] and sum(s for s in model.sizes if s <= 2) == 5
    assert any("batches of 2" in msg for msg in p.messages) and preds[0].messages
    ref = Predictor(OomAbove(limit=99), manifest(), "cpu").predict(images)
    assert np.allclose([q.probabilities for q in preds], [q.probabilities for q in ref])


def test_oom_at_batch_one_falls_back_to_the_cpu() -> None:
    # "meta" stands in for an accelerator: the model raises OOM for any input not on the CPU
    model = OomAbove(limit=99)
    p = Predictor(model, manifest(), torch.device("meta"), batch_size=2)
    preds = p.predict([(make_phantom(seed=i).image, 0) for i in range(3)])
    assert p.device.type == "cpu" and [q.device for q in preds] == ["cpu"] * 3
    assert any("now runs on the CPU" in msg for msg in p.messages)
    assert any("now runs on the CPU" in msg for msg in preds[0].messages)


def test_oom_on_the_cpu_with_one_image_is_a_readable_error() -> None:
    p = Predictor(OomAbove(limit=0), manifest(), "cpu", batch_size=4)
    with pytest.raises(OutOfMemoryError, match="not enough memory"):
        p.predict([(make_phantom(seed=0).image, 0)])


# --------------------------------------------------------------------------- model files


def test_load_predictor_from_a_model_file(tmp_path) -> None:
    model, m = small_model(seed=1), manifest()
    path = save_model(tmp_path / "m.safetensors", model, m)
    p = load_predictor(path, device="cpu")
    p.warmup()
    image = make_phantom(seed=9).image
    expected = Predictor(model, m, "cpu").predict([(image, 0)])[0]
    assert p.predict([(image, 0)])[0].probabilities == pytest.approx(expected.probabilities, abs=1e-6)
    assert p.device_label.startswith("CPU")
