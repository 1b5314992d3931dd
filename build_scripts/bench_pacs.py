"""Benchmark (printed, not asserted): studies/s retrieved from a local Orthanc by C-GET and WADO-RS
(ml.pacs) against dcmtk's getscu on the same studies. Run: .venv/bin/python build_scripts/bench_pacs.py"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.pacs import Node, retrieve  # noqa: E402
from tests.helpers.orthanc import OrthancServer  # noqa: E402

STUDIES = {  # file -> StudyInstanceUID
    "rsna_cxr_pa.dcm": "1.2.276.0.7230010.3.1.2.8323329.6904.1517875201.850818",
    "RG3_J2KR.dcm": "1.3.6.1.4.1.5962.1.2.11.20040826185059.5457",
    "SC_rgb.dcm": "1.2.826.0.1.3680043.8.498.12406831542731051035295345080039845114",
}
ROUNDS = 5


def main() -> None:
    data = ROOT.parent / "shared" / "data" / "dicom"
    work = Path(tempfile.mkdtemp(prefix="bench_pacs_"))
    server = OrthancServer(work).start()
    try:
        server.seed([data / name for name in STUDIES])
        node = Node("bench", server.aet, "127.0.0.1", server.dicom_port, dicomweb_url=server.dicomweb_url)
        results = {}
        for protocol in ("dimse", "dicomweb"):
            t = time.perf_counter()
            for r in range(ROUNDS):
                for uid in STUDIES.values():
                    retrieve(node, uid, work / f"{protocol}{r}", protocol=protocol)
            results[f"ml.pacs {'C-GET' if protocol == 'dimse' else 'WADO-RS'}"] = time.perf_counter() - t
        getscu = shutil.which("getscu")
        if getscu:
            t = time.perf_counter()
            for r in range(ROUNDS):
                for uid in STUDIES.values():
                    out = work / f"getscu{r}"
                    out.mkdir(exist_ok=True)
                    subprocess.run([getscu, "-aec", server.aet, "-S", "-k", "QueryRetrieveLevel=STUDY", "-k",
                                    f"StudyInstanceUID={uid}", "-od", str(out), "127.0.0.1",
                                    str(server.dicom_port)], check=True, capture_output=True)
            results["dcmtk getscu"] = time.perf_counter() - t
        n = ROUNDS * len(STUDIES)
        print(f"{n} study retrieves ({len(STUDIES)} single-image studies x {ROUNDS}) from a local Orthanc 1.10:")
        for name, seconds in results.items():
            print(f"  {name:<18} {n / seconds:6.1f} studies/s  ({seconds:.2f} s)")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
