"""`cxr models ...` and `cxr predict ...` end to end on real images with a real (tiny) model file."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.cli import main as cxr
from ml.imaging.read import read_image
from ml.models import bundle
from ml.models.manifest import ModelManifest
from ml.models.registry import build_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    manifest = ModelManifest(name="tiny-pneumonia", architecture="cxr_resnet_small",
                             labels=["NORMAL", "PNEUMONIA"], input_size=64)
    return bundle.save_model(tmp_path / "tiny.safetensors", build_model("cxr_resnet_small", 2, 1), manifest)


def run_cxr(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "ml", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300, check=False, env={**os.environ, "CXR_STUDIO_HOME": str(env_home)})


def test_models_import_list_info_remove(model_file: Path, capsys) -> None:
    assert cxr(["models", "import", str(model_file)]) == 0
    assert cxr(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny-pneumonia" in out and "cxr_resnet_small" in out
    assert cxr(["models", "info", "tiny-pneumonia"]) == 0
    out = capsys.readouterr().out
    assert "NORMAL, PNEUMONIA" in out and "Not for diagnostic use" in out
    assert cxr(["models", "remove", "tiny-pneumonia"]) == 0
    capsys.readouterr()
    assert cxr(["models", "info", "tiny-pneumonia"]) == 2
    assert "tiny-pneumonia" in capsys.readouterr().err


def test_predict_folder_writes_csv_and_heatmaps(model_file: Path, shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "cxr" / "kermany-val"
    out_csv, heat = tmp_path / "results.csv", tmp_path / "heat"
    code = cxr(["predict", str(folder), "--model", str(model_file), "-o", str(out_csv),
                "--explain", "gradcam", "--explain-dir", str(heat), "--batch-size", "4"])
    assert code == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 16
    assert list(rows[0]) == ["path", "frame", "NORMAL", "PNEUMONIA", "prediction", "in_scope", "scope_note",
                             "disclaimer"]
    for row in rows:
        assert row["in_scope"] == "yes"  # real chest radiographs (a model without feature statistics)
        p = float(row["NORMAL"]) + float(row["PNEUMONIA"])
        assert p == pytest.approx(1.0, abs=1e-4)
        assert row["prediction"] in ("NORMAL", "PNEUMONIA") and row["frame"] == "1"
        assert row["disclaimer"] == "Not for diagnostic use."
    # heatmaps on each source image's own pixel grid (the JPEGs have different sizes)
    first = Path(rows[0]["path"])
    values = np.load(heat / f"{first.stem}.gradcam.npy")
    assert values.dtype == np.float32 and values.shape == read_image(first).shape
    assert (heat / f"{first.stem}.gradcam.png").exists()
    assert len(list(heat.glob("*.npy"))) == 16


def test_predict_multiframe_dicom_every_frame(model_file: Path, dicom_dir: Path, tmp_path: Path) -> None:
    out_csv = tmp_path / "r.csv"
    assert cxr(["predict", str(dicom_dir / "emri_small_RLE.dcm"), "--model", str(model_file), "-o", str(out_csv)]) == 0
    frames = [row["frame"] for row in csv.DictReader(out_csv.open())]
    assert frames == [str(i) for i in range(1, 11)]


def test_predict_bad_inputs_one_line_each(model_file: Path, dicom_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    # a corrupt image among good ones: results for the good one, one line for the bad one, exit 2
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    res = run_cxr("predict", str(dicom_dir / "rsna_cxr_pa.dcm"), str(bad), "--model", str(model_file),
                  "-o", str(tmp_path / "r.csv"), env_home=home)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert [line for line in res.stderr.splitlines() if line.startswith("cxr: error:")] and "broken.png" in res.stderr
    # the good result is kept; the bad file is a row of its own with the reason (issue 11 item 4)
    good, failed = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert good["error"] == "" and good["prediction"] in ("NORMAL", "PNEUMONIA")
    assert failed["path"] == str(bad) and "broken.png" in failed["error"] and failed["prediction"] == ""
    assert "cxr: 1 of 2 file(s) failed; 1 classified" in res.stderr
    # a model file that is not ours, and a truncated one
    foreign = tmp_path / "foreign.safetensors"
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, np.float32)}, str(foreign))
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(model_file.read_bytes()[:5000])
    for model in (foreign, truncated, tmp_path / "nothing.safetensors"):
        res = run_cxr("predict", str(dicom_dir / "rsna_cxr_pa.dcm"), "--model", str(model), env_home=home)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cxr: error:") and "Traceback" not in res.stderr, lines


def test_predict_zip_and_dicom_folder_with_a_damaged_file(model_file: Path, dicom_dir: Path, tmp_path: Path,
                                                           capsys) -> None:
    """ZIPs and folders of DICOM are indexed like the GUI does; one bad file is a CSV row, not an abort."""
    import shutil
    import zipfile

    folder = tmp_path / "series"
    folder.mkdir()
    for name in ("rsna_cxr_pa.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless_too_short.dcm"):
        shutil.copy(dicom_dir / name, folder / name)
    (folder / "README.txt").write_text("notes, not an image")
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(dicom_dir / "RG3_J2KR.dcm", "inside/RG3_J2KR.dcm")
    out_csv = tmp_path / "r.csv"
    code = cxr(["predict", str(folder), str(archive), "--model", str(model_file), "-o", str(out_csv),
                "--batch-size", "4"])
    err = capsys.readouterr().err
    assert code == 2  # some failed
    rows = list(csv.DictReader(out_csv.open()))
    assert list(rows[0]) == ["path", "frame", "NORMAL", "PNEUMONIA", "prediction", "in_scope", "scope_note",
                             "disclaimer", "error"]
    ok = [r for r in rows if not r["error"]]
    scope = {Path(r["path"]).name: (r["in_scope"], r["scope_note"]) for r in ok}
    assert scope["rsna_cxr_pa.dcm"][0] == "yes"
    assert scope["emri_small_RLE.dcm"][0] == "no" and "modality MR" in scope["emri_small_RLE.dcm"][1]
    assert scope["RG3_J2KR.dcm"] == ("no", "body part EXTREMITY (CHEST expected)")
    assert "do not look like frontal chest radiographs" in err
    assert sorted({r["path"] for r in ok}) == sorted(
        [str(folder / "emri_small_RLE.dcm"), str(folder / "rsna_cxr_pa.dcm"), f"{archive}:inside/RG3_J2KR.dcm"])
    assert len(ok) == 1 + 10 + 1  # every frame of the multi-frame file
    (bad,) = [r for r in rows if r["error"]]
    assert bad["path"].endswith("too_short.dcm") and "truncated pixel data" in bad["error"]
    assert "cxr: 1 of 4 file(s) failed; 3 classified" in err
    assert "skipped 1 file(s) that are not images" in err  # the README, counted, not an error
