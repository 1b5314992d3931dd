"""The one header reader: what a DICOM, PNG or JPEG file is, without decoding a pixel.

``cxr info``, the index, the training scan, ``cxr predict`` and the full reader (before it
decodes) all call :func:`read_header`, so they agree on every file: a file whose pixel data ends
before its declared length or delimiter raises :class:`TruncatedPixelDataError` everywhere.

DICOM goes through ``pydicom.filereader.read_partial`` with ``specific_tags``, stopping at the
pixel data element (whose position and length are recorded, not read), so thousands of files
index in seconds. PNG/JPEG sizes come from Pillow's header parse.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ml import scrub
from ml.errors import (
    CorruptImageError,
    ImageTooLargeError,
    ImagingError,
    NotAnImageError,
    TruncatedPixelDataError,
)
from ml.imaging.dicom_meta import is_non_image, meta_from_dataset
from ml.imaging.image import ImageMeta
from ml.imaging.sniff import HEAD_SIZE, has_preamble, kind_of, open_regular

if TYPE_CHECKING:  # pydicom is imported on the first DICOM header, not before the window shows
    from pydicom.dataset import FileDataset

scrub.install()  # a process that reads DICOM headers scrubs every log record of names and IDs

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # the DICOMDIR SOP class
DEFLATED_DATASET = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian
# Every header element meta_from_dataset uses; the rest of the header is skipped unparsed.
_HEADER_KEYWORD_NAMES = (
    "SOPClassUID", "SOPInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "Modality",
    "StudyDescription", "SeriesDescription", "PatientName", "PatientID", "PatientBirthDate",
    "PatientSex", "EstimatedRadiographicMagnificationFactor", "ImagerPixelSpacing",
    "ViewPosition", "StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "InstanceNumber",
    "Laterality", "ImageLaterality", "PatientOrientation", "SamplesPerPixel", "PhotometricInterpretation",
    "NumberOfFrames", "Rows", "Columns", "PixelSpacing", "NominalScannedPixelSpacing",
    "BitsAllocated", "BitsStored", "PixelRepresentation", "LossyImageCompression",
    "LossyImageCompressionMethod", "PresentationLUTShape",
    "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",  # enhanced: pixel spacing
)


@cache
def header_keywords() -> dict[int, str]:
    """{tag: keyword} of the header elements read (from pydicom's dictionary, on first use)."""
    from pydicom.datadict import keyword_for_tag, tag_for_keyword

    tags = [t for k in _HEADER_KEYWORD_NAMES if (t := tag_for_keyword(k)) is not None]
    return {tag: keyword_for_tag(tag) for tag in tags}


def __getattr__(name: str) -> Any:  # HEADER_TAGS, computed when first asked for
    if name == "HEADER_TAGS":
        return list(header_keywords())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}  # Float, Double Float, Pixel Data
_FLOAT_TAGS = {0x7FE00008, 0x7FE00009}
_SEQ_DELIM_LE = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD), length 0
_SEQ_DELIM_BE = b"\xff\xfe\xe0\xdd\x00\x00\x00\x00"
_BITMAP_GREY_MODES = ("L", "P", "1", "LA", "I", "I;16", "I;16B", "I;16L")


@dataclass(frozen=True)
class PixelDataInfo:
    """Where the (undecoded) pixel data element sits in the file. ``length`` is the declared
    value length (0xFFFFFFFF: encapsulated); ``position`` is the offset of its value.
    ``position`` is -1 when unknown (a deflated dataset: offsets are in the inflated stream)."""

    tag: int
    length: int
    position: int
    file_size: int
    little_endian: bool

    @property
    def encapsulated(self) -> bool:
        return self.length == 0xFFFFFFFF

    @property
    def encoded_bytes(self) -> int:
        """Bytes of pixel data the file holds (for encapsulated data: up to the end of the file)."""
        if self.position < 0:
            return -1
        if self.encapsulated:
            return max(0, self.file_size - self.position)
        return min(self.length, max(0, self.file_size - self.position))


