"""A real Orthanc holding the usual seed plus one large synthetic study (many instances), so that a
cancel lands in the middle of a retrieve. Used by the PACS GUI and cancel tests.

The large study is written with the project's DICOM factory and seeded with dcmtk's ``storescu``
(one association for all its files), like the rest of the seed.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.dicom_factory import new_uid, write_dicom
from tests.helpers.orthanc import OrthancServer, start_seeded

BIG_INSTANCES = 160
BIG_PATIENT_ID = "CANCEL-0001"
BIG_DATE = "19990315"


@dataclass
class BigPacs:
    server: OrthancServer
    big_study: str
    big_instances: int


def write_big_study(folder: Path, count: int = BIG_INSTANCES) -> tuple[str, list[Path]]:
    study, series = new_uid(), new_uid()
    paths = []
    for i in range(count):
        path = folder / f"big{i:04d}.dcm"
        write_dicom(path, patient_name="Cancel^Test", patient_id=BIG_PATIENT_ID, study_uid=study,
                    study_date=BIG_DATE, accession_number="BIG001", study_description="Many instances",
                    series_uid=series, series_number=1, instance_number=i + 1, modality="CR",
                    rows=512, columns=512)
        paths.append(path)
    return study, paths


def seed_together(server: OrthancServer, paths: list[Path]) -> None:
    exe = shutil.which("storescu")
    if exe is None:
        pytest.fail("dcmtk's storescu is not installed")
    cmd = [exe, "-aet", "SEEDER", "-aec", server.aet, "127.0.0.1", str(server.dicom_port), *map(str, paths)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"storescu failed: {done.stderr[-1000:]}")


@pytest.fixture(scope="session")
def big_pacs(tmp_path_factory: pytest.TempPathFactory, dicom_dir: Path):  # noqa: ANN201 - BigPacs
    root = tmp_path_factory.mktemp("orthanc_big")
    server = start_seeded(root, dicom_dir)
    try:
        study, paths = write_big_study(root / "big")
        seed_together(server, paths)
        shutil.rmtree(root / "big")
        yield BigPacs(server, study, len(paths))
    finally:
        server.stop()
