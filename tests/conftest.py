"""Shared fixtures. Real test data: ../shared/data read in place, else the same public files
downloaded once into a verified cache (tests/shared_data.py, tests/data_manifest.json)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.shared_data import SHARED_DATA as SHARED_DATA
from tests.shared_data import TestDataUnavailable, data_root, describe_source

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]


def pytest_report_header(config: pytest.Config) -> str:
    return describe_source()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder (../shared/data or the verified cache). Missing data is a failure, not
    a skip: offline without the folder, one message says what to do."""
    try:
        return data_root()
    except TestDataUnavailable as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)  # outside the except: the message once, no chained traceback


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
