"""Fuzz targets for the image readers (issue 11): mutated DICOM files, ZIP archives, DICOMDIRs.

Inputs are structured mutations (byte flips, truncation, absurd length fields, wrong VRs,
absurd size attributes, deep sequences) of the shared files in ../shared/data/dicom. A DICOM
input runs through the code paths of ``cxr info`` (the header reader), ``cxr render`` (decode +
render of frame 1) and the indexer; a ZIP or DICOMDIR input through the indexer. An indexer
message "something went wrong" counts as uncaught (the indexer turned a non-ml.errors exception
into it). Run by :mod:`fuzz_harness` in its memory-limited worker.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path
from typing import Any

SEEDS = ("emri_small_RLE.dcm", "JLSL_16_15_1_1F.dcm", "SC_rgb.dcm", "liver_deflate.dcm",
         "emri_small_jpeg_2k_lossless.dcm", "rsna_cxr_pa.dcm", "emri_small_big_endian.dcm", "JPEG-LL.dcm",
         "bad_sequence.dcm", "explicit_VR-UN.dcm", "parametric_map_float.dcm", "SC_rgb_2frame.dcm")
_VRS = (b"PN", b"US", b"UL", b"SS", b"SL", b"FD", b"FL", b"DS", b"IS", b"LO", b"SH", b"CS", b"UI", b"SQ",
        b"OB", b"OW", b"DA", b"TM", b"UN", b"AT")
_SIZE_KEYWORDS = ("Rows", "Columns", "BitsAllocated", "BitsStored", "SamplesPerPixel", "NumberOfFrames",
                  "PixelRepresentation", "PlanarConfiguration", "HighBit")


def strategy(n_seeds: int, deep: bool = True) -> Any:
    """A mutation spec: (seed file index, [operations]); positions are fractions of the file.
    ``deep=False``: no deep sequences (for DICOMDIRs: see the README, Hardening, known limits)."""
    from hypothesis import strategies as st

    frac = st.floats(0.0, 1.0, allow_nan=False)
    header_frac = st.floats(0.0, 0.05, allow_nan=False)  # most parsing happens near the start
    op = st.one_of(
        st.tuples(st.just("flip"), st.one_of(header_frac, frac), st.integers(0, 255)),
        st.tuples(st.just("truncate"), frac),
        st.tuples(st.just("length"), header_frac, st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF])),
        st.tuples(st.just("vr"), frac, st.sampled_from(_VRS)),
        st.tuples(st.just("attr"), st.sampled_from(_SIZE_KEYWORDS),
                  st.sampled_from([0, 1, 3, 7, 17, 33, 255, 4097, 32767, 65535, -1])),
        *([st.tuples(st.just("deep"), st.integers(1, 150))] if deep else []),  # ~150: past the recursion limit
        st.tuples(st.just("wrongvr"), st.sampled_from(["PatientName", "PatientID", "StudyDate", "Rows", "WindowCenter"])),
    )
    return st.tuples(st.integers(0, n_seeds - 1), st.lists(op, min_size=1, max_size=4))


def _structured(data: bytes, ops: list[Any]) -> bytes:
    """The pydicom-level operations (attributes, deep sequences, wrong VRs) applied by re-saving."""
    import pydicom
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    for op in ops:
        if op[0] == "attr":
            ds.add(DataElement(pydicom.datadict.tag_for_keyword(op[1]), "IS" if op[1] == "NumberOfFrames" else "US",
                               op[2] if op[2] >= 0 or op[1] == "NumberOfFrames" else 65535))
        elif op[0] == "deep":
            inner = Dataset()
            for _ in range(op[1]):
                outer = Dataset()
                outer.ReferencedSOPSequence = Sequence([inner])
                inner = outer
            ds.ReferencedImageSequence = Sequence([inner])
        elif op[0] == "wrongvr":
            ds.add(DataElement(pydicom.datadict.tag_for_keyword(op[1]), "UL", b"Fuzz^Name^x"))
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def mutate(data: bytes, ops: list[Any]) -> bytes:
    structured = [op for op in ops if op[0] in ("attr", "deep", "wrongvr")]
    if structured:
        try:
            data = _structured(data, structured)
        except Exception:  # noqa: BLE001 - a seed pydicom cannot re-save: byte operations only
            pass
    buf = bytearray(data)
    for op in ops:
        if not buf:
            break
        at = min(len(buf) - 1, int(op[1] * len(buf))) if isinstance(op[1], float) else 0
        if op[0] == "flip":
            buf[at] = op[2]
        elif op[0] == "truncate":
            del buf[max(1, at):]
        elif op[0] == "length":
            buf[at: at + 4] = int(op[2]).to_bytes(4, "little")
        elif op[0] == "vr":
            hit = buf.find(b"\x00", at)  # the next element-ish boundary: overwrite 2 bytes after a tag
            pos = at if hit < 0 else min(len(buf) - 2, hit + 3)
            buf[pos: pos + 2] = op[2]
    return bytes(buf)


def _index_outcome(path: Path, cache: Path) -> tuple[str, str]:
    from ml.imaging.index import build_index

    index = build_index([path], cache_dir=cache)
    bad = [m for _, m in index.errors if "something went wrong" in m]
    return ("uncaught", f"indexer: {bad[0]}") if bad else ("handled" if index.errors else "ok", "")


class DicomTarget:
    """One mutated DICOM file: ``cxr info``, ``cxr render`` and the indexer."""

    name, SUFFIX = "dicom", ".dcm"

    def strategy(self, n_seeds: int) -> Any:
        return strategy(n_seeds)

    def seeds(self, dicom_dir: Path, work: Path) -> list[bytes]:
        return [(dicom_dir / name).read_bytes() for name in SEEDS if (dicom_dir / name).exists()]

    def make(self, seeds: list[bytes], spec: Any, work: Path, case: Path) -> Path:
        case.mkdir(parents=True, exist_ok=True)
        path = case / f"input{self.SUFFIX}"
        path.write_bytes(mutate(seeds[spec[0] % len(seeds)], spec[1]))
        return path

    def read(self, path: Path, work: Path) -> tuple[str, str]:
        import argparse as ap

        from ml.cli import cmd_info, cmd_render
        from ml.errors import CxrError

        outcome = "ok"
        devnull = open(os.devnull, "w")  # noqa: SIM115
        old, sys.stdout = sys.stdout, devnull
        try:
            for fn, args in ((cmd_info, ap.Namespace(path=str(path), json=False)),
                             (cmd_render, ap.Namespace(path=str(path), output=str(work / "out.png"), frame=1,
                                                       window=None))):
                try:
                    fn(args)
                except CxrError:
                    outcome = "handled"
        finally:
            sys.stdout = old
            devnull.close()
        kind, detail = _index_outcome(path.parent, path.parent / ".cache")
        return (kind, detail) if kind != "ok" else (outcome, "")


class ZipTarget(DicomTarget):
    """A mutated ZIP archive of two shared DICOM files, through the indexer."""

    name, SUFFIX = "zip", ".zip"

    def seeds(self, dicom_dir: Path, work: Path) -> list[bytes]:
        import zipfile

        out = []
        for pair in (SEEDS[0:2], SEEDS[2:4], SEEDS[4:6]):
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for name in pair:
                    zf.writestr(f"study/{name}", (dicom_dir / name).read_bytes())
            out.append(buf.getvalue())
        return out

    def read(self, path: Path, work: Path) -> tuple[str, str]:
        return _index_outcome(path, work / "cache")


class DicomdirTarget(ZipTarget):
    """A mutated DICOMDIR beside the three files it references, through the indexer."""

    name, SUFFIX = "dicomdir", ".DICOMDIR"

    def strategy(self, n_seeds: int) -> Any:
        return strategy(n_seeds, deep=False)

    def seeds(self, dicom_dir: Path, work: Path) -> list[bytes]:
        from pydicom import dcmread
        from pydicom.fileset import FileSet

        fs_dir = work / "fileset"
        fs = FileSet()
        for i, name in enumerate(("rsna_cxr_pa.dcm", "SC_rgb.dcm", "emri_small_RLE.dcm")):
            ds = dcmread(dicom_dir / name)
            for keyword, value in (("PatientID", f"P{i}"), ("StudyID", "1"), ("SeriesNumber", 1),
                                   ("InstanceNumber", 1)):
                if not ds.get(keyword):  # what a DICOMDIR record needs
                    setattr(ds, keyword, value)
            fs.add(ds)
        fs.write(fs_dir)
        return [(fs_dir / "DICOMDIR").read_bytes()]

    def make(self, seeds: list[bytes], spec: Any, work: Path, case: Path) -> Path:
        shutil.copytree(work / "fileset", case)
        path = case / "DICOMDIR"
        path.write_bytes(mutate(seeds[spec[0] % len(seeds)], spec[1]))
        return path


TARGETS = {t.name: t for t in (DicomTarget(), ZipTarget(), DicomdirTarget())}
