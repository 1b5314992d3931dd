"""Decode DICOM pixel data safely: ask first, check the claim, then decode.

1. "Can this transfer syntax be decoded here?" is asked of pydicom's decoder registry
   (``pydicom.pixels.get_decoder(uid)``: no decoder at all, or one whose plugins are missing),
   never guessed from exception text. Once a decoder is available, a decode failure is a data
   error ("damaged"), never "codec missing".
2. Before any decoding, the declared size (rows x columns x frames x samples x bits) must be
   plausible, within a memory budget derived from the machine, and consistent with the encoded
   length (native data must hold it; RLE cannot compress more than ~64:1; a JPEG/JPEG 2000
   codestream must describe the image the header describes). A 2 KB file claiming gigabytes is
   refused with a message naming the claimed size, before a decoder allocates anything.
3. A Rust decoder panic (``pyo3_runtime.PanicException``, a BaseException) is caught here; RLE
   goes through pydicom's own decoder, which cannot panic.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ml.errors import (
    CorruptImageError,
    ImageTooLargeError,
    MissingCodecError,
    TruncatedPixelDataError,
    UnsupportedTransferSyntaxError,
)
from ml.imaging.header import PixelDataInfo
from ml.imaging.image import ImageMeta

if TYPE_CHECKING:  # pydicom is imported when a file is decoded, not before the window shows
    from pydicom.dataset import Dataset

_GIB = 1 << 30
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
_J2K_PREFIXES = ("1.2.840.10008.1.2.4.9", "1.2.840.10008.1.2.4.20")  # JPEG 2000, HTJ2K
_JPEG_PREFIXES = ("1.2.840.10008.1.2.4.5", "1.2.840.10008.1.2.4.7", "1.2.840.10008.1.2.4.8")
_RLE_MAX_RATIO = 130  # 2 bytes encode at most 128 repeated bytes, plus the 64-byte header
_VALID_BITS = (1, 8, 16, 32, 64)


def is_panic(exc: BaseException) -> bool:
    """A Rust extension's panic (pyo3_runtime.PanicException derives from BaseException)."""
    return type(exc).__name__ == "PanicException"


