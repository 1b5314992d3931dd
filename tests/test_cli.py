"""The `cxr` command on real files: succeeds or fails with one readable line, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ml.cli import main as cxr
from ml.imaging.display import render
from ml.imaging.read import read_image

REPO = Path(__file__).resolve().parents[1]


def run_cxr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300, check=False)


def test_info_and_render_every_shared_file(dicom_dir: Path, tmp_path: Path, capsys) -> None:
    for path in sorted(dicom_dir.glob("*.dcm")):
        code_info = cxr(["info", str(path), "--json"])
        out = capsys.readouterr()
        if "too_short" in path.name:  # truncated: an error, as in render, the GUI and the index
            assert code_info == 2 and "truncated pixel data" in out.err and out.err.count("\n") == 1, out.err
            assert not out.out
        else:
            assert code_info == 0, path.name
            meta = json.loads(out.out)
            assert meta["transfer_syntax_uid"]
        code = cxr(["render", str(path), "-o", str(tmp_path / "out.png")])
        err = capsys.readouterr().err
        if code == 0:
            assert (tmp_path / "out.png").exists()
        else:
            assert code == 2 and err.count("\n") == 1 and err.startswith("cxr: error: "), (path.name, err)


def test_render_writes_what_the_pipeline_shows(dicom_dir: Path, tmp_path: Path) -> None:
    path = dicom_dir / "RG3_J2KR.dcm"
    assert cxr(["render", str(path), "-o", str(tmp_path / "a.png")]) == 0
    written = np.asarray(Image.open(tmp_path / "a.png"))
    assert np.array_equal(written, render(read_image(path)))
    assert cxr(["render", str(path), "-o", str(tmp_path / "b.png"), "--window", "300", "200"]) == 0
    narrow = np.asarray(Image.open(tmp_path / "b.png"))
    assert (narrow == 0).mean() > (written == 0).mean()  # narrower window: more saturated pixels


def test_render_frame_option(dicom_dir: Path, tmp_path: Path) -> None:
    path = dicom_dir / "emri_small_RLE.dcm"
    assert cxr(["render", str(path), "-o", str(tmp_path / "f1.png"), "--frame", "1"]) == 0
    assert cxr(["render", str(path), "-o", str(tmp_path / "f10.png"), "--frame", "10"]) == 0
    a, b = (np.asarray(Image.open(tmp_path / f)) for f in ("f1.png", "f10.png"))
    assert not np.array_equal(a, b)


def test_bad_input_gives_one_line_and_nonzero_exit(dicom_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    cases = [
        ("render", str(dicom_dir / "liver_deflate.dcm"), "-o", str(tmp_path / "x.png")),
        ("render", str(dicom_dir / "emri_small_jpeg_2k_lossless_too_short.dcm"), "-o", str(tmp_path / "x.png")),
        ("info", str(tmp_path / "notes.txt")),
        ("info", str(tmp_path / "missing.dcm")),
        ("render", str(dicom_dir / "emri_small_RLE.dcm"), "-o", str(tmp_path / "x.png"), "--frame", "99"),
    ]
    for args in cases:
        res = run_cxr(*args)
        assert res.returncode == 2, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "x.png").exists()
    res = run_cxr("render", str(dicom_dir / "liver_deflate.dcm"), "-o", str(tmp_path / "x.png"))
    assert "Deflated Image Frame Compression" in res.stderr


def test_info_and_the_index_agree_on_every_shared_file(dicom_dir: Path, capsys) -> None:
    """One header reader: the same facts, and the same errors, from `cxr info` and the index."""
    from ml.imaging.index import build_index

    index = build_index([dicom_dir])
    listed = {e.source: e.meta.to_dict() for e in index.instances()}
    errors = dict(index.errors)
    files = sorted(dicom_dir.iterdir())
    assert len(files) == 21 and {*listed, *errors} == {str(p) for p in files}
    for path in files:
        code = cxr(["info", str(path), "--json"])
        out = capsys.readouterr()
        if str(path) in errors:
            assert code == 2 and out.err.strip() == f"cxr: error: {errors[str(path)]}", path.name
        else:
            assert code == 0, (path.name, out.err)
            info = json.loads(out.out)
            info.pop("non_image_object")
            assert info == json.loads(json.dumps(listed[str(path)], default=str)), path.name
    assert "truncated pixel data" in errors[str(dicom_dir / "emri_small_jpeg_2k_lossless_too_short.dcm")]
