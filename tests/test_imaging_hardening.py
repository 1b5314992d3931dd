"""Damaged and hostile inputs (issue 11): every one ends in one readable ImagingError, quickly,
without a large allocation, a crash or a hang. The inputs are made here from the shared files."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.fileset import FileSet

from ml.cli import main as cxr
from ml.errors import CorruptImageError, CxrError, ImagingError, MissingCodecError, TruncatedPixelDataError
from ml.imaging.header import read_header
from ml.imaging.index import build_index, iter_files
from ml.imaging.read import read_image
from tests.helpers.dicom_factory import write_dicom

REPO = Path(__file__).resolve().parents[1]


def _with(src: Path, dest: Path, **attrs) -> Path:
    """A copy of ``src`` with header attributes changed; the pixel data bytes stay as they were."""
    ds = pydicom.dcmread(src)
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.save_as(dest)
    return dest


def test_absurd_size_claim_is_refused_before_decoding_and_names_the_size(dicom_dir: Path, tmp_path: Path) -> None:
    # 49 KB of RLE claiming 16384 x 65535 x 10 frames x 16 bits: 20 GiB decoded
    path = _with(dicom_dir / "emri_small_RLE.dcm", tmp_path / "huge.dcm", Rows=65535, Columns=16384)
    code = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a decoder that tried would die here
from ml.imaging.read import read_image
from ml.errors import ImageTooLargeError
try:
    read_image(sys.argv[1])
except ImageTooLargeError as exc:
    print(exc)
"""
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=REPO,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert "claims 16384 x 65535 pixels x 10 frame(s)" in res.stdout and "GiB decoded" in res.stdout
    assert "out of memory" not in res.stdout


def test_claim_not_backed_by_the_encoded_data_is_refused(dicom_dir: Path, tmp_path: Path) -> None:
    # RLE: 49 KB cannot hold 4096 x 4096 x 10 frames (320 MiB, inside the memory budget)
    rle = _with(dicom_dir / "emri_small_RLE.dcm", tmp_path / "rle.dcm", Rows=4096, Columns=4096)
    with pytest.raises(CorruptImageError, match="more than .* of RLE data can hold"):
        read_image(rle)
    # native pixel data shorter than rows x columns says (the file itself is complete)
    native = _with(dicom_dir / "emri_small_big_endian.dcm", tmp_path / "native.dcm", Rows=128)
    with pytest.raises(CorruptImageError, match="holds only"):
        read_image(native)
    # a JPEG 2000 codestream describing a different image than the header
    j2k = _with(dicom_dir / "emri_small_jpeg_2k_lossless.dcm", tmp_path / "j2k.dcm", Rows=2000, Columns=2000)
    with pytest.raises(CorruptImageError, match=r"compressed image is 64 x 64 pixels x 1 component\(s\) but the header claims 2000 x 2000 x 1"):
        read_image(j2k)


def test_damaged_compressed_data_is_not_called_a_missing_codec(dicom_dir: Path, tmp_path: Path) -> None:
    raw = bytearray((dicom_dir / "emri_small_jpeg_2k_lossless.dcm").read_bytes())
    start = raw.index(b"\xff\x4f\xff\x51") + 200  # keep the SIZ marker, scramble the code blocks
    rng = random.Random(7)
    for i in range(start, len(raw) - 2000):
        raw[i] = rng.randrange(256)
    (tmp_path / "scrambled.dcm").write_bytes(bytes(raw))
    try:
        read_image(tmp_path / "scrambled.dcm")
    except CxrError as exc:
        assert not isinstance(exc, MissingCodecError) and "missing" not in str(exc), exc
    # and when a decoder really is unavailable, the registry says so and names what is missing
    import pydicom.pixels

    class Unavailable:
        is_available = False
        missing_dependencies = ["pylibjpeg-openjpeg"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pydicom.pixels, "get_decoder", lambda uid: Unavailable())
        with pytest.raises(MissingCodecError, match="pylibjpeg-openjpeg"):
            read_image(dicom_dir / "emri_small_jpeg_2k_lossless.dcm")


class PanicException(BaseException):  # what pyo3_runtime.PanicException looks like
    pass


