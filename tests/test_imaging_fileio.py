"""Files the app writes follow the user's umask (issue 10 item 8), not mkstemp's 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ml.fileio import atomic_path, save_png_atomic, write_text_atomic


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_reports_exports_and_pngs_follow_the_umask(tmp_path: Path, umask: int) -> None:
    expected = 0o666 & ~umask
    write_text_atomic(tmp_path / "report.csv", "a,b\n")
    save_png_atomic(tmp_path / "render.png", np.zeros((4, 4), np.uint8))
    with atomic_path(tmp_path / "out.dcm") as tmp:
        tmp.write_bytes(b"x")
    for name in ("report.csv", "render.png", "out.dcm"):
        assert _mode(tmp_path / name) == expected, name
    # the same mode a plain open() gives
    (tmp_path / "plain.txt").write_text("x")
    assert _mode(tmp_path / "plain.txt") == expected


def test_model_checkpoints_follow_the_umask(tmp_path: Path, umask: int) -> None:
    from ml.training.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "model.pt", {"w": 1})
    assert _mode(path) == 0o666 & ~umask


def test_a_file_that_may_hold_credentials_stays_private(tmp_path: Path) -> None:
    from ml.pacs.nodes import save_nodes

    old = os.umask(0o022)
    try:
        path = save_nodes({}, tmp_path / "nodes.json")
    finally:
        os.umask(old)
    assert _mode(path) == 0o600


def test_saved_and_installed_model_files_follow_the_umask(tmp_path: Path, umask: int, monkeypatch) -> None:
    """A model the user trains, converts or installs is a file of theirs like any other (not 0600)."""
    from ml.models import bundle, library
    from ml.models.importing import make_manifest
    from ml.models.registry import build_model

    monkeypatch.setenv("CXR_STUDIO_HOME", str(tmp_path / "home"))
    manifest = make_manifest(name="tiny", architecture="cxr_resnet_small", labels=["a", "b"], task="multiclass",
                             channels=1, input_size=32)  # fmt: skip
    saved = bundle.save_model(tmp_path / "tiny.safetensors", build_model("cxr_resnet_small", 2, 1), manifest)
    installed = library.import_model(saved)
    assert _mode(saved) == 0o666 & ~umask
    assert _mode(installed.path) == 0o666 & ~umask
