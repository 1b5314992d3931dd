"""Benchmark: headers indexed per second on a folder of synthetic DICOM files.

Writes N (default 2,000) synthetic 512x512 16-bit radiographs with pixel data (for 2,000: 5
patients, 2 studies each, 2 series of 100 images per study) into a temporary folder, then times
``ml.imaging.index.build_index`` on it against a bare ``pydicom.dcmread(f, stop_before_pixels=True)``
loop over the same files (the baseline: parsing only, no value conversion, no tree), and, for
reference, ``ml.imaging.read.read_meta`` on each file (full header, converted). Each is run
``--repeat`` times alternately with the files in the page cache; the best run counts.

    .venv/bin/python build_scripts/bench_index.py [--files 2000] [--size 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pydicom  # noqa: E402

from ml.imaging.index import build_index, iter_files  # noqa: E402
from ml.imaging.read import read_meta  # noqa: E402
from tests.helpers.dicom_factory import new_uid, synthetic_pixels, write_dicom  # noqa: E402


def write_files(folder: Path, n: int, size: int) -> list[Path]:
    pixels = synthetic_pixels(size, size, bits_stored=12)
    per_series = 100
    paths = []
    study_uid = series_uid = ""
    for i in range(n):
        if i % per_series == 0:
            series_uid = new_uid()
            if i % (2 * per_series) == 0:
                study_uid = new_uid()
        patient = i // (4 * per_series)
        path = folder / f"patient{patient:02d}" / f"study{i // (2 * per_series):03d}" / f"IM{i:05d}.dcm"
        write_dicom(
            path, patient_name=f"Bench^Patient{patient:02d}", patient_id=f"BENCH{patient:02d}",
            study_uid=study_uid, study_date=f"2024{1 + (i // per_series) % 12:02d}01", series_uid=series_uid,
            series_number=1 + (i // per_series) % 2, instance_number=1 + i % per_series,
            rows=size, columns=size, bits_stored=12, pixels=pixels,
        )
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="cxr-bench-index-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        paths = write_files(folder, args.files, args.size)
        total_mb = sum(p.stat().st_size for p in paths) / 2**20
        print(f"wrote {len(paths)} files ({args.size}x{args.size} 16-bit, {total_mb:.0f} MiB) "
              f"in {time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        listed = list(iter_files([folder]))
        print(f"listing (iter_files): {len(listed)} files in {(time.perf_counter() - t0) * 1e3:.0f} ms")

        best_index = best_plain = best_meta = float("inf")
        index = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for p in paths:
                pydicom.dcmread(p, stop_before_pixels=True)
            best_plain = min(best_plain, time.perf_counter() - t0)
            t0 = time.perf_counter()
            index = build_index([folder])
            best_index = min(best_index, time.perf_counter() - t0)
            t0 = time.perf_counter()
            for p in paths:
                read_meta(p)
            best_meta = min(best_meta, time.perf_counter() - t0)

        assert index is not None and len(index) == len(paths) and not index.errors
        n_studies = sum(len(p.studies) for p in index.patients)
        n_series = sum(len(s.series) for p in index.patients for s in p.studies)
        print(f"tree: {len(index.patients)} patients, {n_studies} studies, {n_series} series, "
              f"{len(index)} instances")
        rate_index, rate_plain = len(paths) / best_index, len(paths) / best_plain
        print(f"build_index:                                 {best_index:6.2f} s  {rate_index:8.0f} headers/s")
        print(f"dcmread(stop_before_pixels) loop (baseline): {best_plain:6.2f} s  {rate_plain:8.0f} headers/s")
        print(f"read_meta loop (full header, for reference): {best_meta:6.2f} s  "
              f"{len(paths) / best_meta:8.0f} headers/s")
        print(f"ratio build_index / baseline time:           {best_index / best_plain:6.2f}x "
              "(build_index also converts the values, builds the tree and checks pixel data length)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