def test_a_rust_panic_is_one_readable_error(dicom_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    def panic(self):  # noqa: ANN001
        raise PanicException("called `Result::unwrap()` on an `Err` value")

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(panic))
    with pytest.raises(CorruptImageError, match="damaged"):
        read_image(dicom_dir / "emri_small_RLE.dcm")
    assert cxr(["render", str(dicom_dir / "emri_small_RLE.dcm"), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cxr: error:") and "Traceback" not in err

    import ml.imaging.index as index_module

    def panicking_header(path):  # noqa: ANN001
        raise PanicException("boom")

    monkeypatch.setattr(index_module, "read_header", panicking_header)
    index = build_index([dicom_dir / "rsna_cxr_pa.dcm"])
    assert [m for _, m in index.errors] == ["rsna_cxr_pa.dcm is damaged and cannot be read."]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_fifo_in_a_folder_is_skipped_without_blocking(dicom_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "scan"
    folder.mkdir()
    (folder / "a.dcm").write_bytes((dicom_dir / "rsna_cxr_pa.dcm").read_bytes())
    os.mkfifo(folder / "pipe.dcm")
    result: dict = {}
    worker = threading.Thread(target=lambda: result.setdefault("index", build_index([folder])), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "indexing blocked on a FIFO"
    index = result["index"]
    assert [Path(e.source).name for e in index.instances()] == ["a.dcm"]
    assert "pipe.dcm is not a regular file" in dict(index.errors)[str(folder / "pipe.dcm")]
    started = time.monotonic()
    for reader in (read_image, read_header):
        with pytest.raises(ImagingError, match="not a regular file"):
            reader(folder / "pipe.dcm")
    assert time.monotonic() - started < 5


def test_zip_member_named_with_nul_does_not_stop_indexing(dicom_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "nul.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(dicom_dir / "rsna_cxr_pa.dcm", "Xbad.dcm")
        zf.write(dicom_dir / "RG3_J2KR.dcm", "good.dcm")
    archive.write_bytes(archive.read_bytes().replace(b"Xbad.dcm", b"\x00bad.dcm"))
    index = build_index([archive], cache_dir=tmp_path / "cache")
    assert [e.source for e in index.instances()] == [f"{archive}:good.dcm"]
    ((source, message),) = index.errors
    assert "nul.zip" in message and "invalid name" in message and source.startswith(str(archive))


def test_zip_members_that_differ_only_by_dotdot_do_not_collide(tmp_path: Path) -> None:
    one = write_dicom(tmp_path / "src" / "one.dcm", patient_id="P1")
    two = write_dicom(tmp_path / "src" / "two.dcm", patient_id="P2")
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(one.filename, "x.dcm")
        zf.write(two.filename, "../x.dcm")
    index = build_index([archive], cache_dir=tmp_path / "cache")
    assert index.errors == [] and index.duplicates == []
    entries = list(index.instances())
    assert sorted(e.meta.patient_id for e in entries) == ["P1", "P2"]
    assert len({e.path for e in entries}) == 2
    assert all(Path(e.path).resolve().is_relative_to((tmp_path / "cache").resolve()) for e in entries)


def test_zip_bomb_members_are_not_extracted(dicom_dir: Path, tmp_path: Path, monkeypatch) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", b"\0" * (64 << 20))  # 64 MiB in about 64 KB, not DICOM
        # a real DICOM header followed by 64 MiB of zeros: DICOM by its first bytes, a bomb by its ratio
        zf.writestr("padded.dcm", (dicom_dir / "rsna_cxr_pa.dcm").read_bytes() + b"\0" * (64 << 20))
        for i in range(6):
            zf.write(dicom_dir / "rsna_cxr_pa.dcm", f"copy{i}.dcm")
    assert archive.stat().st_size < 3 << 20
    import ml.imaging.listing as listing

    monkeypatch.setattr(listing, "TOTAL_SLACK", 400_000)  # this archive may write 400 KB in all
    monkeypatch.setattr(listing, "MAX_TOTAL_FACTOR", 0)
    cache = tmp_path / "cache"
    index = build_index([archive], cache_dir=cache)
    errors = dict(index.errors)
    assert errors[f"{archive}:zeros.dcm"] == "zeros.dcm is not a DICOM or image file."  # sniffed, not extracted
    assert "expand" in errors[f"{archive}:padded.dcm"]
    capped = [m for s, m in index.errors if "into the cache" in m]
    extracted = [p for p in cache.rglob("*") if p.is_file()]
    assert len(capped) == 3 and len(extracted) == 3  # three 127 KB copies fit in 400 KB, three do not
    assert sum(p.stat().st_size for p in extracted) <= 400_000


def test_dicomdir_references_outside_its_folder_are_refused(tmp_path: Path) -> None:
    media = tmp_path / "media"
    fs = FileSet()
    for i in range(3):
        fs.add(write_dicom(tmp_path / "src" / f"{i}.dcm", instance_number=i + 1).filename)
    fs.write(media)
    dicomdir = pydicom.dcmread(media / "DICOMDIR")
    records = [r for r in dicomdir.DirectoryRecordSequence if "ReferencedFileID" in r]
    # same value length as the original, so the records' offsets stay valid
    length = len("\\".join(records[0].ReferencedFileID))
    name = "e" * (length - len("..\\") - len(".dcm")) + ".dcm"
    write_dicom(tmp_path / name, patient_id="OTHER")  # next to the media folder, not inside it
    records[0].ReferencedFileID = ["..", name]
    dicomdir.save_as(media / "DICOMDIR")

    listed = list(iter_files([media / "DICOMDIR"]))
    assert all(name not in f.path for f in listed)
    assert [f.error for f in listed if f.error] == [
        "DICOMDIR references files outside its folder (refused): the folder was scanned instead."]
    index = build_index([media / "DICOMDIR"])
    assert "OTHER" not in {e.meta.patient_id for e in index.instances()}
    assert any("outside its folder" in m for _, m in index.errors), index.errors
    assert len(index) == 3  # the folder's own files still open


def test_mutated_files_only_ever_raise_readable_errors(dicom_dir: Path, tmp_path: Path) -> None:
    """A small, fixed-seed mutation run over the paths `cxr info`, `cxr render` and the index use."""
    seed = 20261202
    rng = random.Random(seed)
    sources = [dicom_dir / n for n in ("emri_small_RLE.dcm", "JLSL_16_15_1_1F.dcm", "SC_rgb.dcm", "liver_deflate.dcm",
                                        "emri_small_jpeg_2k_lossless.dcm", "rsna_cxr_pa.dcm")]
    for i in range(120):
        data = bytearray(rng.choice(sources).read_bytes())
        header_end = min(len(data), 1500)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(128, header_end)
            data[at] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(132, len(data))]
        path = tmp_path / f"m{i}.dcm"
        path.write_bytes(bytes(data))
        for reader in (read_header, read_image):
            try:
                reader(path)
            except CxrError:
                pass
            except Exception as exc:  # noqa: BLE001
                pytest.fail(f"seed {seed} mutation {i}: {reader.__name__} raised {type(exc).__name__}: {exc}")
    index = build_index([tmp_path])
    assert not [m for _, m in index.errors if "something went wrong" in m]


def test_png_claiming_a_huge_size_is_refused_with_the_size(shared_data: Path, tmp_path: Path) -> None:
    import struct
    import zlib

    from PIL import Image

    from ml.errors import ImageTooLargeError

    Image.new("L", (8, 8)).save(tmp_path / "small.png")
    raw = bytearray((tmp_path / "small.png").read_bytes())
    ihdr = raw.index(b"IHDR")
    raw[ihdr + 4: ihdr + 12] = struct.pack(">II", 40000, 40000)
    raw[ihdr + 17: ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(raw[ihdr: ihdr + 17])))
    (tmp_path / "huge.png").write_bytes(bytes(raw))
    for reader in (read_image, read_header):
        with pytest.raises(ImageTooLargeError, match="huge.png claims more than"):
            reader(tmp_path / "huge.png")


def _crash(path: str) -> None:  # runs in the guarded worker: what a native decoder abort looks like
    os.abort()


def _hang(path: str) -> None:
    time.sleep(120)


def test_guarded_reader_survives_a_decoder_crash_and_a_hang(dicom_dir: Path) -> None:
    import numpy as np

    from ml.imaging.guarded import GuardedReader

    with GuardedReader(timeout_s=20) as reader:
        image = reader.read(dicom_dir / "emri_small_RLE.dcm")
        assert np.array_equal(image.frames, read_image(dicom_dir / "emri_small_RLE.dcm").frames)
        with pytest.raises(CorruptImageError, match="the decoder crashed"):
            reader.run(_crash, "x", name="x.dcm")
        with pytest.raises(TruncatedPixelDataError):  # readable errors come back as they are
            reader.read(dicom_dir / "emri_small_jpeg_2k_lossless_too_short.dcm")
        reader.timeout_s = 3
        started = time.monotonic()
        with pytest.raises(CorruptImageError, match="longer than 3 s"):
            reader.run(_hang, "x", name="x.dcm")
        assert time.monotonic() - started < 15
        reader.timeout_s = 20
        assert reader.read(dicom_dir / "rsna_cxr_pa.dcm").shape == (1024, 1024)  # a fresh worker


def test_render_to_an_unwritable_place_is_one_line(dicom_dir: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    code = cxr(["render", str(dicom_dir / "rsna_cxr_pa.dcm"), "-o", str(tmp_path / "a_file" / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("cxr: error: Cannot write x.png") and err.count("\n") == 1, err


def test_window_values_that_are_not_finite_are_ignored(dicom_dir: Path, tmp_path: Path) -> None:
    from ml.imaging.display import render

    path = _with(dicom_dir / "rsna_cxr_pa.dcm", tmp_path / "nan.dcm", WindowCenter="NaN", WindowWidth="inf")
    image = read_image(path)
    assert image.windows == []
    assert render(image).std() > 10  # an auto window, not a blank image