class _HeaderView:
    """The part of the Dataset interface :func:`meta_from_dataset` uses (``get``, ``in``,
    ``file_meta``), over values converted straight from the raw elements. Skipping pydicom's
    per-access Dataset machinery makes header indexing about three times faster."""

    def __init__(self, ds: FileDataset) -> None:
        from pydicom.datadict import dictionary_VR
        from pydicom.dataelem import RawDataElement
        from pydicom.values import convert_value

        self.file_meta = ds.file_meta
        encodings = ds.original_character_set
        values: dict[str, Any] = {}
        self.short = False  # an element's value ends before its declared length
        for tag, keyword in header_keywords().items():
            raw = ds.get_item(tag)
            if raw is None:
                continue
            try:
                if isinstance(raw, RawDataElement):
                    if raw.value is not None and raw.length != 0xFFFFFFFF and len(raw.value) < raw.length:
                        self.short = True
                    vr = raw.VR if raw.VR not in (None, "UN") else dictionary_VR(tag)
                    values[keyword] = convert_value(vr, raw, encodings)
                else:
                    values[keyword] = raw.value
            except Exception:  # noqa: BLE001 - a malformed value is treated as absent
                continue
        self._values = values

    def get(self, keyword: str, default: Any = None) -> Any:
        return self._values.get(keyword, default)

    def __contains__(self, keyword: object) -> bool:
        return keyword in self._values


def _encapsulated_truncated(fh: BinaryIO, pos: int, size: int, little_endian: bool) -> bool:
    """True when encapsulated pixel data starting at ``pos`` ends before its delimiter.

    Only the 8-byte item headers are read (fragments are skipped with seek), so this is cheap.
    """
    fh.seek(max(0, size - 8))
    if fh.read(8) == (_SEQ_DELIM_LE if little_endian else _SEQ_DELIM_BE):
        return False
    fmt = "<HHL" if little_endian else ">HHL"
    fh.seek(pos)
    while True:
        header = fh.read(8)
        if len(header) < 8:
            return True
        group, elem, length = struct.unpack(fmt, header)
        if (group, elem) == (0xFFFE, 0xE0DD):
            return False
        if (group, elem) != (0xFFFE, 0xE000) or fh.tell() + length > size:
            return True
        fh.seek(length, os.SEEK_CUR)


