"""Shared fixtures. Real test data lives in ../shared/data (read in place, never copied in)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder. Missing data is a failure, not a skip."""
    if not (SHARED_DATA / "dicom").is_dir():
        pytest.fail(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def dicom_dir(shared_data: Path) -> Path:
    return shared_data / "dicom"


@pytest.fixture(autouse=True)
def _isolated_user_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real user's model library, settings or caches from tests."""
    if "CXR_STUDIO_HOME" not in os.environ or os.environ["CXR_STUDIO_HOME"].startswith(str(REPO)):
        monkeypatch.setenv("CXR_STUDIO_HOME", str(tmp_path_factory.mktemp("cxr_home")))
    monkeypatch.delenv("CXR_STUDIO_CACHE_DIR", raising=False)  # ZIP extraction follows CXR_STUDIO_HOME


@pytest.fixture(scope="module")
def single_torch_thread():
    """One intra-op thread: on a shared 2-core machine, OpenMP oversubscription is 5-10x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