def memory_budget() -> int:
    """Bytes one decoded image may take: a quarter of physical memory, at least 256 MiB and at
    most 8 GiB; ``CXR_STUDIO_DECODE_BUDGET_MB`` overrides it."""
    env = os.environ.get("CXR_STUDIO_DECODE_BUDGET_MB")
    if env:
        try:
            return max(1, int(float(env) * (1 << 20)))
        except ValueError:
            pass
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        physical = 8 * _GIB
    return int(min(max(physical // 4, 256 << 20), 8 * _GIB))


def _human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def claimed_bytes(meta: ImageMeta) -> int:
    """Decoded size the header claims: rows x columns x frames x samples x bytes per sample."""
    per_sample = 1 if meta.bits_allocated <= 8 else (meta.bits_allocated + 7) // 8
    return meta.rows * meta.columns * meta.n_frames * meta.samples_per_pixel * per_sample


def _claim_text(meta: ImageMeta) -> str:
    return (f"{meta.columns} x {meta.rows} pixels x {meta.n_frames} frame(s) x "
            f"{meta.samples_per_pixel} sample(s) x {meta.bits_allocated} bits "
            f"({_human(claimed_bytes(meta))} decoded)")


def check_decoder(meta: ImageMeta) -> None:
    """Raise when no available decoder handles the file's transfer syntax (pydicom's registry)."""
    ts = meta.transfer_syntax_uid
    if not ts:
        return  # no file meta: pydicom reads it as native little endian
    from pydicom.pixels import get_decoder

    name = Path(meta.path).name
    pretty = f"{meta.transfer_syntax_name} ({ts})" if meta.transfer_syntax_name != ts else ts
    try:
        decoder = get_decoder(ts)
    except (NotImplementedError, ValueError):
        raise UnsupportedTransferSyntaxError(
            f"{name}: transfer syntax {pretty} is not supported by this viewer's decoders.",
            meta.transfer_syntax_name, ts,
        ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoding plugin"
        raise MissingCodecError(
            f"{name}: the codec for {pretty} is missing ({missing}), so it cannot be decoded.",
            meta.transfer_syntax_name, ts,
        )


def check_claim(meta: ImageMeta, pixels: PixelDataInfo | None, path: str | os.PathLike[str] = "") -> None:
    """Refuse, before decoding, a size claim that is implausible, over the memory budget or not
    backed by the encoded data."""
    name = Path(meta.path or path).name
    if meta.rows <= 0 or meta.columns <= 0:
        raise CorruptImageError(f"{name}: the image header gives no size (Rows/Columns missing or 0).")
    if meta.bits_allocated not in _VALID_BITS or meta.samples_per_pixel not in (1, 3, 4):
        raise CorruptImageError(
            f"{name}: the image header is implausible ({meta.bits_allocated} bits allocated, "
            f"{meta.samples_per_pixel} samples per pixel)."
        )
    claimed = claimed_bytes(meta)
    budget = memory_budget()
    if claimed > budget:
        raise ImageTooLargeError(
            f"{name} claims {_claim_text(meta)}, more than the {_human(budget)} this machine allows "
            "for one image: not decoded."
        )
    if pixels is None or pixels.position < 0 or meta.float_pixels:
        return
    held = pixels.encoded_bytes
    ts = meta.transfer_syntax_uid
    if not pixels.encapsulated:
        expected = claimed if meta.bits_allocated != 1 else (claimed + 7) // 8
        if meta.photometric.startswith("YBR") and "422" in meta.photometric:
            expected = expected * 2 // 3
        if held < expected:
            if pixels.position + pixels.length > pixels.file_size:
                raise TruncatedPixelDataError(f"{name}: truncated pixel data (the file ends early).")
            raise CorruptImageError(
                f"{name} claims {_claim_text(meta)} but its pixel data holds only {_human(held)}."
            )
        return
    if ts == RLE_LOSSLESS and claimed > held * _RLE_MAX_RATIO:
        raise CorruptImageError(
            f"{name} claims {_claim_text(meta)}, more than {_human(held)} of RLE data can hold."
        )
    if ts.startswith(_J2K_PREFIXES + _JPEG_PREFIXES):
        size = _codestream_size(meta.path or os.fspath(path), pixels, ts.startswith(_J2K_PREFIXES))
        if size is not None:
            width, height, components = size
            if (width, height) != (meta.columns, meta.rows) or components not in (meta.samples_per_pixel, 1, 3):
                raise CorruptImageError(
                    f"{name}: its compressed image is {width} x {height} pixels x {components} component(s) "
                    f"but the header claims {meta.columns} x {meta.rows} x {meta.samples_per_pixel}: "
                    "the file is damaged."
                )


def _first_fragment(path: str, pixels: PixelDataInfo, n: int = 65536) -> bytes:
    """The first ``n`` bytes of the first pixel data fragment (after the basic offset table)."""
    fmt = "<HHL" if pixels.little_endian else ">HHL"
    with open(path, "rb") as fh:
        fh.seek(pixels.position)
        for _ in range(2):
            header = fh.read(8)
            if len(header) < 8:
                return b""
            group, elem, length = struct.unpack(fmt, header)
            if (group, elem) != (0xFFFE, 0xE000):
                return b""
            if _ == 0:
                fh.seek(length, os.SEEK_CUR)  # basic offset table
        return fh.read(min(length, n))


def _codestream_size(path: str, pixels: PixelDataInfo, j2k: bool) -> tuple[int, int, int] | None:
    """(width, height, components) from a JPEG 2000 SIZ or a JPEG/JPEG-LS SOF marker, if found."""
    try:
        data = _first_fragment(path, pixels)
    except OSError:
        return None
    if j2k:
        at = data.find(b"\xff\x4f\xff\x51")
        if at < 0 or len(data) < at + 42:
            return None
        xsiz, ysiz, xo, yo = struct.unpack(">IIII", data[at + 8: at + 24])
        (csiz,) = struct.unpack(">H", data[at + 40: at + 42])
        return max(0, xsiz - xo), max(0, ysiz - yo), csiz
    pos = 2 if data.startswith(b"\xff\xd8") else -1
    while 0 <= pos < len(data) - 9:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2: pos + 4])
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7):
            height, width = struct.unpack(">HH", data[pos + 5: pos + 9])
            return width, height, data[pos + 9] if pos + 9 < len(data) else 1
        pos += 2 + length
    return None


def decode(ds: Dataset, meta: ImageMeta) -> np.ndarray:
    """``ds.pixel_array`` with every failure turned into one readable :class:`ImagingError`.
    Call :func:`check_decoder` and :func:`check_claim` first."""
    name = Path(meta.path).name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if meta.transfer_syntax_uid == RLE_LOSSLESS:
                # pydicom's own numpy RLE decoder (2048 x 2048 in ~0.1 s): pylibjpeg-rle panics on
                # damaged segments and prints a Rust backtrace to stderr even when it is caught.
                ds.pixel_array_options(decoding_plugin="pydicom")
            arr = ds.pixel_array
            if meta.photometric == "PALETTE COLOR":
                from pydicom.pixels import apply_color_lut

                arr = apply_color_lut(arr, ds)
                if arr.dtype != np.uint8:
                    arr = (arr >> 8).astype(np.uint8)
    except MemoryError:
        raise ImageTooLargeError(
            f"{name}: not enough memory to decode {_claim_text(meta)}."
        ) from None
    except (EOFError, struct.error) as exc:
        raise TruncatedPixelDataError(f"{name}: truncated pixel data ({type(exc).__name__}).") from None
    except RecursionError:
        raise CorruptImageError(f"{name}: the file is damaged (nested too deeply).") from None
    except Exception as exc:  # noqa: BLE001 - the decoder is available, so this is the data
        raise CorruptImageError(
            f"{name}: the pixel data is damaged and cannot be decoded ({type(exc).__name__})."
        ) from None
    except BaseException as exc:
        if is_panic(exc):
            raise CorruptImageError(f"{name}: the pixel data is damaged (the decoder gave up).") from None
        raise
    return arr
