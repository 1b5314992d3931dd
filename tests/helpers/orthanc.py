"""A real PACS for the tests: Debian's Orthanc with its DICOMweb plugin on free local ports.

``OrthancServer`` writes a temporary configuration (no authentication, our AE title, a
DicomModalities entry for the app's C-STORE SCP), starts ``Orthanc``, waits until both the HTTP
and the DICOM port answer, and is torn down by ``stop()``. Seeding goes through dcmtk's
``storescu`` (a client independent of the code under test). Orthanc missing is a failure, not a
skip: the PACS tests are part of the suite (the README's test command installs it).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Seeded studies: two CR chest images from different patients/dates and an RGB secondary capture.
SEED_FILES = ("rsna_cxr_pa.dcm", "RG3_J2KR.dcm", "SC_rgb.dcm")
PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so.1.7",
)
PACS_AET = "ORTHANCTEST"
APP_AET = "CXRSTUDIO"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dicomweb_plugin() -> str:
    for path in PLUGIN_CANDIDATES:
        if Path(path).exists():
            return path
    found = sorted(Path("/usr").glob("**/libOrthancDicomWeb.so*"))
    if not found:
        pytest.fail("orthanc-dicomweb is not installed (apt-get install orthanc-dicomweb)")
    return str(found[0])


@dataclass
class OrthancServer:
    root: Path
    app_port: int = 0  # where the app's own C-STORE SCP would listen (C-MOVE destination)
    aet: str = PACS_AET
    dicom_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def dicom_url(self) -> str:
        return f"dicom://{self.aet}@127.0.0.1:{self.dicom_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> OrthancServer:
        exe = shutil.which("Orthanc")
        if exe is None:
            pytest.fail("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)")
        self.app_port = self.app_port or free_port()
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "cxr-test-pacs",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomModalities": {"cxrstudio": [APP_AET, "127.0.0.1", self.app_port]},
            "Plugins": [dicomweb_plugin()],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "StableAge": 1,
            "ConcurrentJobs": 2,
        }
        path = self.root / "orthanc.json"
        path.write_text(json.dumps(config, indent=2))
        log = open(self.root / "orthanc.log", "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen([exe, str(path)], stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = (self.root / "orthanc.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"Orthanc exited at start:\n{log}")
            try:
                with urllib.request.urlopen(f"{self.rest_url}/system", timeout=1) as r:
                    if r.status == 200 and _port_open(self.dicom_port):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail("Orthanc did not answer within 30 s")

    def seed(self, files: list[Path]) -> None:
        """C-STORE the files with dcmtk's storescu (never the code under test)."""
        exe = shutil.which("storescu")
        if exe is None:
            pytest.fail("dcmtk's storescu is not installed")
        for path in files:  # one call per file: storescu proposes the file's own (compressed) syntax
            cmd = [exe, *_proposal(path), "-aet", "SEEDER", "-aec", self.aet, "127.0.0.1",
                   str(self.dicom_port), str(path)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                pytest.fail(f"storescu failed on {path.name}: {done.stderr[-1000:]}")

    def rest(self, path: str) -> object:
        with urllib.request.urlopen(f"{self.rest_url}{path}", timeout=10) as r:
            return json.loads(r.read())

    def instance_count(self) -> int:
        return int(self.rest("/statistics")["CountInstances"])  # type: ignore[index]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


# storescu's option that proposes a file's transfer syntax (it converts to uncompressed otherwise)
_STORESCU_PROPOSAL = {
    "1.2.840.10008.1.2.4.50": "-xy",  # JPEG baseline
    "1.2.840.10008.1.2.4.70": "-xs",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.90": "-xv",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": "-xw",  # JPEG 2000
    "1.2.840.10008.1.2.5": "-xr",  # RLE
}


def _proposal(path: Path) -> list[str]:
    import pydicom

    syntax = str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    option = _STORESCU_PROPOSAL.get(syntax)
    return [option] if option else []


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def seed_paths(dicom_dir: Path) -> list[Path]:
    paths = [dicom_dir / name for name in SEED_FILES]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        pytest.fail(f"shared test data missing: {missing}")
    return paths


def start_seeded(root: Path, dicom_dir: Path) -> OrthancServer:
    server = OrthancServer(root).start()
    try:
        server.seed(seed_paths(dicom_dir))
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory, dicom_dir: Path):  # noqa: ANN201 - OrthancServer
    """A seeded Orthanc for the module's tests (import this fixture into a test module)."""
    server = start_seeded(tmp_path_factory.mktemp("orthanc"), dicom_dir)
    yield server
    server.stop()
