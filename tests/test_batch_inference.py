"""ml.inference.batch: paths in, progress and cancel, results out; batches span files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ml.errors import CancelledError
from ml.inference.batch import classify_paths
from ml.progress import CancelToken


class FakePredictor:
    """Records each predict() call; one fake prediction per (image, frame)."""

    batch_size = 4
    labels = ["A", "B"]

    class manifest:  # noqa: N801 - mimics Predictor.manifest
        name = "fake"

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[tuple[str, int]]] = []
        self.fail_on = fail_on

    def predict(self, items, progress=None, cancel=None):  # noqa: ANN001
        names = [(Path(image.meta.path).name, f) for image, f in items]
        self.calls.append(names)
        if self.fail_on and any(self.fail_on == n for n, _ in names):
            raise ValueError("cannot prepare this image")
        from ml.inference.predictor import Prediction

        return [Prediction(str(image.meta.path), f, ["A", "B"], [0.25, 0.75], ["B"], "B", "fake", "cpu")
                for image, f in items]


@pytest.fixture()
def folder(dicom_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "in"
    out.mkdir()
    for name in ("rsna_cxr_pa.dcm", "RG3_J2KR.dcm", "JPEG-LL.dcm", "SC_rgb.dcm", "liver_deflate.dcm"):
        shutil.copy(dicom_dir / name, out / name)
    return out


def test_batches_span_files_and_errors_are_results(folder: Path) -> None:
    predictor = FakePredictor()
    seen: list[tuple[int, int]] = []
    outcome = classify_paths(predictor, [folder], progress=lambda d, t, m: seen.append((d, t)))
    by_name = {Path(r.source).name: r for r in outcome.results}
    assert set(by_name) == {"rsna_cxr_pa.dcm", "RG3_J2KR.dcm", "JPEG-LL.dcm", "SC_rgb.dcm", "liver_deflate.dcm"}
    assert "Deflated Image Frame Compression" in by_name["liver_deflate.dcm"].error
    assert outcome.n_failed == 1 and len(outcome.predictions) == 4
    assert [r.source for r in outcome.results] == sorted(r.source for r in outcome.results)  # listing order
    # four one-frame images in one predict call: batched across files, not one call per file
    assert [len(c) for c in predictor.calls] == [4]
    assert seen[-1][0] == seen[-1][1] == 5


def test_a_batch_failure_is_pinned_on_the_file_at_fault(folder: Path) -> None:
    predictor = FakePredictor(fail_on="JPEG-LL.dcm")
    outcome = classify_paths(predictor, [folder])
    failed = {Path(s).name: m for s, m in outcome.errors}
    assert set(failed) == {"JPEG-LL.dcm", "liver_deflate.dcm"}
    assert "something went wrong" in failed["JPEG-LL.dcm"] and "ValueError" in failed["JPEG-LL.dcm"]
    assert len(outcome.predictions) == 3


def test_cancel_stops_between_files(folder: Path) -> None:
    token = CancelToken()

    def progress(done: int, total: int, message: str) -> None:
        if message.endswith("classified") and done >= 1:
            token.cancel()

    with pytest.raises(CancelledError):
        classify_paths(FakePredictor(), [folder], progress=progress, cancel=token)


def test_frame_option_and_missing_path(dicom_dir: Path, tmp_path: Path) -> None:
    outcome = classify_paths(FakePredictor(), [dicom_dir / "emri_small_RLE.dcm", dicom_dir / "rsna_cxr_pa.dcm",
                                               tmp_path / "nothing.dcm"], frame=4)
    results = {Path(r.source).name: r for r in outcome.results}
    assert [p.frame for p in results["emri_small_RLE.dcm"].predictions] == [4]
    assert "frame 5 does not exist (1 frame(s))" in results["rsna_cxr_pa.dcm"].error
    assert results["nothing.dcm"].error == "nothing.dcm does not exist."