def bitmap_header(path: str | os.PathLike[str], kind: str) -> ImageMeta:
    """Size and mode of a PNG/JPEG from its header (Pillow; no pixel decoded)."""
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            mode = im.mode
    except Image.DecompressionBombError:
        raise ImageTooLargeError(
            f"{Path(path).name} claims more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels: not decoded."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise CorruptImageError(f"{Path(path).name} is damaged ({exc}).") from None
    color = mode not in _BITMAP_GREY_MODES
    return ImageMeta(
        path=path, kind=kind, rows=h, columns=w, modality="OT",
        photometric="RGB" if color else "MONOCHROME2", samples_per_pixel=3 if color else 1,
        bits_stored=16 if mode.startswith("I") else 8, lossy=kind == "jpeg",
        lossy_reason="JPEG file" if kind == "jpeg" else "",
    )


def read_header(path: str | os.PathLike[str]) -> ImageMeta:
    """Header facts of one DICOM, PNG or JPEG file without touching pixel data.

    ``has_pixels`` is exact (the pixel data element was seen). Raises an
    :class:`~ml.errors.ImagingError`: :class:`NotAnImageError` for other files,
    :class:`TruncatedPixelDataError` for pixel data that ends early or an image object without it.
    """
    return read_header_and_pixels(path)[0]


def read_header_and_pixels(path: str | os.PathLike[str]) -> tuple[ImageMeta, PixelDataInfo | None]:
    """:func:`read_header`, plus where the pixel data sits (None for PNG/JPEG and non-images)."""
    path = os.fspath(path)
    name = Path(path).name
    with open_regular(path) as fh:
        head = fh.read(HEAD_SIZE)
        kind = kind_of(head)
        if kind in ("png", "jpeg"):
            return bitmap_header(path, kind), None
        if kind == "empty":
            raise NotAnImageError(f"{name} is empty.")
        if kind != "dicom":
            raise NotAnImageError(f"{name} is not a DICOM or image file.")
        preamble = has_preamble(head)
        fh.seek(0)
        seen: dict[str, int] = {}

        def at_pixels(tag: int, vr: str | None, length: int) -> bool:
            if tag in _PIXEL_TAGS:
                seen["tag"], seen["length"], seen["pos"] = int(tag), length, fh.tell()
                return True
            return False

        from pydicom.errors import InvalidDicomError
        from pydicom.filereader import read_partial

        try:
            ds = read_partial(fh, stop_when=at_pixels, force=not preamble, specific_tags=list(header_keywords()))
            scrub.register_dataset(ds)  # its names and IDs never reach a log (issue 11 item 3)
            view = _HeaderView(ds)
            meta = meta_from_dataset(view, path)  # type: ignore[arg-type]
        except InvalidDicomError:
            raise NotAnImageError(f"{name} is not a DICOM or image file.") from None
        except RecursionError:
            raise CorruptImageError(f"{name} is damaged: its sequences are nested too deeply.") from None
        except Exception as exc:  # noqa: BLE001 - a damaged header can fail anywhere in pydicom
            raise ImagingError(f"{name} is damaged and cannot be read as DICOM ({_short(exc)}).") from None
        except BaseException as exc:
            if type(exc).__name__ != "PanicException":
                raise
            raise ImagingError(f"{name} is damaged and cannot be read as DICOM.") from None
        if not preamble and not (meta.sop_class_uid or meta.study_uid or meta.rows):
            raise NotAnImageError(f"{name} is not a DICOM or image file.")
        size = os.fstat(fh.fileno()).st_size
        # Elements skipped with seek (or read short) past the end of the file: cut short.
        if (fh.tell() > size and "tag" not in seen) or view.short:
            raise ImagingError(f"{name} is damaged or truncated: its header is incomplete.")
        meta.has_pixels = "tag" in seen
        meta.float_pixels = seen.get("tag") in _FLOAT_TAGS
        pixels = None
        if meta.has_pixels:
            # Positions are only meaningful in the file itself, not in an inflated (deflated) dataset.
            known = meta.transfer_syntax_uid != DEFLATED_DATASET
            pixels = PixelDataInfo(seen["tag"], seen["length"], seen["pos"] if known else -1, size,
                                   bool(ds.is_little_endian))
            if known:
                if pixels.encapsulated:
                    truncated = _encapsulated_truncated(fh, seen["pos"], size, pixels.little_endian)
                else:
                    truncated = seen["pos"] + seen["length"] > size
                if truncated:
                    raise TruncatedPixelDataError(f"{name}: truncated pixel data (the file ends early).")
    if not meta.has_pixels and (meta.rows or "Image Storage" in meta.sop_class_name):
        raise TruncatedPixelDataError(f"{name} has no pixel data: the file is truncated.")
    if not meta.has_pixels and meta.sop_class_uid != MEDIA_STORAGE_DIRECTORY and not is_non_image(meta):
        # An object of an image class without pixel data still has all four UIDs (a non-image
        # class, SR and the like, is listed as such); without them the header was cut short.
        if not (meta.sop_instance_uid and meta.study_uid and meta.series_uid):
            raise ImagingError(f"{name} is damaged or truncated: its header is incomplete.")
    return meta, pixels


def _short(exc: BaseException) -> str:
    """What went wrong, without the exception's text: pydicom's messages can quote raw header
    bytes, patient names among them, and run to dozens of lines."""
    return type(exc).__name__
